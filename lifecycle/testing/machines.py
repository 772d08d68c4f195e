"""`check_machine`: property-test a machine bound to objects (hypothesis required).

``check_machine(spec)`` drives objects bound to ``spec`` (by `lifecycle.bind`, or made by your
``factory``) with random legal and illegal triggers, one at a time and from several threads at
once, and checks what the lifecycle promises:

* a legal trigger moves the object where the table says, returns that state, and is journaled
  ``ok``; ``state``, ``can`` and ``allowed`` agree with the table at every step;
* an illegal trigger (one the table lacks, or a name that is no trigger) raises
  `IllegalTransition` with the right ``state`` and ``allowed``, and changes nothing;
* a legal trigger that the object's own guard or hook refuses raises `TransitionVetoed` and
  changes nothing;
* triggers fired at one object from several threads at once behave as if fired one after the
  other in some order, none lost and none applied twice;
* when the object's class has a journal, replaying its records for the objects made gives each
  object's live state, every ``ok`` record is an edge of the table that starts where the
  previous one ended, and every refused record is either an edge the table lacks or a veto.

On failure it raises `AssertionError` whose message says what went wrong and the minimal scenario
hypothesis found, step by step. This module imports hypothesis: install it (the ``test`` extra).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from lifecycle.bind import Binding, TransitionVetoed, bind, is_veto_cause
from lifecycle.errors import IllegalTransition, safe_repr
from lifecycle.journal import Journal, Transition
from lifecycle.spec import MachineSpec

__all__ = ["check_machine", "replay"]

#: Names fired as triggers that no spec may accept (``to_<state>`` is transitions' back door).
_BOGUS = ("no_such_trigger", "to_closed", "trigger")
#: The most objects one scenario makes, and the most threads that fire at once.
_SUBJECTS = 3
_THREADS = 4
#: How long a trigger may take before the check calls it hung (a deadlock).
_HUNG = 10.0


class _Violation(AssertionError):
    """A broken promise, found during one run."""


def replay(
    records: Iterable[Transition], spec: MachineSpec, subjects: Iterable[str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Replay ``spec``'s records (of ``subjects`` only, if given) from its initial state.

    Returns each subject's replayed state and the problems found: an ``ok`` record that is not
    an edge of the table, does not start where the previous one ended, or goes elsewhere than
    the table says; a refused record that names another state than the replayed one, has a
    dest, or refuses an edge the table has without a veto cause. Pure.
    """
    wanted = None if subjects is None else set(subjects)
    states: dict[str, str] = {}
    problems: list[str] = []
    for rec in records:
        if rec.kind != spec.name or (wanted is not None and rec.subject not in wanted):
            continue
        current = states.setdefault(rec.subject, spec.initial)
        where = f"record #{rec.seq} ({rec.subject} {rec.trigger!r})"
        if rec.source != current:
            problems.append(f"{where} starts from {rec.source}, but the subject was {current}")
        edge = spec.table.get((current, rec.trigger))
        if rec.ok:
            if edge is None:
                problems.append(f"{where} is ok, but {current} has no {rec.trigger!r}")
            elif rec.dest != edge:
                problems.append(f"{where} went to {rec.dest}, the table says {edge}")
            states[rec.subject] = edge if edge is not None else str(rec.dest)
        else:
            if rec.dest is not None:
                problems.append(f"{where} is refused, yet names a dest ({rec.dest})")
            if edge is not None and not is_veto_cause(rec.cause):
                problems.append(
                    f"{where} is refused, but {current} accepts {rec.trigger!r} and the cause "
                    "is no veto"
                )
    return states, problems


