"""Reading a journal file's records: a file that is not a journal is named by what it claims
to be, a seal line is skipped (never an end of the records), and a ``machine`` line of any
shape is taken or passed over, never a crash of the reader."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.journal import FORMAT, Journal, JournalFormatError, canonical, read_journal
from lifecycle.spec import SPECS

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _journal_lines(count: int = 2) -> list[dict[str, Any]]:
    """A journal's lines as objects: its header, then ``count`` records."""
    journal = Journal()
    for i in range(count):
        journal.record("task", f"t{i}", "create", "registered", "created", True)
    return [journal.header(), *(r.to_dict() for r in journal.records)]


def _write(path: Path, objs: list[dict[str, Any]]) -> None:
    path.write_text("".join(canonical(obj) + "\n" for obj in objs), encoding="ascii")


@pytest.mark.parametrize("claimed", ["lifecycle-journal-v0", 3, None])
def test_a_file_of_another_format_is_refused_naming_the_format_it_claims(
    tmp_path: Path, claimed: object
) -> None:
    path = tmp_path / "other.jsonl"
    _write(path, [{"format": claimed, "version": 3}])
    with pytest.raises(JournalFormatError) as info:
        read_journal(path)
    assert info.value.line == 1
    assert info.value.reason == f"not a lifecycle journal (format {claimed!r})"


@pytest.mark.parametrize("claimed", [99, "3", True, 3.0])
def test_a_journal_of_an_unknown_version_is_refused_naming_that_version(
    tmp_path: Path, claimed: object
) -> None:
    path = tmp_path / "future.jsonl"
    _write(path, [{"format": FORMAT, "version": claimed}])
    with pytest.raises(JournalFormatError) as info:
        read_journal(path)
    assert info.value.line == 1
    assert info.value.reason.startswith(f"unsupported journal version {claimed!r} (expected")


def test_records_after_a_seal_line_are_still_read(tmp_path: Path) -> None:
    # A seal line ends a sealed file; one in the middle (a file appended to after it was
    # sealed) is for the audit to report: the reader skips it and reads on.
    header, first, second = _journal_lines(2)
    path = tmp_path / "appended.jsonl"
    _write(path, [header, first, {"seal": {"records": 1, "head": "0" * 64}}, second])
    assert [r.subject for r in read_journal(path)[1]] == ["t0", "t1"]


@given(st.one_of(st.just("absent"), json_values), json_values)
def test_a_machine_line_of_any_shape_never_breaks_reading_the_records(
    specs: object, machine: object
) -> None:
    header, first, second = _journal_lines(2)
    if specs == "absent":
        del header["specs"]
    else:
        header["specs"] = specs
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.jsonl"
        _write(path, [header, first, {"machine": machine}, second])
        read, records = read_journal(path)
    assert [r.subject for r in records] == ["t0", "t1"]
    named = isinstance(machine, dict) and isinstance(machine.get("name"), str)
    if isinstance(specs, dict) and named:
        assert isinstance(machine, dict)
        assert read["specs"] == {machine["name"]: machine, **specs}
    else:
        assert read.get("specs", "absent") == specs


def test_a_machine_line_adds_its_machine_to_the_header_unless_the_name_is_taken(
    tmp_path: Path,
) -> None:
    header, first, second = _journal_lines(2)
    door = {"name": "door", "states": ["open", "shut"]}
    fake_task = {"name": "task", "states": []}
    path = tmp_path / "journal.jsonl"
    _write(path, [header, {"machine": door}, first, {"machine": fake_task}, second])
    read, records = read_journal(path)
    assert len(records) == 2
    assert read["specs"] == {**{n: s.to_dict() for n, s in SPECS.items()}, "door": door}
    assert json.loads(json.dumps(read["specs"]["task"])) == SPECS["task"].to_dict()
