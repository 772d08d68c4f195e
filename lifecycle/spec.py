"""The three lifecycle machines, declared once as data.

`TASK`, `COLLECTION` and `SERVICE` are the contract: the engine dispatches from them, the
diagrams draw them, the audit checker and the test oracle judge runs against them, and
`lifecycle spec --json` prints them. A `MachineSpec` is validated when it is built, so a
malformed table fails at import time with `InvalidSpec`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from lifecycle.errors import IllegalTransition, InvalidSpec

__all__ = [
    "COLLECTION",
    "SERVICE",
    "SPECS",
    "TASK",
    "CollectionState",
    "Edge",
    "MachineSpec",
    "ServiceState",
    "TaskState",
]

#: Version of the JSON document produced by `MachineSpec.to_dict` / `lifecycle spec --json`.
SPEC_SCHEMA_VERSION = 1


class TaskState(enum.StrEnum):
    """States of one task."""

    REGISTERED = "registered"
    CREATED = "created"
    INITIALIZED = "initialized"
    RUNNING = "running"
    STOPPING = "stopping"
    SUSPENDING = "suspending"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    SKIPPED = "skipped"
    FAILED = "failed"


class CollectionState(enum.StrEnum):
    """States of a collection of tasks."""

    REGISTERING = "registering"
    CREATED = "created"
    INITIALIZED = "initialized"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class ServiceState(enum.StrEnum):
    """States of a service."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


