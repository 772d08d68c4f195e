"""QueueTask, PriorityQueueTask, UniqueQueueTask: retries, futures, stop, order, bounds."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError, Future
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import ExecuteContext, Tasks, TaskState, TryLater
from lifecycle.errors import (
    InitError,
    InvalidItem,
    InvalidTask,
    QueueFull,
    TaskNotRunning,
    TaskStopped,
)
from lifecycle.tasks import PriorityQueueTask, QueueTask, UniqueQueueTask
from lifecycle.testing import wait_for_state
from tests.fakes import WAIT, FakeService, running, stop


class Gated(QueueTask):
    """Blocks on the item ``"gate"`` until `release` is set; returns other items doubled."""

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[Any] = []

    def execute(self, item: Any, context: ExecuteContext) -> Any:
        if item == "gate":
            self.entered.set()
            if not self.release.wait(WAIT):
                raise TimeoutError("the test never released the gate")
            return "opened"
        self.seen.append(item)
        return item * 2


def open_gate(task: Gated) -> Future[Any]:
    """Submit the gate and wait until a worker is blocked on it."""
    future = task.submit("gate")
    assert task.entered.wait(WAIT)
    return future


# -- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [None, 0.001], ids=["at-once", "after-delay"])
def test_three_items_each_retried_ten_times_give_30_retries_and_3_completions(
    after: float | None,
) -> None:
    class Retrying(QueueTask):
        WORKERS = 2

        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if context.attempt <= 10:
                raise TryLater("not yet", after=after)
            return (item, context.attempt)

    with running(Retrying) as tasks:
        task = tasks.Retrying
        futures = [task.submit(name) for name in "abc"]
        results = [f.result(WAIT) for f in futures]
        assert results == [("a", 11), ("b", 11), ("c", 11)]
        assert task.try_laters == 30
        assert task.completed == 3
        assert task.failed == 0
        assert task.pending == 0


@given(
    retries=st.lists(st.integers(0, 4), max_size=6),
    workers=st.integers(1, 3),
    delayed=st.booleans(),
)
def test_every_retry_is_counted_and_every_item_completes(
    retries: list[int], workers: int, delayed: bool
) -> None:
    class Counted(QueueTask):
        WORKERS = workers

        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if context.attempt <= retries[item]:
                raise TryLater(after=0.0005 if delayed else None)
            return context.attempt

    with running(Counted) as tasks:
        task = tasks.Counted
        results = task.map(range(len(retries)), timeout=WAIT)
        assert results == [r + 1 for r in retries]
        assert task.try_laters == sum(retries)
        assert task.completed == len(retries)


# -- futures and the crash policy ----------------------------------------------------------


def test_an_exception_fails_only_that_items_future() -> None:
    class Picky(QueueTask):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item < 0:
                raise ValueError(f"negative: {item}")
            return item

    with running(Picky) as tasks:
        task = tasks.Picky
        bad, good = task.submit(-1), task.submit(5)
        assert good.result(WAIT) == 5
        error = bad.exception(WAIT)
        assert isinstance(error, ValueError)
        assert str(error) == "negative: -1"
        assert task.failed == 1
        assert task.state == TaskState.RUNNING


def test_an_exception_on_an_item_nobody_observes_is_a_crash() -> None:
    service = FakeService()

    class Fragile(Gated):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "boom":
                raise RuntimeError("unobserved")
            return super().execute(item, context)

    with running(Fragile, service=service) as tasks:
        task = tasks.Fragile
        task.put("boom")
        assert service.asked.wait(WAIT)
        wait_for_state(task, TaskState.FAILED, WAIT)
        assert isinstance(task.failure, RuntimeError)
        assert service.reasons == ["task 'Fragile' failed: RuntimeError: unobserved"]
        with pytest.raises(TaskNotRunning):
            task.submit(1)
        failed = [r for r in tasks.journal.records if r.trigger == "fail"]
        assert failed and "RuntimeError: unobserved" in (failed[0].cause or "")


def test_items_waiting_when_a_worker_crashes_fail_with_task_stopped() -> None:
    service = FakeService()

    class CrashOnGate(Gated):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "gate":
                self.entered.set()
                self.release.wait(WAIT)
                raise SystemExit(3)  # a crash even though the item has a future
            return item

    with running(CrashOnGate, service=service) as tasks:
        task = tasks.CrashOnGate
        gate = open_gate(task)
        waiting = [task.submit(i) for i in range(3)]
        task.release.set()
        assert isinstance(gate.exception(WAIT), SystemExit)
        for future in waiting:
            error = future.exception(WAIT)
            assert isinstance(error, TaskStopped)
            assert "failed before item" in str(error)
        assert service.asked.wait(WAIT)  # the task fails just after its worker left
        assert task.state == TaskState.FAILED
        assert task.dropped == 3


def test_a_future_cancelled_before_its_item_starts_skips_the_item() -> None:
    with running(Gated) as tasks:
        task = tasks.Gated
        open_gate(task)
        doomed, kept = task.submit(1), task.submit(2)
        assert doomed.cancel()
        task.release.set()
        assert kept.result(WAIT) == 4
        assert task.seen == [2]
        assert task.cancelled == 1


# -- stop ----------------------------------------------------------------------------------


def test_items_still_queued_at_stop_fail_with_task_stopped_and_are_journaled() -> None:
    class Delaying(Gated):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "later":
                raise TryLater(after=3600)
            return super().execute(item, context)

    tasks = Tasks([Delaying])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    task = tasks.Delaying
    try:
        later = task.submit("later")
        gate = open_gate(task)  # "later" ran first (FIFO) and now waits in the timer heap
        queued = [task.submit(i) for i in range(3)]
        assert task.pending == 4
        tasks.stop()  # the worker is still busy with the gate
        errors = [f.exception(WAIT) for f in [*queued, later]]
        assert all(isinstance(e, TaskStopped) for e in errors)
        assert [e.item for e in errors] == [0, 1, 2, "later"]  # type: ignore[union-attr]
        assert errors[-1].attempt == 2  # type: ignore[union-attr]
        with pytest.raises(TaskNotRunning, match="stopping"):
            task.submit(9)
        task.release.set()
        assert gate.result(WAIT) == "opened"  # the item in flight still completes
    finally:
        task.release.set()
        stop(tasks)
    assert task.dropped == 4
    assert task.completed == 1
    finish = [r for r in tasks.journal.records if r.subject == "Delaying" and r.trigger == "finish"]
    assert len(finish) == 1
    assert finish[0].dest == "stopped"
    assert finish[0].cause == "4 queued item(s) not run; their futures failed with TaskStopped"


def test_a_clean_stop_journals_no_cause() -> None:
    with running(Gated) as tasks:
        assert tasks.Gated.submit(1).result(WAIT) == 2
    finish = [r for r in tasks.journal.records if r.subject == "Gated" and r.trigger == "finish"]
    assert [r.cause for r in finish] == [None]


def test_stop_wakes_idle_workers_even_while_a_retry_is_hours_away() -> None:
    class Sleepy(QueueTask):
        WORKERS = 3

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.deferred = threading.Event()

        def execute(self, item: Any, context: ExecuteContext) -> Any:
            self.deferred.set()
            raise TryLater(after=3 * 3600)

    tasks = Tasks([Sleepy])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    task = tasks.Sleepy
    future = task.submit("x")
    assert task.deferred.wait(WAIT)
    tasks.stop()
    # If stop did not wake the three workers, they would sleep for hours, not WAIT seconds.
    assert tasks.join(WAIT) == []
    assert tasks.state_of("Sleepy") == TaskState.STOPPED
    assert isinstance(future.exception(0), TaskStopped)


def test_submit_to_a_task_that_is_not_running_raises_task_not_running() -> None:
    with pytest.raises(TaskNotRunning, match="unbound"):
        Gated().submit(1)
    tasks = Tasks([Gated])
    tasks.create(FakeService())
    with pytest.raises(TaskNotRunning, match="created"):
        tasks.Gated.submit(1)
    tasks.init()
    tasks.start()
    tasks.stop()
    stop(tasks)
    with pytest.raises(TaskNotRunning, match="stopped"):
        tasks.Gated.put(1)
    with pytest.raises(TaskNotRunning):
        tasks.Gated.map([1, 2])


# -- variants ------------------------------------------------------------------------------


class Ordered(PriorityQueueTask):
    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[Any] = []

    def execute(self, item: Any, context: ExecuteContext) -> Any:
        if item == -1:
            self.entered.set()
            self.release.wait(WAIT)
        else:
            self.seen.append(item)
        return item


@given(st.lists(st.integers(0, 50), max_size=12))
def test_priority_queue_runs_the_smallest_waiting_item_first(items: list[int]) -> None:
    with running(Ordered) as tasks:
        task = tasks.Ordered
        task.submit(-1)
        assert task.entered.wait(WAIT)
        futures = [task.submit(i) for i in items]
        task.release.set()
        assert [f.result(WAIT) for f in futures] == items
        assert task.seen == sorted(items)


def test_priority_queue_refuses_an_unorderable_item_and_keeps_its_order() -> None:
    with running(Ordered) as tasks:
        task = tasks.Ordered
        task.submit(-1)
        assert task.entered.wait(WAIT)
        futures = [task.submit(i) for i in (5, 3, 4)]
        with pytest.raises(InvalidItem, match="cannot be ordered"):
            task.submit("text")
        task.release.set()
        assert [f.result(WAIT) for f in futures] == [5, 3, 4]
        assert task.seen == [3, 4, 5]


def test_unique_queue_returns_the_future_of_an_equal_waiting_item() -> None:
    class Once(UniqueQueueTask, Gated):
        pass

    with running(Once) as tasks:
        task = tasks.Once
        open_gate(task)
        first = task.submit(7)
        assert task.submit(7) is first
        task.put(8)
        eight = task.submit(8)  # a put() item gains the submitter's future
        other = task.submit(9)
        with pytest.raises(InvalidItem, match="hashable"):
            task.submit([1])
        assert task.submitted == 4  # gate, 7, 8, 9
        task.release.set()
        assert (first.result(WAIT), eight.result(WAIT), other.result(WAIT)) == (14, 16, 18)
        assert task.seen == [7, 8, 9]
        again = task.submit(7)  # no longer waiting: queued anew
        assert again is not first
        assert again.result(WAIT) == 14


# -- map -----------------------------------------------------------------------------------


def test_map_returns_results_in_item_order() -> None:
    class Many(Gated):
        WORKERS = 3

    with running(Many) as tasks:
        assert tasks.Many.map(range(20)) == [2 * i for i in range(20)]
        assert tasks.Many.map([], timeout=0) == []


def test_map_raises_the_first_exception_in_item_order() -> None:
    class Fussy(QueueTask):
        WORKERS = 2

        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item in (3, 5):
                raise KeyError(item)
            return item

    with running(Fussy) as tasks, pytest.raises(KeyError, match="3"):
        tasks.Fussy.map(range(8), timeout=WAIT)


def test_map_past_its_timeout_raises_timeout_error_and_cancels_the_rest() -> None:
    with running(Gated) as tasks:
        task = tasks.Gated
        open_gate(task)
        with pytest.raises(TimeoutError, match="2 of 2 results not ready"):
            task.map([1, 2], timeout=0.01)
        task.release.set()
        assert task.submit(3).result(WAIT) == 6
        assert task.cancelled == 2
        assert task.seen == [3]


# -- bounds --------------------------------------------------------------------------------


def test_a_bounded_queue_refuses_past_max_items_and_admits_when_room_frees() -> None:
    class Small(Gated):
        MAX_ITEMS = 2

    with running(Small) as tasks:
        task = tasks.Small
        open_gate(task)  # in flight: does not count against the bound
        kept = [task.submit(1), task.submit(2)]
        with pytest.raises(QueueFull, match="full \\(2 items\\)") as caught:
            task.submit(3, timeout=0)
        assert caught.value.max_items == 2
        result: list[Future[Any]] = []
        blocked = threading.Thread(target=lambda: result.append(task.submit(3, timeout=WAIT)))
        blocked.start()
        task.release.set()  # the worker drains the queue, which lets the submitter in
        blocked.join(WAIT)
        assert not blocked.is_alive()
        assert [f.result(WAIT) for f in [*kept, *result]] == [2, 4, 6]


def test_a_worker_submitting_to_its_own_full_queue_gets_queue_full_not_a_deadlock() -> None:
    class SelfFeeding(QueueTask):
        MAX_ITEMS = 1

        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "feed":
                self.put("filler")
                with pytest.raises(QueueFull):
                    self.submit("more")  # no timeout: would wait forever on itself
                return "fed"
            return item

    with running(SelfFeeding) as tasks:
        assert tasks.SelfFeeding.submit("feed").result(WAIT) == "fed"


def test_a_submitter_blocked_on_a_full_queue_is_released_by_stop() -> None:
    class Small(Gated):
        MAX_ITEMS = 1

    tasks = Tasks([Small])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    task = tasks.Small
    errors: list[BaseException] = []

    def submit_blocked() -> None:
        try:
            task.submit(2)
        except BaseException as exc:
            errors.append(exc)

    try:
        open_gate(task)
        task.submit(1)
        blocked = threading.Thread(target=submit_blocked)
        blocked.start()
        tasks.stop()
        blocked.join(WAIT)
        assert not blocked.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], TaskNotRunning)
    finally:
        task.release.set()
        stop(tasks)


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
        type("Bad", (QueueTask,), attrs)


def test_workers_and_max_items_come_from_options() -> None:
    class Tuned(Gated):
        WORKERS = 1
        MAX_ITEMS = 0

    service = FakeService({"Tuned_workers": 3, "Tuned_max_items": 5})
    with running(Tuned, service=service) as tasks:
        task = tasks.Tuned
        assert type(task).workers == 1
        assert task.workers == 3
        assert len(task.threads) == 3
        assert task.max_items == 5


def test_a_bad_option_value_fails_the_task_at_create() -> None:
    tasks = Tasks([Gated])
    with pytest.raises(InitError) as caught:
        tasks.create(FakeService({"Gated_workers": 0}))
    assert isinstance(caught.value.failed["Gated"], InvalidTask)
    assert tasks.state_of("Gated") == TaskState.FAILED


def test_submit_refuses_a_bad_timeout() -> None:
    with running(Gated) as tasks, pytest.raises(ValueError, match="timeout"):
        tasks.Gated.submit(1, timeout=-1)


def test_a_cancelled_map_future_raises_cancelled_error() -> None:
    with running(Gated) as tasks:
        task = tasks.Gated
        open_gate(task)
        future = task.submit(1)
        future.cancel()
        task.release.set()
        with pytest.raises(CancelledError):
            future.result(WAIT)


def test_a_worker_waits_no_longer_than_the_earliest_delayed_retry() -> None:
    # Two workers: one retries an item for later and its wake-up goes to the other, which then
    # takes a new item and is busy. The first worker, back in its wait, must still service the
    # delayed retry when it is due (it used to wait for a wake-up that never came).
    class Idle(QueueTask):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            return item

    tasks = Tasks([Idle])
    tasks.create(FakeService())
    task = tasks.Idle
    ctx = ExecuteContext(item="later", future=Future())
    task._retry(ctx, after=0.001)  # delayed, with a wake-up token for an idle worker
    assert task._channel.get_nowait() is not None  # ... that another worker took
    taken: list[Any] = []
    worker = threading.Thread(target=lambda: taken.append(task._take()), daemon=True)
    worker.start()
    worker.join(WAIT)
    assert not worker.is_alive(), "the worker never woke for the delayed retry"
    assert taken == [ctx]
    tasks.stop()
