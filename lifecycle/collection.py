"""`Tasks`: the collection a service owns, and the module-level `REGISTERED` collection.

The collection registers task classes (dependencies first), then drives every task through
its lifecycle: `create` instantiates the classes, `init` runs `init_task` in dependency order,
`start` launches them in that order, `stop` requests a stop in the exact reverse of the start
order, and `join` waits for the workers and completes the stop. The collection is a state
machine of its own (`lifecycle.spec.COLLECTION`); every change of it and of its tasks goes to
its journal.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

from lifecycle.engine import Lifecycle
from lifecycle.errors import (
    DuplicateTask,
    InitError,
    InvalidTask,
    LifecycleError,
    RegistrationClosed,
    StopError,
    UnknownTask,
)
from lifecycle.graph import postorder, topological_order
from lifecycle.journal import Journal, journal_or_new
from lifecycle.spec import COLLECTION, TASK, CollectionState, TaskState
from lifecycle.task import SkipTask, Task, task_name

__all__ = ["REGISTERED", "Tasks"]

_ENDED_BADLY = (TaskState.SKIPPED, TaskState.FAILED)


def _check_task_class(cls: object) -> type[Task]:
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise InvalidTask(cls, "is not a Task subclass")
    for attr in ("DEPS", "WANTS"):
        for dep in getattr(cls, attr):
            if not (isinstance(dep, type) and issubclass(dep, Task)):
                raise InvalidTask(cls, f"{attr} lists {dep!r}, which is not a Task subclass")
    if not cls.LOOPLESS and cls.run_loop is Task.run_loop:
        raise InvalidTask(cls, "has worker threads but no run_loop(); implement it or set LOOPLESS")
    if not cls.LOOPLESS and (not isinstance(cls.workers, int) or cls.workers < 1):
        raise InvalidTask(cls, f"workers must be an int >= 1, not {cls.workers!r}")
    return cls


class Tasks:
    """An ordered collection of task classes and, once created, their instances.

    ``tasks``: classes to register now (each with its DEPS). ``journal``: where transitions are
    recorded (a new `Journal` by default). ``name``: the collection's subject name.

    Driver calls (`create`, `init`, `start`, `stop`, `join`) are serialized by the collection's
    lock and may come from any thread; each raises `IllegalTransition` when the collection's
    state does not allow it. Registration is only possible before `create`.
    """

    def __init__(
        self,
        tasks: Iterable[type[Task]] = (),
        *,
        journal: Journal | None = None,
        name: str = "tasks",
    ) -> None:
        self.name = name
        self.journal = journal_or_new(journal)
        self.lifecycle = Lifecycle(COLLECTION, name, self.journal)
        self._classes: dict[str, type[Task]] = {}
        self._lifecycles: dict[str, Lifecycle] = {}
        self._instances: dict[str, Task] = {}
        self._order: list[str] = []
        self._start_order: list[str] = []
        self._stop_errors: dict[str, Exception] = {}
        self.register_all(tasks)

    # -- registration ----------------------------------------------------------------------

    def register(self, cls: type[Task]) -> type[Task]:
        """Register ``cls`` after its DEPS (registered first, depth-first); returns ``cls``.

        Registering the same class again is a no-op. Raises `InvalidTask` for a non-task,
        `DuplicateTask` when another class has the same name, `DependencyCycle` naming the
        cycle, `RegistrationClosed` after `create`. On error nothing is registered.
        """
        with self.lifecycle.lock:
            self._require_registering("register", cls)
            if self._classes.get(getattr(cls, "__name__", None)) is cls:  # type: ignore[arg-type]
                return cls  # already registered: a no-op
            _check_task_class(cls)
            new = postorder(
                [cls],
                lambda c: [_check_task_class(d) for d in c.DEPS],
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
            for candidate in new:
                name = task_name(candidate)
                self._classes[name] = candidate
                self._lifecycles[name] = Lifecycle(TASK, name, self.journal)
            self.journal.describe_tasks(
                {
                    task_name(c): {
                        "class": _qualname(c),
                        "deps": [task_name(d) for d in c.DEPS],
                        "wants": [task_name(w) for w in c.WANTS],
                    }
                    for c in new
                }
            )
        return cls

    def register_all(self, classes: Iterable[type[Task]]) -> None:
        """Register each of ``classes`` in order (see `register`)."""
        if isinstance(classes, type) or not isinstance(classes, Iterable):
            raise InvalidTask(
                classes, "expected an iterable of task classes, for example Tasks([MyTask])"
            )
        for cls in classes:
            self.register(cls)

    def unregister(self, task: str | type[Task]) -> None:
        """Remove a registered task. Raises `UnknownTask`, `RegistrationClosed`, or
        `LifecycleError` if another registered task requires it."""
        with self.lifecycle.lock:
            name = self._name(task)
            self._require_registering("unregister", repr(name))
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

    def _require_registering(self, verb: str, task: object) -> None:
        state = self.lifecycle.state
        if state != CollectionState.REGISTERING:
            what = task if isinstance(task, str) else getattr(task, "__qualname__", repr(task))
            raise RegistrationClosed(self.name, str(state), f"{verb} {what}")

    # -- driving ---------------------------------------------------------------------------

    def create(self, *args: Any, **kwargs: Any) -> None:
        """Instantiate every class, dependencies first, as ``cls(*args, **kwargs)``.

        If a constructor raises, that task is failed, the created ones are stopped, the
        collection is failed and `InitError` is raised (chained to the first cause). A WANTS
        cycle raises `DependencyCycle` and fails the collection.
        """
        lc = self.lifecycle
        with lc.lock:
            self._refuse_unless("create")
            try:
                self._order = topological_order(list(self._classes), self._edges())
            except LifecycleError as exc:
                lc.fire("fail", exc)
                raise
            failed: dict[str, Exception] = {}
            for name in self._order:
                task_lc = self._lifecycles[name]
                try:
                    instance = self._classes[name](*args, **kwargs)
                except Exception as exc:
                    task_lc.fire("fail", exc)
                    failed[name] = exc
                    continue
                instance._bind(task_lc)
                self._instances[name] = instance
                task_lc.fire("create")
            if failed:
                self._raise_init_error(failed)
            lc.fire("create")

    def init(self) -> None:
        """Run every task's `init_task` in dependency order.

        A task whose DEPS ended skipped or failed is skipped with a reason naming the
        dependency; `SkipTask` skips; any other exception fails the task. If any task failed,
        the initialized ones are stopped, the collection is failed, and `InitError` (naming
        every failed task, chained to the first root cause) is raised.
        """
        lc = self.lifecycle
        with lc.lock:
            self._refuse_unless("init")
            failed: dict[str, Exception] = {}
            try:
                for name in self._order:
                    self._init_one(name, failed)
            except BaseException as exc:
                # KeyboardInterrupt and friends: leave every task terminal, then let it through.
                self._abort(exc)
                raise
            if failed:
                self._raise_init_error(failed)
            lc.fire("init")

    def _init_one(self, name: str, failed: dict[str, Exception]) -> None:
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
                return
        try:
            task.init_task()
        except SkipTask as exc:
            task_lc.fire("skip", exc)
        except Exception as exc:
            task.failure = exc
            task_lc.fire("fail", exc)
            failed[name] = exc
        except BaseException as exc:
            task.failure = exc
            task_lc.fire("fail", exc)
            raise
        else:
            task_lc.fire("init")

    def start(self) -> None:
        """Start every initialized task in dependency order, then mark the collection running."""
        lc = self.lifecycle
        with lc.lock:
            self._refuse_unless("start")
            for name in self._order:
                if self._lifecycles[name].state == TaskState.INITIALIZED:
                    self._start_order.append(name)
                    self._instances[name].start()
            lc.fire("start")

    def stop(self) -> None:
        """Request every task to stop, in the exact reverse of the start order.

        Before start, every task and the collection go straight to stopped. While running, the
        collection becomes stopping; every `on_stop` is called even when another raised; their
        errors are kept for `join`, which completes the stop. Raises `IllegalTransition` in any
        other state.
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
            for name in reversed(self._start_order):
                try:
                    self._instances[name]._stop(strict=False)
                except Exception as exc:
                    self._stop_errors[name] = exc

    def join(self, timeout: float | None = None) -> list[Task]:
        """Wait up to ``timeout`` seconds in all for the workers; return the tasks still running.

        When the collection is stopping and no task is left running, the stop completes:
        the collection is stopped, or failed with `StopError` (raised) if any `on_stop` raised.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        lc = self.lifecycle
        # Waiting happens without the lock (stop must stay possible meanwhile), so take the
        # started tasks under it: `start` holds it until every worker thread has started, and
        # joining a thread that has not started yet raises RuntimeError.
        with lc.lock:
            started = [self._instances[n] for n in reversed(self._start_order)]
        for task in started:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            task.join(remaining)
        with lc.lock:
            left = [self._instances[n] for n in self._start_order if self._instances[n].running]
            if not left and lc.state == CollectionState.STOPPING:
                if self._stop_errors:
                    error = StopError(self._stop_errors)
                    lc.fire("fail", error)
                    raise error from next(iter(self._stop_errors.values()))
                lc.fire("finish")
        return left

    def fail(self, cause: BaseException) -> None:
        """Fail the collection with ``cause`` (for example a passed stop deadline).

        Raises `IllegalTransition` unless the collection is registering, created or stopping.
        """
        self.lifecycle.fire("fail", cause)

    def _refuse_unless(self, trigger: str) -> None:
        if not self.lifecycle.can(trigger):
            self.lifecycle.fire(trigger)  # journals the refusal and raises IllegalTransition

    def _abort(self, cause: BaseException) -> None:
        """Leave every task terminal (stopped, or failed if never created); fail the collection."""
        for name in reversed(self._order):
            task_lc = self._lifecycles[name]
            if task_lc.can("stop") and name in self._instances:
                self._instances[name].stop()
            elif not task_lc.terminal:
                task_lc.fire("fail", "the collection failed before this task was created")
        self.lifecycle.fire("fail", cause)

    def _raise_init_error(self, failed: dict[str, Exception]) -> NoReturn:
        error = InitError(failed)
        self._abort(error)
        raise error from next(iter(failed.values()))

    def _edges(self) -> dict[str, list[str]]:
        return {
            name: [task_name(d) for d in (*cls.DEPS, *cls.WANTS) if task_name(d) in self._classes]
            for name, cls in self._classes.items()
        }

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
        """The instance of ``task``, or ``default`` if it is unknown or not created."""
        name = task if isinstance(task, str) else task_name(task)
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

    def __getattr__(self, name: str) -> Task:
        if name.startswith("_"):
            raise AttributeError(name)
        instances = self.__dict__.get("_instances", {})
        if name in instances:
            return instances[name]  # type: ignore[no-any-return]
        raise AttributeError(
            f"{type(self).__name__} {self.__dict__.get('name')!r} has no created task {name!r}"
        )

    def __getitem__(self, key: int | str | type[Task]) -> Task:
        if isinstance(key, int):
            return self.tasks[key]
        return self.require(key)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self._instances)

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


#: The module-level collection that `Task.register()` adds to (as in sparts).
REGISTERED = Tasks(name="registered")