def check_machine(
    spec: MachineSpec,
    factory: Callable[[], Any] | None = None,
    *,
    max_examples: int = 100,
) -> None:
    """Check objects bound to ``spec`` against the table (see the module doc).

    ``factory`` makes one fresh object per call, in ``spec.initial``; by default, instances of
    a class bound to ``spec`` with an in-memory journal. An object needs ``state``,
    ``fire(trigger)``, ``can(trigger)`` and ``allowed()``; when its class is bound with a
    journal, the journal is checked too. ``max_examples``: how many random scenarios.

    Raises `AssertionError` naming the broken promise and the minimal scenario. Runs threads
    of its own and joins them before returning.
    """
    if not isinstance(spec, MachineSpec):
        raise TypeError(f"check_machine() takes a MachineSpec, not {type(spec).__name__}")
    if factory is None:
        factory = bind(spec, journal=Journal())(type(f"{spec.name}_subject", (), {}))
    runs: list[list[str]] = []
    found: list[tuple[str, list[str]]] = []
    machine = _machine_for(spec, factory, runs, found)
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=max_examples,
                deadline=None,
                report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck),
            ),
        )
    except InvalidArgument:
        raise
    except Exception as exc:
        if isinstance(exc, _Violation):
            what, steps, scenario = str(exc), runs[-1], "minimal scenario"
        elif found:
            # Hypothesis gave up shrinking (the failure comes and goes: a race): report the
            # shortest failing run seen.
            what, steps = min(found, key=lambda item: len(item[1]))
            scenario = "shortest scenario seen (it does not fail every time)"
        else:
            what, steps = f"{type(exc).__name__}: {exc}", runs[-1] if runs else []
            scenario = "minimal scenario"
        lines = "\n".join(f"  {n}. {step}" for n, step in enumerate(steps, 1)) or "  (none)"
        raise AssertionError(
            f"the {spec.name} machine broke a promise: {what}\n{scenario}:\n{lines}"
        ) from exc


def _binding(obj: Any) -> Binding | None:
    binding = getattr(type(obj), "__lifecycle__", None)
    return binding if isinstance(binding, Binding) else None


