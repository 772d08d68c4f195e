"""`QueueTask` and its variants: worker threads that `execute` submitted items.

Items wait in a queue (FIFO; ordered by item in `PriorityQueueTask`; without duplicates in
`UniqueQueueTask`). A `TryLater` from `execute` puts the item back with ``attempt + 1``: at
once, or after ``after`` seconds in a timer heap that the idle workers' own waits service, so
no thread sleeps on a delayed item and nothing outlives the task. Idle workers block on a
`queue.SimpleQueue` of wake-up tokens (one per queued item, plus one whenever the earliest
retry moves or stop is requested): a wait in C, much cheaper per item than a
`threading.Condition`; the items themselves stay under the task's lock. The task's
``stop_event`` wakes every waiter, so stop wakes idle workers at once.

At stop, the items still waiting (queued or delayed) are not run: their futures fail with
`TaskStopped`, the count is logged, kept in `dropped`, and written as the cause of the task's
``finish`` record in the journal.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, InvalidStateError
from typing import Any, ClassVar

import attrs

from lifecycle.context import ExecuteContext
from lifecycle.errors import InvalidItem, InvalidTask, QueueFull, TaskNotRunning, TaskStopped
from lifecycle.futures import TaskFuture
from lifecycle.options import option
from lifecycle.spec import TaskState
from lifecycle.task import Task, TryLater

__all__ = [
    "PriorityQueueTask",
    "QueueTask",
    "UniqueQueueTask",
    "dropped_cause",
    "dropped_in_cause",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: How a queue task's ``finish`` record says what it dropped at stop; `dropped_in_cause` reads
#: it back, so the two stay one format.
_DROPPED_CAUSE = "{count} queued item(s) not run; their futures failed with TaskStopped"
# The count at the start of the cause, or after another remark and "; " (a run loop that
# returned early says so first).
_DROPPED_COUNT = re.compile(r"(?:\A|; )(\d{1,18}) queued item\(s\) not run; ")


def dropped_in_cause(cause: str | None) -> int | None:
    """The number of queued items a ``finish`` record's ``cause`` says the task dropped at stop,
    never run (as a `QueueTask` writes it); None when the cause says nothing of dropped items.
    Pure; any text is accepted."""
    if not cause:
        return None
    found = _DROPPED_COUNT.search(cause)
    return int(found[1]) if found is not None else None


def dropped_cause(count: int) -> str:
    """The cause a queue task's ``finish`` record carries when it dropped ``count`` items at
    stop (every queue task kind writes it; `dropped_in_cause` reads it back)."""
    return _DROPPED_CAUSE.format(count=count)


def _check_count(owner: object, what: str, value: object, declared: option) -> int:
    """``value`` as the ``what`` of ``owner``: an int that the ``declared`` option accepts.

    Raises `InvalidTask` otherwise (a class attribute, or a value set in code; the command
    line is checked by the option itself when it is parsed).
    """
    if isinstance(value, bool) or not isinstance(value, int) or declared.problem(value):
        raise InvalidTask(owner, f"{what} must be an int {declared.bounds}, not {value!r}")
    return value


def _check_timeout(action: str, timeout: float | None) -> None:
    """Raise `ValueError` unless ``timeout`` (of a submitter's wait for room) is None or a
    finite number >= 0."""
    if timeout is not None and not (timeout >= 0 and math.isfinite(timeout)):
        raise ValueError(f"{action} timeout must be a finite number >= 0, not {timeout!r}")


def _fail_dropped(task: str, contexts: list[ExecuteContext], why: str) -> None:
    """Fail the futures of items ``task`` ends without running with `TaskStopped`; log it."""
    for ctx in contexts:
        # InvalidStateError: cancelled meanwhile; its owner gave up on it already.
        with contextlib.suppress(InvalidStateError):
            ctx.set_exception(TaskStopped(task, ctx.item, ctx.attempt, why))
    logger.warning(
        "task %r %s with %d item(s) not run; their futures failed with TaskStopped",
        task,
        why,
        len(contexts),
    )


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class _WakingEvent(threading.Event):
    """The task's ``stop_event``: setting it, on any path (stop, a crash), wakes every waiter."""

    def __init__(self, wake: Any) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake()


@attrs.define
class _Tally:
    """One worker's counts. Only that worker writes it (so no lock on the hot path); readers
    sum every worker's tally under the task's lock."""

    finished: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


#: A wake-up in the channel that carries no item: stop, or the earliest retry moved.
_WAKE = object()
#: In a `_Heap`'s channel: "an item was pushed"; a worker claims the smallest one.
_ITEM = object()

Channel = queue.SimpleQueue[object]


class _Fifo:
    """Waiting items in arrival order. The items travel in the channel itself, so an idle
    worker is handed its item by a C-level queue: the hot path of `QueueTask`."""

    def __init__(self, task: str) -> None:
        self._count = 0

    def push(self, ctx: ExecuteContext) -> object:
        """Hold ``ctx``; return what to put in the channel for it."""
        self._count += 1
        return ctx

    def claim(self, got: object) -> ExecuteContext | None:
        """The item a worker that got ``got`` from the channel takes, if any."""
        if isinstance(got, ExecuteContext):
            self._count -= 1
            return got
        return None

    def drain(self, channel: Channel) -> list[ExecuteContext]:
        """Empty the channel; return the waiting items in order."""
        items: list[ExecuteContext] = []
        with contextlib.suppress(queue.Empty):
            while True:
                got = channel.get_nowait()
                if isinstance(got, ExecuteContext):
                    items.append(got)
        self._count = 0
        return items

    def __len__(self) -> int:
        return self._count


class _Heap:
    """Waiting items, smallest item first; equal items in arrival order."""

    def __init__(self, task: str) -> None:
        self._task = task
        self._heap: list[tuple[ExecuteContext, int]] = []
        self._seq = itertools.count()

    def push(self, ctx: ExecuteContext) -> object:
        entry = (ctx, next(self._seq))
        # heappush compares the new entry with its ancestors only; try those comparisons first,
        # so that an unorderable item is refused before it could leave the heap half-sifted.
        pos = len(self._heap)
        try:
            while pos > 0:
                pos = (pos - 1) >> 1
                bool(entry < self._heap[pos])
        except Exception as exc:
            raise InvalidItem(
                self._task, ctx.item, f"it cannot be ordered against queued items ({exc})"
            ) from exc
        heapq.heappush(self._heap, entry)
        return _ITEM

    def claim(self, got: object) -> ExecuteContext | None:
        if got is _ITEM and self._heap:
            return heapq.heappop(self._heap)[0]
        return None

    def drain(self, channel: Channel) -> list[ExecuteContext]:
        with contextlib.suppress(queue.Empty):
            while True:
                channel.get_nowait()
        items = [ctx for ctx, _ in sorted(self._heap)]
        self._heap.clear()
        return items

    def __len__(self) -> int:
        return len(self._heap)


class QueueTask(Task):
    """A task whose workers call ``execute(item, context)`` for each submitted item.

    Class attributes (each also an option, ``--{prefix}-max-items`` and ``--{prefix}-workers``,
    read when the task is created): ``MAX_ITEMS``, the most items that may wait (0: no bound);
    ``WORKERS``, the number of worker threads (set it rather than ``workers``).

    Hand work over with `submit` (a future per item), `map` (results in order) or `put` (no
    future). In `execute`:

    * return a value: the item's future gets it;
    * raise `TryLater(after=s)`: the item goes back with ``context.attempt + 1``, due again at
      once (no ``after``) or ``s`` seconds later; a retry is never refused for want of room;
    * raise anything else: the item's future fails with it. An item that nobody can observe
      (given with `put`) follows the crash policy: the worker leaves, the task fails and asks
      its service to shut down. Anything that is not an `Exception` (`SystemExit`,
      `KeyboardInterrupt`) is a crash in any case.

    A future can be cancelled until the item's first attempt starts. Thread-safe throughout.
    """

    MAX_ITEMS: ClassVar[int] = 0
    _HOOKS = Task._HOOKS | {"execute"}
    WORKERS: ClassVar[int] = 1
    max_items = option(
        type=int, ge=0, default=lambda cls: cls.MAX_ITEMS, help="most items waiting (0: no bound)"
    )
    worker_threads = option(
        name="workers",
        type=int,
        ge=1,
        default=lambda cls: cls.WORKERS,
        help="workers (threads; coroutines for an async queue task)",
    )

    #: How waiting items are kept; the variants change only this and the merge hooks.
    _WAITING: ClassVar[type[_Fifo] | type[_Heap]] = _Fifo

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_queue_class(cls)

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self._max_items = _check_count(
            type(self), "max-items", self.max_items, QueueTask.max_items
        )
        self.workers = _check_count(
            type(self), "workers", self.worker_threads, QueueTask.worker_threads
        )
        self._lock = threading.Lock()
        # What idle workers block on: one entry per waiting item (the item itself, or `_ITEM`),
        # plus `_WAKE`s. Entries are put while the lock is held, so a drain sees them all.
        self._channel: Channel = queue.SimpleQueue()
        self._not_full = threading.Condition(self._lock)
        # A notify with nobody waiting still costs a lock probe on the hot path.
        self._blocked_submitters = 0
        self._wake = self._stop_event = _WakingEvent(self._wake_all)
        self._waiting = self._WAITING(self.name)
        self._delayed: list[tuple[float, int, ExecuteContext]] = []
        self._delay_seq = itertools.count()
        self._closed = False
        self._closed_why = "stopped"
        self._taken = 0
        self._tallies: list[_Tally] = []
        self._submitted = 0
        self._try_laters = 0
        self._dropped = 0

    # -- the hook ----------------------------------------------------------------------------

    def execute(self, item: Any, context: ExecuteContext) -> Any:
        """Process one item; the return value resolves its future."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement execute()")

    # -- handing work over -------------------------------------------------------------------

    def submit(self, item: Any, *, timeout: float | None = None) -> TaskFuture[Any]:
        """Queue ``item``; return the future of its outcome.

        When the queue is full, wait up to ``timeout`` seconds (None: until there is room or the
        task stops) and then raise `QueueFull`; a worker of this task never waits (it would
        wait on itself). Raises `TaskNotRunning` unless the task is running, `InvalidItem`
        for an item the queue cannot hold.

        From async code, ``await task.submit(item)`` gives the result without blocking the
        event loop (the future is a `lifecycle.futures.TaskFuture`); but the submit itself
        waits for room as above, so give a bounded queue ``timeout=0`` there. Cancelling the
        awaiting coroutine cancels the item if it has not started.
        """
        holder = self._admit(ExecuteContext(item=item, future=TaskFuture()), timeout, "submit()")
        if not isinstance(holder.future, TaskFuture):  # pragma: no cover - _merge keeps one
            raise RuntimeError("a submitted item lost its future")
        return holder.future

    def put(self, item: Any, *, timeout: float | None = None) -> None:
        """Queue ``item`` with no future: its outcome is not observable, so an exception from
        its `execute` is a crash. Waits and raises as `submit`."""
        self._admit(ExecuteContext(item=item), timeout, "put()")

    def map(self, items: Iterable[Any], timeout: float | None = None) -> list[Any]:
        """Submit every item, then return their results in the order of ``items``.

        Raises the exception of the first item (in that order) that failed, or `TimeoutError`
        when ``timeout`` seconds pass first; either way the items not yet started are
        cancelled. Raises as `submit` otherwise.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        futures: list[Future[Any]] = []
        try:
            for item in items:
                try:
                    futures.append(self.submit(item, timeout=_remaining(deadline)))
                except QueueFull as exc:
                    if deadline is None:
                        raise
                    raise TimeoutError(
                        f"map() on task {self.name!r}: the queue stayed full past the "
                        f"{timeout:g}s timeout after {len(futures)} items were submitted"
                    ) from exc
            results = []
            for index, future in enumerate(futures):
                try:
                    results.append(future.result(_remaining(deadline)))
                except TimeoutError:
                    if future.done():
                        raise  # the item's own TimeoutError, not ours
                    raise TimeoutError(
                        f"map() on task {self.name!r}: {len(futures) - index} of "
                        f"{len(futures)} results not ready after {timeout:g}s"
                    ) from None
            return results
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    # -- counters and sizes (thread-safe snapshots) ------------------------------------------

    @property
    def submitted(self) -> int:
        """Items accepted by `submit`, `put` and `map` (not merged ones)."""
        with self._lock:
            return self._submitted

    def _tallied(self, field: str) -> int:
        with self._lock:
            return sum(getattr(tally, field) for tally in self._tallies)

    @property
    def completed(self) -> int:
        """Items whose `execute` returned (counted before their future resolves)."""
        return self._tallied("completed")

    @property
    def failed(self) -> int:
        """Items whose `execute` raised (not `TryLater`) and whose future took the exception."""
        return self._tallied("failed")

    @property
    def try_laters(self) -> int:
        """Retries: how many times `execute` raised `TryLater`."""
        with self._lock:
            return self._try_laters

    @property
    def cancelled(self) -> int:
        """Items skipped because their future was cancelled before they started."""
        return self._tallied("cancelled")

    @property
    def dropped(self) -> int:
        """Items the task ended without running (their futures failed with `TaskStopped`)."""
        with self._lock:
            return self._dropped

    @property
    def pending(self) -> int:
        """Items waiting: queued now or delayed by `TryLater(after=...)`."""
        with self._lock:
            return self._waiting_len()

    @property
    def in_flight(self) -> int:
        """Items a worker is executing now."""
        with self._lock:
            return self._taken - sum(tally.finished for tally in self._tallies)

    # -- the workers -------------------------------------------------------------------------

    def run_loop(self) -> None:
        tally = _Tally()
        with self._lock:
            self._tallies.append(tally)
        try:
            while (ctx := self._take()) is not None:
                self._run(ctx, tally)
        except BaseException:
            self._close("failed")
            raise
        self._close("stopped")

    def on_stop(self) -> None:
        """Fail the futures of every item still waiting with `TaskStopped`."""
        self._close("stopped")

    def _take(self) -> ExecuteContext | None:
        """The next due item, or None once the task is stopping; waits without polling."""
        # Wait no longer than the earliest delayed retry: another worker may have taken the
        # wake-up its retry put, and then be busy, so this worker must service the heap itself.
        with self._lock:
            timeout = self._service_delayed()
        while True:
            try:
                got = self._channel.get(timeout=timeout)
            except queue.Empty:
                got = _WAKE  # the earliest delayed item is due
            lost = None
            with self._lock:
                ctx = self._waiting.claim(got)
                if self._closed or self._wake.is_set():
                    self._channel.put(_WAKE)  # pass the wake-up on to the next idle worker
                    if ctx is not None:  # got before the close drained the channel
                        self._forget(ctx)
                        self._dropped += 1
                        lost, why = ctx, self._closed_why
                    ctx = None
                else:
                    timeout = self._service_delayed()
                    if ctx is not None:
                        self._forget(ctx)
                        self._taken += 1
                        if self._blocked_submitters:
                            self._not_full.notify()
                        return ctx
                    continue
            if lost is not None:
                self._fail_dropped([lost], why)
            return None

    def _run(self, ctx: ExecuteContext, tally: _Tally) -> None:
        try:
            if not ctx.start():
                tally.cancelled += 1
                return
            try:
                result = self.execute(ctx.item, ctx)
            except TryLater as exc:
                self._retry(ctx, exc.after)
            except Exception as exc:
                if ctx.future is None:
                    raise  # nobody can observe this item: a crash, as any worker exception
                tally.failed += 1
                ctx.set_exception(exc)
            except BaseException as exc:
                ctx.set_exception(exc)
                raise
            else:
                tally.completed += 1
                ctx.set_result(result)
        finally:
            tally.finished += 1

    def _service_delayed(self) -> float | None:
        """Queue the delayed retries now due; return the seconds until the next one (None: no
        retry is delayed). Called with the lock held."""
        delayed = self._delayed
        if not delayed:
            return None
        now = time.monotonic()
        while delayed and delayed[0][0] <= now:
            self._channel.put(self._waiting.push(heapq.heappop(delayed)[2]))
        return delayed[0][0] - now if delayed else None

    def _retry(self, ctx: ExecuteContext, after: float | None) -> None:
        ctx.attempt += 1
        with self._lock:
            self._try_laters += 1
            closed = self._closed
            if closed:
                self._dropped += 1
                why = self._closed_why
            elif after:
                due = time.monotonic() + after
                heapq.heappush(self._delayed, (due, next(self._delay_seq), ctx))
                self._remember(ctx)
                if self._delayed[0][2] is ctx:
                    self._channel.put(_WAKE)  # an idle worker must shorten its wait
            else:
                self._channel.put(self._waiting.push(ctx))
                self._remember(ctx)
        if closed:
            self._fail_dropped([ctx], why)

    def _wake_all(self) -> None:
        with self._lock:
            self._not_full.notify_all()
            for _ in range(max(len(self._threads), 1)):
                self._channel.put(_WAKE)

    def _close(self, why: str) -> None:
        """Stop accepting work and fail every waiting item's future with `TaskStopped`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._closed_why = why
            dropped = self._waiting.drain(self._channel)
            dropped.extend(ctx for _, _, ctx in sorted(self._delayed, key=lambda e: e[:2]))
            self._delayed.clear()
            self._forget_all()
            self._dropped += len(dropped)
            self._not_full.notify_all()
            for _ in range(max(len(self._threads), 1)):
                self._channel.put(_WAKE)  # every idle worker must see the queue closed
        if dropped:
            self._fail_dropped(dropped, why)

    def _fail_dropped(self, contexts: list[ExecuteContext], why: str) -> None:
        _fail_dropped(self.name, contexts, why)

    def _finish_cause(self) -> str | None:
        with self._lock:
            dropped = self._dropped
        if not dropped:
            return None
        return dropped_cause(dropped)

    # -- admission -----------------------------------------------------------------------------

    def _admit(self, ctx: ExecuteContext, timeout: float | None, action: str) -> ExecuteContext:
        """Queue ``ctx``; return it, or the equal waiting context it was merged into."""
        _check_timeout(action, timeout)
        self._check_item(ctx.item)
        deadline = None if timeout is None else time.monotonic() + timeout
        lc = self._lifecycle
        with self._lock:
            while True:
                if self._closed or lc is None or lc.state is not TaskState.RUNNING:
                    state = "unbound" if lc is None else str(lc.state)
                    raise TaskNotRunning(self.name, state, f"{action} to it")
                merged = self._merge(ctx)
                if merged is not None:
                    return merged
                if not self._max_items or self._waiting_len() < self._max_items:
                    break
                remaining = _remaining(deadline)
                if threading.current_thread() in self._threads:
                    remaining = 0.0
                if remaining is not None and remaining <= 0:
                    raise QueueFull(self.name, self._max_items, timeout or 0.0)
                self._blocked_submitters += 1
                try:
                    self._not_full.wait(remaining)
                finally:
                    self._blocked_submitters -= 1
            self._channel.put(self._waiting.push(ctx))
            self._remember(ctx)
            self._submitted += 1
        return ctx

    def _waiting_len(self) -> int:
        return len(self._waiting) + len(self._delayed)

    # Hooks of `UniqueQueueTask`; called with the lock held.

    def _check_item(self, item: Any) -> None:
        """Raise `InvalidItem` for an item this queue cannot hold."""

    def _merge(self, ctx: ExecuteContext) -> ExecuteContext | None:
        """The waiting context ``ctx`` merges into (None: queue ``ctx`` itself)."""
        return None

    def _remember(self, ctx: ExecuteContext) -> None:
        pass

    def _forget(self, ctx: ExecuteContext) -> None:
        pass

    def _forget_all(self) -> None:
        pass


def _check_queue_class(cls: type[Task]) -> None:
    """Check a queue task class's ``WORKERS`` and ``MAX_ITEMS`` and derive its ``workers``
    (every queue task kind does); raises `InvalidTask`."""
    if "workers" in cls.__dict__:
        raise InvalidTask(cls, "set WORKERS (or the --prefix-workers option), not workers")
    _check_count(cls, "MAX_ITEMS", getattr(cls, "MAX_ITEMS", None), QueueTask.max_items)
    # The collection reads the class-level count; the option may raise it per instance.
    workers = getattr(cls, "WORKERS", None)
    cls.workers = _check_count(cls, "WORKERS", workers, QueueTask.worker_threads)


class PriorityQueueTask(QueueTask):
    """A `QueueTask` that executes the smallest waiting item first (equal ones in arrival
    order). Items must be mutually orderable; `submit` raises `InvalidItem` otherwise."""

    _WAITING = _Heap


class UniqueQueueTask(QueueTask):
    """A `QueueTask` that holds each item once: submitting an item equal to one still waiting
    (queued or delayed for a retry) queues nothing and returns that item's future (giving it
    one if it was `put`). An item being executed is no longer waiting. Items must be hashable;
    `submit` raises `InvalidItem` otherwise. Combine with `PriorityQueueTask` by inheriting
    from both.
    """

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self._queued: dict[Any, ExecuteContext] = {}

    def _check_item(self, item: Any) -> None:
        try:
            hash(item)
        except TypeError as exc:
            raise InvalidItem(
                self.name, item, f"a unique queue needs hashable items ({exc})"
            ) from exc

    def _merge(self, ctx: ExecuteContext) -> ExecuteContext | None:
        existing = self._queued.get(ctx.item)
        if existing is not None and existing.future is None:
            existing.future = ctx.future  # a put() item gains the submitter's future
        return existing

    def _remember(self, ctx: ExecuteContext) -> None:
        self._queued.setdefault(ctx.item, ctx)

    def _forget(self, ctx: ExecuteContext) -> None:
        if self._queued.get(ctx.item) is ctx:
            del self._queued[ctx.item]

    def _forget_all(self) -> None:
        self._queued.clear()
