"""`Tasks`: the collection a service owns, and the module-level `REGISTERED` collection.

The collection registers task classes (what they require and want first), then drives every
task through its lifecycle: `create` instantiates the classes, `init` runs `init_task` in
dependency order, `start` launches them in that order, `stop` begins the staged stop (a task
stops only once every task ordered after it has ended; see `lifecycle.stopping`), and `join`
drives it to the end. The collection is a state machine of its own
(`lifecycle.spec.COLLECTION`); every change of it and of its tasks goes to its journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

from lifecycle.engine import Lifecycle
from lifecycle.errors import (
    DuplicateTask,
    InitError,
    InvalidTask,
    LifecycleError,
    LifecycleInterrupt,
    RegistrationClosed,
    StopError,
    TaskExit,
    UnknownTask,
    safe_str,
)
from lifecycle.graph import postorder, topological_order
from lifecycle.journal import Journal, journal_or_new
from lifecycle.restart import RestartPolicy
from lifecycle.spec import COLLECTION, TASK, CollectionState, TaskState
from lifecycle.stopping import StopCoordinator, time_left
from lifecycle.supervision import Supervisor
from lifecycle.task import SkipTask, Task, task_name

__all__ = ["REGISTERED", "Tasks"]

_ENDED_BADLY = (TaskState.SKIPPED, TaskState.FAILED)
_NOT_CREATED = "the collection failed before this task was created"
#: The states of a task that was started and has not ended (a task suspending for a
#: dependency's restart still runs code).
_STARTED = frozenset({TaskState.RUNNING, TaskState.STOPPING, TaskState.SUSPENDING})
#: The states of a dependency, met while starting in order, that hold a task back: it crashed
#: into backoff, or was held back itself.
_NOT_STARTED = frozenset({TaskState.BACKOFF, TaskState.INITIALIZED})
# The states compared once per task, bound once: reading a member off its enum class goes
# through the metaclass, which costs about as much as a call.
_INITIALIZED, _FAILED = TaskState.INITIALIZED, TaskState.FAILED
_REGISTERING = CollectionState.REGISTERING
#: How many lifecycle locks the LOOPLESS tasks of one collection share (`Tasks._shared_lock`):
#: a LOOPLESS task runs little code of its own, so a lock each would cost more memory than
#: the contention it spares.
_LOCK_STRIPES = 64
#: Seconds granted to the threads of a task that has ended to finish returning.
_THREAD_EXIT = 1.0


def _check_task_class(cls: object) -> type[Task]:
    """``cls``, once `_checked` found it a valid task class (raises as that does)."""
    _checked(cls)
    return cls  # type: ignore[return-value]


def _checked(cls: object) -> tuple[bool, bool]:
    """Check that ``cls`` is a valid task class; return whether it lists DEPS or WANTS, and
    whether it is LOOPLESS. Raises `InvalidTask` naming what is wrong."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise InvalidTask(cls, "is not a Task subclass")
    # Each class attribute is read once: with many task classes, each read is a walk of the
    # class's MRO that the interpreter's attribute cache cannot keep for all of them.
    deps, wants = cls.DEPS, cls.WANTS
    if deps or wants:
        for attr, listed in (("DEPS", deps), ("WANTS", wants)):
            for dep in listed:
                if not (isinstance(dep, type) and issubclass(dep, Task)):
                    raise InvalidTask(cls, f"{attr} lists {dep!r}, which is not a Task subclass")
    looples = bool(cls.LOOPLESS)
    if not looples:
        if not cls._implements_run_loop():
            raise InvalidTask(cls, "has workers but no run_loop(); implement it or set LOOPLESS")
        workers = cls.workers
        if not isinstance(workers, int) or workers < 1:
            raise InvalidTask(cls, f"workers must be an int >= 1, not {workers!r}")
    return bool(deps or wants), looples