def _machine_for(
    spec: MachineSpec,
    factory: Callable[[], Any],
    runs: list[list[str]],
    found: list[tuple[str, list[str]]],
) -> type[RuleBasedStateMachine]:
    triggers = spec.triggers
    fired = st.sampled_from([*triggers, *_BOGUS])
    table = spec.table

    class MachineCheck(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.subjects: list[Any] = []
            self.expected: list[str] = []
            self.names: list[str] = []
            self.journal: Journal | None = None
            self.mark = 0
            self.log: list[str] = []
            runs.append(self.log)

        def fail(self, problem: str) -> NoReturn:
            found.append((problem, list(self.log)))
            raise _Violation(problem)

        @initialize()
        def first(self) -> None:
            self.make()

        @precondition(lambda self: len(self.subjects) < _SUBJECTS)
        @rule()
        def make(self) -> None:
            obj = factory()
            index = len(self.subjects)
            binding = _binding(obj)
            name = f"#{index}"
            if binding is not None and binding.journal is not None:
                if self.journal is None:
                    self.journal, self.mark = binding.journal, len(binding.journal)
                name = binding.subject_of(obj)
            self.subjects.append(obj)
            self.expected.append(spec.initial)
            self.names.append(name)
            self.log.append(f"made object {index} ({name})")
            self.agrees(index)

        def agrees(self, index: int) -> None:
            obj, expected = self.subjects[index], self.expected[index]
            if obj.state != expected:
                self.fail(f"object {index} is in {obj.state}, but the table says {expected}")
            if tuple(obj.allowed()) != spec.allowed(expected):
                self.fail(
                    f"object {index} in {expected}: allowed() is {tuple(obj.allowed())}, "
                    f"the table says {spec.allowed(expected)}"
                )
            for trigger in (*triggers, *_BOGUS):
                if bool(obj.can(trigger)) != ((expected, trigger) in table):
                    self.fail(
                        f"object {index} in {expected}: can({trigger!r}) is {obj.can(trigger)}"
                    )

        @precondition(lambda self: bool(self.subjects))
        @rule(pick=st.integers(0, _SUBJECTS - 1), trigger=fired)
        def fire(self, pick: int, trigger: str) -> None:
            index = pick % len(self.subjects)
            obj, source = self.subjects[index], self.expected[index]
            dest = table.get((source, trigger))
            step = f"object {index} in {source}: fire({trigger!r})"
            try:
                result = obj.fire(trigger)
            except IllegalTransition as exc:
                self.log.append(f"{step} raised IllegalTransition")
                if dest is not None:
                    self.fail(f"{step} raised IllegalTransition, but the table goes to {dest}")
                if (exc.state, tuple(exc.allowed)) != (source, spec.allowed(source)):
                    self.fail(
                        f"{step}: IllegalTransition says state {exc.state}, allowed "
                        f"{exc.allowed}; the table says {source}, {spec.allowed(source)}"
                    )
            except TransitionVetoed:
                self.log.append(f"{step} was vetoed")
                if dest is None:
                    self.fail(f"{step} raised TransitionVetoed, but it is not even legal")
            except Exception as exc:
                self.log.append(f"{step} raised {type(exc).__name__}")
                self.fail(f"{step} raised {type(exc).__name__}: {safe_repr(exc)}")
            else:
                self.log.append(f"{step} returned {result}")
                if dest is None:
                    self.fail(f"{step} returned {result}, but the table has no such edge")
                if result != dest:
                    self.fail(f"{step} returned {result}, the table says {dest}")
                self.expected[index] = dest
            self.agrees(index)

        @precondition(lambda self: bool(self.subjects))
        @rule(
            pick=st.integers(0, _SUBJECTS - 1),
            batch=st.lists(fired, min_size=2, max_size=_THREADS),
        )
        def fire_at_once(self, pick: int, batch: list[str]) -> None:
            index = pick % len(self.subjects)
            obj, source = self.subjects[index], self.expected[index]
            self.log.append(f"object {index} in {source}: {len(batch)} threads fire {batch}")
            outcomes = _fire_together(obj, batch)
            if any(outcome is None for outcome in outcomes):
                self.fail(f"a trigger did not return within {_HUNG} s (a deadlock?)")
            for trigger, outcome in zip(batch, outcomes, strict=True):
                if outcome is not None and outcome[0] == "error":
                    self.fail(f"fire({trigger!r}) from a thread raised {outcome[1]}")
            ends = _serial_ends(source, batch, outcomes, table)
            seen = [o[1] if o else None for o in outcomes]
            self.log.append(f"  they gave {seen}; the object is now in {obj.state}")
            if obj.state not in ends:
                self.fail(
                    f"no order of {batch} fired one at a time from {source} gives the outcomes "
                    f"{seen} and leaves the object in {obj.state} (a lost or doubled move)"
                )
            self.expected[index] = str(obj.state)
            self.agrees(index)

        @invariant()
        def journal_replays_to_the_live_state(self) -> None:
            if self.journal is None:
                return
            records = self.journal.records[self.mark :]
            states, problems = replay(records, spec, self.names)
            if problems:
                self.fail("the journal does not tell the truth: " + "; ".join(problems[:3]))
            for index, (obj, name) in enumerate(zip(self.subjects, self.names, strict=True)):
                replayed = states.get(name, spec.initial)
                if obj.state != replayed:
                    self.fail(
                        f"replaying the journal gives {replayed} for object {index}, "
                        f"but it is in {obj.state}"
                    )

    MachineCheck.__name__ = MachineCheck.__qualname__ = f"Check_{spec.name}"
    return MachineCheck


Outcome = tuple[str, str] | None


def _fire_together(obj: Any, batch: Sequence[str]) -> list[Outcome]:
    """Fire each trigger of ``batch`` at ``obj`` from its own thread, all released at once.

    Each outcome: ``("ok", dest)``, ``("illegal", state)``, ``("vetoed", state)``,
    ``("error", description)``, or None for a thread that did not return in time.
    """
    outcomes: list[Outcome] = [None] * len(batch)
    start = threading.Barrier(len(batch))

    def fire(slot: int, trigger: str) -> None:
        try:
            start.wait(_HUNG)
            outcomes[slot] = ("ok", str(obj.fire(trigger)))
        except IllegalTransition as exc:
            outcomes[slot] = ("illegal", str(exc.state))
        except TransitionVetoed as exc:
            outcomes[slot] = ("vetoed", str(exc.state))
        except BaseException as exc:  # reported as a broken promise, never lost
            outcomes[slot] = ("error", f"{type(exc).__name__}: {safe_repr(exc)}")

    threads = [
        threading.Thread(target=fire, args=(slot, trigger), name=f"check-machine-{slot}")
        for slot, trigger in enumerate(batch)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_HUNG)
    return outcomes


def _serial_ends(
    source: str, batch: Sequence[str], outcomes: Sequence[Outcome], table: Any
) -> set[str]:
    """The end states of the orders of ``batch`` that, fired one at a time from ``source``,
    give exactly ``outcomes`` (empty: no order does)."""
    ends: set[str] = set()
    for order in itertools.permutations(range(len(batch))):
        state = source
        for slot in order:
            outcome = outcomes[slot]
            if outcome is None:
                break
            dest = table.get((state, batch[slot]))
            kind, value = outcome
            if kind == "ok" and dest is not None and value == dest:
                state = dest
            elif kind == "ok" or value != state or (kind == "illegal") != (dest is None):
                break  # a refusal leaves the state; illegal iff the table lacks the edge
        else:
            ends.add(state)
    return ends
