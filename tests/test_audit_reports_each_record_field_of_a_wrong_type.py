"""A record with a field of the wrong type is a ``format`` finding on its line, naming the field.

A broken writer (or a forger who recomputes the hash chain) can put any JSON value in any field
of a record: ``"ok": 1``, ``"seq": "7"``, ``"time": true``. The audit must say so on that line,
naming the field, and judge no such record: a record whose fields it cannot trust is no
evidence of what a run did. The journals here are written by a `Journal`, then one field of
one record is replaced and the hash chain made right again, so that only that field is wrong.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lifecycle.audit import FILE_SUBJECTS, audit
from lifecycle.journal import Journal, canonical

#: The line of the record edited: a refused record (no dest), after the header and one record.
_EDITED = 3
_SUBJECT = "A"
#: Every field of a record that the audit reads.
_FIELDS = (
    "seq",
    "time",
    "mono",
    "ok",
    "kind",
    "subject",
    "trigger",
    "source",
    "dest",
    "cause",
    "thread",
)


def _lines() -> list[dict[str, Any]]:
    """A clean journal's lines: the header, task A created, then A's refused early start."""
    journal = Journal()
    journal.record("task", _SUBJECT, "create", "registered", "created", True)
    journal.record("task", _SUBJECT, "start", "created", None, False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.jsonl"
        journal.write(path)
        return [json.loads(line) for line in path.read_text().splitlines()]


def _audit_lines(lines: list[dict[str, Any]]) -> list[tuple[int | None, str, str, str]]:
    """The findings (line, rule, subject, message) of ``lines`` re-chained: hashes made right."""
    previous, out = "", []
    for obj in lines:
        body = {k: v for k, v in obj.items() if k != "hash"}
        previous = hashlib.sha256((previous + canonical(body)).encode()).hexdigest()
        out.append(canonical({**body, "hash": previous}) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "edited.jsonl"
        path.write_text("".join(out))
        report = audit(path)
    return [(v.line, v.rule, v.subject, v.message) for v in report.violations]


def _with_field(name: str, value: Any) -> list[tuple[int | None, str, str, str]]:
    lines = _lines()
    lines[_EDITED - 1][name] = value
    return _audit_lines(lines)


def _assert_one_format_finding(found: list[tuple[int | None, str, str, str]], name: str) -> None:
    assert len(found) == 1, found
    line, rule, subject, message = found[0]
    assert (line, rule) == (_EDITED, "format")
    # A record whose subject is not a string is the file's problem, not a subject's.
    assert subject == _SUBJECT or (name == "subject" and subject in FILE_SUBJECTS)
    assert f"'{name}'" in message


def test_the_unedited_journal_is_clean() -> None:
    assert _audit_lines(_lines()) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seq", "2"),
        ("seq", True),
        ("seq", 2.0),
        ("mono", "5"),
        ("mono", 5.5),
        ("mono", False),
        ("ok", 0),
        ("ok", 1),
        ("ok", "false"),
        ("ok", None),
        ("kind", 1),
        ("kind", None),
        ("subject", None),
        ("subject", 7),
        ("trigger", None),
        ("trigger", ["start"]),
        ("source", 0),
        ("source", None),
        ("thread", None),
        ("thread", 1),
        ("dest", 1),
        ("dest", False),
        ("cause", 3),
        ("cause", {"why": "x"}),
        ("time", "1.5"),
        ("time", True),
        ("time", None),
        ("time", [1]),
    ],
)
def test_a_field_of_a_wrong_type_is_one_format_finding_on_its_line_naming_the_field(
    name: str, value: Any
) -> None:
    _assert_one_format_finding(_with_field(name, value), name)


def _is_good(name: str, value: Any) -> bool:
    """Whether ``value`` is of a type the record field ``name`` admits."""
    if name in ("seq", "mono"):
        return type(value) is int
    if name == "ok":
        return type(value) is bool
    if name in ("dest", "cause"):
        return value is None or type(value) is str
    if name == "time":
        return type(value) in (int, float)
    return type(value) is str


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=4,
)


@given(
    st.sampled_from(_FIELDS),
    _JSON_VALUES,
)
def test_any_json_value_a_field_does_not_admit_is_reported_on_its_line(
    name: str, value: Any
) -> None:
    assume(not _is_good(name, value))
    _assert_one_format_finding(_with_field(name, value), name)


def test_every_record_with_a_bad_field_is_reported_not_only_the_first() -> None:
    lines = _lines()
    lines[1]["ok"] = "true"
    lines[2]["seq"] = "2"
    found = [f for f in _audit_lines(lines) if f[1] == "format"]
    assert [(line, subject) for line, _, subject, _ in found] == [(2, _SUBJECT), (3, _SUBJECT)]
    assert "'ok'" in found[0][3] and "'seq'" in found[1][3]
