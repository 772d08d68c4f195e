"""`AsyncTask`: a task whose hooks are coroutines, awaited on the service's event loop.

An async task is a `Task` (same ``DEPS``, ``WANTS``, ``LOOPLESS``, ``workers``, options, the
same TASK machine and journal records); only where its code runs differs. The collection still
drives it from a thread of its own (its driver), and this module is the bridge: `init_task` is
awaited on the loop while the driver waits for it, `run_loop` runs as ``workers`` asyncio tasks,
`on_stop` as one more, and every one of them ends the task's code the way a thread's return
does (`Task._leave`), so "ended" still means "none of its code runs".

Stop with escalation: at stop, `stop_event` (an `asyncio.Event`) is set and `on_stop` awaited;
a `run_loop` still going ``stop_grace`` seconds later is cancelled. A `run_loop` cancelled that
way ends the task cleanly (its finish record says so). Every other `asyncio.CancelledError` is a
failure: the engine tells its own cancellation apart because it records, before calling
`asyncio.Task.cancel`, that it asked, and the cancelled asyncio task still has that request
pending (`asyncio.Task.cancelling`); a `CancelledError` raised out of an awaited future someone
else cancelled, or raised by hand, meets neither condition.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from lifecycle.engine import Lifecycle
from lifecycle.errors import InvalidTask, LifecycleError, LifecycleInterrupt
from lifecycle.options import option
from lifecycle.task import _WINDING_DOWN, SkipTask, Task, TryLater

__all__ = ["DEFAULT_STOP_TIMEOUT", "GRACE_FRACTION", "AsyncTask", "SkipTask", "TryLater"]

#: With no ``STOP_GRACE``, a task's grace is this fraction of the time left until the stop
#: deadline when its stop begins: the cancelled `run_loop` still has the rest to unwind.
GRACE_FRACTION = 0.5
#: The stop deadline assumed for the grace of a task with no service (the service's default).
DEFAULT_STOP_TIMEOUT = 30.0

#: The message of the engine's own cancellations (after the grace, or abandoning a task).
_ENGINE_CANCEL = "lifecycle: the stop grace passed"


class _Mailbox:
    """Callbacks posted to one loop from other threads, run there in order.

    `loop.call_soon_threadsafe` wakes the loop (a write to its self-pipe) on every call; a stop
    of 1,000 tasks would wake it 1,000 times, each time taking the interpreter lock from the
    thread that is firing the stops. Posts made while a drain is already scheduled ride along
    with it: one wake-up per burst. Thread-safe.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._posted: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def post(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon; raises `RuntimeError` if it is closed."""
        with self._lock:
            self._posted.append((callback, args))
            if len(self._posted) > 1:
                return  # a drain is scheduled and has not taken the list yet
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            with self._lock:
                self._posted.clear()
            raise

    def _drain(self) -> None:
        with self._lock:
            posted, self._posted = self._posted, []
        for callback, args in posted:
            callback(*args)


_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = (
    weakref.WeakKeyDictionary()
)
_mailboxes_lock = threading.Lock()


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    box = _mailboxes.get(loop)
    if box is None:
        with _mailboxes_lock:
            box = _mailboxes.get(loop)
            if box is None:
                box = _mailboxes[loop] = _Mailbox(loop)
    return box


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running on this thread, if any (without raising: this is on every stop)."""
    return asyncio._get_running_loop()


def _refuse_thread_hooks(cls: type[Task]) -> None:
    """`AsyncTask._check_hooks`: refuse a plain-function hook (it would block the loop) and
    ``init_thread``; raises `InvalidTask`."""
    for hook in sorted(cls._HOOKS):
        function = getattr(cls, hook, None)
        if function is not None and not inspect.iscoroutinefunction(function):
            raise InvalidTask(
                cls,
                f"{cls.__qualname__}.{hook}() is not an async def; an async task awaits its "
                "hooks on the event loop, where a plain function would block every other "
                "task (make it async, or subclass lifecycle.Task to run it on threads)",
            )
    if cls.init_thread is not Task.init_thread:
        raise InvalidTask(
            cls,
            f"{cls.__qualname__} overrides init_thread(), but an async task has no worker "
            "threads; set up in init_task() or at the top of run_loop()",
        )


class AsyncTask(Task):
    """Base class of tasks whose hooks are coroutines.

    Turning a thread task into an async one means changing the base class and adding
    ``async``/``await``: ``async def init_task`` (raise `SkipTask` to opt out), ``async def
    run_loop`` (return once `stop_event` is set, or when the work is done), ``async def
    on_stop``. ``workers`` concurrent `run_loop` coroutines run (none when ``LOOPLESS``).
    There is no ``init_thread``: set up in `init_task` or at the top of `run_loop`.

    ``STOP_GRACE``: seconds a `run_loop` may keep going after `stop_event` is set before it is
    cancelled (None, the default: `GRACE_FRACTION` of the time left until the service's stop
    deadline when this task's stop begins). The option ``--{prefix}-stop-grace`` overrides it.

    Anything a hook raises, `SystemExit`, `KeyboardInterrupt` and a `CancelledError` the
    engine did not cause included, fails the task and asks its service to shut down. A task
    still running at the stop deadline (a `run_loop` that swallows its cancellation, an
    `on_stop` that never returns) is named in the `StopTimeout`.

    An async hook runs on the loop's thread while the collection's driver thread waits for
    it, holding the collection's lock: it may read the collection (``require``, ``state_of``,
    ``order``) and ask for a stop (``service.shutdown``), but not drive it (``stop``,
    ``join``, ``register``), which would wait for the driver that waits for the hook.

    Constructible on its own (``AsyncTask(service=None)``): `stop_event` then works without a
    collection, so a test may ``await task.run_loop()`` directly. Run by a collection, the
    task's code runs on the collection's ``loop`` (`Service.serve` provides it).
    Thread-safety: `stop_event` is an `asyncio.Event`; set it from the loop's thread only
    (the engine does so through ``call_soon_threadsafe``).
    """

    STOP_GRACE: ClassVar[float | None] = None
    _HOOKS: ClassVar[frozenset[str]] = frozenset({"init_task", "run_loop", "on_stop"})

    stop_grace = option(
        type=float,
        ge=0,
        default=lambda cls: cls.STOP_GRACE,
        metavar="SECONDS",
        help="seconds run_loop may go on after stop_event is set before it is cancelled "
        "(default: half the time left until the stop deadline)",
    )

    # A function of the module rather than a method body: `Task.__init_subclass__` calls it
    # while `AsyncTask` itself is being made, before the class's own methods are complete
    # (a mutation-testing copy of a method cannot run then).
    _check_hooks = classmethod(_refuse_thread_hooks)

    @classmethod
    def _implements_run_loop(cls) -> bool:
        return cls.run_loop is not AsyncTask.run_loop

    # The runtime state of one task. Each is a class-level default that an instance shadows
    # only once it changes: a LOOPLESS task without hooks (the common case at scale) then
    # carries none of it, and the collector has nothing extra to scan.
    _loop: asyncio.AbstractEventLoop | None = None
    _event: asyncio.Event | None = None
    #: The asyncio tasks the engine made for this task that have not finished: each is
    #: awaited (the done callback's bookkeeping, then `Service.serve`'s final drain).
    _runs: set[asyncio.Task[Any]] | None = None
    _workers_running: list[asyncio.Task[Any]] | None = None
    _grace_timer: asyncio.TimerHandle | None = None
    _cancel_cause: str | None = None  # set before the engine cancels anything
    _abandon_reason: LifecycleError | None = None
    #: Set while none of the task's code runs; made when code is first launched.
    _idle: threading.Event | None = None
    #: Between `_prepare_stop_hook` and the launch on the loop, which sets `stop_event` itself:
    #: one hop to the loop per stop instead of two.
    _stop_launch_pending = False

    # -- hooks -----------------------------------------------------------------------------

    async def init_task(self) -> None:
        """Prepare the task; awaited once, in dependency order. Raise `SkipTask` to opt out."""

    async def run_loop(self) -> None:
        """The work of one worker coroutine; return when `stop_event` is set."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement run_loop()")

    async def on_stop(self) -> None:
        """Awaited once when stop is requested, after `stop_event` is set."""

    # -- state -----------------------------------------------------------------------------

    @property
    def stop_event(self) -> asyncio.Event:  # type: ignore[override]
        """Set once stop is requested, a worker failed, or the task ended; `run_loop` awaits
        ``stop_event.wait()``. Made on first use, already set if by then it would have been."""
        event = self._event
        if event is not None:
            return event
        lc = self._lifecycle
        if lc is None:  # standalone: no machine to consult
            self._event = event = asyncio.Event()
            return event
        with lc.lock:
            if self._event is None:
                event = asyncio.Event()  # nothing waits on it yet: set() is safe off the loop
                if lc.state in _WINDING_DOWN or self.failure is not None or self._restarting:
                    event.set()
                self._event = event
            return self._event

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the task's code runs on (None until a collection bound one)."""
        return self._loop

    def _wake_stop_event(self) -> None:
        event = self._event
        if event is None or self._stop_launch_pending:
            return  # none yet (made set), or the stop's launch on the loop sets it first
        loop = self._loop
        if loop is None or _running_loop() is loop:
            event.set()
            return
        try:
            _mailbox(loop).post(event.set)
        except RuntimeError:  # the loop is closed: nothing can be waiting on it any more
            event.set()

    # -- binding and init (driver thread) ----------------------------------------------------

    def _bind(self, lifecycle: Lifecycle, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super()._bind(lifecycle, loop)
        self._loop = loop

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            raise LifecycleError(
                f"async task {self.name!r} has no event loop: run its service with run() or "
                "`await service.serve()` (or give its Tasks collection a loop before create())"
            )
        if loop.is_closed():
            raise LifecycleError(f"the event loop of async task {self.name!r} is closed")
        if _running_loop() is loop:
            raise LifecycleError(
                f"async task {self.name!r} is driven from its own event loop's thread, which "
                "would block the loop; drive the collection from another thread "
                "(`await service.serve()` does)"
            )
        return loop

    def _run_init(self) -> None:
        """Await `init_task` on the loop; the calling (driver) thread waits for its outcome.

        What the hook raises is raised here. If the engine abandons the hook (a stop deadline
        passed during init), `LifecycleInterrupt` with that reason is raised.
        """
        loop = self._require_loop()
        if type(self).init_task is AsyncTask.init_task:
            return  # nothing to await: spare the round trip to the loop (most LOOPLESS tasks)
        outcome: concurrent.futures.Future[None] = concurrent.futures.Future()
        _mailbox(loop).post(self._spawn_init, outcome)
        outcome.result()

    def _spawn_init(self, outcome: concurrent.futures.Future[None]) -> None:
        self._spawn(
            self._await_hook(self.init_task),
            "init_task",
            lambda failure: self._init_ended(outcome, failure),
        )

    def _init_loop(self) -> asyncio.AbstractEventLoop | None:
        loop = self._loop
        if (
            type(self).init_task is AsyncTask.init_task  # nothing to await
            or loop is None
            or loop.is_closed()
            or _running_loop() is loop
        ):
            return None  # `_run_init` returns at once, or says what is wrong
        return loop

    async def _await_init(self) -> None:
        outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._spawn(
            self._await_hook(self.init_task),
            "init_task",
            lambda failure: self._init_ended(outcome, failure),
        )
        await outcome

    def _init_ended(
        self,
        outcome: concurrent.futures.Future[None] | asyncio.Future[None],
        failure: BaseException | None,
    ) -> None:
        if outcome.done():
            return
        if self._abandon_reason is not None:  # the engine gave up on the hook
            outcome.set_exception(LifecycleInterrupt(self._abandon_reason))
        elif failure is None:
            outcome.set_result(None)
        else:  # the task's failure (or SkipTask): the collection decides
            outcome.set_exception(failure)

    # -- workers ---------------------------------------------------------------------------

    def _launch_workers(self, count: int) -> None:
        """Schedule ``count`` `run_loop` coroutines on the loop (lifecycle lock held)."""
        self._busy_now()
        try:
            self._on_loop(self._spawn_workers, count)
        except (RuntimeError, LifecycleError) as exc:  # the loop is gone
            self._busy -= count
            self._record_failure(exc)
            self._request_shutdown(exc)
            self._settle()
            self._maybe_idle()

    def _spawn_workers(self, count: int) -> None:
        for index in range(count):
            suffix = "run_loop" if count == 1 else f"run_loop-{index}"
            run = self._spawn(self._await_hook(self.run_loop), suffix, self._worker_ended)
            if self._workers_running is None:
                self._workers_running = []
            self._workers_running.append(run)

    def _worker_ended(self, failure: BaseException | None) -> None:
        if failure is not None:
            self._record_failure(failure)
        self._leave()
        # After `_leave`, as for threads: the journal shows the failure (or keeps its
        # cause while sibling workers return) before the service's stop it asks for.
        self._after_worker(failure)

    async def _await_hook(
        self, hook: Callable[[], Coroutine[Any, Any, None]]
    ) -> BaseException | None:
        """Await ``hook()``; return what it raised instead of raising it (None if nothing).

        A `CancelledError` caused by the engine's own cancel counts as nothing: the hook was
        stopped as asked. Everything else, `SystemExit` and `KeyboardInterrupt` included, is
        returned, so that it neither escapes into the loop nor goes unretrieved.
        """
        try:
            await hook()
        except asyncio.CancelledError as exc:
            return None if self._cancelled_by_engine() else exc
        except BaseException as exc:
            return exc
        return None

    def _spawn(
        self,
        coroutine: Coroutine[Any, Any, BaseException | None],
        suffix: str,
        ended: Callable[[BaseException | None], None],
    ) -> asyncio.Task[BaseException | None]:
        """Run ``coroutine`` as an asyncio task the engine owns (on the loop's thread); call
        ``ended(failure)`` once it is done, even if it was cancelled before its first step
        (a coroutine cancelled so early never reaches its own handlers)."""
        run = asyncio.get_running_loop().create_task(coroutine, name=f"{self.name}.{suffix}")
        runs = self._runs
        if runs is None:
            runs = self._runs = set()
        runs.add(run)

        def done(run: asyncio.Task[BaseException | None]) -> None:
            runs.discard(run)
            if run.cancelled():
                failure: BaseException | None = (
                    None if self._cancel_cause is not None else asyncio.CancelledError()
                )
            else:
                failure = run.result()
            ended(failure)

        run.add_done_callback(done)
        return run

    def _on_loop(self, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` on the task's loop: now if this is its thread, else soon.

        Raises `LifecycleError` without a loop, `RuntimeError` if the loop is closed.
        """
        loop = self._loop
        if loop is None:
            raise LifecycleError(f"async task {self.name!r} has no event loop")
        if _running_loop() is loop:
            callback(*args)
        else:
            _mailbox(loop).post(callback, *args)

    # -- stop --------------------------------------------------------------------------------

    def _has_stop_hook(self) -> bool:
        return type(self).on_stop is not AsyncTask.on_stop

    def _prepare_stop_hook(self) -> Callable[[], None] | None:
        hooked = self._has_stop_hook()
        if hooked:
            self._busy += 1
            self._busy_now()
        else:
            self._settle()
            if self.lifecycle.terminal:
                return None  # a LOOPLESS task without a hook ends here
        grace = self._grace()
        self._stop_launch_pending = True
        return lambda: self._launch_stop(hooked, grace)

    def _launch_stop(self, hooked: bool, grace: float) -> None:
        try:
            self._on_loop(self._stop_on_loop, hooked, grace)
        except (RuntimeError, LifecycleError) as exc:  # the loop is gone
            self._stop_launch_pending = False
            self._wake_stop_event()
            with self.lifecycle.lock:
                self._stop_error = exc if hooked else None
                self._record_failure(exc)
                if hooked:
                    self._busy -= 1
                self._settle()

    def _stop_on_loop(self, hooked: bool, grace: float) -> None:
        self._stop_launch_pending = False
        event = self._event
        if event is not None:
            event.set()
        if hooked:
            self._spawn(self._await_hook(self.on_stop), "on_stop", self._on_stop_ended)
        if any(not run.done() for run in self._workers_running or ()):
            loop = asyncio.get_running_loop()
            self._grace_timer = loop.call_later(grace, self._escalate, grace)

    def _on_stop_ended(self, failure: BaseException | None) -> None:
        if failure is not None:
            with self.lifecycle.lock:
                self._stop_error = failure
                self._record_failure(failure)
        self._leave()

    def _grace(self) -> float:
        """Seconds from this task's stop to the cancellation of a `run_loop` still going."""
        value = self.stop_grace
        if value is not None:
            return float(value)
        deadline = getattr(self.service, "stop_deadline", None)
        if isinstance(deadline, int | float):
            return GRACE_FRACTION * max(0.0, deadline - time.monotonic())
        return GRACE_FRACTION * DEFAULT_STOP_TIMEOUT

    def _escalate(self, grace: float) -> None:
        """Cancel the `run_loop` coroutines still going after the grace (on the loop)."""
        self._grace_timer = None
        late = [run for run in self._workers_running or () if not run.done()]
        if not late:
            return
        with self.lifecycle.lock:
            if self._cancel_cause is None:
                self._cancel_cause = (
                    f"run_loop still running {grace:g} s after stop_event was set "
                    "(the stop grace): cancelled"
                )
        for run in late:
            run.cancel(_ENGINE_CANCEL)

    def _cancelled_by_engine(self) -> bool:
        """Whether the `CancelledError` being handled comes from the engine's own cancel."""
        current = asyncio.current_task()
        return self._cancel_cause is not None and current is not None and current.cancelling() > 0

    def _abandon(self, reason: LifecycleError) -> list[asyncio.Task[Any]]:
        """Cancel every asyncio task of this task still going, as the engine (on the loop);
        return them. A hung `init_task` then raises `LifecycleInterrupt` with ``reason``."""
        pending = self._pending_runs()
        if not pending:
            return []
        with self.lifecycle.lock:
            self._abandon_reason = reason
            if self._cancel_cause is None:
                self._cancel_cause = f"cancelled: {reason}"
        for run in pending:
            run.cancel(_ENGINE_CANCEL)
        return pending

    def _pending_runs(self) -> list[asyncio.Task[Any]]:
        """The engine's asyncio tasks of this task that have not finished (loop thread)."""
        return [run for run in self._runs or () if not run.done()]

    # -- ending ------------------------------------------------------------------------------

    def _leave(self) -> None:
        with self.lifecycle.lock:
            super()._leave()
            if not self._busy:
                self._maybe_idle()
                timer = self._grace_timer
                if timer is not None:
                    self._grace_timer = None
                    timer.cancel()  # called on the loop's thread: the workers end there

    def _finish_cause(self) -> str | None:
        return self._cancel_cause

    def _join_code(self, timeout: float | None) -> bool:
        """Wait for the task's coroutines to end; on the loop's own thread, only look."""
        idle = self._idle
        if idle is None:
            return True  # none of its code was ever launched
        if self._loop is not None and _running_loop() is self._loop:
            return idle.is_set()
        return idle.wait(timeout)

    def _busy_now(self) -> None:
        """Some of the task's code is about to run (lifecycle lock held)."""
        if self._idle is None:
            self._idle = threading.Event()
        else:
            self._idle.clear()

    def _maybe_idle(self) -> None:
        """None of the task's code runs any more, if ``_busy`` is zero (lock held)."""
        if not self._busy and self._idle is not None:
            self._idle.set()
