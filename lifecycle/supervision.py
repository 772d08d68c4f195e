"""The supervisor: restarts a collection's crashed tasks as their restart policies say.

A task whose worker raised (or, with ``RESTART = "always"``, whose run loop returned before any
stop request) goes ``running --crash--> backoff`` when its policy admits a restart within its
limit (`lifecycle.restart`); past the limit it fails with `RestartLimitExceeded` instead. The
supervisor's one thread then carries out the restart, one task at a time:

1. The tasks that require it (DEPS, directly or not) are stopped as in a staged stop, last
   first (`lifecycle.stopping.StopCoordinator`): each goes ``running --suspend--> suspending
   --finish--> backoff``, its ``on_stop`` called. A WANTS relation does not propagate.
2. Once its backoff passed, a fresh instance replaces it (``backoff --restart--> created``),
   its ``init_task`` runs, and it starts (``init``, ``start``).
3. The tasks stopped in step 1 are restarted the same way, in dependency order, each once
   what it requires runs again.

A failure during init or during a stop is not restarted: the task fails and the service is asked
to shut down. A stop of the collection ends everything at once: a backoff no longer waits
(event-driven), nothing more is restarted, and the collection's own staged stop stops the
tasks waiting in backoff (``backoff --stop--> stopped``); a task suspending then goes on
stopping (``suspending --stop--> stopping``). A task whose restart's ``init_task`` runs when
the stop begins is stopped by the supervisor once that hook returned (a task ends only when
none of its code runs).

Thread-safety: the `lifecycle.task.Restarter` methods are called by tasks with their lifecycle
lock held and only take the supervisor's own short lock; everything else runs on the
supervisor's thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from lifecycle.engine import Lifecycle
from lifecycle.errors import LifecycleError, RestartLimitExceeded
from lifecycle.graph import dependents
from lifecycle.restart import RestartHistory, RestartPolicy, seconds_ns
from lifecycle.spec import TaskState
from lifecycle.stopping import StopCoordinator
from lifecycle.task import SkipTask, Task, task_name

__all__ = ["Supervised", "Supervisor"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: The states of a task whose code may run (what a restart's staged stop waits out).
_LIVE = frozenset({TaskState.RUNNING, TaskState.STOPPING, TaskState.SUSPENDING})
_ENDED_BADLY = frozenset({TaskState.SKIPPED, TaskState.FAILED})
#: The states of a task on its way to a restart: what requires it waits.
_RESTARTING = frozenset(
    {TaskState.SUSPENDING, TaskState.BACKOFF, TaskState.CREATED, TaskState.INITIALIZED}
)


class Supervised(Protocol):
    """What the supervisor needs of its collection (`lifecycle.collection.Tasks`)."""

    @property
    def order(self) -> tuple[str, ...]: ...

    def lifecycle_of(self, name: str) -> Lifecycle: ...

    def class_of(self, name: str) -> type[Task]: ...

    def instance_of(self, name: str) -> Task: ...

    def make(self, name: str) -> Task:
        """A fresh instance of ``name``'s class, made as `create` made the first."""
        ...

    def replace(self, name: str, task: Task) -> None:
        """Put ``task`` in place of ``name``'s instance (its lifecycle lock held)."""
        ...

    def started_late(self, name: str) -> None:
        """``name`` was started by the supervisor for the first time."""
        ...

    def edges(self) -> dict[str, list[str]]: ...


