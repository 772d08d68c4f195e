"""`AsyncPeriodicTask`: await ``execute()`` on a fixed-rate schedule until the task is stopped.

The async sibling of `lifecycle.tasks.PeriodicTask`, with the same schedule (the grid of
`next_deadline`, kept by the same `Schedule`), the same ``INTERVAL`` and ``--{prefix}-interval``
option, the same `TryLater` rules, counters and futures; only ``execute`` is a coroutine and the
waits are awaits on ``stop_event``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

from lifecycle.aio.task import AsyncTask
from lifecycle.aio.work import refusing_work
from lifecycle.errors import InvalidTask, TaskNotRunning, TaskStopped
from lifecycle.futures import TaskFuture
from lifecycle.task import TryLater
from lifecycle.tasks.periodic import (
    PeriodicTask,
    RunObservers,
    Schedule,
    ScheduleCounters,
    _check_interval,
    _settle,
)

__all__ = ["AsyncPeriodicTask"]


class AsyncPeriodicTask(ScheduleCounters, AsyncTask):
    """A task that awaits `execute` every ``interval`` seconds on one worker coroutine.

    Set ``INTERVAL`` (seconds) on the subclass; the option ``--{prefix}-interval`` overrides it.
    The first run is due as soon as the worker starts; run *n* is due at ``origin + n *
    interval``; a run that overran whole intervals skips the ticks it overran (counted in
    `skipped_ticks`, and the run in `slow_iterations`), never catching up with a burst.
    `execute` may raise `TryLater`: with ``after``, it is awaited again ``after`` seconds later
    (the ticks passed meanwhile are skipped, and are not slow); without, at the next tick.
    Waiting is ``stop_event.wait()`` under a timeout, so `stop` wakes the worker at once.

    Any other exception from `execute` is a crash, as for `PeriodicTask`: it fails the futures
    of `execute_async` waiting on that run, then leaves the worker, so the task fails and asks
    its service to shut down. A run cut short by the stop grace's cancellation fails its
    futures with `TaskStopped`.

    Counters (reads from any thread): `iterations`, `slow_iterations`, `try_laters`,
    `skipped_ticks`.
    """

    INTERVAL: ClassVar[float | None] = None
    _HOOKS = AsyncTask._HOOKS | {"execute"}
    #: The very option of `PeriodicTask` (an option is not tied to its class): one declaration
    #: of what a valid interval is.
    interval = PeriodicTask.interval

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("INTERVAL") is not None:
            _check_interval(cls, cls.INTERVAL)
        if cls.workers != 1:
            raise InvalidTask(
                cls, f"an AsyncPeriodicTask runs one worker, not workers={cls.workers!r}"
            )

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        _check_interval(type(self), self.interval)  # a bad value fails the task at create
        self._lock = threading.Lock()
        self._observers = RunObservers(self.name, self._lock)
        self._opened = False
        self._schedule = Schedule(interval=1.0)  # its counters; run_loop sets the interval

    # -- the hook ----------------------------------------------------------------------------

    async def execute(self) -> Any:
        """One run of the task's work; its return value resolves `execute_async` futures."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement execute()")

    # -- observing ---------------------------------------------------------------------------

    def execute_async(self) -> TaskFuture[Any]:
        """A future resolved with the outcome of the next run to start after this call.

        The outcome is the value `execute` returns or the exception it raises (a run that
        raises `TryLater` is not an outcome; the future waits for the retry). ``await`` it from
        a coroutine, or call ``result()`` from a thread (`lifecycle.futures.TaskFuture`). On a
        task that is not running the future has already failed with `TaskNotRunning`; if the
        task stops before that run, it fails with `TaskStopped`. Thread-safe.
        """
        future: TaskFuture[Any] = TaskFuture()
        state = refusing_work(self._lifecycle, self._opened, self._observers.closed)
        if state is None and self._observers.add(future):
            return future
        future.set_exception(TaskNotRunning(self.name, state or "closed", "execute_async()"))
        return future

    # -- the worker --------------------------------------------------------------------------

    async def run_loop(self) -> None:
        schedule = self._schedule
        try:
            with self._lock:
                schedule.interval = _check_interval(type(self), self.interval)
                schedule.begin(self._now())
                self._opened = True
            while not await self._sleep_until(schedule.due):
                observers = self._observers.take()
                try:
                    result = await self.execute()
                except TryLater as exc:
                    now = self._now()
                    with self._lock:
                        schedule.deferred(now, exc.after)
                    self._observers.put_back(observers, why="stopped")
                except asyncio.CancelledError as exc:
                    # Never hand a CancelledError to an awaiting caller: it would read as its
                    # own cancellation.
                    stopped = TaskStopped(self.name, why="was cancelled (the stop grace passed)")
                    stopped.__cause__ = exc
                    _settle(observers, exc=stopped)
                    raise
                except BaseException as exc:
                    _settle(observers, exc=exc)
                    raise
                else:
                    now = self._now()
                    with self._lock:
                        schedule.ran(now)
                    _settle(observers, result=result)
        except BaseException:
            self._observers.close("stopped" if self.stop_event.is_set() else "failed")
            raise
        self._observers.close("stopped")

    async def on_stop(self) -> None:
        """Fail the futures still waiting for a run with `TaskStopped`."""
        self._observers.close("stopped")

    # -- time (methods so that a test can run the loop on a fake clock) ----------------------

    def _now(self) -> float:
        return time.monotonic()

    async def _sleep_until(self, deadline: float) -> bool:
        """Wait until ``deadline`` (on `_now`'s clock) or stop; True if stop was requested."""
        stop = self.stop_event
        while True:
            remaining = deadline - self._now()
            if remaining <= 0:
                return stop.is_set()
            try:
                async with asyncio.timeout(remaining):
                    await stop.wait()
            except TimeoutError:
                continue  # the clock is re-read: a timer may fire a hair early
            return True