class Tasks:
    """An ordered collection of task classes and, once created, their instances.

    ``tasks``: classes to register now (each with its DEPS). ``journal``: where transitions are
    recorded (a new `Journal` by default). ``name``: the collection's subject name. ``loop``:
    the event loop its async tasks run on (see `loop`).

    Driver calls (`create`, `init`, `start`, `stop`, `join`) are serialized by the collection's
    lock and may come from any thread; each raises `IllegalTransition` when the collection's
    state does not allow it. Registration is only possible before `create`. The LOOPLESS tasks
    of a collection share a few lifecycle locks (a lock each would outweigh the task): hold a
    task's ``lifecycle.lock`` only briefly, and never wait for another task while holding it.

    Before `create`, ``len``, iteration, indexing, `get` and attribute access see the
    registered classes (in dependency order); from `create` on, the instances.

    While running, a task that crashes is restarted as its restart policy says
    (`lifecycle.restart`), by a fresh instance made with the arguments `create` was given,
    after the tasks that require it were suspended (`lifecycle.supervision`); a task whose
    dependency crashed into backoff while the collection started is started once that one
    runs again.
    """

    def __init__(
        self,
        tasks: Iterable[type[Task]] = (),
        *,
        journal: Journal | None = None,
        name: str = "tasks",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.name = name
        #: The event loop the async tasks run on (`lifecycle.aio.AsyncTask`), bound to them at
        #: `create`; `Service.serve` sets it. Without one an async task fails at init, saying so.
        #: The collection's driver calls must then come from a thread other than the loop's.
        self.loop = loop
        self.journal = journal_or_new(journal)
        self.lifecycle = Lifecycle(COLLECTION, name, self.journal)
        self._classes: dict[str, type[Task]] = {}
        self._lifecycles: dict[str, Lifecycle] = {}
        self._instances: dict[str, Task] = {}
        self._order: list[str] = []
        #: `_edges` as `create` found them: the order the tasks start in and stop by.
        self._order_edges: dict[str, list[str]] = {}
        self._start_order: list[str] = []
        self._created = False
        # Each task that reaches a terminal state posts its name here (see `_task_ended`):
        # the stop coordinator and `join` wake on it. A SimpleQueue: put() is signal-safe.
        self._news: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._failed: list[str] = []  # task names in the order they failed
        #: Tasks that reached a terminal state (none leaves it), each added by its terminal
        #: fire just after its record: a name here has ended, without a call per task to ask;
        #: a name not here may have ended a moment ago (ask its lifecycle).
        self._ended: set[str] = set()
        self._coordinator: StopCoordinator | None = None
        self._joining = threading.Lock()  # one thread waits on the news at a time
        self._failure: BaseException | None = None
        #: The name of the task whose ``init_task`` is running now, if any.
        self.initializing: str | None = None
        self._make_args: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
        #: Restarts crashed tasks as their restart policies say (`lifecycle.supervision`).
        self._supervisor = Supervisor(_Host(self))
        # The locks LOOPLESS tasks share (`_shared_lock`), and how many were handed out.
        self._lock_stripes: list[threading.RLock] = []
        self._striped = 0
        # One bound method for every task's lifecycle (and journal description), not one each.
        self._on_task_end = self._task_ended
        self._describe_task = self._description_of
        self.register_all(tasks)

    # -- registration ----------------------------------------------------------------------

    def register(self, cls: type[Task]) -> type[Task]:
        """Register ``cls`` after its DEPS and WANTS (registered first, depth-first, like
        systemd's ``Requires=`` and ``Wants=`` pulling in their units); returns ``cls``.

        Registering the same class again is a no-op. Raises `InvalidTask` for a non-task,
        `DuplicateTask` when another class has the same name, `DependencyCycle` naming the
        cycle (through DEPS or WANTS), `RegistrationClosed` (an `IllegalTransition`) after
        `create`. On error nothing is registered.
        """
        self._register((cls,))
        return cls

    def register_all(self, classes: Iterable[type[Task]]) -> None:
        """Register each of ``classes`` in order (see `register`); if one is refused, those
        before it stay registered."""
        if isinstance(classes, type) or not isinstance(classes, Iterable):
            raise InvalidTask(
                classes, "expected an iterable of task classes, for example Tasks([MyTask])"
            )
        self._register(classes)

    def _register(self, classes: Iterable[type[Task]]) -> None:
        """`register` each of ``classes`` in turn, under one hold of the lock, and describe the
        tasks added to the journal in one call (those added before a refusal too)."""
        registered = self._classes
        journal = self.journal
        added: dict[str, type[Task]] = {}
        lc = self.lifecycle
        with lc.lock:
            try:
                for cls in classes:
                    if lc.state is not _REGISTERING:
                        self._require_registering("register", cls)
                    if registered.get(getattr(cls, "__name__", None)) is cls:  # type: ignore[arg-type]
                        continue  # already registered: a no-op
                    ordered, looples = _checked(cls)
                    if ordered:
                        for name, candidate in self._newly_required(cls):
                            self._add(name, candidate, candidate.LOOPLESS)
                            added[name] = candidate
                        continue
                    # Nothing to walk (the usual case): no closure to build, LOOPLESS read once.
                    name = task_name(cls)
                    clash = registered.get(name)
                    if clash is not None:
                        raise DuplicateTask(name, _qualname(clash), _qualname(cls))
                    self._add(name, cls, looples)
                    added[name] = cls
            finally:
                # Described when the journal's header is made, not now: most collections
                # never write one, and describing costs more than the rest of a registration.
                if added:
                    journal.describe_tasks(dict.fromkeys(added, self._describe_task))

    def _add(self, name: str, cls: type[Task], looples: bool) -> None:
        """Register ``cls`` as ``name`` (checked already) with a fresh lifecycle."""
        self._classes[name] = cls
        self._lifecycles[name] = Lifecycle(
            TASK,
            name,
            self.journal,
            lock=self._shared_lock() if looples else None,
            on_terminal=self._on_task_end,
        )

    def _newly_required(self, cls: type[Task]) -> Iterable[tuple[str, type[Task]]]:
        """``cls`` (checked already, with DEPS or WANTS) and what it requires and wants that is
        not registered yet, each after what it requires and wants, by name; raises as
        `register` does, before anything changes."""
        new = postorder(
            [cls],
            lambda c: [
                _check_task_class(d) for d in ((*c.DEPS, *c.WANTS) if c.WANTS else c.DEPS)
            ],
            name=task_name,
            known=lambda c: self._classes.get(task_name(c)) is c,
        )
        # One pass with a dict: scanning `new` for each candidate is quadratic in the depth
        # of a DEPS chain.
        claimed: dict[str, type[Task]] = {}
        for candidate in new:
            name = task_name(candidate)
            clash = self._classes.get(name, claimed.get(name))
            if clash is not None:
                raise DuplicateTask(name, _qualname(clash), _qualname(candidate))
            claimed[name] = candidate
        return claimed.items()

    def unregister(self, task: str | type[Task]) -> None:
        """Remove a registered task. Raises `UnknownTask`, `RegistrationClosed`, or
        `LifecycleError` if another registered task requires it (DEPS; a task that only WANTS
        it does without)."""
        with self.lifecycle.lock:
            self._require_registering("unregister", task)
            name = self._name(task)
            needed_by = [
                n for n, c in self._classes.items() if name in {task_name(d) for d in c.DEPS}
            ]
            if needed_by:
                raise LifecycleError(
                    f"cannot unregister {name!r}: required by {', '.join(needed_by)}"
                )
            del self._classes[name]
            del self._lifecycles[name]
            # Else the journal's header still lists it and an audit sees a task that never ended.
            self.journal.forget_task(name)

    def _shared_lock(self) -> threading.RLock:
        """The lifecycle lock of the next LOOPLESS task: one of `_LOCK_STRIPES` locks, in
        turn (made as first needed), instead of one lock per task. Collection lock held.

        Sharing keeps every promise of a task's lock: one transition at a time per task (a
        lock held by another task of its stripe only delays it), and re-entrancy. It cannot
        deadlock: apart from the driver, which alone takes several task locks at once (and
        only while starting a task: its DEPS' locks, then its own), a thread holds one task
        lock at a time and waits on no other task lock while holding it (`Restarter`), and
        no stripe is shared with another collection.
        """
        stripes = self._lock_stripes
        index = self._striped % _LOCK_STRIPES
        self._striped += 1
        if index == len(stripes):
            stripes.append(threading.RLock())
        return stripes[index]

    def _description_of(self, name: str) -> dict[str, Any]:
        """The journal header's description of the registered task ``name`` (called by the
        journal when it makes its header, with its lock held; never raises)."""
        cls = self._classes.get(name)
        return {"class": name} if cls is None else _description(cls)

    def _require_registering(self, verb: str, task: object) -> None:
        state = self.lifecycle.state
        if state != CollectionState.REGISTERING:
            what = task if isinstance(task, str) else getattr(task, "__qualname__", repr(task))
            raise RegistrationClosed(self.name, str(state), f"{verb} {what}", verb)

    # -- driving ---------------------------------------------------------------------------

    def create(self, *args: Any, **kwargs: Any) -> None:
        """Instantiate every class, dependencies first, as ``cls(*args, **kwargs)``.

        If a constructor raises (anything: a `SystemExit` is that task's failure too), that task
        is failed, the created ones are stopped, the collection is failed and `InitError` is
        raised (chained to the first cause). A WANTS cycle closed after registration fails the
        collection before any constructor runs, and its `DependencyCycle` is raised.
        """
        lc = self.lifecycle
        with lc.lock:
            self._refuse_unless("create")
            try:
                self._order_edges = self._edges()
                self._order = topological_order(list(self._classes), self._order_edges)
            except LifecycleError as exc:  # a WANTS cycle closed after registration
                self._failure = exc
                lc.fire("fail", exc)
                raise
            self._created = True
            self._make_args = (args, kwargs)
            failed: dict[str, Exception] = {}
            # The restart policies as the options made them: what the audit judges by.
            changed: dict[str, dict[str, Any]] = {}
            classes, lifecycles, instances = self._classes, self._lifecycles, self._instances
            loop, supervisor = self.loop, self._supervisor
            for name in self._order:
                task_lc = lifecycles[name]
                try:
                    instance = classes[name](*args, **kwargs)
                except LifecycleInterrupt as exc:
                    task_lc.fire("fail", exc.reason)
                    self._abort(exc.reason)
                    raise
                except BaseException as exc:
                    task_lc.fire("fail", exc)
                    failed[name] = _as_error(name, exc)
                    continue
                instance._bind(task_lc, loop)
                instance._restarter = supervisor
                instances[name] = instance
                task_lc.fire("create")
                policy = _overridden_policy(instance)
                if policy is not None:
                    changed[name] = _description(type(instance), policy)
            if failed:
                self._raise_init_error(failed)
            if changed:
                self.journal.describe_tasks(changed)
            lc.fire("create")

    def init(self) -> None:
        """Run every task's `init_task` in dependency order.

        A task whose DEPS ended skipped or failed is skipped with a reason naming the
        dependency; `SkipTask` skips; anything else raised (`SystemExit` included) fails the
        task. If any task failed, the initialized ones are stopped, the collection is failed,
        and `InitError` (naming every failed task, chained to the first root cause) is raised.
        A `LifecycleInterrupt` (the engine giving up on a hung hook) leaves every task terminal,
        fails the collection with its reason and is raised again.
        """
        lc = self.lifecycle
        with lc.lock:
            self._refuse_unless("init")
            failed: dict[str, Exception] = {}
            try:
                self._init_all(failed)
            except LifecycleInterrupt as exc:
                self._abort(exc.reason)
                raise
            if failed:
                self._raise_init_error(failed)
            lc.fire("init")

    def _init_all(self, failed: dict[str, Exception]) -> None:
        """Init every task in order: on this thread, or, for each run of consecutive async
        tasks with an ``init_task`` to await, on their loop in one hop (one round trip between
        threads per run of tasks, not per task; the order is the same)."""
        order = self._order
        instances = self._instances
        index = 0
        while index < len(order):
            loop = instances[order[index]]._init_loop()
            end = index + 1
            while end < len(order) and instances[order[end]]._init_loop() is loop:
                end += 1
            names = order[index:end]
            index = end
            if loop is None:  # thread tasks (and async ones with nothing to await)
                self._init_each(names, failed)
                continue
            inits = self._init_on_loop(names, failed)
            try:
                running = asyncio.run_coroutine_threadsafe(inits, loop)
            except RuntimeError:  # the loop closed meanwhile: each init says so on its own
                inits.close()
                self._init_each(names, failed)
            else:
                running.result()

    def _init_each(self, names: list[str], failed: dict[str, Exception]) -> None:
        """Init each of ``names`` in turn on this thread (one call for a run of tasks: this
        runs for every task)."""
        begin, end = self._init_begin, self._init_end
        for name in names:
            task = begin(name)
            if task is None:
                continue
            try:
                task._run_init()
            except BaseException as exc:
                end(name, exc, failed)
            else:
                end(name, None, failed)

    async def _init_on_loop(self, names: list[str], failed: dict[str, Exception]) -> None:
        """`_init_each` for async tasks, awaited on their loop (the driver waits for it)."""
        for name in names:
            task = self._init_begin(name)
            if task is None:
                continue
            try:
                await task._await_init()
            except BaseException as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # This run itself is cancelled (its loop is being shut down): the hook
                    # did not finish; fail it and go no further.
                    self._init_end(name, exc, failed)
                    raise
                self._init_end(name, exc, failed)
            else:
                self._init_end(name, None, failed)

    def _init_begin(self, name: str) -> Task | None:
        """Skip ``name`` (None) if one of its DEPS ended skipped or failed; else mark it as
        the task initializing and return it."""
        task = self._instances[name]
        task_lc = self._lifecycles[name]
        for dep in task.DEPS:
            dep_name = task_name(dep)
            dep_state = self._lifecycles[dep_name].state
            if dep_state in _ENDED_BADLY:
                task_lc.fire(
                    "skip",
                    SkipTask(f"required dependency {dep_name!r} ended {dep_state}"),
                )
                return None
        self.initializing = name
        return task

    def _init_end(self, name: str, exc: BaseException | None, failed: dict[str, Exception]) -> None:
        """Fire the verdict of ``name``'s init: ``exc`` is what its ``init_task`` raised
        (None: it returned). A `LifecycleInterrupt` is raised again after the task failed."""
        task = self._instances[name]
        task_lc = self._lifecycles[name]
        try:
            if exc is None:
                task_lc.fire("init")
            elif isinstance(exc, SkipTask):
                task_lc.fire("skip", exc)
            elif isinstance(exc, LifecycleInterrupt):
                task.failure = exc.reason
                task_lc.fire("fail", exc.reason)
                raise exc
            else:
                task.failure = exc
                task_lc.fire("fail", exc)
                failed[name] = _as_error(name, exc)
        finally:
            self.initializing = None

    def start(self) -> None:
        """Start every initialized task in dependency order, then mark the collection running."""
        lc = self.lifecycle
        with lc.lock:
            self._refuse_unless("start")
            classes, lifecycles, instances = self._classes, self._lifecycles, self._instances
            started = self._start_order
            for name in self._order:
                if not classes[name].DEPS:
                    if lifecycles[name].state == _INITIALIZED:
                        started.append(name)
                        instances[name].start()
                    continue
                # With the locks of what it requires held, none of them can crash between
                # the look and the start: the journal shows them running when it starts.
                with contextlib.ExitStack() as held:
                    waits = False
                    for dep in self._classes[name].DEPS:
                        dep_lc = self._lifecycles[task_name(dep)]
                        held.enter_context(dep_lc.lock)
                        waits = waits or dep_lc.state in _NOT_STARTED
                    # A task whose dependency crashed into backoff (or waits for one that did)
                    # starts once that one runs again: the supervisor starts it.
                    if self._lifecycles[name].state == _INITIALIZED and not waits:
                        self._start_order.append(name)
                        self._instances[name].start()
            lc.fire("start")
            self._supervisor.started()

    def stop(self) -> None:
        """Begin the staged stop; `join` drives it to the end.

        Before start, every task and the collection go straight to stopped, in reverse
        dependency order. While running, the collection becomes stopping, and each task's stop
        (its ``stop`` record, `stop_event`, `on_stop`) begins only once every task ordered after
        it (through DEPS or WANTS, directly or not) has ended; tasks with no order between them
        stop together. This call begins the stops allowed now and returns at once; `join` begins
        the others as their turn comes. Every `on_stop` is called, even when another raised.
        Raises `IllegalTransition` in any other state.
        """
        lc = self.lifecycle
        with lc.lock:
            if lc.state in (CollectionState.CREATED, CollectionState.INITIALIZED):
                for name in reversed(self._order):
                    if self._lifecycles[name].can("stop"):
                        self._instances[name].stop()
                lc.fire("stop")
                return
            lc.fire("stop")
            self._supervisor.stop()  # before any stop begins: no task is restarted from now on
            self._coordinator = StopCoordinator(
                self._order,
                self._order_edges,  # the order the tasks started in, read once at create
                is_ended=self._has_ended,
                begin=self._begin_task_stop,
                news=self._news,
            )
            self._coordinator.start()
        self._news.put(None)  # a join waiting for the tasks to end by themselves now drives

    def _begin_task_stop(self, name: str, cause: str | None) -> None:
        """Begin ``name``'s stop on its current instance (a restart may have replaced it). A
        task whose restart's ``init_task`` runs now is stopped by the supervisor once that
        hook returned, so that a task ends only when none of its code runs."""
        task_lc = self._lifecycles[name]
        with task_lc.lock:
            if self._supervisor.initializing(name):
                return
            task = self._instances[name]
        task._begin_stop(cause)

    def join(
        self, timeout: float | None = None, *, until: Callable[[], bool] | None = None
    ) -> list[Task]:
        """Wait up to ``timeout`` seconds in all; return the started tasks that have not ended.

        While stopping, this drives the staged stop: it begins each task's stop as soon as the
        last task ordered after it ends (waking on that task's terminal record, never polling).
        When every task has ended, the stop completes: the collection is stopped, or failed
        with the first failure as its cause if any task failed; if an `on_stop` raised,
        `StopError` is raised. After `fail` (the caller gave up on the stragglers), the others
        stop in order without waiting for them, and this returns once they have ended (the
        stragglers, still running, in the list; `Task.join` waits for one); if ``timeout``
        runs out first, every task not yet asked to stop is asked at once, so that no
        `on_stop` is skipped.

        ``until``: stop waiting early once it returns True (checked whenever the collection is
        woken; `wake` wakes it). Several threads may join; one waits at a time.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        stop_early = until or (lambda: False)
        if self._joining.acquire(timeout=-1 if deadline is None else time_left(deadline)):
            try:
                self._wait(deadline, stop_early)
            finally:
                self._joining.release()
        lc = self.lifecycle
        with lc.lock:
            unended = self._unended(self._order)
            # Started tasks come in `_order`'s order, so this keeps the start order.
            left = [t for t in unended if t.lifecycle.state in _STARTED] if unended else []
            completes = bool(self._coordinator) and not unended
            ended_names, lifecycles = self._ended, self._lifecycles
            ended = [
                self._instances[n]
                for n in self._start_order
                if n in ended_names or lifecycles[n].terminal
            ]
        for task in ended:
            if task._threads or task._hook is not None:  # ended: its threads are only returning
                task.join(_THREAD_EXIT)
        if completes:
            with lc.lock:
                if lc.state == CollectionState.STOPPING:
                    self._complete_stop()
        return left

    def wake(self) -> None:
        """Wake a thread in `join` so that it checks its ``until`` again. Safe from a signal
        handler and from any thread."""
        self._news.put(None)

    def _wait(self, deadline: float | None, until: Callable[[], bool]) -> None:
        while True:
            coordinator = self._coordinator
            if coordinator is not None:
                coordinator.drive(deadline, until)
                if coordinator.gave_up and coordinator.pending():
                    coordinator.force()
                return
            if not self._unended(self._start_order) or until():
                return
            try:
                self._news.get(timeout=None if deadline is None else time_left(deadline))
            except queue.Empty:
                return

    def _unended(self, names: Iterable[str]) -> list[Task]:
        instances, ended, lifecycles = self._instances, self._ended, self._lifecycles
        return [
            instances[n]
            for n in names
            if n not in ended and n in instances and not lifecycles[n].terminal
        ]

    def _complete_stop(self) -> None:
        """Fire the collection's last transition once every task ended (lock held)."""
        stop_errors = {
            name: _as_error(name, task._stop_error)
            for name in self._failed
            if (task := self._instances.get(name)) is not None and task._stop_error is not None
        }
        if stop_errors:
            error = StopError(stop_errors)
            error.__cause__ = next(iter(stop_errors.values()))
            self._failure = error
            self.lifecycle.fire("fail", error)
            raise error
        first = self.first_failure()
        if first is not None:
            self._failure = first
            self.lifecycle.fire("fail", first)
        else:
            self.lifecycle.fire("finish")

    def fail(self, cause: BaseException) -> None:
        """Fail the collection with ``cause`` (for example a stop deadline that passed).

        When created, every created task is stopped first (none ran), as when init fails.
        While stopping, this gives up waiting for the tasks still running: the tasks not yet
        asked to stop are still stopped, in order, without waiting for those (each stop
        journaled with a cause naming them); `join` drives that to the end. Raises
        `IllegalTransition` unless the collection is registering, created or stopping.
        """
        lc = self.lifecycle
        with lc.lock:
            if lc.state == CollectionState.CREATED:
                self._abort(cause)  # the tasks never ran: each is stopped, as when init fails
                return
            lc.fire("fail", cause)
            self._supervisor.stop()
            self._failure = cause
            coordinator = self._coordinator
            if coordinator is None:
                return
        coordinator.give_up(f"the collection gave up ({type(cause).__name__}: {safe_str(cause)})")
        self._news.put(None)

    def stragglers(self) -> list[str]:
        """The names of the tasks asked to stop whose code still runs (workers, `on_stop`),
        in dependency order: what a stop deadline names. Empty unless stopping."""
        coordinator = self._coordinator
        return coordinator.stragglers() if coordinator is not None else []

    @property
    def failure(self) -> BaseException | None:
        """Why the collection failed (None unless it did): the `InitError`, the `StopError`,
        the `DependencyCycle` `create` met, the cause given to `fail`, or the first task
        failure."""
        return self._failure

    def first_failure(self) -> BaseException | None:
        """The failure of the task that failed first (None if none did)."""
        for name in self._failed:
            task = self._instances.get(name)
            if task is not None and task.failure is not None:
                return task.failure
        return None

    def _has_ended(self, name: str) -> bool:
        """Whether ``name`` ended, its terminal record written.

        A fire changes the state before it writes the record, under the task's lock: a stop
        begun on a terminal state read without that lock could be journaled before the record
        of the end that allowed it, and the journal would show the stop order broken.
        """
        lc = self._lifecycles[name]
        if not lc.terminal:
            return False
        with lc.lock:  # a terminal state is final: this only waits for its fire to finish
            return True

    def _task_ended(self, name: str, state: Any) -> None:
        # Called by the task's lifecycle with its lock held: only quick, lock-free work here.
        # ``state`` is the member of the dispatch table, so identity is the cheap test.
        if state is _FAILED:
            self._failed.append(name)
        self._ended.add(name)  # before the news: whoever it wakes finds it here
        self._news.put(name)
        if self._coordinator is None:  # else the supervisor was stopped: it wants no news
            self._supervisor.ended(name)

    def _refuse_unless(self, trigger: str) -> None:
        if not self.lifecycle.can(trigger):
            self.lifecycle.fire(trigger)  # journals the refusal and raises IllegalTransition

    def _abort(self, cause: BaseException) -> None:
        """Leave every task terminal (stopped, or failed if never created); fail the collection."""
        self._supervisor.stop()
        for name in reversed(self._order):
            task_lc = self._lifecycles[name]
            if task_lc.can("stop") and name in self._instances:
                self._instances[name].stop()
            elif not task_lc.terminal:
                task_lc.fire("fail", _NOT_CREATED)
        self._failure = cause
        self.lifecycle.fire("fail", cause)

    def _raise_init_error(self, failed: dict[str, Exception]) -> NoReturn:
        error = InitError(failed)
        self._abort(error)
        first = next(iter(failed.values()))
        raise error from (first.exception if isinstance(first, TaskExit) else first)

    def _edges(self) -> dict[str, list[str]]:
        """name -> the registered tasks it is ordered after (DEPS, WANTS); only tasks that
        have some (most have none, and this runs for every task at create and at stop)."""
        classes = self._classes
        edges: dict[str, list[str]] = {}
        for name, cls in classes.items():
            if cls.DEPS or cls.WANTS:
                firsts = [task_name(d) for d in (*cls.DEPS, *cls.WANTS)]
                edges[name] = [first for first in firsts if first in classes]
        return edges

    # -- lookup ----------------------------------------------------------------------------

    @property
    def state(self) -> CollectionState:
        return CollectionState(self.lifecycle.state)

    @property
    def task_classes(self) -> tuple[type[Task], ...]:
        """The registered classes, in registration order."""
        return tuple(self._classes.values())

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The created instances, in dependency order."""
        return tuple(self._instances[n] for n in self._order if n in self._instances)

    @property
    def start_order(self) -> tuple[str, ...]:
        """The names of the tasks started, in the order they were started."""
        return tuple(self._start_order)

    @property
    def order(self) -> tuple[str, ...]:
        """The names in the order tasks are created, initialized and started: dependencies
        (DEPS and WANTS) first, registration order breaking ties.

        Before `create` it is computed from what is registered now, and raises
        `DependencyCycle` for a WANTS cycle (`create` would refuse it too).
        """
        if self.lifecycle.state != CollectionState.REGISTERING:
            # Fixed from `create` on (set before it fires): no lock, so that an async task's
            # init_task, awaited on the loop while the driver holds the lock, may read it.
            return self._listing()
        with self.lifecycle.lock:
            if self.lifecycle.state == CollectionState.REGISTERING:
                return tuple(topological_order(list(self._classes), self._edges()))
            return self._listing()

    def _listing(self) -> tuple[str, ...]:
        """Dependency order once computed, else registration order; never raises."""
        return tuple(self._order) if self._order else tuple(self._classes)

    def state_of(self, task: str | type[Task]) -> TaskState:
        """The state of a registered task; raises `UnknownTask`."""
        return TaskState(self._lifecycles[self._name(task)].state)

    def by_state(self) -> dict[TaskState, list[str]]:
        """The registered task names grouped by state (only states that have some)."""
        grouped: dict[TaskState, list[str]] = {}
        for name in self._listing():
            grouped.setdefault(self.state_of(name), []).append(name)
        return grouped

    def get(self, task: str | type[Task], default: Any = None) -> Any:
        """The instance of ``task`` (before `create`: its class), or ``default`` if it is
        unknown or has no instance (its constructor failed)."""
        name = task if isinstance(task, str) else task_name(task)
        if not self._created:
            return self._classes.get(name, default)
        return self._instances.get(name, default)

    def require(self, task: str | type[Task]) -> Task:
        """The instance of ``task``. Raises `UnknownTask` (a `LookupError`) if unregistered,
        `LifecycleError` if registered but not created."""
        name = self._name(task)
        try:
            return self._instances[name]
        except KeyError:
            raise LifecycleError(
                f"task {name!r} is {self.state_of(name)}: it has no instance "
                "(instances exist after create())"
            ) from None

    def _name(self, task: str | type[Task]) -> str:
        name = task if isinstance(task, str) else task_name(task)
        if name not in self._classes or (
            not isinstance(task, str) and self._classes[name] is not task
        ):
            raise UnknownTask(name, list(self._classes))
        return name

    def __getattr__(self, name: str) -> Any:
        """The task named ``name``: its instance, or before `create` its class."""
        state = self.__dict__
        if name.startswith("_") or "_created" not in state:
            raise AttributeError(name)
        found = (state["_instances"] if state["_created"] else state["_classes"]).get(name)
        if found is not None:
            return found
        what = "created task" if self._created else "registered task"
        raise AttributeError(f"{type(self).__name__} {self.name!r} has no {what} {name!r}")

    def __getitem__(self, key: int | str | type[Task]) -> Any:
        """By index (in dependency order), name or class: the instance, or before `create` the
        class. Raises `IndexError` or `UnknownTask` (a `LookupError`)."""
        if isinstance(key, int):
            return self._members()[key]
        if not self._created:
            return self._classes[self._name(key)]
        return self.require(key)

    def __iter__(self) -> Iterator[Any]:
        """The instances in dependency order, or before `create` the registered classes."""
        return iter(self._members())

    def __len__(self) -> int:
        """How many instances there are, or before `create` how many classes are registered."""
        return len(self._instances) if self._created else len(self._classes)

    def _members(self) -> tuple[Any, ...]:
        if not self._created:
            return tuple(self._classes[n] for n in self.order)
        return self.tasks

    def __contains__(self, task: object) -> bool:
        if isinstance(task, str):
            return task in self._classes
        if isinstance(task, type):
            return self._classes.get(task.__name__) is task
        return isinstance(task, Task) and self._instances.get(task.name) is task

    def __repr__(self) -> str:
        return f"<Tasks {self.name!r} {self.lifecycle.state} ({len(self._classes)} registered)>"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _overridden_policy(task: Task) -> RestartPolicy | None:
    """``task``'s restart policy if its options changed its class's, else None (also when
    they combine badly: the task then fails when it crashes, saying why)."""
    if not task._restart_overridable():
        return None  # nothing overrides it: the usual case, kept cheap
    try:
        policy = task.current_restart_policy()
    except InvalidTask:
        return None
    return None if policy == type(task).restart_policy() else policy


def _description(cls: type[Task], policy: RestartPolicy | None = None) -> dict[str, Any]:
    """What the journal's header says of a task: class, DEPS, WANTS and, unless it is
    "never" (a header without it means never), its restart policy.

    Never raises: a class whose restart attributes were made invalid after it was created is
    described without a policy (its task fails with `InvalidTask` instead of restarting).
    """
    if policy is None:
        try:
            policy = cls.restart_policy()
        except InvalidTask:
            policy = None
    described: dict[str, Any] = {
        "class": _qualname(cls),
        "deps": [task_name(d) for d in cls.DEPS],
        "wants": [task_name(w) for w in cls.WANTS],
    }
    if policy is not None and policy.mode != "never":
        described["restart"] = policy.to_dict()
    return described


class _Host:
    """The collection as its supervisor sees it (`lifecycle.supervision.Supervised`)."""

    def __init__(self, tasks: Tasks) -> None:
        self._tasks = tasks

    @property
    def order(self) -> tuple[str, ...]:
        return self._tasks._listing()

    def lifecycle_of(self, name: str) -> Lifecycle:
        return self._tasks._lifecycles[name]

    def class_of(self, name: str) -> type[Task]:
        return self._tasks._classes[name]

    def instance_of(self, name: str) -> Task:
        return self._tasks._instances[name]

    def make(self, name: str) -> Task:
        tasks = self._tasks
        args, kwargs = tasks._make_args
        return tasks._classes[name](*args, **kwargs)

    def replace(self, name: str, task: Task) -> None:
        tasks = self._tasks
        task._bind(tasks._lifecycles[name], tasks.loop)
        tasks._instances[name] = task

    def started_late(self, name: str) -> None:
        self._tasks._start_order.append(name)

    def edges(self) -> dict[str, list[str]]:
        return self._tasks._edges()


def _as_error(name: str, exc: BaseException) -> Exception:
    """``exc`` where an `Exception` must stand (an `ExceptionGroup` member): a `SystemExit` or
    `KeyboardInterrupt` of a task is kept inside a `TaskExit`."""
    return exc if isinstance(exc, Exception) else TaskExit(name, exc)


#: The module-level collection that `Task.register()` adds to (as in sparts).
REGISTERED = Tasks(name="registered")