class Supervisor:
    """Restarts the crashed tasks of one collection (see the module docstring).

    ``host``: the collection. ``draw``: the backoff's random source (`random.random`).
    """

    def __init__(self, host: Supervised, draw: Callable[[], float] = random.random) -> None:
        self._host = host
        self._draw = draw
        self._lock = threading.Lock()
        self._histories: dict[str, RestartHistory] = {}
        self._admitted: dict[str, tuple[RestartPolicy, int]] = {}
        #: name -> the `time.monotonic_ns` before which its restart may not happen.
        self._due: dict[str, int] = {}
        self._jobs: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        #: Names of the tasks that left running or stopping: what a restart's staged stop
        #: wakes on (None: look again).
        self.news: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._in_init: set[str] = set()
        self._thread: threading.Thread | None = None

    # -- the collection's calls --------------------------------------------------------------

    def started(self) -> None:
        """The collection is running: restarts may begin."""
        self._started.set()

    def stop(self) -> None:
        """The collection's stop began: restart nothing more, end any backoff at once."""
        self._stopping.set()
        self._started.set()
        self._jobs.put(None)
        self.news.put(None)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def initializing(self, name: str) -> bool:
        """Whether the supervisor runs ``name``'s ``init_task`` now (its stop is then the
        supervisor's to fire, once the hook returned). Call with its lifecycle lock held."""
        return name in self._in_init

    # -- Restarter (called by tasks, their lifecycle lock held) ------------------------------

    def verdict(self, task: Task) -> bool | BaseException:
        if self._stopping.is_set():
            return False
        try:
            policy = task.current_restart_policy()
        except LifecycleError as exc:
            return exc
        if not policy.restarts_after(task.failure is not None):
            return False
        name = task.name
        now = time.monotonic_ns()
        with self._lock:
            history = self._histories.setdefault(name, RestartHistory())
            recent = history.recent(policy, now)
            if recent >= policy.burst:
                error = RestartLimitExceeded(name, recent, policy.burst, policy.window)
                error.__cause__ = task.failure
                return error
            self._admitted[name] = (policy, recent)
        return True

    def crashed(self, task: Task) -> None:
        name = task.name
        now = time.monotonic_ns()  # after the crash record: the audit's clock
        with self._lock:
            policy, attempt = self._admitted.pop(name)
            self._histories[name].add(now)
            self._due[name] = now + seconds_ns(policy.backoff(attempt, self._draw))
            self._ensure_thread()
        self._jobs.put(name)
        self.news.put(name)

    def suspended(self, task: Task) -> None:
        self.news.put(task.name)

    def ended(self, name: str) -> None:
        """``name`` reached a terminal state (the collection's ``on_terminal``)."""
        if not self._stopping.is_set():  # once stopping, no restart's stop waits on news
            self.news.put(name)

    # -- the supervisor's thread -------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="lifecycle-supervisor", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        self._started.wait()
        while not self._stopping.is_set():
            name = self._jobs.get()
            if name is None or self._stopping.is_set():
                return
            try:
                self._restart(name)
            except BaseException as exc:  # a bug here must not leave the service a zombie
                logger.exception("restarting task %r failed", name)
                self._shut_down(name, exc)
                return

    def _restart(self, name: str) -> None:
        """Restart ``name`` (in backoff) and the tasks that require it."""
        host = self._host
        if self._state(name) != TaskState.BACKOFF:
            return  # restarted already, along with a task it requires
        edges = {n: [task_name(d) for d in host.class_of(n).DEPS] for n in host.order}
        users = dependents(name, edges)
        chain = [n for n in host.order if n in users]
        if chain and not self._suspend_all(name, chain):
            return
        if not self._wait_due(name):
            return
        self._restart_one(name, self._why(name))
        for user in chain:
            if self._stopping.is_set():
                return
            self._bring_back(user, name)

    def _why(self, name: str) -> str:
        """The cause of a crashed task's restart record."""
        with self._lock:
            restarts = len(self._histories.get(name, ()))
        return f"restart {restarts} within the RESTART_LIMIT window: a fresh instance"

    def _suspend_all(self, name: str, chain: Sequence[str]) -> bool:
        """Stop ``chain`` (the tasks requiring ``name``) as a staged stop, last first, each
        into backoff; False if the collection's stop began meanwhile."""
        host = self._host
        try:  # news from before this stop are stale: restarts happen on this thread only
            while True:
                self.news.get_nowait()
        except queue.Empty:
            pass
        before: Mapping[str, list[str]] = {n: e for n, e in host.edges().items() if n in chain}
        cause = f"restarting: it requires {name!r}, which restarts"

        def begin(user: str, late: str | None) -> None:
            lc = host.lifecycle_of(user)
            with lc.lock:
                if not self._stopping.is_set():
                    host.instance_of(user)._begin_suspend(cause)

        coordinator = StopCoordinator(
            list(chain),
            before,
            is_ended=lambda user: self._state(user) not in _LIVE,
            begin=begin,
            news=self.news,
        )
        coordinator.start()
        coordinator.drive(None, self._stopping.is_set)
        return not self._stopping.is_set()

    def _state(self, name: str) -> TaskState:
        """``name``'s state, read under its lock: a transition is journaled before its lock is
        released, so what is read here is what the journal shows (the audit judges by it)."""
        lc = self._host.lifecycle_of(name)
        with lc.lock:
            return TaskState(lc.state)

    def _wait_due(self, name: str) -> bool:
        """Wait until ``name``'s backoff passed; False if the collection's stop began first
        (that ends the wait at once: the stop sets the event waited on)."""
        with self._lock:
            due = self._due.get(name, 0)
        while True:
            left = due - time.monotonic_ns()
            if left <= 0:
                return not self._stopping.is_set()
            if self._stopping.wait(left / 1_000_000_000):
                return False

    def _bring_back(self, name: str, after: str) -> None:
        """Restart (from backoff) or start (left initialized) ``name``, once every task it
        requires runs; one that waits for another task's restart is left to that one."""
        if self._waits(name):
            return  # that one restarts later and brings this one back
        state = self._state(name)
        if state == TaskState.BACKOFF:
            if self._wait_due(name):
                self._restart_one(name, f"{after!r}, which it requires, runs again")
        elif state == TaskState.INITIALIZED:
            self._start(name, late=True)

    def _waits(self, name: str) -> bool:
        """Whether a task ``name`` requires is restarting (suspending, in backoff, or made
        anew and not started yet). Call with their locks held to act on the answer."""
        return any(
            self._state(task_name(dep)) in _RESTARTING for dep in self._host.class_of(name).DEPS
        )

    def _start(self, name: str, late: bool = False) -> bool:
        """Start ``name`` (initialized) unless what it requires is restarting; True if started.

        The locks of what it requires are held from the look to the start, so that none of
        them crashes in between: the journal shows each of them running when this one starts.
        """
        host = self._host
        with contextlib.ExitStack() as held:
            for dep in host.class_of(name).DEPS:
                held.enter_context(host.lifecycle_of(task_name(dep)).lock)
            lc = host.lifecycle_of(name)
            held.enter_context(lc.lock)
            if (
                lc.state != TaskState.INITIALIZED
                or self._stopping.is_set()
                or self._waits(name)
            ):
                return False
            host.instance_of(name).start()
            if late:
                host.started_late(name)
            return True

    def _restart_one(self, name: str, why: str) -> bool:
        """Replace ``name`` (in backoff) with a fresh instance, initialize and start it.

        True once it runs. A constructor or ``init_task`` that raises fails the task and asks
        the service to shut down; `SkipTask`, or a required task that ended skipped or failed,
        skips it.
        """
        host = self._host
        lc = host.lifecycle_of(name)
        try:
            fresh = host.make(name)
        except BaseException as exc:
            with lc.lock:
                if lc.state == TaskState.BACKOFF and not self._stopping.is_set():
                    host.instance_of(name).failure = exc
                    lc.fire("fail", exc)
            self._shut_down(name, exc)
            return False
        with lc.lock:
            if lc.state != TaskState.BACKOFF or self._stopping.is_set():
                return False
            fresh._restarter = self
            host.replace(name, fresh)
            self._in_init.add(name)
            lc.fire("restart", why)
        outcome: BaseException | None = None
        for dep in type(fresh).DEPS:
            dep_state = self._state(task_name(dep))
            if dep_state in _ENDED_BADLY:
                outcome = SkipTask(f"required dependency {task_name(dep)!r} ended {dep_state}")
                break
        else:
            try:
                fresh._run_init()
            except BaseException as exc:
                outcome = exc
        with lc.lock:
            self._in_init.discard(name)
            if lc.state != TaskState.CREATED:
                return False
            if outcome is None:
                lc.fire("init")
                if self._stopping.is_set():  # the collection's stop began during init_task
                    lc.fire("stop", "the collection's stop began during init_task")
                    return False
            elif isinstance(outcome, SkipTask):
                lc.fire("skip", outcome)
                return False
            else:
                fresh.failure = outcome
                lc.fire("fail", outcome)
        if outcome is not None:
            self._shut_down(name, outcome)
            return False
        # Left initialized if what it requires crashed meanwhile: that one's restart starts it.
        return self._start(name)

    def _shut_down(self, name: str, exc: BaseException) -> None:
        task = self._host.instance_of(name)
        task._request_shutdown(exc)

