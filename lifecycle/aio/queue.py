"""`AsyncQueueTask`: worker coroutines that await ``execute(item, context)`` for each item.

The async sibling of `lifecycle.tasks.QueueTask`: the same ``WORKERS`` and ``MAX_ITEMS`` (and
their options), `TryLater` rules, futures, counters and stop guarantee, and the same ``finish``
record when items were dropped. Items wait in arrival order under a lock, so any thread may
hand them over; idle workers await a future of their own, which a new item, a due retry or stop
resolves on the loop (from another thread through ``loop.call_soon_threadsafe``). A delayed
retry is a timer of the loop (``call_later``): no coroutine sleeps on it, and stop cancels it.

Every item handed over ends one of three ways: its ``execute`` returns or raises (the future
gets the outcome), its future was cancelled before it started (skipped), or the task stops
first and its future fails with `TaskStopped` (counted in `dropped`, written in the ``finish``
record's cause). Nothing is left pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from typing import Any, ClassVar

from lifecycle.aio.task import AsyncTask
from lifecycle.aio.work import refusing_work
from lifecycle.context import ExecuteContext
from lifecycle.errors import QueueFull, TaskNotRunning, TaskStopped
from lifecycle.futures import TaskFuture
from lifecycle.task import TryLater
from lifecycle.tasks.queue import (
    QueueTask,
    _check_count,
    _check_queue_class,
    _check_timeout,
    _fail_dropped,
    _remaining,
    dropped_cause,
)

__all__ = ["AsyncQueueTask"]

#: Why an item's future fails when the engine cancels its worker mid-``execute``.
_CANCELLED = "was cancelled (the stop grace passed)"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _WakingEvent(asyncio.Event):
    """The task's ``stop_event``: setting it, however it is set (the engine's stop, a crash, a
    test driving the task by hand), wakes every idle worker."""

    def __init__(self, wake: Any) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake()


class AsyncQueueTask(AsyncTask):
    """A task whose worker coroutines await ``execute(item, context)`` for each submitted item.

    Class attributes (each also an option, ``--{prefix}-max-items`` and ``--{prefix}-workers``):
    ``MAX_ITEMS``, the most items that may wait (0: no bound); ``WORKERS``, the number of
    worker coroutines (set it rather than ``workers``).

    Hand work over with `submit` (a future per item) or `put` (no future), from the event loop
    or from any other thread. The future is a `lifecycle.futures.TaskFuture`: a coroutine
    ``await``\\ s it, a thread calls ``result()``. In `execute`:

    * return a value: the item's future gets it;
    * raise `TryLater(after=s)`: the item goes back with ``context.attempt + 1``, due again at
      once (at the back of the queue) or ``s`` seconds later; a retry is never refused for want
      of room;
    * raise anything else: the item's future fails with it. An item nobody can observe (given
      with `put`) follows the crash policy: the worker leaves, the task fails and asks its
      service to shut down. Anything that is not an `Exception` is a crash in any case.

    Cancellation: a future cancelled before its item's first attempt starts skips the item
    (counted in `cancelled`); cancelling a coroutine that awaits the future does exactly that.
    Once started, the item runs to its end and its outcome is dropped with the cancelled
    caller. An item whose worker the engine cancels at the end of the stop grace fails with
    `TaskStopped` (counted in `dropped`).

    At stop, the items still waiting (queued or delayed) are not run: their futures fail with
    `TaskStopped`, the count is logged, kept in `dropped`, and written as the cause of the
    task's ``finish`` record, exactly as for `QueueTask`. Thread-safe throughout.
    """

    MAX_ITEMS: ClassVar[int] = 0
    WORKERS: ClassVar[int] = 1
    _HOOKS = AsyncTask._HOOKS | {"execute"}
    #: The very options of `QueueTask` (an option is not tied to its class): one declaration
    #: of each bound. The attribute names must match theirs (an option records its attribute).
    max_items = QueueTask.max_items
    worker_threads = QueueTask.worker_threads

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_queue_class(cls)

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self._max_items = _check_count(type(self), "max-items", self.max_items, QueueTask.max_items)
        self.workers = _check_count(
            type(self), "workers", self.worker_threads, QueueTask.worker_threads
        )
        # Guards the waiting items, the delayed ones, the flags and the counters: submitters
        # on other threads hold it briefly, and nothing awaits while holding it.
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._blocked_submitters = 0
        self._waiting: deque[ExecuteContext] = deque()
        self._delayed: dict[int, tuple[asyncio.TimerHandle, ExecuteContext]] = {}
        self._delay_seq = itertools.count()
        # Idle workers' wake-ups; touched on the loop's thread only.
        self._idle_workers: deque[asyncio.Future[None]] = deque()
        self._home: asyncio.AbstractEventLoop | None = None  # set when the first worker runs
        self._opened = False
        self._closed = False
        self._closed_why = "stopped"
        self._submitted = 0
        self._taken = 0
        self._finished = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._try_laters = 0
        self._dropped = 0
        # `AsyncTask.stop_event` returns the event it holds, and sets it on the loop.
        self._event = _WakingEvent(self._wake_all)

    # -- the hook ----------------------------------------------------------------------------

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        """Process one item; the return value resolves its future."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement execute()")

    # -- handing work over (any thread) ------------------------------------------------------

    def submit(self, item: Any, *, timeout: float | None = None) -> TaskFuture[Any]:
        """Queue ``item``; return the future of its outcome (``await`` it, or ``result()``).

        When the queue is full, a thread other than the loop's waits up to ``timeout`` seconds
        (None: until there is room or the task stops) and then raises `QueueFull`; on the
        loop's own thread it raises `QueueFull` at once, since waiting there would block every
        worker that could make room. Raises `TaskNotRunning` unless the task is running (also
        when its event loop has closed), `ValueError` for a bad ``timeout``. Thread-safe.
        """
        future: TaskFuture[Any] = TaskFuture()
        self._admit(ExecuteContext(item=item, future=future), timeout, "submit()")
        return future

    def put(self, item: Any, *, timeout: float | None = None) -> None:
        """Queue ``item`` with no future: its outcome is not observable, so an exception from
        its `execute` is a crash. Waits and raises as `submit`."""
        self._admit(ExecuteContext(item=item), timeout, "put()")

    # -- counters and sizes (snapshots, from any thread) -------------------------------------

    @property
    def submitted(self) -> int:
        """Items accepted by `submit` and `put`."""
        with self._lock:
            return self._submitted

    @property
    def completed(self) -> int:
        """Items whose `execute` returned."""
        with self._lock:
            return self._completed

    @property
    def failed(self) -> int:
        """Items whose `execute` raised (not `TryLater`) and whose future took the exception."""
        with self._lock:
            return self._failed

    @property
    def try_laters(self) -> int:
        """Retries: how many times `execute` raised `TryLater`."""
        with self._lock:
            return self._try_laters

    @property
    def cancelled(self) -> int:
        """Items skipped because their future was cancelled before they started."""
        with self._lock:
            return self._cancelled

    @property
    def dropped(self) -> int:
        """Items the task ended without running to completion (futures failed with
        `TaskStopped`)."""
        with self._lock:
            return self._dropped

    @property
    def pending(self) -> int:
        """Items waiting: queued now or delayed by `TryLater(after=...)`."""
        with self._lock:
            return len(self._waiting) + len(self._delayed)

    @property
    def in_flight(self) -> int:
        """Items a worker is executing now."""
        with self._lock:
            return self._taken - self._finished

    # -- the workers (on the loop) -----------------------------------------------------------

    async def run_loop(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._home is None:
                self._home = loop
            self._opened = True
        try:
            while (ctx := await self._take(loop)) is not None:
                await self._run(ctx)
        except BaseException:
            # A cancellation once stop was asked is the stop grace passing, not a crash.
            self._close("stopped" if self.stop_event.is_set() else "failed")
            raise
        self._close("stopped")

    async def on_stop(self) -> None:
        """Fail the futures of every item still waiting with `TaskStopped`."""
        self._close("stopped")

    async def _take(self, loop: asyncio.AbstractEventLoop) -> ExecuteContext | None:
        """The next item, or None once the task is stopping; waits without polling."""
        stop = self.stop_event
        while True:
            with self._lock:
                if self._closed or stop.is_set():
                    return None
                if self._waiting:
                    self._taken += 1
                    if self._blocked_submitters:
                        self._not_full.notify()
                    return self._waiting.popleft()
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle_workers.append(waiter)
            await waiter

    async def _run(self, ctx: ExecuteContext) -> None:
        try:
            if not ctx.start():
                with self._lock:
                    self._cancelled += 1
                return
            try:
                result = await self.execute(ctx.item, ctx)
            except TryLater as exc:
                self._retry(ctx, exc.after)
            except asyncio.CancelledError as exc:
                # Never hand a CancelledError to an awaiting caller: it would read as its own.
                stopped = TaskStopped(self.name, ctx.item, ctx.attempt, _CANCELLED)
                stopped.__cause__ = exc
                ctx.set_exception(stopped)
                with self._lock:
                    self._dropped += 1
                raise
            except Exception as exc:
                if ctx.future is None:
                    raise  # nobody can observe this item: a crash, as any worker exception
                with self._lock:
                    self._failed += 1
                ctx.set_exception(exc)
            except BaseException as exc:
                ctx.set_exception(exc)
                raise
            else:
                with self._lock:
                    self._completed += 1
                ctx.set_result(result)
        finally:
            with self._lock:
                self._finished += 1

    def _retry(self, ctx: ExecuteContext, after: float | None) -> None:
        """Put ``ctx`` back for its next attempt (on the loop)."""
        ctx.attempt += 1
        with self._lock:
            self._try_laters += 1
            closed = self._closed
            if closed:
                self._dropped += 1
                why = self._closed_why
            elif after:
                key = next(self._delay_seq)
                home = self._home if self._home is not None else asyncio.get_running_loop()
                self._delayed[key] = (home.call_later(after, self._due, key), ctx)
            else:
                self._waiting.append(ctx)
        if closed:
            self._fail_dropped([ctx], why)
        elif not after:
            self._wake_one()

    def _due(self, key: int) -> None:
        """A delayed retry is due (a timer callback on the loop)."""
        with self._lock:
            entry = self._delayed.pop(key, None)
            if entry is None or self._closed:
                return
            self._waiting.append(entry[1])
        self._wake_one()

    def _wake_one(self) -> None:
        """Wake one idle worker (on the loop)."""
        idle = self._idle_workers
        while idle:
            waiter = idle.popleft()
            if not waiter.done():  # a worker cancelled while idle left its waiter cancelled
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        """Wake every idle worker: stop, or the queue closed (on the loop; also called when
        ``stop_event`` is set off the loop, which happens only once the loop has closed)."""
        idle, self._idle_workers = self._idle_workers, deque()
        for waiter in idle:
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits
                    waiter.set_result(None)

    def _close(self, why: str) -> None:
        """Stop accepting work and fail every waiting item's future with `TaskStopped` (on the
        loop)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._closed_why = why
            dropped = list(self._waiting)
            self._waiting.clear()
            for key in sorted(self._delayed):
                timer, ctx = self._delayed[key]
                timer.cancel()
                dropped.append(ctx)
            self._delayed.clear()
            self._dropped += len(dropped)
            self._not_full.notify_all()
        self._wake_all()
        if dropped:
            self._fail_dropped(dropped, why)

    def _fail_dropped(self, contexts: list[ExecuteContext], why: str) -> None:
        _fail_dropped(self.name, contexts, why)

    def _finish_cause(self) -> str | None:
        with self._lock:
            dropped = self._dropped
        causes = [super()._finish_cause(), dropped_cause(dropped) if dropped else None]
        return "; ".join(cause for cause in causes if cause) or None

    # -- admission (any thread) --------------------------------------------------------------

    def _admit(self, ctx: ExecuteContext, timeout: float | None, action: str) -> None:
        _check_timeout(action, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            home = self._home if self._home is not None else self._loop
            on_loop = home is not None and _running_loop() is home
            while True:
                state = refusing_work(self._lifecycle, self._opened, self._closed)
                if state is None and home is not None and home.is_closed():
                    state = "unreachable (its event loop is closed)"
                if state is not None:
                    raise TaskNotRunning(self.name, state, f"{action} to it")
                if not self._max_items or self._waiting_len() < self._max_items:
                    break
                remaining = 0.0 if on_loop else _remaining(deadline)
                if remaining is not None and remaining <= 0:
                    raise QueueFull(self.name, self._max_items, timeout or 0.0)
                self._blocked_submitters += 1
                try:
                    self._not_full.wait(remaining)
                finally:
                    self._blocked_submitters -= 1
            self._waiting.append(ctx)
            self._submitted += 1
        if on_loop:
            self._wake_one()
            return
        if home is None:  # pragma: no cover - refusing_work admits nothing without a loop
            return
        try:
            home.call_soon_threadsafe(self._wake_one)
        except RuntimeError:
            # The loop closed since we looked: nobody will run the item. Take it back, unless
            # a close already failed it; either way it is not lost silently.
            with self._lock:
                # By identity: contexts compare by item, and an equal item may be queued too.
                index = next((i for i, c in enumerate(self._waiting) if c is ctx), None)
                if index is None:
                    return
                del self._waiting[index]
                self._submitted -= 1
            raise TaskNotRunning(
                self.name, "unreachable (its event loop is closed)", f"{action} to it"
            ) from None

    def _waiting_len(self) -> int:
        return len(self._waiting) + len(self._delayed)
