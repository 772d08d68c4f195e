"""Strict dispatch: every (state, trigger) pair, random trigger sequences, and the journal."""

from __future__ import annotations

import pickle
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transitions import MachineError

from lifecycle.engine import Lifecycle, dispatch_table, machine_for
from lifecycle.errors import IllegalTransition
from lifecycle.journal import Journal
from lifecycle.spec import COLLECTION, SERVICE, TASK, MachineSpec
from tests.strategies import edge_set, paths_to_states, replay, sequence_problems

ALL_SPECS = [TASK, COLLECTION, SERVICE]
spec_params = pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)

#: Names that are not triggers of any spec, including transitions' own back-door names.
BOGUS_TRIGGERS = ["explode", "to_running", "to_stopped", "trigger", "may_start", ""]


def lifecycle_in(spec: MachineSpec, state: str, journal: Journal) -> Lifecycle:
    """A fresh subject driven to ``state`` along a shortest path of the table."""
    lc = Lifecycle(spec, f"{spec.name}-{state}", journal)
    for trigger in paths_to_states(spec)[state]:
        lc.fire(trigger)
    return lc


def pair_ids(spec: MachineSpec) -> list[tuple[MachineSpec, str, str]]:
    return [(spec, s.value, t) for s in spec.states for t in (*spec.triggers, "explode")]


ALL_PAIRS = [p for spec in ALL_SPECS for p in pair_ids(spec)]


@pytest.mark.parametrize(
    ("spec", "state", "trigger"), ALL_PAIRS, ids=[f"{s.name}:{st}:{t}" for s, st, t in ALL_PAIRS]
)
def test_fire_is_legal_iff_the_pair_is_in_the_table(
    spec: MachineSpec, state: str, trigger: str
) -> None:
    journal = Journal()
    lc = lifecycle_in(spec, state, journal)
    before = journal.records
    table = edge_set(spec)
    if (state, trigger) in table:
        assert lc.can(trigger)
        assert lc.fire(trigger, cause="because") == table[(state, trigger)]
        assert lc.state == table[(state, trigger)]
        (rec,) = journal.records[len(before) :]
        assert (rec.subject, rec.kind, rec.trigger, rec.source, rec.dest, rec.ok, rec.cause) == (
            lc.subject,
            spec.name,
            trigger,
            state,
            table[(state, trigger)],
            True,
            "because",
        )
    else:
        assert not lc.can(trigger)
        with pytest.raises(IllegalTransition) as info:
            lc.fire(trigger)
        err = info.value
        assert not isinstance(err, MachineError)
        assert (err.subject, err.kind, err.state, err.trigger) == (
            lc.subject,
            spec.name,
            state,
            trigger,
        )
        assert err.allowed == spec.allowed(state) == lc.allowed()
        assert lc.state == state
        (rec,) = journal.records[len(before) :]
        assert (rec.subject, rec.trigger, rec.source, rec.dest, rec.ok) == (
            lc.subject,
            trigger,
            state,
            None,
            False,
        )
    states, problems = replay(journal.records)
    assert problems == []
    assert states[(spec.name, lc.subject)] == lc.state


@spec_params
@given(data=st.data())
def test_random_trigger_sequences_follow_the_table(spec: MachineSpec, data: st.DataObject) -> None:
    triggers = data.draw(
        st.lists(st.sampled_from([*spec.triggers, *BOGUS_TRIGGERS]), max_size=25), label="fired"
    )
    journal = Journal()
    lc = Lifecycle(spec, "subject", journal)
    expected = spec.initial
    for trigger in triggers:
        legal = (expected, trigger) in spec.table
        if legal:
            expected = spec.next(expected, trigger)
            assert lc.fire(trigger) == expected
        else:
            with pytest.raises(IllegalTransition) as info:
                lc.fire(trigger)
            assert info.value.state == expected
            assert info.value.allowed == spec.allowed(expected)
        assert lc.state == expected
        assert lc.terminal == spec.is_terminal(expected)
    records = journal.records
    assert len(records) == len(triggers)
    assert [r.trigger for r in records] == triggers
    assert sequence_problems(records) == []
    states, problems = replay(records)
    assert problems == []
    assert states.get((spec.name, "subject"), spec.initial) == lc.state


