"""The door of issue "Any machine", end to end: declared in TOML, bound to a class with a guard,
driven, streamed to a journal, audited against the pinned file, tampered with, and drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle import Journal, bind, load_spec
from lifecycle.audit import audit
from lifecycle.bind import TransitionVetoed
from lifecycle.errors import IllegalTransition
from tests.test_audit_machines import DOOR_FILE, lifecycle, line_of, objects_of, rewrite

DOOR = load_spec(DOOR_FILE)


def drive_a_bound_door(path: Path) -> None:
    """Every edge of the door, one illegal trigger and one veto by a guard, streamed to ``path``."""
    with Journal(path) as journal:

        @bind(DOOR, journal=journal, cond={"unlock": "has_key"})
        class Door:
            def __init__(self) -> None:
                self.key = False

            def has_key(self) -> bool:
                return self.key

        door = Door()
        door.open()
        door.close()
        door.lock()
        with pytest.raises(TransitionVetoed):
            door.unlock()  # no key: the guard refuses a legal edge
        door.key = True
        door.unlock()
        door.lock()
        with pytest.raises(IllegalTransition):
            door.lock()  # locked has no lock
        assert door.state == "locked"


def test_a_bound_door_audits_clean_against_the_pinned_file_veto_included(tmp_path: Path) -> None:
    path = tmp_path / "door.jsonl"
    drive_a_bound_door(path)
    objs = objects_of(path)
    refused = [o for o in objs if o.get("ok") is False]
    assert [o["trigger"] for o in refused] == ["unlock", "lock"]
    assert refused[0]["cause"].startswith("vetoed by ")
    assert lifecycle("audit", str(path), "--spec", str(DOOR_FILE)).returncode == 0
    assert audit(path, specs=[DOOR]).clean


def test_a_vetoed_record_of_a_builtin_machine_is_still_refused_was_legal(tmp_path: Path) -> None:
    """The built-in machines have no guards: a 'veto' there is a forged legal refusal."""
    path = tmp_path / "door.jsonl"
    drive_a_bound_door(path)
    objs = objects_of(path)
    header = objs[0]
    task_record = {
        "cause": "vetoed by a forger",
        "dest": None,
        "kind": "task",
        "mono": objs[-1]["mono"] + 1,
        "ok": False,
        "seq": objs[-1]["seq"] + 1,
        "source": "registered",
        "subject": "Forged",
        "thread": "MainThread",
        "time": objs[-1]["time"],
        "trigger": "create",
    }
    rewrite(path, [header, *objs[1:], task_record])
    report = audit(path, specs=[DOOR], partial=True)
    assert [v.rule for v in report.violations] == ["refused-was-legal"]


def test_a_door_record_rewritten_to_an_edge_the_table_lacks_fails_naming_its_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "door.jsonl"
    drive_a_bound_door(path)
    objs = objects_of(path)
    first_open = next(o for o in objs if o.get("trigger") == "open")
    first_open.update(trigger="close")  # closed --close--> open: no such edge
    rewrite(path, objs)
    result = lifecycle("audit", str(path), "--spec", str(DOOR_FILE))
    assert result.returncode == 1
    line = line_of(objs, first_open["seq"])
    assert f"line {line}: illegal-edge" in result.stdout, result.stdout
    assert result.stdout.count("illegal-edge") == 1


def test_the_door_drawn_from_its_file_has_its_four_transitions() -> None:
    result = lifecycle("diagram", "--spec", str(DOOR_FILE), "--format", "mermaid")
    assert result.returncode == 0, result.stderr
    arrows = [line for line in result.stdout.splitlines() if "-->" in line and "[*]" not in line]
    assert len(arrows) == len(list(DOOR.edges())) == 4


def test_the_journal_header_describes_the_door_before_its_first_record(tmp_path: Path) -> None:
    path = tmp_path / "door.jsonl"
    drive_a_bound_door(path)
    objs = objects_of(path)
    first_door = next(n for n, o in enumerate(objs) if o.get("kind") == "door")
    declared = [n for n, o in enumerate(objs) if "door" in o.get("specs", {}) or "machine" in o]
    assert declared and declared[0] < first_door
    assert objs[0]["version"] >= 3
