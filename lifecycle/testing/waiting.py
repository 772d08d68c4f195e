"""`wait_for_state`: block until a lifecycle reaches a state, woken by its journal.

Tests that must wait on a lifecycle (a service coming up, a task ending after a crash) should
not poll: this subscribes to the subject's journal and wakes on the subject's own records, so
it returns the moment the state is reached, and fails at once when the state can no longer be
reached (the subject ended elsewhere, or moved past it for good).
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from collections.abc import Mapping
from typing import Any

from lifecycle.engine import Lifecycle
from lifecycle.errors import LifecycleError
from lifecycle.journal import Transition
from lifecycle.spec import MachineSpec

__all__ = [
    "StateTimeout",
    "StateUnreachable",
    "WaitOnLoopThread",
    "resolve_lifecycle",
    "wait_for_state",
]


class StateTimeout(LifecycleError, TimeoutError):
    """A lifecycle did not reach a state within the time given.

    Attributes: ``subject`` (its name), ``kind`` (its machine), ``wanted`` (the state waited
    for), ``state`` (the state it was in when the time ran out) and ``timeout`` (seconds).
    """

    def __init__(self, subject: str, kind: str, wanted: str, state: str, timeout: float) -> None:
        self.subject = subject
        self.kind = kind
        self.wanted = wanted
        self.state = state
        self.timeout = timeout
        super().__init__(
            f"{kind} {subject!r} did not reach {wanted} within {timeout:g} s; it is {state}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.kind, self.wanted, self.state, self.timeout))


class StateUnreachable(LifecycleError):
    """A lifecycle is in a state from which the state waited for cannot be reached (a
    terminal state other than it, or a state past it): waiting longer cannot help.

    Attributes: ``subject``, ``kind``, ``wanted`` and ``state``, as for `StateTimeout`, and
    ``terminal`` (whether ``state`` is a terminal state).
    """

    def __init__(
        self, subject: str, kind: str, wanted: str, state: str, terminal: bool = False
    ) -> None:
        self.subject = subject
        self.kind = kind
        self.wanted = wanted
        self.state = state
        self.terminal = terminal
        ended = "ended" if terminal else "is"
        super().__init__(
            f"{kind} {subject!r} {ended} {state}, from which {wanted} cannot be reached"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.kind, self.wanted, self.state, self.terminal))


class WaitOnLoopThread(LifecycleError, RuntimeError):
    """`wait_for_state` was called on the thread of the event loop its subject's code runs
    on: the wait would block that loop, and so the transitions it waits for (an async task's
    hooks, the stop of a served service) could never come.

    Attributes: ``subject`` (its name), ``kind`` (its machine) and ``wanted`` (the state).
    """

    def __init__(self, subject: str, kind: str, wanted: str) -> None:
        self.subject = subject
        self.kind = kind
        self.wanted = wanted
        super().__init__(
            f"wait_for_state({kind} {subject!r}, {wanted}) was called on the thread of the "
            "event loop its code runs on; blocking there would stall the loop the wait depends "
            "on: call it from another thread (in a coroutine: await asyncio.to_thread("
            "wait_for_state, ...))"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.kind, self.wanted))


@functools.cache
def reachable(spec: MachineSpec) -> Mapping[str, frozenset[str]]:
    """State -> every state reachable from it (itself included) under ``spec``'s table."""
    exits: dict[str, set[str]] = {s.value: set() for s in spec.states}
    for source, _trigger, dest in spec.edges():
        exits[source].add(dest)
    result: dict[str, frozenset[str]] = {}
    for start in exits:
        seen = {start}
        todo = [start]
        while todo:  # a loop, not recursion: any size of machine
            for dest in exits[todo.pop()]:
                if dest not in seen:
                    seen.add(dest)
                    todo.append(dest)
        result[start] = frozenset(seen)
    return result


def resolve_lifecycle(subject: object) -> Lifecycle:
    """The `Lifecycle` of ``subject``: a `Lifecycle` itself, or anything with a ``lifecycle``
    attribute that is one (a `Task`, a `Tasks` collection, a `Service`).

    Raises `TypeError` for anything else; a task no collection created raises the
    `LifecycleError` its ``lifecycle`` property raises.
    """
    if isinstance(subject, Lifecycle):
        return subject
    found = getattr(subject, "lifecycle", None)
    if isinstance(found, Lifecycle):
        return found
    raise TypeError(
        f"cannot wait on {type(subject).__qualname__}: expected a Lifecycle, or an object "
        "with a lifecycle attribute (a Task, a Tasks collection, a Service)"
    )


