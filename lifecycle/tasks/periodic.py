"""`PeriodicTask`: run ``execute()`` on a fixed-rate schedule until the task is stopped.

The schedule is a grid: the first run is due when the worker starts, and run *n* is due at
``origin + n * interval``. A run that ends more than a whole interval after it was due is
*slow*; the grid ticks it overran are skipped, never run back to back to catch up, and the grid
never moves, so there is no cumulative drift. `next_deadline` is that rule as a pure function.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future
from typing import Any, ClassVar

import attrs

from lifecycle.errors import InvalidTask, TaskNotRunning, TaskStopped
from lifecycle.futures import TaskFuture
from lifecycle.options import option
from lifecycle.spec import TaskState
from lifecycle.task import Task, TryLater

__all__ = ["PeriodicTask", "RunObservers", "Schedule", "ScheduleCounters", "next_deadline"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


def next_deadline(previous: float, now: float, interval: float) -> tuple[float, int]:
    """The deadline of the next run, and how many grid ticks were skipped to reach it.

    ``previous`` is the deadline the last run was due at, ``now`` the time it ended, and
    ``interval`` the grid step. The result is ``previous + k * interval`` for the smallest
    ``k >= 1`` with that deadline at or after ``now``; the ``k - 1`` ticks before it are
    skipped (the run was slow exactly when ``now - previous > interval``). Pure: works on any
    real numbers, exactly on ints and fractions. Raises `ValueError` unless ``interval > 0``.
    """
    if not interval > 0:
        raise ValueError(f"interval must be > 0, not {interval!r}")
    behind = now - previous
    if behind <= interval:
        return previous + interval, 0
    ticks = max(1, math.ceil(behind / interval))
    # Float division can land one tick off either way; settle on the exact rule.
    while previous + ticks * interval < now:
        ticks += 1
    while ticks > 1 and previous + (ticks - 1) * interval >= now:
        ticks -= 1
    return previous + ticks * interval, ticks - 1


@attrs.define
class Schedule:
    """The fixed-rate schedule of one periodic worker, as pure bookkeeping: no clock, no lock.

    ``grid`` is the deadline of the current grid tick and ``due`` when the next run is due (off
    the grid after ``TryLater(after=...)``); both start at the origin given to `begin`. The
    counters are those of `PeriodicTask`. Every periodic task kind drives its loop through this
    one object, so they share one schedule rule (`next_deadline`) and one meaning per counter.
    Not thread-safe: the task's lock guards it.
    """

    interval: float
    grid: float = 0.0
    due: float = 0.0
    iterations: int = 0
    slow: int = 0
    try_laters: int = 0
    skipped: int = 0

    def begin(self, origin: float) -> None:
        """The worker starts at ``origin``: the first run is due at once."""
        self.grid = self.due = origin

    def ran(self, now: float) -> None:
        """The run due at ``due`` returned at ``now``: slow if more than an interval late; the
        next run is due at the first grid tick at or after ``now``."""
        self.iterations += 1
        if now - self.due > self.interval:
            self.slow += 1
        self._next_tick(now)

    def deferred(self, now: float, after: float | None) -> None:
        """The run raised ``TryLater(after=after)`` at ``now``: due again ``after`` seconds
        later (the grid ticks passed by then are skipped, not slow), or at the next tick."""
        self.try_laters += 1
        if after is not None:
            self.due = now + after
        else:
            self._next_tick(now)

    def _next_tick(self, now: float) -> None:
        self.grid, skipped = next_deadline(self.grid, now, self.interval)
        self.skipped += skipped
        self.due = self.grid


class RunObservers:
    """The futures waiting for the outcome of a periodic task's next run; every periodic task
    kind keeps its `execute_async` futures in one of these.

    Thread-safe: every method takes ``lock`` (the task's own) for as long as it touches the
    list; futures are resolved outside it.
    """

    def __init__(self, task: str, lock: threading.Lock) -> None:
        self._task = task
        self._lock = lock
        self._futures: list[Future[Any]] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close` was called: no future is added any more."""
        with self._lock:
            return self._closed

    def add(self, future: Future[Any]) -> bool:
        """Keep ``future`` for the next run; False (and nothing kept) once closed."""
        with self._lock:
            if self._closed:
                return False
            self._futures.append(future)
            return True

    def take(self) -> list[Future[Any]]:
        """The futures of the run starting now, marked running (cancelled ones are dropped
        here, and after this they cannot be cancelled)."""
        with self._lock:
            futures, self._futures = self._futures, []
        return [f for f in futures if f.running() or f.set_running_or_notify_cancel()]

    def put_back(self, futures: list[Future[Any]], why: str) -> None:
        """A run that raised `TryLater` had no outcome: its futures wait for the retry, or fail
        with `TaskStopped` (saying ``why``) if the task closed meanwhile."""
        if not futures:
            return
        with self._lock:
            if not self._closed:
                self._futures[:0] = futures
                return
        _settle(futures, exc=TaskStopped(self._task, why=why))

    def close(self, why: str) -> None:
        """Take no more futures; fail those waiting with `TaskStopped` saying ``why``."""
        with self._lock:
            self._closed = True
            futures, self._futures = self._futures, []
        if futures:
            _settle(futures, exc=TaskStopped(self._task, why=why))


def _check_interval(owner: object, value: object) -> float:
    """``value`` as the interval of ``owner``: a number the ``interval`` option accepts.

    Raises `InvalidTask` otherwise (the class attribute, or a value set in code; the command
    line is checked by the option itself when it is parsed).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTask(owner, f"interval must be a number of seconds, not {value!r}")
    problem = PeriodicTask.interval.problem(float(value))
    if problem is not None:
        raise InvalidTask(owner, f"interval {problem}")
    return float(value)


class ScheduleCounters:
    """The counters of a periodic task's `Schedule`, read under the task's lock: one home for
    the thread and the async kinds. Thread-safe reads."""

    _lock: threading.Lock
    _schedule: Schedule

    @property
    def iterations(self) -> int:
        """Runs of `execute` that returned."""
        with self._lock:
            return self._schedule.iterations

    @property
    def slow_iterations(self) -> int:
        """Runs that ended more than one interval after they were due."""
        with self._lock:
            return self._schedule.slow

    @property
    def try_laters(self) -> int:
        """Runs of `execute` that raised `TryLater`."""
        with self._lock:
            return self._schedule.try_laters

    @property
    def skipped_ticks(self) -> int:
        """Grid ticks skipped because a run overran them or a `TryLater` delay covered them."""
        with self._lock:
            return self._schedule.skipped


class PeriodicTask(ScheduleCounters, Task):
    """A task that calls `execute` every ``interval`` seconds on one worker thread.

    Set ``INTERVAL`` (seconds) on the subclass; the option ``--{prefix}-interval`` overrides it.
    The first run is due as soon as the worker starts. `execute` may raise `TryLater`:
    with ``after``, it is called again ``after`` seconds later (the grid ticks passed meanwhile
    are skipped, and are not slow: the delay was asked for); without, at the next grid tick.
    Waiting is ``stop_event.wait``, so `stop` wakes the worker at once.

    Any other exception from `execute` is a crash, as in sparts: it fails the futures of
    `execute_async` waiting on that run, then leaves the worker, so the task fails and asks its
    service to shut down. A future observing one run does not own the task's health.

    Counters (thread-safe reads): `iterations` (runs that returned), `slow_iterations`,
    `try_laters`, `skipped_ticks`.
    """

    INTERVAL: ClassVar[float | None] = None
    _HOOKS = Task._HOOKS | {"execute"}
    interval = option(
        type=float,
        gt=0,
        default=lambda cls: cls.INTERVAL,
        help="seconds between the starts of two runs (fixed rate)",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("INTERVAL") is not None:
            _check_interval(cls, cls.INTERVAL)
        if cls.workers != 1:
            raise InvalidTask(cls, f"a PeriodicTask runs one worker, not workers={cls.workers!r}")

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        _check_interval(type(self), self.interval)  # a bad value fails the task at create
        self._lock = threading.Lock()
        self._observers = RunObservers(self.name, self._lock)
        self._schedule = Schedule(interval=1.0)  # its counters; run_loop sets the interval

    # -- the hook ----------------------------------------------------------------------------

    def execute(self) -> Any:
        """One run of the task's work; its return value resolves `execute_async` futures."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement execute()")

    # -- observing ---------------------------------------------------------------------------

    def execute_async(self) -> TaskFuture[Any]:
        """A future resolved with the outcome of the next run to start after this call.

        The outcome is the value `execute` returns or the exception it raises (a run that
        raises `TryLater` is not an outcome; the future waits for the retry). On a task that is
        not running the future has already failed with `TaskNotRunning`; if the task stops
        before that run, it fails with `TaskStopped`. Async code may ``await`` it
        (`lifecycle.futures.TaskFuture`). Thread-safe.
        """
        future: TaskFuture[Any] = TaskFuture()
        state = self._state_name()
        if state == TaskState.RUNNING and self._observers.add(future):
            return future
        future.set_exception(TaskNotRunning(self.name, state, "execute_async()"))
        return future

    # -- the worker --------------------------------------------------------------------------

    def run_loop(self) -> None:
        schedule = self._schedule
        try:
            with self._lock:
                schedule.interval = _check_interval(type(self), self.interval)
                schedule.begin(self._now())
            while not self._sleep_until(schedule.due):
                observers = self._observers.take()
                try:
                    result = self.execute()
                except TryLater as exc:
                    now = self._now()
                    with self._lock:
                        schedule.deferred(now, exc.after)
                    self._observers.put_back(observers, why=self._state_name())
                except BaseException as exc:
                    _settle(observers, exc=exc)
                    raise
                else:
                    now = self._now()
                    with self._lock:
                        schedule.ran(now)
                    _settle(observers, result=result)
        except BaseException:
            self._observers.close("failed")
            raise
        self._observers.close("stopped")

    def on_stop(self) -> None:
        """Fail the futures still waiting for a run with `TaskStopped`."""
        self._observers.close("stopped")

    # -- time (methods so that a test can run the loop on a fake clock) ----------------------

    def _now(self) -> float:
        return time.monotonic()

    def _sleep_until(self, deadline: float) -> bool:
        """Wait until ``deadline`` (on `_now`'s clock) or stop; True if stop was requested."""
        stop = self.stop_event
        while True:
            remaining = deadline - self._now()
            if remaining <= 0:
                return stop.is_set()
            if stop.wait(remaining):
                return True

    # -- helpers -----------------------------------------------------------------------------

    def _state_name(self) -> str:
        lc = self._lifecycle
        return "unbound" if lc is None else str(lc.state)


def _settle(
    futures: list[Future[Any]], *, result: Any = None, exc: BaseException | None = None
) -> None:
    """Resolve each future not yet done (nor cancelled) with ``result`` or ``exc``."""
    for future in futures:
        if future.done() or not (future.running() or future.set_running_or_notify_cancel()):
            continue
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)
