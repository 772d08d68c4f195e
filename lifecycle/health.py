"""A service's health: started, ready, live; and the watchdog of its tasks' heartbeats.

The three answers (`assess`, pure):

* **started** once every task reached running (or was skipped): the service fired ``started``.
  It stays true from then on (a startup probe asks it only until it first succeeds).
* **ready** while the service is running, no stop has been requested, and every task it
  requires (every task not skipped) is running and reports ready (`Task.set_ready`). A stop
  request turns it false at once, before any ``on_stop`` runs, so a load balancer stops
  sending work while the service drains.
* **live** while no task has missed its heartbeat deadline: a task class with ``WATCHDOG =
  seconds`` must call `Task.heartbeat` within that many seconds of reaching running and of its
  last heartbeat. A task that misses it is failed, through the path a worker that raised
  takes, with `WatchdogTimeout`; the service stays not live until that task runs again.

`HealthMonitor` watches one service: it answers `report` on demand (from any thread), fails
the tasks whose heartbeat is overdue, and tells every change of readiness or liveness (the
service's and each task's) to the journal's notice listeners (`Journal.subscribe_notices`) and
to this module's logger. Those changes are notices, not records: they are observations, not
transitions of a machine, so they are neither kept nor written to the journal file, and the
audit never has to tell them apart from the machines' records.

The monitor has one thread, which sleeps on an event until the earliest heartbeat deadline or
until something changed; it ends when the service ends (or at `HealthMonitor.close`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import attrs

from lifecycle.collection import Tasks
from lifecycle.errors import LifecycleError, safe_str
from lifecycle.journal import Journal, Transition
from lifecycle.shutdown import block_stop_signals
from lifecycle.spec import SERVICE, TASK, CollectionState, ServiceState, TaskState
from lifecycle.task import Task

__all__ = [
    "HealthMonitor",
    "HealthReport",
    "InvalidWatchdog",
    "Monitored",
    "TaskHealth",
    "TaskView",
    "WatchdogTimeout",
    "assess",
    "watchdog_of",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: The ``what`` of the notices this module sends.
READY, LIVE = "ready", "live"


class Monitored(Protocol):
    """What a `HealthMonitor` watches: a `lifecycle.service.Service` (which makes its own)."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> ServiceState: ...
    @property
    def shutdown_requested(self) -> bool: ...
    @property
    def has_started(self) -> bool: ...

    tasks: Tasks
    journal: Journal

    def watch_task_health(self, watcher: Callable[[Task, str], object]) -> Callable[[], None]: ...


