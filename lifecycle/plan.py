"""A dry run of a set of tasks: what would start together, the stop order, what a skip takes.

`plan` registers the task classes in a throwaway `Tasks` collection (so registration is judged
by the one set of rules the engine uses: DEPS registered first, `DuplicateTask`,
`DependencyCycle`, `InvalidTask`) and then reads the order off `lifecycle.graph`; it creates,
initializes and starts nothing, and runs no task code.

* ``layers``: `lifecycle.graph.layers` over DEPS and WANTS: each layer's tasks can start
  together once the earlier layers have.
* ``start_order``: the order the collection starts the tasks in
  (`lifecycle.graph.topological_order`, registration order breaking ties).
* ``stop_layers`` / ``stop_order``: the staged stop (`lifecycle.stopping.stop_layers`): each
  layer's tasks stop together once every task ordered after them has ended (per task,
  ``stops_after`` names those directly); the order is the layers one after the other.
* per task, ``skips``: the tasks that would be skipped if it were skipped or failed
  (`lifecycle.graph.dependents` over DEPS only: WANTS never skips).
* per task, ``restart``: its restart policy (`lifecycle.restart`; ``RESTART`` and the rest as
  the class declares them), ``restart_takes_down``: the tasks its restart suspends first (what
  requires it through DEPS, directly or not, last in start order first) and
  ``restart_brings_back``: the same tasks, restarted after it in start order. WANTS never
  propagates a restart.

`load` resolves a ``MODULE:NAME`` reference (a Task subclass, a `Tasks` collection, or
anything with a ``TASKS`` attribute listing task classes, like a service class).

Pure: no shared state, safe from any thread (importing a module is the caller's business).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from lifecycle.collection import Tasks
from lifecycle.errors import LifecycleError
from lifecycle.graph import dependents, layers, topological_order
from lifecycle.restart import RestartPolicy
from lifecycle.stopping import stop_layers
from lifecycle.task import Task, task_name

__all__ = [
    "GraceCheck",
    "Plan",
    "PlanTargetError",
    "TaskPlan",
    "check_grace_period",
    "plan",
    "task_classes_of",
]


class PlanTargetError(LifecycleError, LookupError):
    """A ``MODULE:NAME`` reference names nothing that can be planned.

    Attributes: ``target`` (the reference) and ``problem``.
    """

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(f"cannot plan {target!r}: {problem}")

    def __str__(self) -> str:
        return str(self.args[0])


@attrs.frozen
class TaskPlan:
    """One task of a plan: its name, class, dependencies, kind, and what its loss would skip."""

    name: str
    qualname: str
    deps: tuple[str, ...]
    wants: tuple[str, ...]
    loopless: bool
    workers: int
    layer: int
    skips: tuple[str, ...]
    stop_layer: int
    stops_after: tuple[str, ...]
    restart: RestartPolicy = attrs.field(factory=RestartPolicy)
    restart_takes_down: tuple[str, ...] = ()

    @property
    def restart_brings_back(self) -> tuple[str, ...]:
        """What its restart brings back after it, in start order."""
        return tuple(reversed(self.restart_takes_down))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; ``restart`` (its policy, ``takes_down``, ``brings_back``) only
        for a task that may restart, as in a journal's header."""
        described = {
            "stop_layer": self.stop_layer,
            "stops_after": list(self.stops_after),
            "name": self.name,
            "class": self.qualname,
            "deps": list(self.deps),
            "wants": list(self.wants),
            "loopless": self.loopless,
            "workers": self.workers,
            "layer": self.layer,
            "skips": list(self.skips),
        }
        if self.restart.mode != "never":
            described["restart"] = {
                **self.restart.to_dict(),
                "takes_down": list(self.restart_takes_down),
                "brings_back": list(self.restart_brings_back),
            }
        return described


