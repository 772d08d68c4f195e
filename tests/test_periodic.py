"""PeriodicTask: the fixed-rate schedule (pure and on a fake clock), TryLater, stop, futures."""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import Tasks, TaskState, TryLater
from lifecycle.errors import InitError, InvalidTask, TaskNotRunning, TaskStopped
from lifecycle.tasks import PeriodicTask, next_deadline
from tests.fakes import WAIT, FakeService, running

# -- the pure schedule ---------------------------------------------------------------------

intervals = st.integers(1, 1000)


@given(previous=st.integers(-(10**6), 10**6), late=st.integers(-2000, 10**5), interval=intervals)
def test_next_deadline_is_the_first_grid_tick_at_or_after_now(
    previous: int, late: int, interval: int
) -> None:
    now = previous + late
    deadline, skipped = next_deadline(previous, now, interval)
    ticks, remainder = divmod(deadline - previous, interval)
    assert remainder == 0 and ticks == skipped + 1  # on the grid, never off it
    assert deadline >= now
    assert ticks == 1 or deadline - interval < now  # the first such tick: none bunched
    assert (skipped > 0) == (now - previous > interval)  # slow exactly when over an interval


@given(
    previous=st.fractions(-1000, 1000, max_denominator=50),
    run=st.fractions(0, 100, max_denominator=50),
    interval=st.fractions(Fraction(1, 50), 10, max_denominator=50),
)
def test_next_deadline_is_exact_on_fractions(
    previous: Fraction, run: Fraction, interval: Fraction
) -> None:
    deadline, skipped = next_deadline(previous, previous + run, interval)
    assert deadline == previous + (skipped + 1) * interval
    assert skipped == max(0, math.ceil(run / interval) - 1)


@given(st.floats(0.001, 100), st.lists(st.floats(0, 500), max_size=50))
def test_next_deadline_on_floats_stays_on_its_grid(interval: float, runs: list[float]) -> None:
    deadline = 0.0
    for run in runs:
        now = deadline + run
        following, skipped = next_deadline(deadline, now, interval)
        assert following >= now
        assert skipped == 0 or following - interval < now
        deadline = following


def test_next_deadline_refuses_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval must be > 0"):
        next_deadline(0.0, 1.0, 0.0)


# -- the real loop on a fake clock ---------------------------------------------------------


class FakeClock(PeriodicTask):
    """Runs the real `run_loop` on an integer clock that only moves when told to.

    ``plan`` (from the service) lists what each call does: an int is how long the run takes;
    ``("later", s)`` raises TryLater(after=s). After the plan, the task waits for stop.
    """

    INTERVAL = 10

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.plan: list[Any] = service.plan
        self.clock = 1000
        self.calls: list[int] = []
        self.done = threading.Event()

    def _now(self) -> float:
        return self.clock

    def _sleep_until(self, deadline: float) -> bool:
        self.clock = max(self.clock, int(deadline))
        return self.stop_event.is_set()

    def execute(self) -> Any:
        if len(self.calls) == len(self.plan):
            self.done.set()
            self.stop_event.wait(WAIT)
            return None
        step = self.plan[len(self.calls)]
        self.calls.append(self.clock)
        if isinstance(step, tuple):
            raise TryLater(after=step[1])
        self.clock += step
        return step


def run_plan(plan: list[Any]) -> FakeClock:
    service = FakeService()
    service.plan = plan  # type: ignore[attr-defined]
    with running(FakeClock, service=service) as tasks:
        task = tasks.FakeClock
        assert task.done.wait(WAIT)
    return task  # type: ignore[return-value]


@given(st.lists(st.integers(0, 45), max_size=25))
def test_the_loop_has_no_cumulative_drift_and_skips_missed_ticks(runs: list[int]) -> None:
    task = run_plan(runs)
    interval = 10
    assert len(task.calls) == len(runs)
    assert all((c - 1000) % interval == 0 for c in task.calls)  # every start on the grid
    for start, run, following in zip(task.calls, runs, task.calls[1:], strict=False):
        # the first grid tick after the run ended, never earlier (no bunching), never later
        assert following == start + interval * max(1, math.ceil(run / interval))
    assert task.slow_iterations == sum(1 for r in runs if r > interval)
    assert task.skipped_ticks == sum(max(1, math.ceil(r / interval)) - 1 for r in runs)
    assert task.iterations == len(runs) + 1  # the last call waited for stop, then returned


def test_try_later_after_delays_the_next_run_off_the_grid_then_rejoins_it() -> None:
    task = run_plan([0, ("later", 25), 0, 0])
    assert task.calls == [1000, 1010, 1035, 1040]
    assert task.try_laters == 1
    assert task.slow_iterations == 0  # ticks 1020 and 1030 were skipped on request
    assert task.skipped_ticks == 2


def test_try_later_without_after_waits_for_the_next_tick() -> None:
    task = run_plan([3, ("later", None), 0])
    assert task.calls == [1000, 1010, 1020]
    assert task.try_laters == 1
    assert task.iterations == 3  # two planned runs returned, plus the final one


