"""AsyncQueueTask: retries, futures, the crash policy, stop (nothing lost), bounds, counters;
driven by hand and through a collection on the running loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import ExecuteContext, Service, Task, Tasks, TaskState, TryLater, audit
from lifecycle.aio.queue import AsyncQueueTask
from lifecycle.errors import InitError, InvalidTask, QueueFull, TaskNotRunning, TaskStopped
from lifecycle.futures import TaskFuture
from lifecycle.outcome import summarize
from lifecycle.tasks.queue import dropped_in_cause
from tests.aio_fakes import by_hand, collected, in_thread, started
from tests.aio_support import asyncio_hygiene, serve  # noqa: F401  (autouse)
from tests.fakes import WAIT, FakeService, stop


class Gated(AsyncQueueTask):
    """Awaits `release` on the item ``"gate"``; returns other items doubled."""

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.entered = threading.Event()
        self.release = asyncio.Event()
        self.seen: list[Any] = []

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        if item == "gate":
            self.entered.set()
            async with asyncio.timeout(WAIT):
                await self.release.wait()
            return "opened"
        self.seen.append(item)
        return item * 2


async def open_gate(task: Gated) -> TaskFuture[Any]:
    """Submit the gate and wait until a worker is inside it."""
    future = task.submit("gate")
    async with asyncio.timeout(WAIT):
        while not task.entered.is_set():
            await asyncio.sleep(0)
    return future


def run(main: Any) -> Any:
    return asyncio.run(main())


# -- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [None, 0.001], ids=["at-once", "after-delay"])
def test_three_items_each_retried_ten_times_give_30_retries_and_3_completions(
    after: float | None,
) -> None:
    class Retrying(AsyncQueueTask):
        WORKERS = 2

        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            if context.attempt <= 10:
                raise TryLater("not yet", after=after)
            return (item, context.attempt)

    async def main() -> None:
        async with collected(Retrying) as tasks:
            task = tasks.Retrying
            futures = [task.submit(name) for name in "abc"]
            assert [await f for f in futures] == [("a", 11), ("b", 11), ("c", 11)]
            assert (task.try_laters, task.completed, task.failed, task.pending) == (30, 3, 0, 0)

    run(main)


@given(
    retries=st.lists(st.integers(0, 4), max_size=6),
    workers=st.integers(1, 3),
    delayed=st.booleans(),
)
def test_every_retry_is_counted_and_every_item_completes(
    retries: list[int], workers: int, delayed: bool
) -> None:
    class Counted(AsyncQueueTask):
        WORKERS = workers

        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            if context.attempt <= retries[item]:
                raise TryLater(after=0.0005 if delayed else None)
            return context.attempt

    async def main() -> Counted:
        async with by_hand(Counted()) as task:
            futures = [task.submit(i) for i in range(len(retries))]
            assert await asyncio.gather(*futures) == [r + 1 for r in retries]
        return task

    task = run(main)
    assert task.try_laters == sum(retries)
    assert task.completed == task.submitted == len(retries)
    assert (task.dropped, task.in_flight, task.pending) == (0, 0, 0)


@given(
    plan=st.lists(st.sampled_from(["ok", "fail", "retry", "later", "cancel"]), max_size=12),
    workers=st.integers(1, 3),
    stop_after=st.integers(0, 12),
)
def test_every_item_ends_completed_failed_cancelled_or_dropped_whenever_stop_comes(
    plan: list[str], workers: int, stop_after: int
) -> None:
    class Mixed(AsyncQueueTask):
        WORKERS = workers

        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            await asyncio.sleep(0)
            kind = plan[item]
            if kind == "fail":
                raise KeyError(item)
            if kind == "retry" and context.attempt < 3:
                raise TryLater()
            if kind == "later":
                raise TryLater(after=3600)  # still delayed at stop
            return item

    async def main() -> tuple[Mixed, list[TaskFuture[Any]]]:
        async with by_hand(Mixed()) as task:
            futures = [task.submit(i) for i in range(len(plan))]
            for future, kind in zip(futures, plan, strict=True):
                if kind == "cancel":
                    future.cancel()
            for future, kind in zip(futures[:stop_after], plan, strict=False):
                if kind != "later":  # stop once these have ended (none: at once)
                    await ended(future)
        return task, futures

    task, futures = run(main)
    assert all(f.done() for f in futures), "an item was left pending"
    assert task.completed + task.failed + task.cancelled + task.dropped == task.submitted
    assert task.submitted == len(plan)
    stopped = [f for f in futures if not f.cancelled() and isinstance(f.exception(), TaskStopped)]
    # A cancelled item still waiting at stop is dropped with the rest (its future stays
    # cancelled); one reached by a worker first is skipped.
    assert len(stopped) + sum(f.cancelled() for f in futures) == task.dropped + task.cancelled
    assert (task.pending, task.in_flight) == (0, 0)


async def ended(future: TaskFuture[Any]) -> None:
    """Wait for ``future`` to end, whichever way."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await future