class WatchdogTimeout(LifecycleError, TimeoutError):
    """A task with ``WATCHDOG`` did not call `Task.heartbeat` in time: the cause of its failure.

    Attributes: ``task`` (its name), ``watchdog`` (the seconds allowed) and ``silent`` (the
    seconds since its last sign of life: reaching running or its last heartbeat).
    """

    def __init__(self, task: str, watchdog: float, silent: float) -> None:
        self.task = task
        self.watchdog = watchdog
        self.silent = silent
        super().__init__(
            f"task {task!r} missed its heartbeat: silent for {silent:.3f}s, "
            f"WATCHDOG is {watchdog:g}s"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidWatchdog(LifecycleError, TypeError):
    """A task class's ``WATCHDOG`` is not a number of seconds > 0 (or None)."""


def watchdog_of(cls: type[Task]) -> float | None:
    """The ``WATCHDOG`` of a task class, checked: None, or seconds > 0 and finite.

    Raises `InvalidWatchdog` naming the class and the value otherwise.
    """
    value = getattr(cls, "WATCHDOG", None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise InvalidWatchdog(
            f"{cls.__qualname__}.WATCHDOG must be seconds > 0 (or None), not {value!r}"
        )
    return float(value)


@attrs.frozen
class TaskView:
    """What `assess` needs to know of one task.

    ``readiness``: what it said with `set_ready`; ``due``: when its next heartbeat is due (a
    `time.monotonic` value; None when not watched or not running); ``missed``: it missed a
    heartbeat and has not run again since.
    """

    name: str
    state: TaskState
    readiness: tuple[bool, str | None] = (True, None)
    watchdog: float | None = None
    due: float | None = None
    missed: str | None = None


@attrs.frozen
class TaskHealth:
    """One task's health: ``required`` (not skipped), ``ready`` (running, live, and saying
    so), ``live``, and why not; ``says_ready``: what it last said with `Task.set_ready`."""

    name: str
    state: str
    required: bool
    ready: bool
    live: bool
    reason: str | None
    watchdog: float | None
    says_ready: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "required": self.required,
            "ready": self.ready,
            "says_ready": self.says_ready,
            "live": self.live,
            "reason": self.reason,
            "watchdog": self.watchdog,
        }


@attrs.frozen
class HealthReport:
    """The health of a service at one moment; ``reason`` says why it is not ready (None when
    it is), ``live_reason`` which tasks are not live and why (None when it is live)."""

    service: str
    state: str
    started: bool
    ready: bool
    live: bool
    stop_requested: bool
    reason: str | None
    live_reason: str | None
    tasks: tuple[TaskHealth, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the probe endpoints answer with."""
        return {
            "service": self.service,
            "state": self.state,
            "started": self.started,
            "ready": self.ready,
            "live": self.live,
            "stop_requested": self.stop_requested,
            "reason": self.reason,
            "live_reason": self.live_reason,
            "tasks": {task.name: task.to_dict() for task in self.tasks},
        }


def assess(
    service: str,
    state: ServiceState,
    *,
    started: bool,
    stop_requested: bool,
    tasks: Iterable[TaskView],
    now: float,
) -> HealthReport:
    """The health of the service named ``service`` in ``state``, with ``tasks``, at ``now``
    (a `time.monotonic` value). Pure. See the module docstring for the rules."""
    healths = []
    for view in tasks:
        required = view.state != TaskState.SKIPPED
        reason: str | None = None
        live = True
        if view.missed is not None:
            live, reason = False, view.missed
        elif view.state == TaskState.RUNNING and view.due is not None and now > view.due:
            live, reason = False, _missed_reason(view.watchdog)
        said_ready, why = view.readiness
        ready = view.state == TaskState.RUNNING and said_ready and live
        if reason is None and not ready and required:
            reason = why if view.state == TaskState.RUNNING else f"task is {view.state.value}"
        healths.append(
            TaskHealth(
                view.name,
                view.state.value,
                required,
                ready,
                live,
                reason,
                view.watchdog,
                said_ready,
            )
        )
    live = all(t.live for t in healths)
    not_ready = [t for t in healths if t.required and not t.ready]
    why_not: str | None
    if stop_requested and not SERVICE.is_terminal(state):
        why_not = "stop requested"
    elif state != ServiceState.RUNNING:
        why_not = f"service is {state.value}"
    elif not_ready:
        why_not = "; ".join(f"{t.name}: {t.reason}" for t in not_ready)
    else:
        why_not = None
    ready = why_not is None and not stop_requested
    dead = "; ".join(f"{t.name}: {t.reason}" for t in healths if not t.live) or None
    return HealthReport(
        service=service,
        state=state.value,
        started=started,
        ready=ready,
        live=live,
        stop_requested=stop_requested,
        reason=why_not,
        live_reason=dead,
        tasks=tuple(healths),
    )


class HealthMonitor:
    """Watches one `Service`: its health on demand, its tasks' heartbeats, and the notices.

    A `lifecycle.service.Service` makes its own (its ``health``) and starts it with itself when
    a task declares ``WATCHDOG``; `start` it before the service starts to get the notices of
    a service without one (``lifecycle run`` does). It follows the service through its journal
    and `Service.watch_task_health`. `report` (and `started`, `ready`, `live`) may be called
    from any thread, started or not. Its thread ends when the service ends; `close` ends it
    sooner and unsubscribes (idempotent).

    Raises `InvalidWatchdog` for a task class whose ``WATCHDOG`` is not seconds.
    """

    def __init__(self, service: Monitored, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._watchdogs: dict[str, float | None] = {}
        self._running_since: dict[str, float] = {}
        self._missed: dict[str, str] = {}
        self._ended = False
        self._closed = False
        self._told: dict[tuple[str, str, str], bool] = {}
        self._undo: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._watchdogs = {cls.__name__: watchdog_of(cls) for cls in service.tasks.task_classes}

    @property
    def watches_heartbeats(self) -> bool:
        """Whether some task of the service declares ``WATCHDOG`` (the monitor must run)."""
        return any(seconds is not None for seconds in self._watchdogs.values())

    # -- answers ---------------------------------------------------------------------------

    def report(self) -> HealthReport:
        """The service's health now. Thread-safe."""
        service = self.service
        now = self._clock()
        with self._lock:  # never with the journal's lock inside: its listeners take this one
            missed = dict(self._missed)
            since = dict(self._running_since)
        views = [self._view(name, missed, since) for name in self._names()]
        return assess(
            service.name,
            service.state,
            started=service.has_started,
            stop_requested=service.shutdown_requested,
            tasks=views,
            now=now,
        )

    @property
    def started(self) -> bool:
        return self.report().started

    @property
    def ready(self) -> bool:
        return self.report().ready

    @property
    def live(self) -> bool:
        return self.report().live

    def _names(self) -> Sequence[str]:
        tasks = self.service.tasks
        if tasks.state == CollectionState.REGISTERING:
            # Not `order`, which takes the collection's lock then: a notice listener may ask
            # for a report while the journal's lock is held.
            return tuple(cls.__name__ for cls in tasks.task_classes)
        return tasks.order

    def _view(self, name: str, missed: dict[str, str], since: dict[str, float]) -> TaskView:
        tasks = self.service.tasks
        state = tasks.state_of(name)
        member = tasks.get(name)
        watchdog = self._watchdogs.get(name)
        readiness: tuple[bool, str | None] = (True, None)
        due = None
        if isinstance(member, Task):
            readiness = member.readiness
            due = _due(member, since.get(name), watchdog)
        return TaskView(name, state, readiness, watchdog, due, missed.get(name))

    # -- driving ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin watching. Raises `LifecycleError` if started (or closed) before."""
        if not self.ensure_started():
            raise LifecycleError("a HealthMonitor is started once; make a new one")

    def ensure_started(self) -> bool:
        """Begin watching unless it began (or was closed) already; True if it began now."""
        with self._lock:
            if self._thread is not None or self._closed:
                return False
            thread = self._thread = threading.Thread(
                target=self._watch, name=f"{self.service.name}.health", daemon=True
            )
        # Not under our lock: the journal's listeners take it while holding the journal's.
        journal = self.service.journal
        undo = [
            journal.subscribe(self._on_record),
            self.service.watch_task_health(self._on_task),
        ]
        # Made late (part-way through the run): take what the journal said so far. A record
        # both here and told to the listener is taken twice, to the same effect.
        for rec in journal.records:
            self._on_record(rec)
        with self._lock:
            closed = self._closed
            if not closed:
                self._undo = undo
        if closed:  # closed meanwhile: watch nothing
            for step in undo:
                step()
            return False
        thread.start()
        return True

    def close(self, timeout: float | None = None) -> None:
        """Stop watching and join the thread (at most ``timeout`` seconds). Idempotent."""
        with self._lock:
            self._closed = True
            undo, self._undo = self._undo, []
            thread = self._thread
        for step in undo:
            step()
        self._wake.set()
        current = threading.current_thread()
        if thread is not None and thread.ident is not None and thread is not current:
            thread.join(timeout)  # started, and not by the caller

    @property
    def thread(self) -> threading.Thread | None:
        """The monitor's thread (None before `start`); it ends with the service."""
        return self._thread

    def __enter__(self) -> HealthMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- following the service (journal listeners: quick, under the journal's lock) ----------

    def _on_record(self, rec: Transition) -> None:
        with self._lock:
            changed = self._follow(rec)
        if changed:
            self._wake.set()

    def _follow(self, rec: Transition) -> bool:
        """Take one record into account (lock held); True if the watch must look again."""
        if not rec.ok:
            return False
        if rec.kind == TASK.name:
            if rec.dest == TaskState.RUNNING:
                self._running_since[rec.subject] = rec.mono / 1e9
                self._missed.pop(rec.subject, None)  # a fresh run: a clean slate
            return True
        if rec.kind == SERVICE.name:
            if rec.dest is not None and SERVICE.is_terminal(rec.dest):
                self._ended = True
            return True
        return False

    def _on_task(self, task: Task, what: str) -> None:
        if what == READY:
            self._wake.set()
        # A heartbeat needs nothing: the watch wakes at the deadline it knew and looks again.

    # -- the thread ------------------------------------------------------------------------

    def _watch(self) -> None:
        block_stop_signals()
        while True:
            self._wake.clear()  # before looking: a change after this wakes the wait below
            with self._lock:
                done = self._ended or self._closed
            try:
                due = self._expire_overdue()
                self._tell_changes()
            except Exception:  # never let the monitor die silently: the probes depend on it
                logger.exception("health monitor of %r failed a round", self.service.name)
                due = None
            if done:
                return
            timeout = None if due is None else max(0.0, due - self._clock())
            self._wake.wait(timeout)

    def _expire_overdue(self) -> float | None:
        """Fail the running tasks whose heartbeat is overdue; the next deadline (or None)."""
        tasks = self.service.tasks
        now = self._clock()
        earliest: float | None = None
        for member in tasks.tasks:
            name = member.name
            watchdog = self._watchdogs.get(name)
            if watchdog is None or tasks.state_of(name) != TaskState.RUNNING:
                continue
            with self._lock:
                since = self._running_since.get(name)
                if name in self._missed:
                    continue
            due = _due(member, since, watchdog)
            if due is None:
                continue
            if now <= due:
                earliest = due if earliest is None else min(earliest, due)
                continue
            error = WatchdogTimeout(name, watchdog, now - (due - watchdog))
            with self._lock:
                self._missed[name] = _missed_reason(watchdog)
            logger.error("service %r: %s", self.service.name, error)
            member._fail_unresponsive(error)
        return earliest

    def _tell_changes(self) -> None:
        """Send a notice (and a log line) for each readiness or liveness that changed."""
        report = self.report()
        journal = self.service.journal
        # (kind, subject, what, value, reason, the first value, which goes without saying)
        facts = [
            (SERVICE.name, report.service, READY, report.ready, report.reason, False),
            (SERVICE.name, report.service, LIVE, report.live, report.live_reason, True),
        ]
        for task in report.tasks:
            if task.state == TaskState.RUNNING.value:
                # What the task says; its state's part in its readiness is in its transitions.
                facts.append((TASK.name, task.name, READY, task.says_ready, task.reason, True))
            facts.append((TASK.name, task.name, LIVE, task.live, task.reason, True))
        for kind, subject, what, value, reason, usual in facts:
            key = (kind, subject, what)
            before = self._told.get(key)
            if before is None and value == usual:
                self._told[key] = value
                continue
            if before == value:
                continue
            self._told[key] = value
            because = None if value else safe_str(reason or "")
            # A lost liveness is news; readiness comes and goes with every start and stop.
            level = logging.WARNING if what == LIVE and not value else logging.INFO
            logger.log(
                level,
                "%s %r is %s%s",
                kind,
                subject,
                what if value else f"not {what}",
                f" ({because})" if because else "",
            )
            journal.notice(kind, subject, what, value, because or None)


def _missed_reason(watchdog: float | None) -> str:
    shown = "" if watchdog is None else f" (WATCHDOG {watchdog:g}s)"
    return f"missed its heartbeat{shown}"


def _due(task: Task, since: float | None, watchdog: float | None) -> float | None:
    """When ``task``'s next heartbeat is due: its last sign of life plus ``watchdog``."""
    if watchdog is None or since is None:
        return None
    beat = task._last_heartbeat
    last = since if beat is None else max(since, beat)
    return last + watchdog
