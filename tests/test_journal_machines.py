"""Self-describing journals (every machine described before its first record, under the chain)
and the bounded in-memory journal (``max_records``)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import Lifecycle, load_spec
from lifecycle.audit import AuditInputError, audit, check
from lifecycle.journal import (
    FORMAT_VERSION,
    InvalidJournalOption,
    Journal,
    JournalIncomplete,
    MachineConflict,
    is_machine_line,
    read_journal,
)
from lifecycle.seal import keygen, load_verify_key
from lifecycle.spec import SPECS, TASK, MachineSpec
from lifecycle.specfile import spec_from_dict
from tests.test_journal_input import rechain

DOOR_FILE = Path(__file__).resolve().parent / "fixtures" / "door.toml"


@pytest.fixture
def door() -> MachineSpec:
    return load_spec(DOOR_FILE)


def objects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def walk(lc: Lifecycle, *triggers: str) -> None:
    for trigger in triggers:
        lc.fire(trigger)


# -- describing machines -----------------------------------------------------------------------


def test_a_lifecycle_describes_its_machine_to_its_journal(door: MachineSpec) -> None:
    journal = Journal()
    assert set(journal.machines) == set(SPECS)
    Lifecycle(door, "door-1", journal)
    assert journal.machines["door"] is door
    assert journal.header()["specs"]["door"] == door.to_dict()


def test_describing_a_machine_again_is_a_no_op(door: MachineSpec, tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        for index in range(3):
            Lifecycle(door, f"door-{index}", journal)
        journal.describe_machine(load_spec(DOOR_FILE))  # equal, another object
        journal.describe_machine(TASK)
    assert sum(is_machine_line(obj) for obj in objects_of(path)) == 1


def test_another_machine_under_a_described_name_is_refused(door: MachineSpec) -> None:
    journal = Journal()
    journal.describe_machine(door)
    other = spec_from_dict({**door.to_dict(), "initial": "locked"})
    with pytest.raises(MachineConflict, match="different machine named 'door'") as caught:
        journal.describe_machine(other)
    assert caught.value.name == "door"
    impostor = spec_from_dict({**door.to_dict(), "name": "task"})
    with pytest.raises(MachineConflict):
        Lifecycle(impostor, "t", journal)
    assert journal.machines["door"] is door and journal.machines["task"] is TASK


def test_describe_machine_takes_only_specs() -> None:
    with pytest.raises(TypeError, match=r"takes a lifecycle\.MachineSpec"):
        Journal().describe_machine("door")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes a lifecycle\.MachineSpec"):
        Journal().describe_machine({"name": "door"})  # type: ignore[arg-type]


def test_a_machine_described_after_the_header_gets_a_chained_line_before_its_records(
    door: MachineSpec, tmp_path: Path
) -> None:
    path = tmp_path / "door.jsonl"
    with Journal(path) as journal:
        walk(Lifecycle(door, "door-1", journal), "open", "close", "lock")
    objs = objects_of(path)
    assert objs[0]["version"] == FORMAT_VERSION == 3
    assert "door" not in objs[0]["specs"]  # the header was written at open
    assert objs[1] == {"machine": door.to_dict(), "hash": objs[1]["hash"]}
    assert [o["kind"] for o in objs[2:]] == ["door"] * 3
    assert check(path) == []
    header, records = read_journal(path)
    assert header["specs"]["door"] == door.to_dict() and len(records) == 3


def test_a_machine_described_before_the_file_is_opened_is_in_its_header(
    door: MachineSpec, tmp_path: Path
) -> None:
    # A pipe cannot be rewritten: its header is written with the first record.
    path = tmp_path / "pipe"
    os.mkfifo(path)
    lines: list[bytes] = []

    def read() -> None:
        with path.open("rb") as pipe:
            lines.extend(pipe)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with Journal(path) as journal:
            walk(Lifecycle(door, "door-1", journal), "open")
    finally:
        reader.join(10)
    objs = [json.loads(line) for line in lines]
    assert objs[0]["specs"]["door"] == door.to_dict()
    assert not any(is_machine_line(o) for o in objs)


def test_a_header_rewrite_lists_the_machines_and_drops_their_lines(
    door: MachineSpec, tmp_path: Path
) -> None:
    path = tmp_path / "door.jsonl"
    with Journal(path) as journal:
        walk(Lifecycle(door, "door-1", journal), "open")
        journal.describe_tasks({"A": {"class": "m.A"}})  # the header must be rewritten
        walk(Lifecycle(TASK, "A", journal), "create")
    objs = objects_of(path)
    assert objs[0]["specs"]["door"] == door.to_dict() and "A" in objs[0]["tasks"]
    assert not any(is_machine_line(o) for o in objs)
    assert check(path, partial=True) == []


def test_a_sealed_journal_seals_its_machine_lines(door: MachineSpec, tmp_path: Path) -> None:
    seal, verify = tmp_path / "seal.key", tmp_path / "verify.key"
    keygen(seal, verify)
    path = tmp_path / "sealed.jsonl"
    with Journal(path, seal=seal) as journal:
        walk(Lifecycle(door, "door-1", journal), "lock", "unlock")
    objs = objects_of(path)
    assert is_machine_line(objs[1]) and isinstance(objs[1]["mac"], str)
    assert objs[-1]["seal"]["records"] == 2  # a machine line is not a record
    report = audit(path, verify_key=load_verify_key(verify), specs=[door])
    assert report.violations == [] and report.sealed


def test_the_written_copy_lists_every_machine_in_its_header(
    door: MachineSpec, tmp_path: Path
) -> None:
    journal = Journal()
    walk(Lifecycle(door, "door-1", journal), "open", "close")
    journal.write(tmp_path / "copy.jsonl")
    header, records = read_journal(tmp_path / "copy.jsonl")
    assert header["specs"]["door"] == door.to_dict() and len(records) == 2
    assert check(tmp_path / "copy.jsonl") == []


def test_a_version_2_journal_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "v2.jsonl"
    with Journal(path) as journal:
        walk(Lifecycle(TASK, "A", journal), "create")
    objs = objects_of(path)
    objs[0]["version"] = 2
    path.write_bytes(rechain([{k: v for k, v in o.items() if k != "hash"} for o in objs]))
    header, records = read_journal(path)
    assert header["version"] == 2 and len(records) == 1
    assert check(path, partial=True) == []


# -- the bounded journal -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True, [3]])
def test_max_records_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(InvalidJournalOption, match="max_records must be a positive int"):
        Journal(max_records=bad)  # type: ignore[arg-type]


@given(limit=st.integers(1, 20), count=st.integers(0, 60))
def test_a_bounded_journal_keeps_the_last_records(limit: int, count: int) -> None:
    journal = Journal(max_records=limit)
    for index in range(count):
        journal.record("task", f"t{index}", "create", "registered", "created", True)
    kept = min(limit, count)
    assert len(journal) == kept and journal.dropped == count - kept
    assert [r.seq for r in journal.records] == list(range(count - kept + 1, count + 1))
    assert journal.max_records == limit


def test_a_bounded_journal_streams_every_record(door: MachineSpec, tmp_path: Path) -> None:
    path = tmp_path / "all.jsonl"
    with Journal(path, max_records=2) as journal:
        walk(Lifecycle(door, "door-1", journal), "open", "close", "lock", "unlock", "open")
    assert len(journal) == 2
    assert [r.seq for r in read_journal(path)[1]] == [1, 2, 3, 4, 5]
    assert check(path, specs=[door]) == []


def test_a_bounded_journal_writes_whole_until_it_drops_then_refuses(tmp_path: Path) -> None:
    journal = Journal(max_records=2)
    journal.record("task", "A", "create", "registered", "created", True)
    journal.record("task", "A", "init", "created", "initialized", True)
    journal.write(tmp_path / "whole.jsonl")
    assert len(read_journal(tmp_path / "whole.jsonl")[1]) == 2
    journal.record("task", "A", "start", "initialized", "running", True)
    with pytest.raises(JournalIncomplete, match="has dropped 1") as caught:
        journal.write(tmp_path / "tail.jsonl")
    assert (caught.value.dropped, caught.value.kept) == (1, 2)
    assert not (tmp_path / "tail.jsonl").exists()


def test_a_bounded_journal_that_dropped_records_keeps_its_streamed_file_whole(
    tmp_path: Path,
) -> None:
    # The task table changes after records were dropped: the file cannot be rebuilt from
    # memory, so its header keeps the table it had and no record is lost from the file.
    path = tmp_path / "late.jsonl"
    with Journal(path, max_records=1) as journal:
        journal.record("task", "A", "create", "registered", "created", True)
        journal.record("task", "A", "init", "created", "initialized", True)
        journal.describe_tasks({"A": {"class": "m.A"}})
        journal.record("task", "A", "start", "initialized", "running", True)
    header, records = read_journal(path)
    assert header["tasks"] == {} and [r.seq for r in records] == [1, 2, 3]
    assert check(path, partial=True) == []


def test_a_bounded_journal_that_dropped_records_is_not_audited_in_memory() -> None:
    journal = Journal(max_records=1)
    journal.record("task", "A", "create", "registered", "created", True)
    assert check(journal, partial=True) == []
    journal.record("task", "A", "init", "created", "initialized", True)
    with pytest.raises(AuditInputError, match="dropped 1: audit the file"):
        check(journal, partial=True)