def test_a_retry_without_after_goes_to_the_back_of_the_queue() -> None:
    class Once(Gated):
        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "again" and context.attempt == 1:
                raise TryLater()
            return await super().execute(item, context)

    async def main() -> list[Any]:
        async with by_hand(Once()) as task:
            gate = await open_gate(task)
            futures = [task.submit(i) for i in ("again", 1, 2)]
            task.release.set()
            await asyncio.gather(gate, *futures)
        return task.seen

    assert run(main) == [1, 2, "again"]


# -- futures and the crash policy ----------------------------------------------------------


def test_an_exception_fails_only_that_items_future() -> None:
    class Picky(AsyncQueueTask):
        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item < 0:
                raise ValueError(f"negative: {item}")
            return item

    async def main() -> None:
        async with collected(Picky) as tasks:
            task = tasks.Picky
            bad, good = task.submit(-1), task.submit(5)
            assert await good == 5
            with pytest.raises(ValueError, match="negative: -1"):
                await bad
            assert task.failed == 1
            assert task.state == TaskState.RUNNING

    run(main)


def test_an_exception_on_an_item_nobody_observes_is_a_crash() -> None:
    service = FakeService()

    class Fragile(AsyncQueueTask):
        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            raise RuntimeError("unobserved")

    async def main() -> None:
        async with collected(Fragile, service=service) as tasks:
            task = tasks.Fragile
            task.put("boom")
            assert await in_thread(service.asked.wait, WAIT)
            assert await in_thread(task.join, WAIT)
            assert task.state == TaskState.FAILED
            assert isinstance(task.failure, RuntimeError)
            assert service.reasons == ["task 'Fragile' failed: RuntimeError: unobserved"]
            with pytest.raises(TaskNotRunning):
                task.submit(1)

    run(main)


def test_items_waiting_when_a_worker_crashes_fail_with_task_stopped() -> None:
    service = FakeService()

    class CrashOnGate(Gated):
        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "gate":
                await super().execute(item, context)
                raise SystemExit(3)  # a crash even though the item has a future
            return item

    async def main() -> CrashOnGate:
        async with collected(CrashOnGate, service=service) as tasks:
            task = tasks.CrashOnGate
            gate = await open_gate(task)
            waiting = [task.submit(i) for i in range(3)]
            task.release.set()
            with pytest.raises(SystemExit):
                await gate
            for future in waiting:
                with pytest.raises(TaskStopped, match="failed before item"):
                    await future
            assert await in_thread(service.asked.wait, WAIT)
            assert task.state == TaskState.FAILED
        return task

    assert run(main).dropped == 3


def test_a_future_cancelled_before_its_item_starts_skips_the_item() -> None:
    async def main() -> Gated:
        async with by_hand(Gated()) as task:
            await open_gate(task)
            doomed, kept = task.submit(1), task.submit(2)
            assert doomed.cancel()
            task.release.set()
            assert await kept == 4
        return task

    task = run(main)
    assert task.seen == [2]
    assert (task.cancelled, task.completed) == (1, 2)


# -- stop ----------------------------------------------------------------------------------


def test_items_still_waiting_at_stop_fail_with_task_stopped_and_are_journaled() -> None:
    class Delaying(Gated):
        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "later":
                raise TryLater(after=3600)
            return await super().execute(item, context)

    async def main() -> Tasks:
        async with collected(Delaying) as tasks:
            task = tasks.Delaying
            later = task.submit("later")
            gate = await open_gate(task)  # "later" ran first and waits on a loop timer
            queued = [task.submit(i) for i in range(3)]
            assert task.pending == 4
            await in_thread(tasks.stop)  # the worker is still inside the gate
            errors = []
            for future in [*queued, later]:
                with pytest.raises(TaskStopped) as caught:
                    await future
                errors.append(caught.value)
            assert [e.item for e in errors] == [0, 1, 2, "later"]
            assert errors[-1].attempt == 2
            with pytest.raises(TaskNotRunning, match="stopping"):
                task.submit(9)
            task.release.set()
            assert await gate == "opened"  # the item in flight still completes
        return tasks

    tasks = run(main)
    task = tasks.Delaying
    assert (task.dropped, task.completed, task.pending) == (4, 1, 0)
    finish = [r for r in tasks.journal.records if r.subject == "Delaying" and r.trigger == "finish"]
    assert [r.dest for r in finish] == ["stopped"]
    assert finish[0].cause == "4 queued item(s) not run; their futures failed with TaskStopped"
    assert dropped_in_cause(finish[0].cause) == 4  # the outcome reads it as for QueueTask