# -- live ----------------------------------------------------------------------------------


class Ticker(PeriodicTask):
    INTERVAL = 0.001

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.count = 0
        self.reached = threading.Event()

    def execute(self) -> Any:
        self.count += 1
        if self.count >= 5:
            self.reached.set()
        return self.count


def test_a_live_task_runs_repeatedly_and_counts_its_iterations() -> None:
    with running(Ticker) as tasks:
        task = tasks.Ticker
        assert task.reached.wait(WAIT)
    assert task.iterations == task.count >= 5
    assert task.try_laters == 0
    assert tasks.state_of("Ticker") == TaskState.STOPPED


def test_try_later_after_delays_the_run_and_stop_wakes_the_wait_at_once() -> None:
    class Deferring(PeriodicTask):
        INTERVAL = 0.001

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.calls = 0
            self.deferred = threading.Event()

        def execute(self) -> Any:
            self.calls += 1
            self.deferred.set()
            raise TryLater("come back in an hour", after=3600)

    tasks = Tasks([Deferring])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    task = tasks.Deferring
    assert task.deferred.wait(WAIT)
    pending = task.execute_async()
    tasks.stop()
    # The worker waits an hour for its retry; only stop can end that wait within WAIT.
    assert tasks.join(WAIT) == []
    assert task.calls == 1
    assert (task.try_laters, task.iterations) == (1, 0)
    assert isinstance(pending.exception(0), TaskStopped)


def test_execute_async_resolves_with_the_next_runs_result() -> None:
    with running(Ticker) as tasks:
        task = tasks.Ticker
        futures = [task.execute_async() for _ in range(3)]
        results = {f.result(WAIT) for f in futures}
        assert len(results) == 1  # all three observe the same run
        assert results.pop() >= 1


def test_execute_async_waits_through_try_later_for_a_real_outcome() -> None:
    class Eventually(PeriodicTask):
        INTERVAL = 3600

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.armed = threading.Event()
            self.first = threading.Event()
            self.calls = 0

        def execute(self) -> Any:
            self.calls += 1
            self.first.set()
            if self.calls == 2:
                raise TryLater(after=0)
            return self.calls

        def _sleep_until(self, deadline: float) -> bool:
            # Run at start, then wait for the test instead of an hour; after the retry, rest.
            if self.calls >= 3:
                return self.stop_event.wait(WAIT)
            if self.calls and not self.armed.wait(WAIT):
                return True
            return self.stop_event.is_set()

    with running(Eventually) as tasks:
        task = tasks.Eventually
        assert task.first.wait(WAIT)  # run 1 has begun: a future now observes run 2
        future = task.execute_async()
        task.armed.set()
        assert future.result(WAIT) == 3  # not the TryLater of run 2
        assert task.try_laters == 1


def test_execute_async_on_a_task_not_running_fails_at_once() -> None:
    unbound = Ticker().execute_async()
    assert unbound.done()
    assert isinstance(unbound.exception(0), TaskNotRunning)
    tasks = Tasks([Ticker])
    tasks.create(FakeService())
    created = tasks.Ticker.execute_async()
    error = created.exception(0)
    assert isinstance(error, TaskNotRunning)
    assert (error.task, error.state) == ("Ticker", "created")
    tasks.stop()
    assert isinstance(tasks.Ticker.execute_async().exception(0), TaskNotRunning)


def test_an_exception_from_execute_fails_its_futures_and_crashes_the_task() -> None:
    service = FakeService()

    class Broken(PeriodicTask):
        INTERVAL = 3600

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.armed = threading.Event()
            self.first = threading.Event()
            self.calls = 0

        def execute(self) -> Any:
            self.calls += 1
            self.first.set()
            if self.calls > 1:
                raise RuntimeError("broken")
            return None

        def _sleep_until(self, deadline: float) -> bool:
            # The second run waits for the test to register its future, not for an hour.
            if self.calls and not self.armed.wait(WAIT):
                return True
            return self.stop_event.is_set()

    with running(Broken, service=service) as tasks:
        task = tasks.Broken
        assert task.first.wait(WAIT)
        future = task.execute_async()
        task.armed.set()
        assert isinstance(future.exception(WAIT), RuntimeError)
        assert service.asked.wait(WAIT)
        assert task.state == TaskState.FAILED
        assert service.reasons == ["task 'Broken' failed: RuntimeError: broken"]
        assert isinstance(task.execute_async().exception(0), TaskNotRunning)


# -- declaration and options ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True])
def test_a_bad_interval_raises_invalid_task(bad: Any) -> None:
    with pytest.raises(InvalidTask, match="interval must be"):
        type("Bad", (PeriodicTask,), {"INTERVAL": bad})


def test_a_periodic_task_has_exactly_one_worker() -> None:
    with pytest.raises(InvalidTask, match="one worker"):
        type("Many", (PeriodicTask,), {"INTERVAL": 1, "workers": 2})


def test_a_task_without_an_interval_fails_at_create() -> None:
    class Unset(PeriodicTask):
        def execute(self) -> Any:
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
