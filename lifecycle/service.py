"""`Service`: owns a collection of tasks and runs it under signals, crashes and deadlines.

A service is a state machine of its own (`lifecycle.spec.SERVICE`): new →start→ starting
→started→ running →stop→ stopping →finish→ stopped, or →fail→ failed. Its `Tasks` collection
shares the service's journal, so one journal holds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from lifecycle.aio.task import AsyncTask
from lifecycle.collection import Tasks
from lifecycle.engine import Lifecycle
from lifecycle.errors import (
    HelpRequested,
    InitError,
    LifecycleError,
    LifecycleInterrupt,
    OptionError,
    StopError,
    UnknownTask,
    UsageError,
    safe_str,
)
from lifecycle.health import HealthMonitor
from lifecycle.journal import Journal, journal_or_new
from lifecycle.options import OptionParser, bound_options, build_parser, option, read_option
from lifecycle.outcome import TaskSummary, summarize
from lifecycle.shutdown import ShutdownRequests
from lifecycle.spec import SERVICE, TASK, CollectionState, ServiceState
from lifecycle.task import Task, task_name

__all__ = ["EXIT_FAILED", "EXIT_OK", "RestartUnsupported", "Service", "TaskSummary", "summarize"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

EXIT_OK = 0
EXIT_FAILED = 1

#: The built-in flag that selects tasks; no declared option may take it.
TASKS_FLAG = "--tasks"
_TERMINAL_TASK = TASK.terminal

#: The blocked-loop threshold ``lifecycle run`` gives `Service.blocking_threshold` (seconds).
BLOCKING_THRESHOLD = 1.0

_DETECTOR_MODULE = "lifecycle.aio.blocking"

#: Seconds granted, once the stop deadline passed, to stop the tasks left in order before
#: every remaining stop is begun at once (the process still exits within about a second).
LATE_STOP_GRACE = 0.5


class RestartUnsupported(LifecycleError):
    """`Service.restart` was asked of a service it cannot restart: one with async tasks,
    whose fresh service would have no event loop to run them on (`restart` starts it, as
    `start` does, and only `run` or `serve` provide a loop). Nothing was stopped.

    Attributes: ``service`` (its name) and ``reason``.
    """

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"cannot restart service {service!r}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.service, self.reason))


class Service:
    """A set of tasks run as one unit, with a strict lifecycle and a journal.

    Class attributes: ``TASKS`` (the task classes; their DEPS come with them) and ``name``
    (default: the class name). Declare service options with `lifecycle.options.option`
    (flag ``--{name}``); every task option of ``TASKS`` is on the same command line. Built in:
    ``--stop-timeout SECONDS`` (default 30) and ``--tasks NAME ...``.

    ``options``: parsed values keyed by dest (a mapping or an `argparse.Namespace`), such as
    `from_argv` produces; missing ones take their defaults. ``journal``: where every transition
    of the service, its collection and its tasks goes (a new in-memory `Journal` by default).

    Driving: `start` (non-blocking) then `wait`; or `run` (blocking, returns the exit code).
    `shutdown` only *requests* a stop: it is lock-free, so it is safe from any thread and from a
    signal handler, and asking again is harmless. The thread inside `run` or `wait` performs the
    stop: every task is asked to stop in reverse start order, and that thread wakes as each task
    ends (never on a poll interval), so the time from `shutdown` to every worker joined is the
    tasks' own reaction time.

    Failure: a worker that raises fails its task and requests a shutdown; the service then ends
    ``failed`` with exit code 1, and `failure` is the first root cause (the exception of the
    task that failed first). An init error ends it ``failed`` at once.

    Async tasks (`lifecycle.aio.AsyncTask`): a service whose tasks include some runs them on
    an event loop, its own under `run`, the caller's under `serve`; everything above holds
    for them too, and the thread tasks keep their threads.

    Stop deadline: if tasks still run ``stop_timeout`` seconds after the stop began, the
    collection is failed with `StopTimeout` naming them and the service ends ``failed``. The
    process can still exit: worker threads are daemon threads, so the interpreter does not wait
    for them at exit (they are abandoned, not joined; nothing they do afterwards reaches the
    journal's verdict). The same holds for a forced exit on a second signal.
    """

    TASKS: ClassVar[Sequence[type[Task]]] = ()
    name: ClassVar[str] = "Service"
    #: Set when serve() gave up on a driver thread stuck in a hook past the deadline.
    _driver_abandoned = False

    stop_timeout = option(
        type=float,
        ge=0,
        default=30.0,
        metavar="SECONDS",
        help="how long a stop may take before the service gives up and fails (default: 30)",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(
        self,
        options: Mapping[str, Any] | argparse.Namespace | None = None,
        *,
        journal: Journal | None = None,
    ) -> None:
        values = dict(vars(options) if isinstance(options, argparse.Namespace) else options or {})
        known = self.option_dests()
        unknown = sorted(set(values) - known)
        if unknown:
            raise OptionError(
                ", ".join(unknown),
                f"not an option of {self.name}; known: {', '.join(sorted(known))}",
            )
        self.options: Mapping[str, Any] = MappingProxyType(values)
        timeout = self.stop_timeout
        if not isinstance(timeout, int | float) or not (0 <= timeout < math.inf):
            raise OptionError("--stop-timeout", f"must be seconds >= 0, not {timeout!r}")
        self.journal = journal_or_new(journal)
        self.lifecycle = Lifecycle(SERVICE, self.name, self.journal)
        self.tasks = Tasks(self.selected_task_classes(values.get("tasks")), journal=self.journal)
        self.errors: list[BaseException] = []
        self._failure: BaseException | None = None
        self._requests = ShutdownRequests(float(timeout), self._wake, self._busy_names)
        self._signals_handled = False  # run() installed our signal handlers
        # A one-permit semaphore: release() is lock-free and signal-safe, unlike Event.set().
        self._wake_permit = threading.Lock()
        self._wake_permit.acquire()
        self._stopper = threading.Lock()  # the one thread carrying out the stop holds it
        self._drive = threading.RLock()  # serializes start() and the stop
        self._done = threading.Event()
        # While `serve` runs: wakes its watchdog on the loop after a request (thread-safe).
        self._loop_notify: Callable[[], None] | None = None
        self._serving = False
        #: Coroutines of async tasks that ignored every cancellation past the stop deadline;
        #: kept referenced (and named in the `StopTimeout`) rather than silently destroyed.
        self.abandoned: list[asyncio.Task[Any]] = []
        #: Seconds after which `serve` warns that a coroutine blocks its event loop (naming
        #: the task and its stack); None (the library's default) watches nothing. ``lifecycle
        #: run`` sets `BLOCKING_THRESHOLD`.
        self.blocking_threshold: float | None = None
        #: Where the health endpoints answer, ``(host, port)``, once a
        #: `lifecycle.probes.ProbeServer` bound them for this service (None: not served).
        self.health_address: tuple[str, int] | None = None
        self._health_watchers: tuple[Callable[[Task, str], object], ...] = ()
        self._health_lock = threading.Lock()
        self._has_started = False
        #: The service's health (started, ready, live) and its tasks' heartbeat watchdog; its
        #: thread runs from `start` when a task declares ``WATCHDOG`` (or once started by
        #: whoever wants its notices) and ends with the service.
        self.health = HealthMonitor(self)

    # -- options and tasks -----------------------------------------------------------------

    def option_source(self) -> Mapping[str, Any]:
        """Where this service's option values come from: ``options``."""
        return self.options

    def get_option(self, name: str) -> Any:
        """The value of this service's option ``name``; raises `UnknownOption`."""
        return read_option(self, name)

    @classmethod
    def available_tasks(cls) -> tuple[type[Task], ...]:
        """Every task class the service may run: ``TASKS`` and their DEPS, in order.

        Raises what registration raises for bad ``TASKS`` (`InvalidTask`, `DuplicateTask`,
        `DependencyCycle`).
        """
        return Tasks(cls.TASKS, journal=Journal(), name=f"{cls.name}.available").task_classes

    @classmethod
    def selected_task_classes(cls, names: Iterable[str] | None) -> list[type[Task]]:
        """The task classes for a ``--tasks`` selection (None: all ``TASKS``).

        A selected task brings its DEPS. Raises `UnknownTask` (listing the available names)
        for a name the service does not have.
        """
        if names is None:
            return list(cls.TASKS)
        available = {task_name(c): c for c in cls.available_tasks()}
        chosen = []
        for name in names:
            if name not in available:
                raise UnknownTask(name, list(available))
            chosen.append(available[name])
        return chosen

    @classmethod
    def stop_bound(cls, stop_timeout: float | None = None) -> float:
        """The longest a stop of this service can take, in seconds, from the first request to
        the end of `run` (the process may exit): ``stop_timeout`` (default: the class's
        ``--stop-timeout`` default), plus the grace in which the tasks left are still stopped
        in order, plus, with async tasks, the grace their cancellation gets and the grace
        to await the engine's coroutines. What systemd's ``TimeoutStopSec=`` and Kubernetes'
        ``terminationGracePeriodSeconds`` must exceed. Raises `OptionError` for a timeout
        that is not seconds >= 0.
        """
        if stop_timeout is None:
            stop_timeout = cls.stop_timeout.default_for(cls)
        if (
            isinstance(stop_timeout, bool)
            or not isinstance(stop_timeout, int | float)
            or not (0 <= stop_timeout < math.inf)
        ):
            raise OptionError("--stop-timeout", f"must be seconds >= 0, not {stop_timeout!r}")
        graces = 1
        if any(issubclass(task, AsyncTask) for task in cls.available_tasks()):
            graces = 3  # serve(): the driver's grace, the cancelled hooks', the coroutines'
        return float(stop_timeout) + graces * LATE_STOP_GRACE

    @classmethod
    def option_dests(cls) -> set[str]:
        """The keys an ``options`` mapping may have."""
        owners: list[type] = [cls, *cls.available_tasks()]
        return {b.dest for b in bound_options(owners)} | {"tasks"}

    @classmethod
    def argument_parser(cls, prog: str | None = None) -> OptionParser:
        """The command-line parser of this service: its options and those of every task.

        Raises `OptionConflict` when two options map to one flag.
        """
        available = cls.available_tasks()
        groups: list[tuple[str, Iterable[type]]] = [(f"{cls.name} options", [cls])]
        groups += [(f"task {task_name(t)}", [t]) for t in available]
        parser = build_parser(
            groups,
            prog=prog,
            description=(cls.__doc__ or "").strip().split("\n\n")[0] or None,
            reserved={TASKS_FLAG: "the built-in --tasks"},
        )
        parser.add_argument(
            TASKS_FLAG,
            nargs="*",
            metavar="NAME",
            help="run only these tasks (and what they require); with no name, list the tasks",
        )
        return parser

    @classmethod
    def task_listing(cls) -> str:
        """The text ``--tasks`` with no name shows: each task and what it requires."""
        lines = [f"tasks of {cls.name}:"]
        for task in cls.available_tasks():
            deps = ", ".join(task_name(d) for d in task.DEPS)
            lines.append(f"  {task_name(task)}" + (f"  (requires {deps})" if deps else ""))
        return "\n".join(lines)

    @classmethod
    def from_argv(
        cls,
        argv: Sequence[str] | None = None,
        *,
        journal: Journal | None = None,
        prog: str | None = None,
    ) -> Service:
        """A service configured from a command line (default: ``sys.argv[1:]``).

        Raises `UsageError` for a bad command line (an unknown flag, a bad value, an unknown
        task name, listing the available ones) and `HelpRequested` for ``--help`` or for
        ``--tasks`` with no name (its ``text`` lists the tasks).
        """
        parser = cls.argument_parser(prog)
        namespace = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        values = vars(namespace)
        names = values.get("tasks")
        if names is not None and not names:
            raise HelpRequested(cls.task_listing())
        try:
            return cls(values, journal=journal)
        except UnknownTask as exc:
            raise UsageError(
                f"unknown task {exc.name!r}; available: {', '.join(exc.known)}",
                parser.format_usage(),
            ) from exc
        except OptionError as exc:
            raise UsageError(str(exc), parser.format_usage()) from exc

    @classmethod
    def main(cls, argv: Sequence[str] | None = None) -> int:
        """Run this service as a program; return the exit code: ``raise SystemExit(App.main())``.

        Does what ``lifecycle run MODULE:App`` does with ``argv`` (default: ``sys.argv[1:]``):
        the service's options, ``--tasks``, and ``--journal FILE`` and ``--quiet``; ``--help``
        prints the help and returns 0; a bad command line or a bad service definition prints
        one line and returns 2; a run prints its transitions, a failure with its traceback,
        and a summary, and returns 0 (stopped) or 1 (failed). Call it on the main thread, so
        that SIGINT and SIGTERM stop the service gracefully.
        """
        # Only the command line prints: the one call from this layer up to it.
        from lifecycle.cli import service_main

        return service_main(cls, argv)

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> ServiceState:
        return ServiceState(self.lifecycle.state)

    @property
    def failure(self) -> BaseException | None:
        """The first root cause of a failed service (None while it has not failed)."""
        return self._failure

    @property
    def exit_code(self) -> int | None:
        """0 once stopped, 1 once failed, None before the service ended."""
        state = self.state
        if state == ServiceState.STOPPED:
            return EXIT_OK
        if state == ServiceState.FAILED:
            return EXIT_FAILED
        return None

    @property
    def stop_deadline(self) -> float | None:
        """When the stop must be over (a `time.monotonic` value), once a stop was requested;
        async tasks derive their default stop grace from it."""
        return self._requests.deadline

    @property
    def has_async_tasks(self) -> bool:
        """Whether some selected task is an `AsyncTask` (the service then needs a loop)."""
        return any(issubclass(cls, AsyncTask) for cls in self.tasks.task_classes)

    @property
    def has_started(self) -> bool:
        """Whether the service fired ``started`` (every task reached running or was skipped);
        it stays true once it is.

        True from the moment the service is running, before its ``started`` record is heard:
        a journal listener (systemd's READY=1) finds the service started.
        """
        return self._has_started or self.state is ServiceState.RUNNING

    @property
    def shutdown_requested(self) -> bool:
        return self._requests.requested

    @property
    def shutdown_reason(self) -> str | None:
        """The reason given by the first shutdown request, if any."""
        return self._requests.reason

    def summary(self) -> list[TaskSummary]:
        """One `TaskSummary` per registered task, in dependency order, from the journal."""
        return summarize(self.journal.records, self.tasks.order, service=self.name)

    def watch_task_health(self, watcher: Callable[[Task, str], object]) -> Callable[[], None]:
        """Call ``watcher(task, what)`` whenever one of this service's tasks calls `set_ready`
        (``what`` is ``"ready"``) or `heartbeat` (``"heartbeat"``), on the caller's thread;
        returns a function that undoes it. `lifecycle.health.HealthMonitor` uses it. Keep the
        watcher quick: a task's heartbeat waits for it. Thread-safe."""
        with self._health_lock:
            self._health_watchers = (*self._health_watchers, watcher)

        def unwatch() -> None:
            with self._health_lock:
                self._health_watchers = tuple(
                    w for w in self._health_watchers if w is not watcher
                )

        return unwatch

    def _task_health(self, task: Task, what: str) -> None:
        """What `Task.set_ready` and `Task.heartbeat` call: tell the watchers."""
        for watcher in self._health_watchers:
            try:
                watcher(task, what)
            except Exception:
                logger.exception("health watcher %r raised; ignored", watcher)

    def still_running(self) -> list[str]:
        """The names of started tasks that have not ended (stopped, skipped or failed)."""
        tasks = self.tasks
        return [name for name in tasks.start_order if tasks.state_of(name) not in _TERMINAL_TASK]

    # -- driving ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create, initialize and start every task; return once they are running.

        On an init error the service ends ``failed`` and `InitError` (chaining the first root
        cause) is raised; `failure` is that root cause. Raises `IllegalTransition` unless the
        service is new. A shutdown requested during init stops the service before any worker
        starts (the stop itself is left to `wait` or `run`); its deadline counts from that
        request, and under `run` on the main thread a constructor or ``init_task`` still
        running when it passes (or at a second signal) is interrupted with
        `LifecycleInterrupt`, which is raised after the service ended ``failed``.
        """
        with self._drive:
            self.lifecycle.fire("start")
            if self.health.watches_heartbeats:
                self.health.ensure_started()
            # A journal that can no longer be written is a run that can no longer be audited:
            # stop now rather than run on unrecorded (`_end` fails the service with it).
            self.journal.on_stream_error(
                lambda error: self.shutdown(f"the journal failed: {safe_str(error)}")
            )
            try:
                with self._requests.guard_hooks(self._signals_handled):
                    self.tasks.create(self)
                    self.tasks.init()
                if self._requests.requested:
                    return  # asked to stop while starting: never launch the workers
                self.tasks.start()
                self.lifecycle.fire("started")
                self._has_started = True
            except LifecycleInterrupt as exc:
                # Raised between two of the collection's calls, it found the collection not
                # ended yet: leave every task terminal all the same.
                tasks = self.tasks
                if tasks.lifecycle.can("fail"):
                    tasks.fail(exc.reason)
                elif tasks.lifecycle.can("stop"):
                    tasks.stop()
                self._end(exc.reason, [exc.reason])
                raise
            except BaseException as exc:
                root = exc.__cause__ if isinstance(exc, InitError) and exc.__cause__ else exc
                self._end(root, [exc])
                raise

    def shutdown(self, reason: str | None = None) -> None:
        """Request a graceful stop; the thread in `run` or `wait` carries it out.

        Lock-free and idempotent: safe from any thread, from a signal handler, from a task's
        own worker, and before or after the service ended. The first reason is kept, and the
        first request arms the stop deadline (``stop_timeout``).
        """
        self._requests.request(reason or "shutdown requested")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a shutdown is requested, then carry out the stop; True once ended.

        ``timeout`` bounds the wait for a shutdown request (None: no bound); once a stop was
        requested the wait is bounded by the stop deadline instead (``stop_timeout`` after the
        first request, plus a short grace in which the tasks left are still stopped in order).
        Returns False if the timeout passed with no request. Any number of threads may wait;
        one of them performs the stop. Raises `LifecycleError` on a service that was never
        started.
        """
        if self.state == ServiceState.NEW:
            raise LifecycleError(f"service {self.name!r} was never started; call start() or run()")
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._stopper.acquire(timeout=_remaining(deadline, -1)):
            return self._done.is_set()
        try:
            while not self._requests.requested and not self.lifecycle.terminal:
                left = _remaining(deadline, -1)
                if left == 0:
                    return False
                self._requests.wait_on_main_thread(self._wake_permit, left)
            if not self.lifecycle.terminal:
                self._stop()
            return True
        finally:
            self._stopper.release()

    def run(self) -> int:
        """Start, run until a shutdown is requested, stop; return the exit code (0 or 1).

        On the main thread, SIGINT and SIGTERM request a shutdown; a second one gives up
        waiting (`ForcedShutdown` naming the tasks still running; exit code 1), at any moment,
        init included. The previous handlers are restored on return. An init error returns 1
        (see `failure`).

        A service with async tasks runs `serve` on a new event loop (signals then go through
        the loop's ``add_signal_handler``) and closes it after; see `serve`.
        """
        if self.has_async_tasks:
            return _run_on_new_loop(self.serve(handle_signals=True))
        with self._requests.handling_signals() as handled:
            self._signals_handled = handled
            try:
                self._start_and_wait()
            finally:
                self._signals_handled = False
        code = self.exit_code
        return EXIT_FAILED if code is None else code

    def restart(self, *, journal: Journal | None = None) -> Service:
        """Stop this service gracefully, then start and return a fresh one with the same options.

        The fresh service is an instance of the same class, with the same ``options`` (values
        set on task instances with ``set_option`` are not carried over) and ``journal`` (a new
        in-memory one by default: a journal records one run). It is started, not run: call its
        `wait` or `shutdown`. Raises `LifecycleError` chaining the cause, without starting
        anything, if this service did not stop cleanly (tasks might still be running).

        Raises `RestartUnsupported`, before stopping anything, for a service with async tasks:
        the fresh one would need an event loop; shut this one down and `run` or `serve` a new
        one (``type(service)(service.options)``).
        """
        if self.has_async_tasks:
            names = [task_name(c) for c in self.tasks.task_classes if issubclass(c, AsyncTask)]
            raise RestartUnsupported(
                self.name,
                f"it has async tasks ({', '.join(names)}), and the fresh service restart() "
                "starts would have no event loop to run them on; shut it down, then run() or "
                "`await serve()` a new one with the same options",
            )
        self.shutdown("restart requested")
        self.wait()
        if self.state != ServiceState.STOPPED:
            raise LifecycleError(
                f"service {self.name!r} ended {self.state} ({self._failure}); not restarting"
            ) from self._failure
        fresh = type(self)(self.options, journal=journal)
        fresh.start()
        return fresh

    # -- on an event loop ------------------------------------------------------------------

    async def serve(self, *, handle_signals: bool = False) -> int:
        """Run the service on the running event loop until it has stopped; return the exit
        code (0 stopped, 1 failed), as `run` does.

        The async tasks' hooks run on this loop. The collection is driven from a thread of the
        service's own (its driver runs `start` then `wait`), so the thread tasks' init hooks
        and the staged stop never block the loop; thread tasks keep their threads. Stop it with
        `shutdown` from anywhere. Cancelling `serve` requests a shutdown, waits for the stop,
        then raises `asyncio.CancelledError`. ``handle_signals``: SIGINT and SIGTERM request a
        shutdown through ``loop.add_signal_handler`` and a second one forces exit 1 (main
        thread only; the previous handlers are restored); `run` asks for it.

        Bounded: if the driver is still busy ``stop_timeout`` plus a short grace after the
        first request (a hook that never returns), the async hooks still going are cancelled
        and then the service ends failed with `StopTimeout` naming the tasks; a driver stuck in
        a thread's hook is abandoned (a daemon thread, as thread workers are). When `serve`
        returns, every asyncio task the engine made has been awaited, but for coroutines that
        swallowed every cancellation past the deadline: those are kept in `abandoned` (their
        tasks are named in the `StopTimeout`).

        Raises `LifecycleError` if the service was started or served before, and what the
        driver raised that `run` would raise too.
        """
        loop = asyncio.get_running_loop()
        if self._serving or self.state != ServiceState.NEW:
            raise LifecycleError(
                f"service {self.name!r} was already started or served; make a new one to serve"
            )
        self._serving = True
        self.tasks.loop = loop
        driven: asyncio.Future[BaseException | None] = loop.create_future()
        watchdog: list[asyncio.TimerHandle] = []

        def on_request() -> None:  # on the loop, after each request and a forced exit
            for handle in watchdog:
                handle.cancel()
            watchdog.clear()
            requests = self._requests
            if requests.requested and not driven.done():
                bound = LATE_STOP_GRACE if requests.forced else requests.left() + LATE_STOP_GRACE
                watchdog.append(loop.call_later(bound, self._give_up_driving, driven, True))

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(on_request)

        self._loop_notify = notify
        on_request()  # a shutdown requested before serve() was called
        driver = threading.Thread(
            target=self._drive_served, args=(loop, driven), name=f"{self.name}.driver", daemon=True
        )
        signals = (
            self._requests.handling_loop_signals(loop)
            if handle_signals
            else contextlib.nullcontext(False)
        )
        cancelled = False
        with signals, _watching_blocking(loop, self.blocking_threshold):
            try:
                driver.start()
                while True:
                    try:
                        raised = await asyncio.shield(driven)
                        break
                    except asyncio.CancelledError:
                        # Stop as asked, then let the cancellation through: a caller that
                        # cancels serve() gets a service that has ended, not one left running.
                        cancelled = True
                        self.shutdown("serve() was cancelled")
            finally:
                self._loop_notify = None
                for handle in watchdog:
                    handle.cancel()
        if not self._driver_abandoned:
            # Resolving `driven` was the driver's last act: it is ending. Joining it (a moment
            # at most, bounded all the same) keeps the promise that no thread of the service
            # outlives serve().
            driver.join(LATE_STOP_GRACE)
        await self._await_engine_runs()
        if raised is not None:
            raise raised
        if cancelled:
            raise asyncio.CancelledError
        code = self.exit_code
        return EXIT_FAILED if code is None else code

    def _start_and_wait(self) -> None:
        """`run`'s body: start, then wait for the end. A start that failed the service is
        logged (its exit code says the rest); any other error from `start` propagates."""
        try:
            self.start()
        except (LifecycleError, LifecycleInterrupt):
            if self.state != ServiceState.FAILED:
                raise
            logger.error("service %r failed to start: %s", self.name, safe_str(self._failure))
            return
        self.wait()

    def _drive_served(
        self, loop: asyncio.AbstractEventLoop, driven: asyncio.Future[BaseException | None]
    ) -> None:
        """The driver thread of `serve`: `run`'s body, without the signals."""
        raised: BaseException | None = None
        try:
            self._start_and_wait()
        except BaseException as exc:  # raised by serve() on the loop, not lost on this thread
            raised = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: serve() is gone
            loop.call_soon_threadsafe(_resolve, driven, raised)

    def _async_tasks(self) -> list[AsyncTask]:
        return [task for task in self.tasks.tasks if isinstance(task, AsyncTask)]

    def _give_up_driving(
        self, driven: asyncio.Future[BaseException | None], first: bool
    ) -> None:
        """The driver is past the stop deadline (on the loop): cancel the async hooks still
        going (an ``init_task`` among them lets the driver go on); if it is still stuck after
        a short grace (a thread's hook), end the service failed without it."""
        if driven.done():
            return
        error = self._requests.gave_up_error(self._busy_names())
        if first:
            for task in self._async_tasks():
                task._abandon(error)
            asyncio.get_running_loop().call_later(
                LATE_STOP_GRACE, self._give_up_driving, driven, False
            )
            return
        logger.error("service %r: %s (its driver is stuck in a hook; abandoned)", self.name, error)
        self._driver_abandoned = True
        self._end(error, [error])
        _resolve(driven, None)

    async def _await_engine_runs(self) -> None:
        """Await every asyncio task the engine made for the async tasks. Those still going
        once the service ended were past the deadline: cancel them (as the engine) and wait a
        short grace; the ones that swallow that too are kept in `abandoned`."""
        tasks = self._async_tasks()
        pending = [run for task in tasks for run in task._pending_runs()]
        if not pending:
            return
        names = [task.name for task in tasks if task._pending_runs()]
        error = self._requests.gave_up_error(names)
        for task in tasks:
            task._abandon(error)
        _, still = await asyncio.wait(pending, timeout=LATE_STOP_GRACE)
        if still:
            logger.error(
                "service %r: abandoned coroutines that ignore cancellation: %s",
                self.name,
                ", ".join(sorted(run.get_name() for run in still)),
            )
            for run in still:
                # Reported here and named in the StopTimeout; when the loop is dropped, do not
                # report each one again as "destroyed but pending".
                run._log_destroy_pending = False  # type: ignore[attr-defined]
            self.abandoned.extend(still)

    # -- the stop --------------------------------------------------------------------------

    def _stop(self) -> None:
        """Carry out the stop: the collection's staged stop, bounded by the deadline."""
        requests = self._requests
        if not self._drive.acquire(timeout=requests.left() + LATE_STOP_GRACE):
            # `start` runs on another thread and one of its hooks hangs there (only `run` on
            # the main thread can interrupt it): give up on it rather than wait forever.
            error = requests.gave_up_error(self._busy_names())
            logger.error("service %r: %s", self.name, error)
            self._end(error, [error])
            return
        try:
            self._stop_driven()
        finally:
            self._drive.release()

    def _stop_driven(self) -> None:
        """The stop proper, with `_drive` held."""
        lc = self.lifecycle
        if lc.terminal:
            return
        lc.fire("stop", self.shutdown_reason or "shutdown requested")
        requests = self._requests
        tasks = self.tasks
        errors: list[BaseException] = []
        if tasks.lifecycle.can("stop"):
            tasks.stop()
        left = self._join(requests.deadline, errors)
        if left and tasks.lifecycle.can("fail"):
            error = requests.gave_up_error(self._busy_names())
            logger.error("service %r: %s", self.name, error)
            tasks.fail(error)
            errors.append(error)
            # The tasks left still stop in order, within a short grace (none if forced).
            grace = 0.0 if requests.forced else LATE_STOP_GRACE
            self._join(time.monotonic() + grace, errors)
        self._end(self.tasks.first_failure(), errors)

    def _join(self, deadline: float | None, errors: list[BaseException]) -> list[Task]:
        try:
            return self.tasks.join(
                None if deadline is None else max(0.0, deadline - time.monotonic()),
                until=lambda: self._requests.forced,
            )
        except StopError as exc:
            errors.append(exc)
            return []

    def _end(self, failure: BaseException | None, errors: Sequence[BaseException]) -> None:
        """Fire the service's last transition: fail if anything failed, else finish."""
        errors = list(errors)
        stream_error = self.journal.stream_error
        if stream_error is not None:
            errors.append(stream_error)
        self.errors.extend(errors)
        if failure is None and errors:
            failure = errors[0]
        if failure is None and self.tasks.state == CollectionState.FAILED:
            failure = self.tasks.failure or LifecycleError(f"collection of {self.name!r} failed")
        lc = self.lifecycle
        if failure is not None:
            self._failure = failure
            if lc.can("fail"):
                lc.fire("fail", failure)
        elif lc.can("finish"):
            lc.fire("finish")
        self._done.set()
        self._wake()

    def _busy_names(self) -> list[str]:
        """The tasks a stop is waiting for: those asked to stop that have not ended, else the
        one whose ``init_task`` runs, else every task that has not ended."""
        stragglers = self.tasks.stragglers()
        if stragglers:
            return stragglers
        initializing = self.tasks.initializing
        return [initializing] if initializing is not None else self.still_running()

    def _wake(self) -> None:
        # Signal-safe: a lock release and a SimpleQueue put (and, under `serve`, a
        # call_soon_threadsafe; `serve` takes its signals through the loop, not in a handler).
        with contextlib.suppress(RuntimeError):  # a wake-up is already pending
            self._wake_permit.release()
        self._requests.poke()  # the main thread in `wait`, when it waits on its signal pipe
        self.tasks.wake()
        notify = self._loop_notify
        if notify is not None:
            notify()

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.name!r} {self.lifecycle.state}>"