def test_a_clean_stop_journals_no_cause() -> None:
    async def main() -> Tasks:
        async with collected(Gated) as tasks:
            assert await tasks.Gated.submit(1) == 2
        return tasks

    tasks = run(main)
    finish = [r for r in tasks.journal.records if r.subject == "Gated" and r.trigger == "finish"]
    assert [r.cause for r in finish] == [None]


def test_stop_wakes_idle_workers_even_while_a_retry_is_hours_away() -> None:
    class Sleepy(AsyncQueueTask):
        WORKERS = 3

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.deferred = asyncio.Event()

        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            self.deferred.set()
            raise TryLater(after=3 * 3600)

    async def main() -> None:
        async with collected(Sleepy) as tasks:
            task = tasks.Sleepy
            future = task.submit("x")
            await task.deferred.wait()
            assert await in_thread(lambda: (tasks.stop(), tasks.join(WAIT))[1]) == []
            assert tasks.state_of("Sleepy") == TaskState.STOPPED
            with pytest.raises(TaskStopped):
                await future

    run(main)


def test_setting_stop_event_by_hand_wakes_idle_workers() -> None:
    class Idle(AsyncQueueTask):
        WORKERS = 2

        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            return item

    async def main() -> None:
        task = Idle()
        runs = [asyncio.create_task(task.run_loop()) for _ in range(2)]
        await asyncio.sleep(0)  # both workers idle
        task.stop_event.set()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*runs)
        with pytest.raises(TaskNotRunning, match="stopped"):
            task.submit(1)

    run(main)


def test_an_item_cut_short_by_the_stop_grace_fails_with_task_stopped() -> None:
    class Stubborn(AsyncQueueTask):
        STOP_GRACE = 0.01

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.inside = asyncio.Event()

        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            self.inside.set()
            await asyncio.Event().wait()  # never returns by itself: only the grace ends it

    async def main() -> Tasks:
        async with collected(Stubborn) as tasks:
            task = tasks.Stubborn
            future = task.submit("slow")
            await task.inside.wait()
            assert await in_thread(lambda: (tasks.stop(), tasks.join(WAIT))[1]) == []
            with pytest.raises(TaskStopped, match="cancelled") as caught:
                await future  # a TaskStopped, never a CancelledError: the caller is not cancelled
            assert isinstance(caught.value.__cause__, asyncio.CancelledError)
        return tasks

    tasks = run(main)
    task = tasks.Stubborn
    assert task.state == TaskState.STOPPED
    assert task.dropped == 1
    finish = [r for r in tasks.journal.records if r.subject == "Stubborn" and r.trigger == "finish"]
    assert dropped_in_cause(finish[0].cause) == 1


def test_submit_to_a_task_that_is_not_running_raises_task_not_running() -> None:
    with pytest.raises(TaskNotRunning, match="unbound"):
        Gated().submit(1)

    async def main() -> None:
        tasks = Tasks([Gated], loop=asyncio.get_running_loop())
        await in_thread(tasks.create, FakeService())
        with pytest.raises(TaskNotRunning, match="created"):
            tasks.Gated.submit(1)
        await in_thread(tasks.init)
        await in_thread(tasks.start)
        await in_thread(stop, tasks)
        with pytest.raises(TaskNotRunning, match="stopped"):
            tasks.Gated.put(1)

    run(main)


# -- bounds --------------------------------------------------------------------------------


def test_on_the_loop_a_full_queue_refuses_at_once_and_a_thread_waits_for_room() -> None:
    class Small(Gated):
        MAX_ITEMS = 2

    async def main() -> None:
        async with by_hand(Small()) as task:
            await open_gate(task)  # in flight: does not count against the bound
            kept = [task.submit(1), task.submit(2)]
            with pytest.raises(QueueFull, match="full \\(2 items\\)") as caught:
                task.submit(3, timeout=WAIT)  # on the loop: waiting would block the workers
            assert caught.value.max_items == 2
            with pytest.raises(QueueFull):
                await in_thread(lambda: task.submit(3, timeout=0))
            blocked = asyncio.ensure_future(in_thread(lambda: task.submit(3, timeout=WAIT)))
            await asyncio.sleep(0.01)  # the thread is (most likely) waiting now; either way:
            task.release.set()  # the worker drains the queue, which lets the submitter in
            third = await blocked
            assert [await f for f in [*kept, third]] == [2, 4, 6]

    run(main)


