"""Strict dispatch: the state of one subject under one `MachineSpec`.

Each spec is turned into one shared `transitions.Machine` (``model=None``,
``auto_transitions=False``, so there are no ``to_<state>`` back doors), and the dispatch table
is read back from that machine's events and checked against the spec. A `Lifecycle` then
dispatches with one dict lookup under its own lock: ``transitions``' per-model ``add_model``
(a list membership test, quadratic over many subjects) and its per-call event machinery are
kept off the hot path, and its `LockedMachine` is not used (a plain lock is several times
cheaper). Registering a subject is O(1).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from transitions import Machine

from lifecycle.errors import IllegalTransition, InvalidSpec
from lifecycle.journal import Journal
from lifecycle.spec import MachineSpec

__all__ = ["Lifecycle", "dispatch_table", "machine_config", "machine_for"]


def machine_config(spec: MachineSpec) -> dict[str, Any]:
    """The keyword arguments of a `transitions.Machine` for ``spec``: shared (``model=None``),
    no ``to_<state>`` triggers."""
    return {
        "model": None,
        "states": [s.value for s in spec.states],
        "initial": spec.initial,
        "transitions": [
            {"trigger": e.trigger, "source": list(e.sources), "dest": e.dest}
            for e in spec.transitions
        ],
        "auto_transitions": False,
    }


@functools.cache
def machine_for(spec: MachineSpec) -> Any:
    """The one shared `transitions.Machine` built from ``spec`` (no models attached)."""
    return Machine(**machine_config(spec))


@functools.cache
def dispatch_table(spec: MachineSpec) -> Mapping[tuple[str, str], Any]:
    """``(state, trigger) -> dest`` as read from `machine_for(spec)`.

    Raises `InvalidSpec` if the transitions machine disagrees with the spec's own table.
    """
    machine = machine_for(spec)
    table: dict[tuple[str, str], Any] = {}
    for trigger, event in machine.events.items():
        for source, edges in event.transitions.items():
            dests = {edge.dest for edge in edges}
            if len(dests) != 1:
                raise InvalidSpec(spec.name, f"{trigger!r} from {source!r} is ambiguous: {dests}")
            # Enum members compare and hash as their values, and keeping them avoids an enum
            # lookup on every `state` read.
            table[(source, trigger)] = spec.state(dests.pop())
    if table != dict(spec.table):
        raise InvalidSpec(spec.name, "the transitions machine disagrees with the spec table")
    return table


@functools.cache
def _unjournaled(spec: MachineSpec) -> Mapping[tuple[str, str], tuple[Any, int]]:
    """`dispatch_table` in the shape of `Journal.moves`, for a `Lifecycle` without a journal
    (the edge ids are never read)."""
    return {key: (dest, -1) for key, dest in dispatch_table(spec).items()}


@functools.cache
def _initial_state(spec: MachineSpec) -> Any:
    """``spec``'s initial state as its enum member, read once per spec (an enum lookup costs
    as much as the rest of a `Lifecycle`'s construction), after `dispatch_table` checked the
    transitions machine against ``spec``."""
    dispatch_table(spec)
    return spec.state(spec.initial)


class Lifecycle:
    """The current state of one subject (a task, a collection, a service) under one spec.

    `fire` is the only way the state changes. ``journal`` is fixed when the lifecycle is made
    (its table holds the edge ids of that journal). Thread-safe: every call holds ``lock``, a
    re-entrant lock that callers may also hold to make a check and a `fire` atomic. Each fired
    and each refused trigger is appended to ``journal``; with ``journal=None`` nothing is
    recorded (the strictness is the same: an illegal trigger still raises and changes nothing).

    ``on_terminal``, if given, is called as ``on_terminal(subject, state)`` right after a
    `fire` reaches a terminal state, with ``lock`` held: it must be quick and must neither
    block nor fire triggers (the collection only posts the news to its stop coordinator).
    """

    __slots__ = (
        "_state", "_table", "_terminal", "journal", "lock", "on_terminal", "spec", "subject"
    )

    def __init__(
        self,
        spec: MachineSpec,
        subject: str,
        journal: Journal | None,
        *,
        lock: threading.RLock | None = None,
        on_terminal: Callable[[str, Any], object] | None = None,
    ) -> None:
        self.spec = spec
        self.subject = subject
        self.journal = journal
        # Per spec, not per subject: the dispatch table checked once, the initial member.
        self._state: Any = _initial_state(spec)
        # ``(state, trigger) -> (dest, edge)``: with a journal, the edge id of each move in it
        # (`Journal.moves` describes the machine in the journal, which every record requires).
        self._table = _unjournaled(spec) if journal is None else journal.moves(spec)
        self.lock = lock if lock is not None else threading.RLock()
        self.on_terminal = on_terminal
        self._terminal = spec.terminal

    @property
    def state(self) -> Any:
        """The current state, a member of the spec's state enum."""
        return self._state

    @property
    def terminal(self) -> bool:
        return self._state in self.spec.terminal

    def allowed(self) -> tuple[str, ...]:
        """The triggers the current state accepts."""
        return self.spec.allowed(self._state)

    def can(self, trigger: str) -> bool:
        """Whether ``trigger`` is legal now (hold ``lock`` to act on the answer)."""
        return (self._state, trigger) in self._table

    def fire(self, trigger: str, cause: BaseException | str | None = None) -> Any:
        """Move along ``trigger`` and return the new state.

        Raises `IllegalTransition` when the current state has no such edge; the state is then
        unchanged and a refused record (``ok=False``) is journaled (when there is a journal).
        """
        # ``acquire``/``release`` rather than ``with``: measured cheaper on this hot path.
        lock = self.lock
        lock.acquire()
        try:
            source = self._state
            move = self._table.get((source, trigger))
            journal = self.journal
            if move is None:
                if journal is not None:
                    journal.record(
                        self.spec.name, self.subject, trigger, source, None, False, cause
                    )
                raise IllegalTransition(
                    self.subject, self.spec.name, source, trigger, self.spec.allowed(source)
                )
            dest, edge = move
            self._state = dest
            if journal is not None:
                journal.record_move(edge, self.subject, cause)
            if self.on_terminal is not None and dest in self._terminal:
                self.on_terminal(self.subject, dest)
        finally:
            lock.release()
        return dest

    def __repr__(self) -> str:
        return f"<Lifecycle {self.spec.name} {self.subject!r} {self._state}>"