def _strs(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _str_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(str(v) for v in values)


def _edges(values: Iterable[Edge]) -> tuple[Edge, ...]:
    return tuple(values)


@attrs.frozen
class Edge:
    """One row of a table: ``trigger`` moves each of ``sources`` to ``dest``."""

    trigger: str
    sources: tuple[str, ...] = attrs.field(converter=_strs)
    dest: str = attrs.field(converter=str)
    when: str = ""


def _build_table(spec: MachineSpec) -> dict[tuple[str, str], str]:
    """Validate ``spec`` and return its dispatch table; raises `InvalidSpec`."""
    name = spec.name
    known = {s.value for s in spec.states}
    if not known:
        raise InvalidSpec(name, "no states")
    if spec.initial not in known:
        raise InvalidSpec(name, f"initial state {spec.initial!r} is not a state")
    for state in spec.terminal:
        if state not in known:
            raise InvalidSpec(name, f"terminal state {state!r} is not a state")
    table: dict[tuple[str, str], str] = {}
    for edge in spec.transitions:
        if not edge.trigger or not edge.trigger.isidentifier():
            raise InvalidSpec(name, f"trigger {edge.trigger!r} is not an identifier")
        if not edge.sources:
            raise InvalidSpec(name, f"trigger {edge.trigger!r} has no source state")
        if edge.dest not in known:
            raise InvalidSpec(
                name, f"trigger {edge.trigger!r} leads to unknown state {edge.dest!r}"
            )
        for source in edge.sources:
            if source not in known:
                raise InvalidSpec(
                    name, f"trigger {edge.trigger!r} starts from unknown state {source!r}"
                )
            if source in spec.terminal:
                raise InvalidSpec(name, f"terminal state {source!r} has an exit ({edge.trigger!r})")
            key = (source, edge.trigger)
            if key in table and table[key] != edge.dest:
                raise InvalidSpec(
                    name,
                    f"trigger {edge.trigger!r} from {source!r} has two destinations: "
                    f"{table[key]!r} and {edge.dest!r}",
                )
            table[key] = edge.dest
    reached = {spec.initial}
    frontier = [spec.initial]
    while frontier:
        state = frontier.pop()
        for (source, _), dest in table.items():
            if source == state and dest not in reached:
                reached.add(dest)
                frontier.append(dest)
    for state in spec.states:
        if state.value not in reached:
            raise InvalidSpec(name, f"state {state.value!r} is unreachable from {spec.initial!r}")
    exits = {source for source, _ in table}
    for state in spec.states:
        if state.value not in spec.terminal and state.value not in exits:
            raise InvalidSpec(name, f"state {state.value!r} is a trap: not terminal, and no exit")
    return table


@attrs.frozen(cache_hash=True)  # hashed on every Lifecycle creation
class MachineSpec:
    """A state machine declared as data; validated on construction.

    Raises `InvalidSpec` naming the problem: an unknown state, two destinations for one
    (state, trigger), an unreachable state, a trap state (not terminal, no exit) or a terminal
    state with an exit. Immutable and safe to share between threads.
    """

    name: str
    states: type[enum.StrEnum]
    initial: str = attrs.field(converter=str)
    terminal: frozenset[str] = attrs.field(converter=_str_set)
    transitions: tuple[Edge, ...] = attrs.field(converter=_edges)
    table: Mapping[tuple[str, str], str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "table", _build_table(self))

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger, in declaration order, each once."""
        return tuple(dict.fromkeys(edge.trigger for edge in self.transitions))

    def state(self, value: str) -> enum.StrEnum:
        """The enum member for ``value``; raises `InvalidSpec` if it is not a state."""
        try:
            return self.states(value)
        except ValueError:
            raise InvalidSpec(self.name, f"{value!r} is not a state") from None

    def allowed(self, state: str) -> tuple[str, ...]:
        """The triggers ``state`` accepts, in declaration order (empty for terminal states)."""
        return tuple(t for t in self.triggers if (state, t) in self.table)

    def next(self, state: str, trigger: str, subject: str = "?") -> str:
        """The state ``trigger`` leads to from ``state``; raises `IllegalTransition`."""
        try:
            return self.table[(state, trigger)]
        except KeyError:
            raise IllegalTransition(
                subject, self.name, str(state), trigger, self.allowed(state)
            ) from None

    def edges(self) -> Iterator[tuple[str, str, str]]:
        """Every ``(source, trigger, dest)``, in declaration order."""
        for edge in self.transitions:
            for source in edge.sources:
                yield source, edge.trigger, edge.dest

    def is_terminal(self, state: str) -> bool:
        return state in self.terminal

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the stable schema of `lifecycle spec --json`)."""
        return {
            "name": self.name,
            "states": [s.value for s in self.states],
            "initial": self.initial,
            "terminal": [s.value for s in self.states if s.value in self.terminal],
            "transitions": [
                {
                    "trigger": e.trigger,
                    "sources": list(e.sources),
                    "dest": e.dest,
                    "when": e.when,
                }
                for e in self.transitions
            ],
        }


T = TaskState
TASK = MachineSpec(
    name="task",
    states=TaskState,
    initial=T.REGISTERED,
    terminal={T.STOPPED, T.SKIPPED, T.FAILED},
    transitions=(
        Edge("create", (T.REGISTERED,), T.CREATED, "the collection instantiates the class"),
        Edge("init", (T.CREATED,), T.INITIALIZED, "init_task() returned"),
        Edge(
            "skip",
            (T.CREATED,),
            T.SKIPPED,
            "init_task() raised SkipTask, or a required dependency ended skipped/failed",
        ),
        Edge(
            "fail",
            (
                T.REGISTERED,
                T.CREATED,
                T.INITIALIZED,
                T.RUNNING,
                T.STOPPING,
                T.SUSPENDING,
                T.BACKOFF,
            ),
            T.FAILED,
            "construction, a hook or a worker raised (past the restart policy); the cause is kept",
        ),
        Edge(
            "start", (T.INITIALIZED,), T.RUNNING, "workers launched (LOOPLESS: nothing to launch)"
        ),
        Edge("stop", (T.CREATED, T.INITIALIZED), T.STOPPED, "stopped before it ever ran"),
        Edge("stop", (T.RUNNING,), T.STOPPING, "stop requested; on_stop() is called"),
        Edge(
            "finish",
            (T.RUNNING, T.STOPPING),
            T.STOPPED,
            "every worker has exited (LOOPLESS: at once)",
        ),
        Edge(
            "crash",
            (T.RUNNING,),
            T.BACKOFF,
            "a worker raised (RESTART on-failure, always) or the run loop returned unasked "
            "(always), within RESTART_LIMIT: it waits its backoff",
        ),
        Edge(
            "suspend",
            (T.RUNNING,),
            T.SUSPENDING,
            "a task it requires (DEPS) restarts: stop_event is set, on_stop() is called",
        ),
        Edge(
            "finish",
            (T.SUSPENDING,),
            T.BACKOFF,
            "every worker and on_stop() returned: it waits for the task it requires",
        ),
        Edge(
            "stop",
            (T.SUSPENDING,),
            T.STOPPING,
            "stop requested while suspending: on_stop() already runs",
        ),
        Edge(
            "restart",
            (T.BACKOFF,),
            T.CREATED,
            "its backoff passed and what it requires runs: a fresh instance replaces it",
        ),
        Edge("stop", (T.BACKOFF,), T.STOPPED, "stop requested while it waits to restart"),
    ),
)

C = CollectionState
COLLECTION = MachineSpec(
    name="collection",
    states=CollectionState,
    initial=C.REGISTERING,
    terminal={C.STOPPED, C.FAILED},
    transitions=(
        Edge("create", (C.REGISTERING,), C.CREATED, "every task class was instantiated"),
        Edge("init", (C.CREATED,), C.INITIALIZED, "every task initialized or skipped"),
        Edge("start", (C.INITIALIZED,), C.RUNNING, "every initialized task started"),
        Edge("stop", (C.RUNNING,), C.STOPPING, "stop requested"),
        Edge("stop", (C.CREATED, C.INITIALIZED), C.STOPPED, "stopped before it ever ran"),
        Edge("finish", (C.STOPPING,), C.STOPPED, "every task stopped"),
        Edge(
            "fail",
            (C.REGISTERING, C.CREATED, C.STOPPING),
            C.FAILED,
            "a constructor raised, init errors, or stop errors / the stop deadline passed",
        ),
    ),
)

S = ServiceState
SERVICE = MachineSpec(
    name="service",
    states=ServiceState,
    initial=S.NEW,
    terminal={S.STOPPED, S.FAILED},
    transitions=(
        Edge("start", (S.NEW,), S.STARTING, "start() or run() was called"),
        Edge("started", (S.STARTING,), S.RUNNING, "every task is running"),
        Edge("stop", (S.RUNNING, S.STARTING), S.STOPPING, "shutdown was requested"),
        Edge("finish", (S.STOPPING,), S.STOPPED, "every task stopped in time"),
        Edge(
            "fail",
            (S.STARTING, S.RUNNING, S.STOPPING),
            S.FAILED,
            "init failed, a worker crashed, or stop failed / timed out",
        ),
    ),
)
del T, C, S

#: The three machines by name.
SPECS: Mapping[str, MachineSpec] = {spec.name: spec for spec in (TASK, COLLECTION, SERVICE)}
