"""What the audit says about runs that a forger or a broken writer left behind.

Each test gives the audit one thing a run should not hold (a record that leaves a state its
subject never reached, a restart without a crash before it, a clock that goes back, a task the
run never started but the table describes, a last line cut short) and pins the finding it gets:
its rule, line (or seq), subject and what its message says was expected. And the parts of the
audit other modules build on (`StopOrderRule`, `AuditReport.run_id`, `check`'s refusals) keep
their contracts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lifecycle.audit import AuditInputError, StopOrderRule, audit, check
from lifecycle.journal import Journal, Transition, canonical
from lifecycle.seal import keygen, load_verify_key
from lifecycle.spec import SPECS, TASK


def _record(
    seq: int,
    kind: str,
    subject: str,
    trigger: str,
    source: str,
    dest: str | None,
    ok: bool = True,
    mono: int | None = None,
) -> Transition:
    return Transition(
        seq, 1.0, seq if mono is None else mono, kind, subject, trigger, source, dest, ok, None, "t"
    )


def _steps(kind: str, subject: str, *triggers: str, first_seq: int = 1) -> list[Transition]:
    """The ``ok`` records of ``subject`` (of the built-in machine ``kind``) firing
    ``triggers`` from its initial state."""
    spec = SPECS[kind]
    out: list[Transition] = []
    state = spec.initial
    for seq, trigger in enumerate(triggers, first_seq):
        dest = spec.table[(state, trigger)]
        out.append(_record(seq, kind, subject, trigger, state, dest))
        state = dest
    return out


# -- continuity ---------------------------------------------------------------------------------


def test_a_subjects_first_record_off_the_initial_state_says_it_must_start_there() -> None:
    found = check([_record(1, "task", "A", "init", "created", "initialized")])
    assert [(v.rule, v.subject, v.seq) for v in found] == [("continuity", "A", 1)]
    assert found[0].message == (
        "expected task 'A' to leave 'registered', where its previous record left it (its first "
        "record starts at the initial state); the record leaves 'created'"
    )


def test_a_later_record_off_where_the_previous_left_names_both_states_and_nothing_else() -> None:
    records = [
        *_steps("task", "A", "create"),
        _record(2, "task", "A", "start", "initialized", "running"),
    ]
    found = check(records)
    assert [(v.rule, v.subject, v.seq) for v in found] == [("continuity", "A", 2)]
    assert found[0].message == (
        "expected task 'A' to leave 'created', where its previous record left it; the record "
        "leaves 'initialized'"
    )


# -- restart ------------------------------------------------------------------------------------


def test_a_forged_restart_with_no_crash_before_it_is_a_continuity_finding_only() -> None:
    # A task that never crashed "restarts" from backoff: the audit does not trip over the
    # backoff it never saw; the record breaks continuity, not the restart timing.
    records = [
        *_steps("task", "A", "create", "init", "start"),
        _record(4, "task", "A", "restart", TASK.table[("running", "crash")], "created"),
    ]
    found = check(records, tasks={"A": {"deps": [], "wants": []}})
    assert [(v.rule, v.subject, v.seq) for v in found if v.seq == 4] == [("continuity", "A", 4)]


# -- seq-order ----------------------------------------------------------------------------------


def test_records_whose_mono_time_goes_back_are_a_seq_order_finding_naming_the_record() -> None:
    records = [
        _record(1, "task", "A", "create", "registered", "created", mono=50),
        _record(2, "task", "A", "init", "created", "initialized", mono=40),
    ]
    found = check(records)
    assert [(v.line, v.rule, v.subject, v.seq) for v in found] == [(None, "seq-order", "A", 2)]
    assert found[0].message == (
        "expected a mono time of at least 50 (the previous record's), got 40"
    )


# -- not-terminal -------------------------------------------------------------------------------


def test_a_described_task_without_records_is_left_registered_when_the_collection_stopped() -> None:
    records = _steps("collection", "tasks", "create", "init", "start", "stop", "finish")
    found = check(records, tasks={"B": {"deps": [], "wants": []}})
    assert [(v.line, v.rule, v.subject) for v in found] == [(None, "not-terminal", "B")]
    assert found[0].message.endswith("once the collection stopped; it is registered")


# -- check's refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["run_id", "expect_head"])
def test_file_only_options_given_with_records_are_refused_one_by_one(option: str) -> None:
    records = _steps("task", "A", "create")
    with pytest.raises(AuditInputError, match="only for journal files"):
        check(records, **{option: "0" * 64})


def test_a_verification_key_given_with_records_is_refused(tmp_path: Path) -> None:
    keygen(tmp_path / "s.key", tmp_path / "v.key")
    with pytest.raises(AuditInputError, match="only for journal files"):
        check(_steps("task", "A", "create"), verify_key=load_verify_key(tmp_path / "v.key"))


# -- StopOrderRule ------------------------------------------------------------------------------

#: B requires A (DEPS): A may stop only once B has ended.
_TABLE = {"A": ((), ()), "B": (("A",), ())}


def _running_pair() -> list[Transition]:
    return [
        *_steps("task", "A", "create", "init", "start"),
        *_steps("task", "B", "create", "init", "start", first_seq=4),
    ]


def test_the_stop_order_rule_names_the_task_a_stop_should_have_waited_for() -> None:
    rule = StopOrderRule(_TABLE)
    for rec in _running_pair():
        assert list(rule.feed(rec)) == []
    stop_a = _record(7, "task", "A", "stop", "running", "stopping")
    assert list(rule.feed(stop_a)) == ["B"]


def test_the_stop_order_rule_lets_tasks_stop_without_waiting_once_the_collection_gave_up() -> None:
    rule = StopOrderRule(_TABLE)
    for rec in _running_pair():
        rule.feed(rec)
    # The collection gives up on its stop (its deadline passed): what is left is stopped as is.
    for rec in _steps(
        "collection", "tasks", "create", "init", "start", "stop", "fail", first_seq=7
    ):
        assert list(rule.feed(rec)) == []
    assert rule.gave_up
    assert list(rule.feed(_record(14, "task", "A", "stop", "running", "stopping"))) == []


def test_the_stop_order_rule_answers_an_empty_sequence_for_records_it_does_not_judge() -> None:
    rule = StopOrderRule(_TABLE)
    refused = _record(1, "task", "A", "stop", "registered", None, ok=False)
    for rec in [refused, *_running_pair()]:
        answer = rule.feed(rec)
        assert len(answer) == 0 and list(answer) == []


# -- what the file says about itself ------------------------------------------------------------


def test_the_report_gives_the_run_id_of_the_journals_header(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    journal = Journal()
    journal.record("task", "A", "create", "registered", "created", True)
    journal.write(path)
    header = json.loads(path.read_text().splitlines()[0])
    report = audit(path)
    assert report.run_id == header["run"]["id"]
    assert type(report.run_id) is str and report.run_id


@pytest.mark.parametrize("tail", ['{"seq": 9', "{", "garbage"])
def test_a_last_line_cut_short_is_a_format_finding_about_the_journal_unless_partial(
    tmp_path: Path, tail: str
) -> None:
    path = tmp_path / "run.jsonl"
    journal = Journal()
    journal.record("task", "A", "create", "registered", "created", True)
    journal.write(path)
    with path.open("a") as file:
        file.write(tail)
    found = [(v.line, v.rule, v.subject) for v in audit(path).violations]
    assert found == [(3, "format", "<journal>")]
    assert "cut short" in audit(path).violations[0].message
    assert audit(path, partial=True).violations == []


def test_a_header_machine_that_is_not_valid_is_reported_as_the_headers(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    journal = Journal()
    journal.write(path)
    header = json.loads(path.read_text())
    header["specs"]["door"] = {"name": "door", "states": []}
    header.pop("hash")
    header["hash"] = hashlib.sha256(canonical(header).encode()).hexdigest()
    path.write_text(canonical(header) + "\n")
    found = audit(path).violations
    assert [(v.line, v.rule, v.subject) for v in found] == [(1, "header", "<header>")]
    assert found[0].message.startswith("expected a valid machine in the header: ")
