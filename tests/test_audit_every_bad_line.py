"""The audit goes on past a bad line or record and reports every one; it judges a `Journal`
object by its own task table; a malformed header task table is reported, every fault of it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from lifecycle.audit import AuditInputError, check, task_table
from lifecycle.collection import Tasks
from lifecycle.journal import Journal, Transition, canonical
from lifecycle.task import Task
from tests.fakes import FakeService

WAIT = 10.0


class Static(Task):
    LOOPLESS = True


class NeedsStatic(Task):
    LOOPLESS = True
    DEPS = (Static,)


def _journal() -> Journal:
    journal = Journal()
    tasks = Tasks([NeedsStatic], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    tasks.stop()
    tasks.join(WAIT)
    return journal


def _lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "run.jsonl"
    _journal().write(path)
    return path.read_text().splitlines()


def _rechain(lines: list[str]) -> list[str]:
    """The lines with every hash recomputed: an edit the hash chain cannot see."""
    previous, out = "", []
    for line in lines:
        obj = json.loads(line)
        obj.pop("hash", None)
        previous = hashlib.sha256((previous + canonical(obj)).encode()).hexdigest()
        out.append(canonical({**obj, "hash": previous}))
    return out


def _audit(tmp_path: Path, lines: list[str]) -> list[tuple[int | None, str]]:
    path = tmp_path / "edited.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return [(v.line, v.rule) for v in check(path)]


# -- every bad line, not only the first ------------------------------------------------------


def test_the_audit_reports_every_line_that_is_not_a_json_object_not_only_the_first(
    tmp_path: Path,
) -> None:
    lines = _lines(tmp_path)
    lines[3], lines[6] = "not json", "[1, 2]"
    found = _audit(tmp_path, lines)
    assert (4, "format") in found and (7, "format") in found
    # The lines between and after are still read: their records are judged (the subjects of
    # the dropped lines now seem to jump, a continuity violation after line 7).
    assert any(rule == "continuity" and (line or 0) > 7 for line, rule in found)


def test_a_line_that_is_not_json_is_one_violation_the_next_line_is_not_blamed_for_the_chain(
    tmp_path: Path,
) -> None:
    lines = _lines(tmp_path)
    lines[3] = "not json"
    found = _audit(tmp_path, lines)
    assert (4, "format") in found
    # Line 5's hash chains to a line that has none: the chain starts again there.
    assert (5, "hash-chain") not in found
    assert not any(rule == "hash-chain" for _, rule in found)


def test_the_audit_reports_every_malformed_record_not_only_the_first(tmp_path: Path) -> None:
    lines = _lines(tmp_path)
    for index, field in ((3, "thread"), (6, "kind")):
        obj = json.loads(lines[index])
        del obj[field]
        lines[index] = canonical(obj)
    found = _audit(tmp_path, _rechain(lines))
    assert found.count((4, "format")) == 1 and found.count((7, "format")) == 1
    assert any(rule == "continuity" and (line or 0) > 7 for line, rule in found)


def test_the_audit_reports_every_stray_header_not_only_the_first(tmp_path: Path) -> None:
    lines = _lines(tmp_path)
    lines[3] = lines[6] = lines[0]
    found = _audit(tmp_path, _rechain(lines))
    assert found.count((4, "format")) == 1 and found.count((7, "format")) == 1
    assert any(rule == "continuity" and (line or 0) > 7 for line, rule in found)


def test_checking_records_reports_every_malformed_one_and_goes_on(tmp_path: Path) -> None:
    records = list(_journal().records)
    broken = list(records)
    broken[2] = Transition(**{**records[2].to_dict(), "seq": "three"})
    broken[5] = Transition(**{**records[5].to_dict(), "ok": "yes"})
    found = check(broken)
    formats = [v for v in found if v.rule == "format"]
    assert [v.subject for v in formats] == [records[2].subject, records[5].subject]
    # The records after them are judged too: the subjects of the dropped ones seem to jump.
    assert any(v.rule == "continuity" for v in found)


# -- a Journal object is judged by its own task table ----------------------------------------


def _out_of_order_journal() -> Journal:
    """A journal that initializes NeedsStatic before its dependency Static, and leaves Static
    running at the end: deps-order and the end-of-run rules have something to find."""
    journal = Journal()
    journal.describe_tasks(
        {"Static": {"deps": []}, "NeedsStatic": {"deps": ["Static"]}},
    )
    rows: list[tuple[str, str, str, str, str]] = [
        ("collection", "tasks", "create", "registering", "created"),
        ("task", "Static", "create", "registered", "created"),
        ("task", "NeedsStatic", "create", "registered", "created"),
        ("task", "NeedsStatic", "init", "created", "initialized"),
        ("task", "Static", "init", "created", "initialized"),
        ("collection", "tasks", "init", "created", "initialized"),
        ("task", "Static", "start", "initialized", "running"),
        ("task", "NeedsStatic", "start", "initialized", "running"),
        ("collection", "tasks", "start", "initialized", "running"),
    ]
    for kind, subject, trigger, source, dest in rows:
        journal.record(kind, subject, trigger, source, dest, True)
    return journal


def test_checking_a_journal_object_applies_its_task_table_to_dependency_order() -> None:
    journal = _out_of_order_journal()
    found = check(journal, partial=True)
    assert [(v.rule, v.subject) for v in found] == [("deps-order", "NeedsStatic")]


def test_checking_a_journal_object_applies_its_task_table_to_the_end_of_the_run() -> None:
    found = check(_out_of_order_journal())
    rules = {(v.rule, v.subject) for v in found}
    assert ("deps-order", "NeedsStatic") in rules
    assert ("not-terminal", "tasks") in rules


def test_a_tasks_argument_overrides_a_journal_objects_own_table() -> None:
    journal = _out_of_order_journal()
    table = {"Static": {"deps": []}, "NeedsStatic": {"deps": []}}
    assert check(journal, tasks=table, partial=True) == []


# -- malformed header task tables ------------------------------------------------------------


@pytest.mark.parametrize(
    "tasks",
    [
        {"A": 5},
        {"A": ["deps"]},
        {"A": {"deps": "B"}, "B": {}},
        {"A": {"deps": [1]}},
        {"A": {"wants": "B"}, "B": {}},
        {"A": {"wants": [None]}},
        {"A": {"deps": ["B"]}, "B": {"deps": ["A"]}},
        {"A": {"deps": ["Missing"]}},
    ],
    ids=[
        "not-a-mapping",
        "a-list",
        "deps-a-string",
        "deps-not-names",
        "wants-a-string",
        "wants-not-names",
        "a-cycle",
        "an-undescribed-dependency",
    ],
)
def test_a_malformed_task_table_is_refused_as_records_and_reported_in_a_header(
    tmp_path: Path, tasks: dict[str, Any]
) -> None:
    assert task_table(tasks) is None
    with pytest.raises(AuditInputError, match="bad tasks mapping"):
        check(list(_journal().records), tasks=tasks)
    lines = _lines(tmp_path)
    header = json.loads(lines[0])
    header["tasks"] = tasks
    lines[0] = canonical(header)
    found = _audit(tmp_path, _rechain(lines))
    assert (1, "header") in found


def test_every_fault_of_a_header_task_table_is_reported_not_only_the_first(
    tmp_path: Path,
) -> None:
    lines = _lines(tmp_path)
    header = json.loads(lines[0])
    header["tasks"] = {"A": 5, "B": {"deps": "C"}, "C": {"wants": [1]}, "D": 7}
    lines[0] = canonical(header)
    path = tmp_path / "edited.jsonl"
    path.write_text("\n".join(_rechain(lines)) + "\n")
    problems = [v.message for v in check(path) if v.rule == "header"]
    for needle in ("task 'A'", "deps of task 'B'", "wants of task 'C'", "task 'D'"):
        assert any(needle in message for message in problems), (needle, problems)


def test_a_well_formed_task_table_is_read_with_its_deps_and_wants() -> None:
    table = {"A": {"deps": ["B"], "wants": ["C", "Gone"]}, "B": {}, "C": {"deps": []}}
    assert task_table(table) == {"A": (("B",), ("C",)), "B": ((), ()), "C": ((), ())}


@pytest.mark.parametrize("tasks", [["A", "B"], "A", 3, None])
def test_a_task_table_that_is_not_a_mapping_is_refused_and_reported(
    tmp_path: Path, tasks: object
) -> None:
    assert task_table(tasks) is None
    lines = _lines(tmp_path)
    header = json.loads(lines[0])
    header["tasks"] = tasks
    lines[0] = canonical(header)
    path = tmp_path / "edited.jsonl"
    path.write_text("\n".join(_rechain(lines)) + "\n")
    problems = [v.message for v in check(path) if v.rule == "header" and v.line == 1]
    assert problems == ["expected 'tasks' to map task names to their class, deps and wants"]
    if tasks is not None:  # None is "no table" for records
        with pytest.raises(AuditInputError, match="bad tasks mapping"):
            check(list(_journal().records), tasks=tasks)  # type: ignore[arg-type]