@spec_params
def test_one_shared_machine_per_spec_without_auto_transitions(spec: MachineSpec) -> None:
    machine = machine_for(spec)
    assert machine_for(spec) is machine
    assert set(machine.events) == set(spec.triggers)
    assert not any(name.startswith("to_") for name in machine.events)


@spec_params
def test_dispatch_table_read_from_transitions_matches_the_spec(spec: MachineSpec) -> None:
    assert dict(dispatch_table(spec)) == edge_set(spec)


@spec_params
def test_creating_subjects_never_adds_models_to_the_shared_machine(spec: MachineSpec) -> None:
    # transitions' add_model is a list membership test (quadratic over many subjects).
    journal = Journal()
    subjects = [Lifecycle(spec, f"s{i}", journal) for i in range(50)]
    for lc in subjects:
        lc.fire(spec.triggers[0])
    assert list(machine_for(spec).models) == []


def test_back_door_names_of_transitions_are_illegal_triggers() -> None:
    journal = Journal()
    lc = Lifecycle(TASK, "t", journal)
    for name in ("to_running", "to_stopped", "trigger", "add_model"):
        with pytest.raises(IllegalTransition):
            lc.fire(name)
        assert lc.state == "registered"
        assert not hasattr(lc, name)
    assert [r.ok for r in journal.records] == [False] * 4


def test_a_failure_cause_is_journaled_with_type_message_and_traceback() -> None:
    journal = Journal()
    lc = Lifecycle(TASK, "t", journal)
    try:
        raise ValueError("disk full")
    except ValueError as exc:
        lc.fire("fail", exc)
    cause = journal.records[-1].cause
    assert cause is not None
    assert "Traceback" in cause
    assert "ValueError: disk full" in cause


def test_a_refused_trigger_keeps_its_cause_too() -> None:
    journal = Journal()
    lc = Lifecycle(TASK, "t", journal)
    with pytest.raises(IllegalTransition):
        lc.fire("finish", cause="late")
    assert journal.records[-1].cause == "late"


def test_fire_uses_the_lock_it_was_given() -> None:
    lock = threading.RLock()
    lc = Lifecycle(TASK, "t", Journal(), lock=lock)
    assert lc.lock is lock
    done = threading.Event()

    def fire_elsewhere() -> None:
        lc.fire("create")
        done.set()

    with lock:
        thread = threading.Thread(target=fire_elsewhere)
        thread.start()
        # The other thread cannot fire while we hold the lock.
        assert not done.wait(0.05)
        assert lc.state == "registered"
    assert done.wait(5)
    thread.join(5)
    assert lc.state == "created"


def test_illegal_transition_message_names_subject_state_and_what_is_accepted() -> None:
    lc = Lifecycle(TASK, "poller", Journal())
    with pytest.raises(IllegalTransition) as info:
        lc.fire("start")
    message = str(info.value)
    assert "'poller'" in message and "'start'" in message and "registered" in message
    assert "create" in message and "fail" in message
    lc.fire("fail")
    with pytest.raises(IllegalTransition, match="terminal state"):
        lc.fire("stop")


def test_illegal_transition_survives_pickling() -> None:
    err = IllegalTransition("s", "task", "running", "init", ("stop", "fail"))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.subject, copy.kind, copy.state, copy.trigger, copy.allowed) == (
        "s",
        "task",
        "running",
        "init",
        ("stop", "fail"),
    )
    assert str(copy) == str(err)


def test_repr_names_kind_subject_and_state() -> None:
    lc = Lifecycle(SERVICE, "svc", Journal())
    assert repr(lc) == "<Lifecycle service 'svc' new>"
