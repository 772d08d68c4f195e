"""Tasks: the unit of background work a service owns.

Subclass `Task` and override its hooks: `init_task` (once, before start; raise `SkipTask` to
opt out), `init_thread` and `run_loop` (per worker thread), and `on_stop` (when stop is
requested). The collection drives `start`, `stop` and `join`; a subclass may not override
them. Every state change goes through the task's `Lifecycle` and so into the journal.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from lifecycle.engine import Lifecycle
from lifecycle.errors import InvalidTask, LifecycleError, RestartLimitExceeded, safe_str
from lifecycle.options import OVERRIDES, gives_any, option, read_option, write_option
from lifecycle.restart import (
    DEFAULT_DELAY,
    DEFAULT_DELAY_MAX,
    DEFAULT_LIMIT,
    MODES,
    RestartPolicy,
    parse_limit,
    policy_of,
)
from lifecycle.spec import TASK, TaskState

__all__ = ["SkipTask", "Task", "TryLater", "option"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: The engine-driven methods a subclass may not override, and the hook to use instead.
_ENGINE_DRIVEN = {
    "start": "init_task() or run_loop()",
    "stop": "on_stop()",
    "join": "on_stop() (and let run_loop() return when stop_event is set)",
}


#: The states in which `stop_event` is set: stop was requested, the task ended or it waits
#: to be restarted (by a fresh instance: this one is done).
_WINDING_DOWN = frozenset(
    {TaskState.STOPPING, TaskState.SUSPENDING, TaskState.BACKOFF, *TASK.terminal}
)

#: The states in which a task's code may run.
_LIVE = frozenset({TaskState.RUNNING, TaskState.STOPPING, TaskState.SUSPENDING})

# The states every task's start and stop compare with, bound once: reading a member off its
# enum class goes through the metaclass, which costs about as much as a call.
_RUNNING, _STOPPING, _SUSPENDING = TaskState.RUNNING, TaskState.STOPPING, TaskState.SUSPENDING

#: The options that may override a task class's restart policy.
_RESTART_OPTIONS = ("restart", "restart-delay", "restart-delay-max", "restart-limit")

#: The cause of the finish record of a task whose workers all returned unasked.
RETURNED_EARLY = "the run loop returned before any stop request"


class Restarter(Protocol):
    """What a task asks when its code ended while running or while stopping for a restart
    (the collection's supervisor). Each method is called with the task's lifecycle lock held:
    quick, no blocking, no other task's lock."""

    def verdict(self, task: Task) -> bool | BaseException:
        """True: restart ``task`` (it crashed, or its run loop returned, and its policy and
        limit admit a restart); False: end it as without a policy; an exception: fail it with
        that (`RestartLimitExceeded`)."""
        ...

    def crashed(self, task: Task) -> None:
        """``task`` just went running → backoff: schedule its restart."""
        ...

    def suspended(self, task: Task) -> None:
        """``task`` just went suspending → backoff."""
        ...


class SkipTask(Exception):
    """Raised from `Task.init_task` to skip the task (and the tasks that require it)."""


class TryLater(Exception):
    """Raised from a task's work to defer it; ``after`` is a delay in seconds, or None."""

    def __init__(self, message: str | None = None, after: float | None = None) -> None:
        if after is not None and not (after >= 0):
            raise ValueError(f"TryLater(after=...) must be a delay >= 0 seconds, not {after!r}")
        super().__init__(*(() if message is None else (message,)))
        self.message = message
        self.after = after


class Task:
    """Base class of every task.

    Class attributes:

    * ``DEPS``: task classes this task requires; they are registered with it, initialized and
      started before it and stopped after it, and if one ends skipped or failed this task is
      skipped with a reason naming it.
    * ``WANTS``: task classes ordered before this one when they are registered; nothing more.
    * ``LOOPLESS``: no worker threads; the task is running from `start` until `stop`.
    * ``workers``: the number of worker threads, each running `init_thread` then `run_loop`.
    * ``OPT_PREFIX``: the prefix of this task's command-line options (default: the class name;
      ``_`` becomes ``-``). Declare options with `lifecycle.options.option`; read them as
      attributes or with `get_option`, override one instance's with `set_option`.
    * ``RESTART`` (``"never"``, ``"on-failure"``, ``"always"``), ``RESTART_DELAY``,
      ``RESTART_DELAY_MAX``, ``RESTART_LIMIT = (burst, seconds)``: the restart policy (see
      `lifecycle.restart`); each is also an option (``--{prefix}-restart``,
      ``--{prefix}-restart-delay``, ``--{prefix}-restart-delay-max``,
      ``--{prefix}-restart-limit BURST/SECONDS``). A bad value raises `InvalidTask` when the
      class is made.

    A worker that raises anything, `SystemExit` included, fails its task with that cause and
    asks the service the task was created with to shut down (``service.shutdown(reason)``),
    unless the task's restart policy restarts it: then the task goes to ``backoff`` and a fresh
    instance replaces it (see `lifecycle.collection.Tasks`).
    """

    DEPS: ClassVar[Sequence[type[Task]]] = ()
    WANTS: ClassVar[Sequence[type[Task]]] = ()
    LOOPLESS: ClassVar[bool] = False
    OPT_PREFIX: ClassVar[str | None] = None
    workers: int = 1
    RESTART: ClassVar[str] = "never"
    RESTART_DELAY: ClassVar[float] = DEFAULT_DELAY
    RESTART_DELAY_MAX: ClassVar[float] = DEFAULT_DELAY_MAX
    RESTART_LIMIT: ClassVar[tuple[int, float]] = DEFAULT_LIMIT

    # The restart policy's options default to None: unset, each class keeps its own class
    # attribute, so that two classes sharing a prefix may share these inherited flags.
    restart = option(
        choices=MODES,
        help="restart the task when it crashes: never, on-failure or always "
        "(default: the class's RESTART)",
    )
    restart_delay = option(
        type=float,
        ge=0,
        metavar="SECONDS",
        help="the first backoff before a restart, doubling per recent restart "
        "(default: the class's RESTART_DELAY)",
    )
    restart_delay_max = option(
        type=float,
        ge=0,
        metavar="SECONDS",
        help="the longest backoff before a restart (default: the class's RESTART_DELAY_MAX)",
    )
    restart_limit = option(
        type=parse_limit,
        metavar="BURST/SECONDS",
        help="more than BURST restarts within SECONDS fail the task and its service "
        "(default: the class's RESTART_LIMIT)",
    )
    #: The collection's supervisor (None: no restarts, as for a task run on its own). Class
    #: defaults, shadowed per instance only when set: most tasks never restart.
    _restarter: Restarter | None = None
    #: Whether this instance asked its service to shut down for its failure (once only).
    _shutdown_asked = False
    #: Set once this instance went to backoff (crashed or suspended): a fresh instance takes
    #: over, and this one's failure asks for no shutdown.
    _restarting = False
    #: The hooks the engine calls on worker threads; a task kind adds its own (``execute``).
    _HOOKS: ClassVar[frozenset[str]] = frozenset(
        {"init_task", "init_thread", "run_loop", "on_stop"}
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method, hook in _ENGINE_DRIVEN.items():
            if method in cls.__dict__:
                raise TypeError(
                    f"{cls.__qualname__} overrides {method}(), which the collection drives; "
                    f"override {hook} instead"
                )
        cls._check_hooks()
        cls.restart_policy()

    @classmethod
    def restart_policy(cls) -> RestartPolicy:
        """The class's restart policy, from ``RESTART``, ``RESTART_DELAY``,
        ``RESTART_DELAY_MAX`` and ``RESTART_LIMIT``; raises `InvalidTask` naming a bad one."""
        try:
            return policy_of(
                cls.RESTART, cls.RESTART_DELAY, cls.RESTART_DELAY_MAX, cls.RESTART_LIMIT
            )
        except ValueError as exc:
            raise InvalidTask(cls, str(exc)) from None

    def current_restart_policy(self) -> RestartPolicy:
        """This instance's restart policy: the class's, as its options override it.

        Raises `InvalidTask` when the values combine badly (a delay above the maximum).
        """
        cls = type(self)
        if not self._restart_overridable():
            return cls.restart_policy()  # nothing overrides it: spare four option reads

        def given(name: str, default: Any) -> Any:
            value = self.get_option(name)
            return default if value is None else value

        try:
            return RestartPolicy.checked(
                given("restart", cls.RESTART),
                given("restart-delay", cls.RESTART_DELAY),
                given("restart-delay-max", cls.RESTART_DELAY_MAX),
                tuple(given("restart-limit", cls.RESTART_LIMIT)),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidTask(cls, str(exc)) from None

    def _restart_overridable(self) -> bool:
        """Whether options may override the class's restart policy here: some were set on
        this instance, or the option source gives one of the restart options."""
        # `getattr`, not ``self.__dict__``: reading ``__dict__`` would make the instance's
        # dict object, which most instances never need.
        if getattr(self, OVERRIDES, None):
            return True
        source = self.option_source()
        return source is not None and gives_any(source, type(self), _RESTART_OPTIONS)

    @classmethod
    def _check_hooks(cls) -> None:
        """Refuse hooks this kind of task cannot call (raises `InvalidTask`, a `TypeError`).

        A thread calling an async hook only makes a coroutine and drops it: the work never
        runs and its errors never surface. Refuse it at class creation, inherited from a mixin
        included. `lifecycle.aio.AsyncTask` checks the converse.
        """
        for hook in sorted(cls._HOOKS):
            function = getattr(cls, hook, None)
            if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
                raise InvalidTask(
                    cls,
                    f"{cls.__qualname__}.{hook}() is an async def; a thread task calls its hooks "
                    "on worker threads and needs a plain function there (an async task class "
                    "is needed to run coroutines: subclass lifecycle.aio.AsyncTask)",
                )

    @classmethod
    def _implements_run_loop(cls) -> bool:
        """Whether the class has a `run_loop` of its own (a task with workers needs one)."""
        return cls.run_loop is not Task.run_loop

    # The per-instance state below starts as these class defaults and is stored on the
    # instance only once it changes: a LOOPLESS task never changes most of it, and making
    # one should not cost a store per default.
    #: What the task failed with (None unless it failed); the first failure wins.
    failure: BaseException | None = None
    _lifecycle: Lifecycle | None = None
    _stop_event: threading.Event | None = None
    _threads: tuple[threading.Thread, ...] = ()
    _hook: threading.Thread | None = None
    _busy = 0  # workers alive, plus one while the stop hook runs
    _stop_error: BaseException | None = None

    def __init__(self, service: Any = None) -> None:
        self.service = service

    # -- hooks -----------------------------------------------------------------------------

    # The hooks' return values are ignored; they are typed ``object`` so that the coroutine
    # hooks of `lifecycle.aio.AsyncTask` (a Task too) are sound overrides for type checkers.

    def init_task(self) -> object:
        """Prepare the task; runs once, in dependency order. Raise `SkipTask` to opt out."""
        return None

    def init_thread(self) -> None:
        """Prepare one worker thread; runs on that thread before `run_loop`."""

    def run_loop(self) -> object:
        """The work of one worker thread; return when `stop_event` is set."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement run_loop()")

    def on_stop(self) -> object:
        """Called once when stop is requested, after `stop_event` is set."""
        return None

    # -- state -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The task's name: its class name."""
        return type(self).__name__

    @property
    def lifecycle(self) -> Lifecycle:
        """The task's state machine; raises `LifecycleError` if no collection created it."""
        if self._lifecycle is None:
            raise LifecycleError(
                f"task {self.name!r} was not created by a collection; "
                "register it in a Tasks collection and call create()"
            )
        return self._lifecycle

    @property
    def state(self) -> TaskState:
        return TaskState(self.lifecycle.state)

    @property
    def stop_event(self) -> threading.Event:
        """Set once stop is requested, a worker failed, or the task ended; `run_loop` waits on
        it, never sleeps.

        Made on first use (most LOOPLESS tasks never need one), already set if by then it
        would have been.
        """
        event = self._stop_event
        if event is None:
            lc = self.lifecycle
            with lc.lock:
                if self._stop_event is None:
                    self._stop_event = threading.Event()
                    if lc.state in _WINDING_DOWN or self.failure is not None or (
                        self._restarting
                    ):
                        self._stop_event.set()
                event = self._stop_event
        return event

    def _wake_stop_event(self) -> None:
        """Set `stop_event` if it exists (else it is made already set when first used)."""
        event = self._stop_event
        if event is not None:
            event.set()

    @property
    def running(self) -> bool:
        """True from `start` until the task ended: while it is running, stopping or
        suspending, some of its code (a worker, `on_stop`) may still run. False for an
        instance a restart replaced (its lifecycle goes on with the fresh one)."""
        return (
            self._lifecycle is not None
            and not self._restarting
            and self._lifecycle.state in _LIVE
        )

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return self._threads

    # -- options ---------------------------------------------------------------------------

    @classmethod
    def option_prefix(cls) -> str:
        """The prefix of this class's flags: ``OPT_PREFIX`` or the class name, ``_`` as ``-``."""
        return (cls.OPT_PREFIX or cls.__name__).replace("_", "-")

    def option_source(self) -> Any:
        """Where parsed option values come from: the service's ``options`` (None without)."""
        return getattr(self.service, "options", None)

    def get_option(self, name: str) -> Any:
        """The value of the option ``name`` (``-`` or ``_``); raises `UnknownOption`."""
        return read_option(self, name)

    def set_option(self, name: str, value: Any) -> None:
        """Set the option ``name`` for this task instance only; raises `UnknownOption`."""
        write_option(self, name, value)

    def _bind(self, lifecycle: Lifecycle, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Bind the task to its state machine; ``loop`` is where async tasks run (unused by
        thread tasks). Called by the collection at create."""
        self._lifecycle = lifecycle

    def _run_init(self) -> None:
        """Run `init_task` to its end on the calling thread (the collection's driver)."""
        self.init_task()

    def _init_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop `init_task` is awaited on (then the collection calls `_await_init`
        there), or None to call `_run_init` on the driver: a thread task's case."""
        return None

    async def _await_init(self) -> None:
        """Await `init_task` on the loop `_init_loop` named (async tasks only)."""
        raise LifecycleError(f"task {self.name!r} has no init_task to await on a loop")

    # -- engine-driven ---------------------------------------------------------------------
    #
    # A task's code runs on its workers and, when `on_stop` is overridden, on a stop-hook
    # thread of its own, so that a hook that blocks can be abandoned at a deadline. ``_busy``
    # counts both; the task reaches its terminal state (`_settle`) only once it drops to zero,
    # so "ended" always means "none of its code is running", which the staged stop relies on.

    def start(self) -> None:
        """Move initialized → running and launch the workers.

        Raises `IllegalTransition` unless the task is initialized. A worker thread that cannot
        be started fails the task and asks the service to shut down. Driven by the collection.
        """
        lc = self._lifecycle or self.lifecycle  # the property only raises: unbound
        if self.LOOPLESS:
            lc.fire("start")  # nothing to launch: the fire alone is atomic
            return
        with lc.lock:
            lc.fire("start")
            count = self.workers
            self._busy = count
            self._launch_workers(count)

    def _launch_workers(self, count: int) -> None:
        """Launch ``count`` workers, each `init_thread` then `run_loop`; lifecycle lock held.

        A worker that cannot be launched fails the task and asks the service to shut down.
        """
        self._threads = tuple(
            threading.Thread(
                target=self._work,
                name=self.name if count == 1 else f"{self.name}-{i}",
                daemon=True,  # a stop deadline that passes must not keep the process alive
            )
            for i in range(count)
        )
        for index, thread in enumerate(self._threads):
            try:
                thread.start()
            except BaseException as exc:  # e.g. "can't start new thread"
                self._busy -= len(self._threads) - index
                self._threads = self._threads[:index]
                self._record_failure(exc)
                self._request_shutdown(exc)
                self._settle()
                break

    def stop(self) -> None:
        """Request a stop: set `stop_event`, start `on_stop`, finish once all code returned.

        Created or initialized tasks go straight to stopped (no hook runs). A running task
        becomes stopping; an overridden `on_stop` runs on a thread of its own (what it raises
        fails the task); the task ends when its workers and `on_stop` have returned. Raises
        `IllegalTransition` from a terminal state. Driven by the collection, which calls it
        only once every task ordered after this one has ended.
        """
        self._begin_stop(None, strict=True)

    def _begin_stop(self, cause: str | None, strict: bool = False) -> None:
        """`stop`, journaling ``cause``; unless ``strict``, a task that ended is left alone."""
        lc = self._lifecycle or self.lifecycle  # the property only raises: unbound
        with lc.lock:
            if not strict and not lc.can("stop"):
                return  # it ended (failed or finished) after the caller looked
            source = lc.state
            if lc.fire("stop", cause) != _STOPPING or source == _SUSPENDING:
                return  # nothing runs, or its stop began with the suspend
            launch = self._prepare_stop_hook()
        event = self._stop_event  # `_wake_stop_event`, inlined: every task's stop runs this
        if event is not None:
            event.set()
        if launch is not None:
            launch()

    def _begin_suspend(self, cause: str) -> None:
        """Stop a running task because a task it requires restarts: as `stop`, but it ends
        in backoff, to be restarted after that one (driven by the collection's supervisor).
        A task that is not running is left alone."""
        lc = self.lifecycle
        with lc.lock:
            if lc.state != _RUNNING:
                return
            lc.fire("suspend", cause)
            launch = self._prepare_stop_hook()
        self._wake_stop_event()
        if launch is not None:
            launch()

    def _has_stop_hook(self) -> bool:
        """Whether the class overrides `on_stop` (else no hook runs at stop)."""
        return type(self).on_stop is not Task.on_stop

    def _prepare_stop_hook(self) -> Callable[[], None] | None:
        """Count the stop hook as busy and return what launches it (None: no hook; the task
        settles now if nothing else runs). Called with the lifecycle lock held, just after
        ``stop`` fired; the launcher runs after the lock is released."""
        if not self._has_stop_hook():
            self._settle()  # a LOOPLESS task ends here; workers end it as they return
            return None
        self._busy += 1
        self._hook = threading.Thread(
            target=self._run_on_stop, name=f"{self.name}.on_stop", daemon=True
        )
        return self._launch_stop_thread

    def _launch_stop_thread(self) -> None:
        hook = self._hook
        if hook is None:
            return
        try:
            hook.start()
        except BaseException as exc:  # e.g. "can't start new thread"
            with self.lifecycle.lock:
                self._hook = None
                self._stop_error = exc
                self._record_failure(exc)
                self._busy -= 1
                self._settle()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the workers and the stop hook to exit, at most ``timeout`` seconds in all;
        True if they did."""
        return self._join_code(timeout)

    def _join_code(self, timeout: float | None) -> bool:
        """`join` for this kind of task: here, the worker threads and the stop hook's thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        threads = [*self._threads, *((self._hook,) if self._hook is not None else ())]
        for thread in threads:
            if thread is threading.current_thread() or thread.ident is None:
                continue  # itself, or not launched yet by a concurrent start()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not any(t.is_alive() for t in threads)

    # -- the task's own threads ------------------------------------------------------------

    def _work(self) -> None:
        failure: BaseException | None = None
        try:
            self.init_thread()
            self.run_loop()
        except BaseException as exc:
            failure = exc
            self._record_failure(exc)
        finally:
            self._leave()
        # After `_leave`: the journal shows the failure (or, with sibling workers still
        # returning, its cause kept) before the service's stop that it asks for.
        self._after_worker(failure)

    def _after_worker(self, failure: BaseException | None) -> None:
        """Ask the service to shut down for a worker's ``failure`` (or the task's kept one).

        A task that may restart asks only once its fate is known, when its last code returned
        and it failed for good (a restart refused, its limit used up), and asks once: asking
        at the first worker's failure would stop the service around a task about to restart.
        A task that never restarts asks at once, so that a sibling worker deaf to its stop
        cannot hold the service up.
        """
        if self._restarting or (failure is None and self.failure is None):
            return  # nothing failed: nothing to ask (the common way out, kept cheap)
        if self._may_restart():
            lc = self.lifecycle
            with lc.lock:
                if lc.state != TaskState.FAILED or self._shutdown_asked:
                    return
                self._shutdown_asked = True
                failure = self.failure
        elif isinstance(self.failure, RestartLimitExceeded):
            failure = self.failure
        if failure is not None:
            self._request_shutdown(failure)

    def _may_restart(self) -> bool:
        """Whether a failure of this task may be followed by a restart (its supervisor decides
        when the task's code has returned)."""
        if self._restarter is None:
            return False
        try:
            return self.current_restart_policy().mode != "never"
        except LifecycleError:
            return False  # the supervisor fails the task with that error: no restart

    def _run_on_stop(self) -> None:
        try:
            self.on_stop()
        except BaseException as exc:
            with self.lifecycle.lock:
                self._stop_error = exc
                self._record_failure(exc)
        finally:
            self._leave()

    def _leave(self) -> None:
        """One worker or the stop hook returned."""
        with self.lifecycle.lock:
            self._busy -= 1
            self._settle()

    def _settle(self) -> None:
        """End the task once none of its code runs: failed if anything raised, else stopped.

        Called with the lifecycle lock held.
        """
        lc = self._lifecycle or self.lifecycle  # the property only raises: unbound
        state = lc.state
        if self._busy or state not in _LIVE:
            return
        restarter = self._restarter
        if restarter is not None and state == _RUNNING:
            verdict = restarter.verdict(self)
            if verdict is True:
                self._restarting = True
                lc.fire("crash", self.failure if self.failure is not None else RETURNED_EARLY)
                restarter.crashed(self)
                return
            if isinstance(verdict, BaseException):
                self.failure = verdict
        if self.failure is not None:
            lc.fire("fail", self.failure)
            return
        cause = self._finish_cause()
        if state == _SUSPENDING:
            self._restarting = True
            lc.fire("finish", cause)  # to backoff
            if restarter is not None:
                restarter.suspended(self)
            return
        if state == _RUNNING:
            cause = RETURNED_EARLY if cause is None else f"{RETURNED_EARLY}; {cause}"
        lc.fire("finish", cause)

    def _finish_cause(self) -> str | None:
        """What the journal's finish record should say about how the stop went (None: clean).

        Called under the lifecycle lock just before ``finish`` fires, after `on_stop` and every
        worker returned; a queue task reports the work it had to drop here.
        """
        return None

    def _record_failure(self, exc: BaseException) -> None:
        """Keep ``exc`` as the task's failure (the first one wins) and wake every worker; the
        task fails once all its code has returned."""
        lc = self.lifecycle
        with lc.lock:
            if self.failure is None and not lc.terminal:
                self.failure = exc
        self._wake_stop_event()

    def _request_shutdown(self, exc: BaseException) -> None:
        reason = f"task {self.name!r} failed: {type(exc).__name__}: {safe_str(exc)}"
        shutdown = getattr(self.service, "shutdown", None)
        if callable(shutdown):
            try:
                shutdown(reason)
            except Exception:
                logger.exception("shutdown request from task %r raised", self.name)
        else:
            logger.error("%s (no service to shut down)", reason)

    # -- health (read by `lifecycle.health`) ------------------------------------------------

    #: Seconds within which a running task must call `heartbeat` again (None: not watched).
    #: One that misses it fails as if a worker had raised `lifecycle.health.WatchdogTimeout`.
    WATCHDOG: ClassVar[float | None] = None
    # Defaults on the class, set on the instance on first use: (ready, reason), and the
    # `time.monotonic` of the last heartbeat. Each is one attribute store, atomic.
    _readiness: tuple[bool, str | None] = (True, None)
    _last_heartbeat: float | None = None

    def set_ready(self, ready: bool = True, reason: str | None = None) -> None:
        """Say whether the task can take work now (``reason``: why not). A task is ready
        unless it said otherwise; the service is ready only while every task it requires is.

        Thread-safe and lock-free: call it from any thread or coroutine. Raises `TypeError`
        unless ``ready`` is a bool and ``reason`` a str or None.
        """
        if not isinstance(ready, bool):
            raise TypeError(f"set_ready(ready=...) takes a bool, not {ready!r}")
        if reason is not None and not isinstance(reason, str):
            raise TypeError(f"set_ready(reason=...) takes a str or None, not {reason!r}")
        self._readiness = (True, None) if ready else (False, reason or "not ready")
        self._tell_health("ready")

    @property
    def readiness(self) -> tuple[bool, str | None]:
        """``(ready, reason)`` as the task last said it with `set_ready`."""
        return self._readiness

    def heartbeat(self) -> None:
        """Say the task is alive: with ``WATCHDOG`` set, it must be called again within that
        many seconds while the task runs. Thread-safe and lock-free."""
        self._last_heartbeat = time.monotonic()
        self._tell_health("heartbeat")

    def _tell_health(self, what: str) -> None:
        """Tell the service (its ``_task_health``, if it has one) that ``what`` changed."""
        report = getattr(self.service, "_task_health", None)
        if callable(report):
            report(self, what)

    def _fail_unresponsive(self, error: BaseException) -> bool:
        """Fail the task with ``error`` (its heartbeat is overdue) through the path a worker
        that raised takes: the failure is kept, the workers are woken, the task fails once
        its code returned, and the service is asked to shut down. False (and nothing done)
        unless it is running and has not failed already."""
        lc = self.lifecycle
        with lc.lock:
            if lc.state != _RUNNING or self.failure is not None:
                return False
            self._record_failure(error)
            self._settle()  # a LOOPLESS task (nothing of it runs) fails here
        self._after_worker(error)
        return True

    # -- registration ----------------------------------------------------------------------

    @classmethod
    def register(cls) -> type[Task]:
        """Register this class (and its DEPS) in the module-level `REGISTERED` collection."""
        from lifecycle.collection import REGISTERED

        REGISTERED.register(cls)
        return cls

    def __repr__(self) -> str:
        state = self._lifecycle.state if self._lifecycle is not None else "unbound"
        return f"<{type(self).__qualname__} {self.name!r} {state}>"


def task_name(cls: type[Task]) -> str:
    """The name a task class registers under."""
    return cls.__name__