@contextlib.contextmanager
def _watching_blocking(loop: asyncio.AbstractEventLoop, threshold: float | None) -> Iterator[None]:
    """While inside, warn when ``loop`` is blocked longer than ``threshold`` seconds (None:
    do nothing). The one place the blocked-loop detector is switched on."""
    if threshold is None:
        yield
        return
    # Imported by name: the detector is a separate part of the asyncio runtime, and a build
    # without it runs unwatched rather than not at all.
    try:
        blocking = importlib.import_module(_DETECTOR_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != _DETECTOR_MODULE:
            raise
        logger.debug("no blocked-loop detector (%s): the loop is not watched", _DETECTOR_MODULE)
        yield
        return
    detector = blocking.BlockingDetector(loop, threshold=threshold)
    detector.start()
    try:
        yield
    finally:
        detector.stop()


def _resolve(future: asyncio.Future[BaseException | None], value: BaseException | None) -> None:
    if not future.done():
        future.set_result(value)


def _run_on_new_loop(main: Coroutine[Any, Any, int]) -> int:
    """`asyncio.run`, except that it does not hang on coroutines that ignore cancellation:
    those were reported and abandoned by `Service.serve`, so the loop is closed without them."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            others = [task for task in asyncio.all_tasks(loop) if not task.done()]
            stray = [task for task in others if getattr(task, "_log_destroy_pending", True)]
            for task in stray:  # made by user code, not the engine: cancel them as asyncio.run
                task.cancel()
            if stray:
                loop.run_until_complete(asyncio.wait(stray, timeout=LATE_STOP_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _remaining(deadline: float | None, unbounded: float) -> float:
    """Seconds left until ``deadline`` (never negative), or ``unbounded`` without one."""
    if deadline is None:
        return unbounded
    return max(0.0, deadline - time.monotonic())