@attrs.frozen
class Plan:
    """The plan of a set of tasks; ``tasks`` are in start order."""

    layers: tuple[tuple[str, ...], ...]
    start_order: tuple[str, ...]
    stop_order: tuple[str, ...]
    tasks: tuple[TaskPlan, ...]
    stop_layers: tuple[tuple[str, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the schema of ``lifecycle plan --json``)."""
        return {
            "layers": [list(layer) for layer in self.layers],
            "stop_layers": [list(layer) for layer in self.stop_layers],
            "start_order": list(self.start_order),
            "stop_order": list(self.stop_order),
            "tasks": [task.to_dict() for task in self.tasks],
        }


def plan(target: object) -> Plan:
    """The plan of ``target``: a Task subclass (with its DEPS), a `Tasks` collection, an object
    whose ``tasks`` is one (a service instance), anything with a ``TASKS`` attribute (a service
    class), or a list or tuple of task classes.

    Raises `InvalidTask` (something that is not a usable task class, in ``target`` or in a
    DEPS/WANTS list), `DuplicateTask` (two classes, one name), `DependencyCycle` (naming the
    cycle, through DEPS or WANTS) and `PlanTargetError` for a target that is none of the above.
    """
    classes = task_classes_of(target)
    # Registration is the engine's own: dependencies first, the same errors, the same order.
    registered = Tasks(classes, name="plan").task_classes
    names = [task_name(cls) for cls in registered]
    known = set(names)
    edges = {
        task_name(cls): [n for n in (task_name(d) for d in (*cls.DEPS, *cls.WANTS)) if n in known]
        for cls in registered
    }
    requires = {task_name(cls): [task_name(d) for d in cls.DEPS] for cls in registered}
    grouped = layers(names, edges)
    start = topological_order(names, edges)
    stopping = stop_layers(start, edges)
    stop_layer_of = {name: index for index, layer in enumerate(stopping) for name in layer}
    after = {name: [n for n in start if name in edges[n]] for name in start}
    position = {name: index for index, name in enumerate(start)}
    layer_of = {name: index for index, layer in enumerate(grouped) for name in layer}
    by_name = {task_name(cls): cls for cls in registered}
    tasks = tuple(
        TaskPlan(
            name=name,
            qualname=f"{by_name[name].__module__}.{by_name[name].__qualname__}",
            deps=tuple(requires[name]),
            wants=tuple(task_name(w) for w in by_name[name].WANTS),
            loopless=bool(by_name[name].LOOPLESS),
            workers=0 if by_name[name].LOOPLESS else int(by_name[name].workers),
            layer=layer_of[name],
            skips=tuple(sorted(dependents(name, requires), key=position.__getitem__)),
            stop_layer=stop_layer_of[name],
            stops_after=tuple(after[name]),
            restart=by_name[name].restart_policy(),
            restart_takes_down=tuple(
                sorted(dependents(name, requires), key=position.__getitem__, reverse=True)
            ),
        )
        for name in start
    )
    return Plan(
        layers=tuple(tuple(layer) for layer in grouped),
        start_order=tuple(start),
        stop_order=tuple(name for layer in stopping for name in layer),
        tasks=tasks,
        stop_layers=tuple(tuple(layer) for layer in stopping),
    )


def task_classes_of(target: object) -> list[Any]:
    """The task classes ``target`` stands for (see `plan`); not yet validated as tasks.

    Raises `PlanTargetError` when ``target`` is none of the accepted kinds.
    """
    if isinstance(target, type) and issubclass(target, Task):
        return [target]
    if isinstance(target, Tasks):
        return list(target.task_classes)
    owned = getattr(target, "tasks", None) if not isinstance(target, type) else None
    if isinstance(owned, Tasks):  # a service instance: the tasks it selected
        return list(owned.task_classes)
    listed = getattr(target, "TASKS", None) if not isinstance(target, (str, bytes)) else None
    if listed is None and isinstance(target, (list, tuple)):
        listed = target
    if listed is None:
        raise PlanTargetError(
            repr(target),
            "expected a Task subclass, a Tasks collection, or a class with a TASKS attribute "
            f"listing task classes; got {type(target).__name__}",
        )
    if isinstance(listed, (str, bytes)) or not isinstance(listed, Iterable):
        raise PlanTargetError(
            repr(target), f"expected TASKS to list task classes; it is {listed!r}"
        )
    return list(listed)


@attrs.frozen
class GraceCheck:
    """Whether a stop fits in the time a supervisor grants it before it kills the process
    (Kubernetes' ``terminationGracePeriodSeconds``, systemd's ``TimeoutStopSec=``).

    ``grace_period``: the seconds granted; ``stop_timeout``: the service's stop deadline;
    ``stop_bound``: the longest its stop can take (`Service.stop_bound`); ``fits``: the bound
    is below the grace period (equal is too late: the kill and the exit would race).
    """

    grace_period: float
    stop_timeout: float
    stop_bound: float

    @property
    def fits(self) -> bool:
        return self.stop_bound < self.grace_period

    @property
    def message(self) -> str:
        if self.fits:
            return (
                f"the stop (at most {self.stop_bound:g}s: --stop-timeout {self.stop_timeout:g}s "
                f"and its grace) fits in the grace period of {self.grace_period:g}s"
            )
        return (
            f"warning: the stop may take {self.stop_bound:g}s (--stop-timeout "
            f"{self.stop_timeout:g}s and its grace), not below the grace period of "
            f"{self.grace_period:g}s: the process may be killed mid-stop; raise "
            "terminationGracePeriodSeconds / TimeoutStopSec above it, or lower --stop-timeout"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "grace_period": self.grace_period,
            "stop_timeout": self.stop_timeout,
            "stop_bound": self.stop_bound,
            "fits": self.fits,
        }


def check_grace_period(grace_period: float, stop_timeout: float, stop_bound: float) -> GraceCheck:
    """The `GraceCheck` of a stop bounded by ``stop_bound`` against ``grace_period`` seconds.

    Raises `ValueError` for a grace period that is not a finite number of seconds >= 0.
    """
    if (
        isinstance(grace_period, bool)
        or not isinstance(grace_period, int | float)
        or not (0 <= grace_period < float("inf"))
    ):
        raise ValueError(f"a grace period is seconds >= 0, not {grace_period!r}")
    return GraceCheck(float(grace_period), float(stop_timeout), float(stop_bound))
