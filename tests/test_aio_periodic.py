"""AsyncPeriodicTask: the fixed-rate schedule on a fake clock (the same calls as PeriodicTask for
the same plan), TryLater, stop, futures, the crash policy, declaration."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import Service, Task, Tasks, TaskState, TryLater, audit
from lifecycle.aio.periodic import AsyncPeriodicTask
from lifecycle.errors import InitError, InvalidTask, TaskNotRunning, TaskStopped
from tests.aio_fakes import by_hand, collected, in_thread, started
from tests.aio_support import asyncio_hygiene, serve  # noqa: F401  (autouse)
from tests.fakes import WAIT, FakeService
from tests.test_periodic import run_plan as run_thread_plan


def run(main: Any) -> Any:
    return asyncio.run(main())


# -- the real loop on a fake clock ---------------------------------------------------------


class FakeClock(AsyncPeriodicTask):
    """Runs the real `run_loop` on an integer clock that only moves when told to.

    ``plan`` lists what each call does: an int is how long the run takes; ``("later", s)``
    raises TryLater(after=s). After the plan, one more call asks for stop and returns.
    """

    INTERVAL = 10

    def __init__(self, plan: list[Any]) -> None:
        super().__init__()
        self.plan = plan
        self.clock = 1000
        self.calls: list[int] = []

    def _now(self) -> float:
        return self.clock

    async def _sleep_until(self, deadline: float) -> bool:
        self.clock = max(self.clock, int(deadline))
        return self.stop_event.is_set()

    async def execute(self) -> Any:
        if len(self.calls) == len(self.plan):
            self.stop_event.set()
            return None
        step = self.plan[len(self.calls)]
        self.calls.append(self.clock)
        if isinstance(step, tuple):
            raise TryLater(after=step[1])
        self.clock += step
        return step


def run_plan(plan: list[Any]) -> FakeClock:
    async def main() -> FakeClock:
        task = FakeClock(plan)
        async with asyncio.timeout(WAIT):
            await task.run_loop()
        return task

    return run(main)  # type: ignore[no-any-return]


@given(st.lists(st.integers(0, 45), max_size=25))
def test_the_loop_has_no_cumulative_drift_and_skips_missed_ticks(runs: list[int]) -> None:
    task = run_plan(runs)
    interval = 10
    assert len(task.calls) == len(runs)
    assert all((c - 1000) % interval == 0 for c in task.calls)  # every start on the grid
    for start, took, following in zip(task.calls, runs, task.calls[1:], strict=False):
        assert following == start + interval * max(1, math.ceil(took / interval))
    assert task.slow_iterations == sum(1 for r in runs if r > interval)
    assert task.skipped_ticks == sum(max(1, math.ceil(r / interval)) - 1 for r in runs)
    assert task.iterations == len(runs) + 1  # the last call asked for stop, then returned


plans = st.lists(
    st.one_of(
        st.integers(0, 45), st.tuples(st.just("later"), st.one_of(st.none(), st.integers(0, 40)))
    ),
    max_size=12,
)


@given(plans)
def test_the_same_plan_gives_the_same_calls_and_counts_as_the_thread_task(
    plan: list[Any],
) -> None:
    threaded = run_thread_plan(plan)
    awaited = run_plan(plan)
    assert awaited.calls == threaded.calls
    assert (awaited.slow_iterations, awaited.skipped_ticks, awaited.try_laters) == (
        threaded.slow_iterations,
        threaded.skipped_ticks,
        threaded.try_laters,
    )
    assert awaited.iterations == threaded.iterations


def test_try_later_after_delays_the_next_run_off_the_grid_then_rejoins_it() -> None:
    task = run_plan([0, ("later", 25), 0, 0])
    assert task.calls == [1000, 1010, 1035, 1040]
    assert (task.try_laters, task.slow_iterations, task.skipped_ticks) == (1, 0, 2)


def test_try_later_without_after_waits_for_the_next_tick() -> None:
    task = run_plan([3, ("later", None), 0])
    assert task.calls == [1000, 1010, 1020]
    assert (task.try_laters, task.iterations) == (1, 3)


# -- live ----------------------------------------------------------------------------------


class Ticker(AsyncPeriodicTask):
    INTERVAL = 0.001

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.count = 0
        self.reached = asyncio.Event()

    async def execute(self) -> Any:
        self.count += 1
        if self.count >= 5:
            self.reached.set()
        return self.count


def test_a_live_task_runs_repeatedly_and_counts_its_iterations() -> None:
    async def main() -> Tasks:
        async with collected(Ticker) as tasks:
            async with asyncio.timeout(WAIT):
                await tasks.Ticker.reached.wait()
        return tasks

    tasks = run(main)
    task = tasks.Ticker
    assert task.iterations == task.count >= 5
    assert task.try_laters == 0
    assert tasks.state_of("Ticker") == TaskState.STOPPED


def test_execute_async_resolves_with_the_next_runs_result_for_coroutines_and_threads() -> None:
    async def main() -> None:
        async with collected(Ticker) as tasks:
            task = tasks.Ticker
            futures = [task.execute_async() for _ in range(3)]
            results = {await f for f in futures}
            assert len(results) == 1  # all three observe the same run
            from_thread = await in_thread(lambda: task.execute_async().result(WAIT))
            assert from_thread > results.pop()

    run(main)


def test_try_later_after_delays_the_run_and_stop_wakes_the_wait_at_once() -> None:
    class Deferring(AsyncPeriodicTask):
        INTERVAL = 0.001

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.calls = 0
            self.deferred = asyncio.Event()

        async def execute(self) -> Any:
            self.calls += 1
            self.deferred.set()
            raise TryLater("come back in an hour", after=3600)

    async def main() -> None:
        async with collected(Deferring) as tasks:
            task = tasks.Deferring
            await task.deferred.wait()
            pending = task.execute_async()
            # The worker waits an hour for its retry; only stop can end that wait within WAIT.
            assert await in_thread(lambda: (tasks.stop(), tasks.join(WAIT))[1]) == []
            assert task.calls == 1
            assert (task.try_laters, task.iterations) == (1, 0)
            with pytest.raises(TaskStopped):
                await pending

    run(main)


def test_execute_async_waits_through_try_later_for_a_real_outcome() -> None:
    class Eventually(AsyncPeriodicTask):
        INTERVAL = 0.001

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.calls = 0
            self.first = asyncio.Event()
            self.armed = asyncio.Event()

        async def execute(self) -> Any:
            self.calls += 1
            self.first.set()
            if self.calls == 1:
                await self.armed.wait()  # the test registers its future during run 1
            if self.calls == 2:
                raise TryLater(after=0)
            return self.calls

    async def main() -> None:
        async with by_hand(Eventually()) as task:
            await task.first.wait()
            future = task.execute_async()
            task.armed.set()
            assert await future == 3  # not the TryLater of run 2
            assert task.try_laters == 1

    run(main)


def test_execute_async_on_a_task_not_running_fails_at_once() -> None:
    unbound = Ticker().execute_async()
    assert isinstance(unbound.exception(0), TaskNotRunning)

    async def main() -> None:
        tasks = Tasks([Ticker], loop=asyncio.get_running_loop())
        await in_thread(tasks.create, FakeService())
        error = tasks.Ticker.execute_async().exception(0)
        assert isinstance(error, TaskNotRunning)
        assert (error.task, error.state) == ("Ticker", "created")
        await in_thread(tasks.stop)
        assert isinstance(tasks.Ticker.execute_async().exception(0), TaskNotRunning)

    run(main)


def test_an_exception_from_execute_fails_its_futures_and_crashes_the_task() -> None:
    service = FakeService()

    class Broken(AsyncPeriodicTask):
        INTERVAL = 0.001

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.calls = 0
            self.first = asyncio.Event()
            self.armed = asyncio.Event()

        async def execute(self) -> Any:
            self.calls += 1
            self.first.set()
            if self.calls == 1:
                await self.armed.wait()
                return None
            raise RuntimeError("broken")

    async def main() -> None:
        async with collected(Broken, service=service) as tasks:
            task = tasks.Broken
            await task.first.wait()
            future = task.execute_async()
            task.armed.set()
            with pytest.raises(RuntimeError, match="broken"):
                await future
            assert await in_thread(service.asked.wait, WAIT)
            assert await in_thread(task.join, WAIT)
            assert task.state == TaskState.FAILED
            assert service.reasons == ["task 'Broken' failed: RuntimeError: broken"]
            assert isinstance(task.execute_async().exception(0), TaskNotRunning)

    run(main)


def test_a_run_cut_short_by_the_stop_grace_fails_its_futures_with_task_stopped() -> None:
    class Stubborn(AsyncPeriodicTask):
        INTERVAL = 0.001
        STOP_GRACE = 0.01

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.calls = 0
            self.first = asyncio.Event()
            self.armed = asyncio.Event()

        async def execute(self) -> Any:
            self.calls += 1
            self.first.set()
            await self.armed.wait()
            await asyncio.Event().wait()  # never returns: only the grace's cancel ends it

    async def main() -> Tasks:
        async with collected(Stubborn) as tasks:
            task = tasks.Stubborn
            await task.first.wait()
            watching = task.execute_async()  # the next run, which never comes
            task.armed.set()
            assert await in_thread(lambda: (tasks.stop(), tasks.join(WAIT))[1]) == []
            with pytest.raises(TaskStopped):
                await watching
        return tasks

    assert run(main).Stubborn.state == TaskState.STOPPED


# -- declaration and options ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True])
def test_a_bad_interval_raises_invalid_task(bad: Any) -> None:
    with pytest.raises(InvalidTask, match="interval must be"):
        type("Bad", (AsyncPeriodicTask,), {"INTERVAL": bad})


def test_an_async_periodic_task_has_exactly_one_worker() -> None:
    with pytest.raises(InvalidTask, match="one worker"):
        type("Many", (AsyncPeriodicTask,), {"INTERVAL": 1, "workers": 2})


def test_a_plain_function_execute_is_refused_at_class_creation() -> None:
    with pytest.raises(InvalidTask, match=r"execute\(\) is not an async def"):

        class Blocking(AsyncPeriodicTask):
            INTERVAL = 1

            def execute(self) -> Any:  # type: ignore[override]
                return None


def test_a_task_without_an_interval_fails_at_create() -> None:
    class Unset(AsyncPeriodicTask):
        async def execute(self) -> Any:
            return None

    tasks = Tasks([Unset])
    with pytest.raises(InitError) as caught:
        tasks.create(FakeService())
    assert isinstance(caught.value.failed["Unset"], InvalidTask)


def test_the_interval_option_overrides_the_class_attribute() -> None:
    assert Ticker(FakeService()).interval == 0.001
    assert Ticker(FakeService({"Ticker_interval": 2.5})).interval == 2.5
    with pytest.raises(InvalidTask, match="interval must be"):
        Ticker(FakeService({"Ticker_interval": -3.0}))


def test_the_counters_read_from_another_thread() -> None:
    async def main() -> None:
        async with by_hand(Ticker()) as task:
            await task.reached.wait()
            seen: list[int] = []
            reader = threading.Thread(target=lambda: seen.append(task.iterations))
            reader.start()
            await in_thread(reader.join, WAIT)
            assert seen and seen[0] >= 5

    run(main)


# -- end to end, through a Service ---------------------------------------------------------


class Clockwork(Task):
    """A thread task the async periodic task requires (DEPS across kinds)."""

    def run_loop(self) -> None:
        self.stop_event.wait()


class Beat(AsyncPeriodicTask):
    DEPS = (Clockwork,)
    INTERVAL = 0.001

    async def execute(self) -> Any:
        return self.iterations + 1


class BeatService(Service):
    TASKS = (Beat,)


def test_a_served_async_periodic_task_ticks_until_shutdown_and_audits_clean() -> None:
    seen: list[int] = []

    async def meanwhile(service: Service) -> None:
        task = await started(service, Beat)
        for _ in range(3):
            seen.append(await task.execute_async())
        seen.append(await in_thread(lambda: task.execute_async().result(WAIT)))
        service.shutdown("test over")

    service = BeatService()
    code, left = serve(service, meanwhile)
    assert code == 0 and left == set()
    assert seen == sorted(seen) and len(set(seen)) == 4  # one distinct, later run each time
    task = service.tasks.require(Beat)
    assert task.iterations >= 4 and task.state == TaskState.STOPPED
    assert audit.check(service.journal) == []
    assert isinstance(task.execute_async().exception(0), TaskNotRunning)
