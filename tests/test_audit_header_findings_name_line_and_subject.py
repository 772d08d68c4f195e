"""What is wrong with a journal's header is reported on line 1, about ``<header>``, saying what.

A header is written by whoever wrote the file: a broken writer may leave out its task table or
its run, a forger may put in another machine or a seal that names nothing. Each such fault is a
finding of its own rule on line 1 whose subject is ``<header>`` (never a crash, never a finding
without a subject), and its message says what the header should have held. The journals here
are written by a `Journal`; a header edited by a test has its hash chain made right again, so
that only the edit is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifecycle.audit import audit
from lifecycle.journal import Journal, canonical
from lifecycle.seal import keygen, load_verify_key

_HEADER = "<header>"
#: A finding as the tests compare them: line, rule, subject, message.
Finding = tuple[int | None, str, str, str]


def _objects(tmp_path: Path) -> list[dict[str, Any]]:
    """A clean journal's lines (its header and one task's first record), parsed."""
    journal = Journal()
    journal.record("task", "A", "create", "registered", "created", True)
    path = tmp_path / "run.jsonl"
    journal.write(path)
    return [json.loads(line) for line in path.read_text().splitlines()]


def _audit_objects(tmp_path: Path, objects: list[dict[str, Any]]) -> list[Finding]:
    """The findings of ``objects`` written as lines, every hash made right again."""
    previous, out = "", []
    for obj in objects:
        body = {k: v for k, v in obj.items() if k != "hash"}
        previous = hashlib.sha256((previous + canonical(body)).encode()).hexdigest()
        out.append(canonical({**body, "hash": previous}) + "\n")
    path = tmp_path / "edited.jsonl"
    path.write_text("".join(out))
    return [(v.line, v.rule, v.subject, v.message) for v in audit(path).violations]


def _header_findings(tmp_path: Path, edit: Callable[[dict[str, Any]], object]) -> list[Finding]:
    """The line-1 findings of the clean journal once ``edit`` changed its header."""
    objects = _objects(tmp_path)
    edit(objects[0])
    return [f for f in _audit_objects(tmp_path, objects) if f[0] == 1]


def test_the_unedited_journal_is_clean(tmp_path: Path) -> None:
    assert _audit_objects(tmp_path, _objects(tmp_path)) == []


def test_a_header_without_a_task_table_is_a_header_finding_about_the_header(
    tmp_path: Path,
) -> None:
    found = _header_findings(tmp_path, lambda header: header.pop("tasks"))
    assert found == [(1, "header", _HEADER, "expected 'tasks': the task table of the run")]


def test_a_malformed_restart_policy_in_the_task_table_is_a_header_finding_naming_the_task(
    tmp_path: Path,
) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["tasks"] = {"A": {"class": "x", "deps": [], "wants": [], "restart": "often"}}

    found = _header_findings(tmp_path, edit)
    assert [(line, rule, subject) for line, rule, subject, _ in found] == [(1, "header", _HEADER)]
    assert "restart policy for task 'A'" in found[0][3]


@pytest.mark.parametrize("machine", ["task", "collection", "service"])
def test_a_header_that_lacks_a_built_in_machine_says_it_lacks_it(
    tmp_path: Path, machine: str
) -> None:
    found = _header_findings(tmp_path, lambda header: header["specs"].pop(machine))
    assert [(line, rule, subject) for line, rule, subject, _ in found] == [(1, "header", _HEADER)]
    assert f"built-in {machine} machine; the header's lacks it" in found[0][3]


@pytest.mark.parametrize("machine", ["task", "collection", "service"])
def test_a_header_with_another_built_in_machine_says_it_differs(
    tmp_path: Path, machine: str
) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["specs"][machine]["initial"] = "elsewhere"

    found = _header_findings(tmp_path, edit)
    assert [(line, rule, subject) for line, rule, subject, _ in found] == [(1, "header", _HEADER)]
    assert f"built-in {machine} machine; the header's differs" in found[0][3]


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", 7), ("host", None), ("pid", "12"), ("start", "now"), ("lifecycle", 1)],
)
def test_a_malformed_run_in_a_header_is_a_run_finding_about_the_header(
    tmp_path: Path, field: str, value: object
) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["run"][field] = value

    found = _header_findings(tmp_path, edit)
    assert found == [
        (
            1,
            "run",
            _HEADER,
            "expected 'run': the run's id, host, pid, start time and package version",
        )
    ]


@pytest.mark.parametrize(
    "seal",
    [
        {"key": 1},
        {"epoch": -1, "every": 4, "kdf": "x", "key": "k"},
        "sealed",
    ],
)
def test_a_malformed_seal_in_a_header_is_a_seal_finding_about_the_header(
    tmp_path: Path, seal: object
) -> None:
    def edit(header: dict[str, Any]) -> None:
        header["seal"] = seal

    found = _header_findings(tmp_path, edit)
    about_header = [f for f in found if f[2] == _HEADER]
    assert [(line, rule) for line, rule, _, _ in about_header][:1] == [(1, "seal")]
    assert about_header[0][3].startswith("expected 'seal' to name the key id")
    assert repr(seal) in about_header[0][3]


def test_a_journal_sealed_with_another_key_is_a_seal_finding_on_line_1(tmp_path: Path) -> None:
    sealing = tmp_path / "s.key"
    keygen(sealing, tmp_path / "v.key")
    other = tmp_path / "other"
    other.mkdir()
    keygen(other / "s.key", other / "v.key")
    path = tmp_path / "sealed.jsonl"
    journal = Journal(path, seal=sealing)
    journal.record("task", "A", "create", "registered", "created", True)
    journal.close()
    assert audit(path, verify_key=load_verify_key(tmp_path / "v.key")).violations == []

    report = audit(path, verify_key=load_verify_key(other / "v.key"))
    found = [(v.line, v.rule, v.subject) for v in report.violations]
    assert found == [(1, "seal", _HEADER)]
    assert "expected the journal to be sealed with key" in report.violations[0].message
    assert not report.sealed


def test_a_first_line_with_only_a_records_keys_is_reported_as_a_record_before_the_header(
    tmp_path: Path,
) -> None:
    # A line holding a record's seq, kind and subject, and nothing else (not even a hash).
    path = tmp_path / "headless.jsonl"
    path.write_text(canonical({"kind": "task", "seq": 0, "subject": "A"}) + "\n")
    found = [(v.line, v.rule, v.subject, v.message) for v in audit(path).violations]
    assert (
        1,
        "format",
        _HEADER,
        "expected the journal header first; line 1 is a record",
    ) in found