def _subject_loop(subject: object) -> asyncio.AbstractEventLoop | None:
    """The event loop ``subject``'s code runs on, as far as it tells: an async task's or a
    collection's ``loop``, a service's collection's, or, for a task, its service's (None if
    none: a thread-only service, or a bare `Lifecycle`)."""
    if isinstance(subject, Lifecycle):
        return None
    for owner in (subject, getattr(subject, "service", None)):
        for holder in (owner, getattr(owner, "tasks", None)):
            loop = getattr(holder, "loop", None)
            if isinstance(loop, asyncio.AbstractEventLoop):
                return loop
    return None


def wait_for_state(subject: object, state: str, timeout: float) -> Any:
    """Block until ``subject`` is in ``state``; return that state (a member of its enum).

    ``subject``: a `Task`, `Tasks`, `Service`, `Lifecycle`, or any object with a
    ``lifecycle`` attribute. ``state``: one of its machine's states (a string or the enum
    member). ``timeout``: seconds, finite and >= 0. Returns at once if the subject is already
    there; otherwise wakes on the subject's own journal records (no polling), so a state held
    only for an instant (``stopping`` on the way to ``stopped``) is still seen.

    Raises `StateTimeout` (a `TimeoutError`) naming the subject, the state wanted and the
    current one when ``timeout`` passes; `StateUnreachable` as soon as the subject is in a
    state from which ``state`` cannot be reached (it ended otherwise, or moved past it);
    `InvalidSpec` for a state its machine does not have; `TypeError` for a subject without a
    lifecycle and `ValueError` for a bad timeout. A lifecycle without a journal (nothing to
    wake on) raises `LifecycleError`.

    It blocks the calling thread. Safe from any thread but one that would fire the
    transition (which would then never come): in particular, never on the thread of the event
    loop an async task or a served service runs on. Called there, when it would have to wait
    it raises `WaitOnLoopThread` instead of stalling the loop (from a coroutine, use
    ``await asyncio.to_thread(wait_for_state, ...)``). The loop is known from the subject (a
    task, a collection or a service), not from a bare `Lifecycle`.

    Records are matched by machine and subject name: two subjects of one machine with the
    same name in one journal (two collections named alike sharing a journal) wake each
    other's waiters, which only costs a second look at the state.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be seconds (a number), not {timeout!r}")
    if not (0 <= timeout < math.inf):
        raise ValueError(f"timeout must be finite seconds >= 0, not {timeout!r}")
    lc = resolve_lifecycle(subject)
    spec = lc.spec
    wanted = spec.state(str(state))  # InvalidSpec for a state the machine lacks
    journal = lc.journal
    subscribe = getattr(journal, "subscribe", None)
    if not callable(subscribe):
        raise LifecycleError(
            f"{spec.name} {lc.subject!r} has no journal to watch (journal={journal!r}); give "
            "it a lifecycle.Journal to wait on its state"
        )
    can_reach = reachable(spec)
    woken = threading.Event()
    # The last state seen in a record of this subject: a state passed through in an instant is
    # caught here even if the subject moved on before the waiter woke.
    seen: list[Any] = []

    def listener(rec: Transition) -> None:
        # On the firing thread, under the journal's lock: only quick, lock-free work here.
        if rec.ok and rec.subject == lc.subject and rec.kind == spec.name:
            seen.append(rec.dest)
            if rec.dest == wanted or wanted not in can_reach.get(str(rec.dest), ()):
                woken.set()

    with lc.lock:  # no transition between reading the state and subscribing
        current = lc.state
        if current == wanted:
            return current
        if wanted not in can_reach[str(current)]:
            raise _unreachable(lc, wanted, current)
        if timeout > 0 and _on_loop_of(subject):
            raise WaitOnLoopThread(lc.subject, spec.name, str(wanted))
        unsubscribe = subscribe(listener)
    try:
        woken.wait(timeout)
    finally:
        unsubscribe()
    for dest in seen:
        if dest == wanted:
            return wanted
        if wanted not in can_reach.get(str(dest), ()):
            raise _unreachable(lc, wanted, dest)
    raise StateTimeout(lc.subject, spec.name, str(wanted), str(lc.state), timeout)


def _on_loop_of(subject: object) -> bool:
    """Whether this thread runs the event loop ``subject``'s code runs on."""
    loop = _subject_loop(subject)
    if loop is None:
        return False
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs on this thread
        return False


def _unreachable(lc: Lifecycle, wanted: Any, state: Any) -> StateUnreachable:
    spec = lc.spec
    return StateUnreachable(
        lc.subject, spec.name, str(wanted), str(state), spec.is_terminal(str(state))
    )