def test_a_thread_blocked_on_a_full_queue_is_released_by_stop() -> None:
    class Small(Gated):
        MAX_ITEMS = 1

    async def main() -> None:
        async with collected(Small) as tasks:
            task = tasks.Small
            await open_gate(task)
            task.submit(1)
            blocked = asyncio.ensure_future(in_thread(task.submit, 2))
            await asyncio.sleep(0.01)
            await in_thread(tasks.stop)
            with pytest.raises(TaskNotRunning):
                await blocked
            task.release.set()

    run(main)


def test_submit_refuses_a_bad_timeout() -> None:
    async def main() -> None:
        async with by_hand(Gated()) as task:
            with pytest.raises(ValueError, match="timeout"):
                task.submit(1, timeout=-1)

    run(main)


# -- declaration and options ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"MAX_ITEMS": -1}, "MAX_ITEMS must be an int >= 0"),
        ({"WORKERS": 0}, "WORKERS must be an int >= 1"),
        ({"WORKERS": 1.5}, "WORKERS must be an int >= 1"),
        ({"workers": 3}, "set WORKERS"),
    ],
)
def test_bad_class_attributes_raise_invalid_task(attrs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        type("Bad", (AsyncQueueTask,), attrs)


def test_a_plain_function_execute_is_refused_at_class_creation() -> None:
    with pytest.raises(InvalidTask, match=r"execute\(\) is not an async def"):

        class Blocking(AsyncQueueTask):
            def execute(self, item: Any, context: ExecuteContext) -> Any:  # type: ignore[override]
                return item


def test_workers_and_max_items_come_from_options() -> None:
    class Tuned(Gated):
        WORKERS = 1

    async def main() -> None:
        service = FakeService({"Tuned_workers": 3, "Tuned_max_items": 5})
        async with collected(Tuned, service=service) as tasks:
            task = tasks.Tuned
            assert (type(task).workers, task.workers, task.max_items) == (1, 3, 5)
            assert len([r for r in task._workers_running if not r.done()]) == 3

    run(main)


def test_a_bad_option_value_fails_the_task_at_create() -> None:
    tasks = Tasks([Gated])
    with pytest.raises(InitError) as caught:
        tasks.create(FakeService({"Gated_workers": 0}))
    assert isinstance(caught.value.failed["Gated"], InvalidTask)
    assert tasks.state_of("Gated") == TaskState.FAILED


# -- end to end, through a Service ---------------------------------------------------------


class Feeder(Task):
    """A thread task the async queue requires (DEPS across kinds)."""

    def run_loop(self) -> None:
        self.stop_event.wait()


class Postponing(AsyncQueueTask):
    DEPS = (Feeder,)
    WORKERS = 2

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        if item == "never":
            raise TryLater(after=3600)  # still delayed at stop: dropped, and said so
        return item * 2


class QueueService(Service):
    TASKS = (Postponing,)


def test_a_served_async_queue_works_then_drops_nothing_silently_and_audits_clean() -> None:
    async def meanwhile(service: Service) -> None:
        task = await started(service, Postponing)
        assert await asyncio.gather(*(task.submit(i) for i in range(10))) == [
            2 * i for i in range(10)
        ]
        assert await in_thread(lambda: task.submit(21).result(WAIT)) == 42
        never = task.submit("never")
        service.shutdown("test over")
        with pytest.raises(TaskStopped):
            await never

    service = QueueService()
    code, left = serve(service, meanwhile)
    assert code == 0 and left == set()
    task = service.tasks.require(Postponing)
    assert (task.completed, task.dropped, task.try_laters) == (11, 1, 1)
    assert audit.check(service.journal) == []
    summary = {s.name: s for s in summarize(service.journal.records, service.tasks.order)}
    assert summary["Postponing"].state == "stopped"
    assert summary["Postponing"].dropped == 1
    stops = [r.subject for r in service.journal.records if r.trigger == "stop" and r.kind == "task"]
    assert stops == ["Postponing", "Feeder"]  # the staged stop, across kinds
