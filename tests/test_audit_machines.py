"""Auditing and drawing user machines: the door of the README, declared in TOML, driven through
a `Lifecycle`, streamed to a journal, audited against its pinned definition and drawn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lifecycle import Lifecycle, load_spec
from lifecycle.audit import AuditInputError, audit, check
from lifecycle.journal import Journal, Transition, canonical, chain_hash
from lifecycle.outcome import outcome, timeline
from lifecycle.spec import TASK, MachineSpec
from lifecycle.specfile import spec_from_dict, to_toml
from tests.test_diagrams import (  # graphviz: the fixture needs_dot uses
    dot_graph,
    graphviz,  # noqa: F401
    needs_dot,
    svg_node_texts,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DOOR_FILE = FIXTURES / "door.toml"
WALK = ("open", "close", "lock", "unlock", "open", "close")


@pytest.fixture
def door() -> MachineSpec:
    return load_spec(DOOR_FILE)


@pytest.fixture
def door_journal(door: MachineSpec, tmp_path: Path) -> Path:
    """A journal of one door driven through every transition, and one refused trigger."""
    path = tmp_path / "door.jsonl"
    with Journal(path) as journal:
        lc = Lifecycle(door, "door-1", journal)
        for trigger in WALK:
            lc.fire(trigger)
        with pytest.raises(Exception, match="cannot 'unlock'"):
            lc.fire("unlock")
    return path


def lifecycle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True, check=False
    )


def objects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rewrite(path: Path, objs: list[dict[str, Any]]) -> None:
    """Write ``objs`` back with the unkeyed hash chain recomputed (what anyone can do)."""
    previous, out = "", []
    for obj in objs:
        body = {k: v for k, v in obj.items() if k != "hash"}
        previous = chain_hash(previous, canonical(body))
        out.append(canonical({**body, "hash": previous}) + "\n")
    path.write_text("".join(out))


def other_task() -> dict[str, Any]:
    """A valid task machine that is not the built-in one (one edge's text differs)."""
    doc = TASK.to_dict()
    doc["transitions"][0]["when"] = "another story"
    return doc


def line_of(objs: list[dict[str, Any]], seq: int) -> int:
    return next(n for n, o in enumerate(objs, 1) if o.get("seq") == seq)


# -- acceptance --------------------------------------------------------------------------------


def test_the_door_journal_audits_clean_against_the_pinned_door(door_journal: Path) -> None:
    done = lifecycle("audit", str(door_journal), "--spec", str(DOOR_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{door_journal}: clean" in done.stderr


def test_an_edge_the_door_lacks_fails_the_audit_naming_its_line(door_journal: Path) -> None:
    objs = objects_of(door_journal)
    at = line_of(objs, 3)  # closed --lock--> locked
    objs[at - 1].update(trigger="open", dest="locked")  # closed --open--> locked: no such edge
    rewrite(door_journal, objs)
    done = lifecycle("audit", str(door_journal), "--spec", str(DOOR_FILE))
    assert done.returncode == 1
    assert f"line {at}: illegal-edge: door-1: expected 'open' from 'closed' to lead to 'open'" in (
        done.stdout
    )
    assert "hash-chain" not in done.stdout


def test_a_declared_door_that_differs_from_the_pinned_one_fails_naming_it(
    door_journal: Path, tmp_path: Path
) -> None:
    objs = objects_of(door_journal)
    declared = objs[1]["machine"]
    # The writer's door lets a locked door open: its records of that are legal by its own
    # declaration, but not by the door the auditor trusts.
    declared["transitions"].append(
        {"trigger": "open", "sources": ["locked"], "dest": "open", "when": ""}
    )
    rewrite(door_journal, objs)
    assert check(door_journal) == []  # by its own description, the journal is clean
    done = lifecycle("audit", str(door_journal), "--spec", str(DOOR_FILE))
    assert done.returncode == 1
    assert (
        "line 2: header: <header>: expected the door machine as pinned (--spec); the machine "
        "line 2 declares a different door machine" in done.stdout
    )


def test_a_header_declaring_another_door_than_the_pinned_one_fails(
    door: MachineSpec, tmp_path: Path
) -> None:
    other = spec_from_dict({**door.to_dict(), "initial": "locked"})
    journal = Journal()
    Lifecycle(other, "door-1", journal).fire("unlock")
    journal.write(tmp_path / "other.jsonl")
    assert objects_of(tmp_path / "other.jsonl")[0]["specs"]["door"] == other.to_dict()
    found = check(tmp_path / "other.jsonl", specs=[door])
    assert [(v.line, v.rule) for v in found][:1] == [(1, "header")]
    assert "expected the door machine as pinned" in found[0].message
    # ...and its records are judged by the pinned door: a door starts closed.
    assert "continuity" in {v.rule for v in found}


# -- the journal's own description -------------------------------------------------------------


def test_a_user_machine_is_audited_against_its_own_description(door_journal: Path) -> None:
    assert check(door_journal) == []
    objs = objects_of(door_journal)
    objs[line_of(objs, 2) - 1].update(dest="locked")  # open --close--> locked
    rewrite(door_journal, objs)
    found = check(door_journal)
    assert [(v.rule, v.subject) for v in found] == [
        ("illegal-edge", "door-1"),
        ("continuity", "door-1"),  # the next record leaves closed, not locked
    ]


def test_a_record_before_its_machine_is_described_is_an_illegal_edge(door_journal: Path) -> None:
    objs = objects_of(door_journal)
    objs[1], objs[2] = objs[2], objs[1]  # the first record before the machine line
    rewrite(door_journal, objs)
    found = check(door_journal)
    assert [(v.line, v.rule) for v in found] == [(2, "illegal-edge"), (4, "continuity")]
    assert "must be described before its first record" in found[0].message


def test_an_invalid_declared_machine_is_a_header_violation(door_journal: Path) -> None:
    objs = objects_of(door_journal)
    objs[1]["machine"]["states"].append("broken")
    rewrite(door_journal, objs)
    found = check(door_journal)
    assert (found[0].line, found[0].rule) == (2, "header")
    assert "state 'broken' is unreachable" in found[0].message
    assert {v.rule for v in found[1:]} == {"illegal-edge"}  # its records: no machine


def test_a_machine_line_in_a_version_2_journal_is_a_format_violation(door_journal: Path) -> None:
    objs = objects_of(door_journal)
    objs[0]["version"] = 2
    rewrite(door_journal, objs)
    found = check(door_journal)
    assert (found[0].line, found[0].rule) == (2, "format")


def test_a_machine_line_with_other_keys_is_a_format_violation(door_journal: Path) -> None:
    objs = objects_of(door_journal)
    objs[1]["extra"] = 1
    rewrite(door_journal, objs)
    assert [(v.line, v.rule) for v in check(door_journal)] == [(2, "format")]


def test_a_builtin_machine_redeclared_differently_is_a_header_violation(
    door_journal: Path,
) -> None:
    objs = objects_of(door_journal)
    objs[1]["machine"] = other_task()
    rewrite(door_journal, objs)
    found = check(door_journal)
    assert (found[0].line, found[0].rule) == (2, "header")
    assert "expected the built-in task machine" in found[0].message


def test_records_of_a_journal_object_are_judged_by_its_machines(door: MachineSpec) -> None:
    journal = Journal()
    lc = Lifecycle(door, "door-1", journal)
    lc.fire("open")
    assert check(journal) == []
    mono = journal.records[-1].mono + 1
    forged = Transition(2, 0.0, mono, "door", "door-1", "lock", "open", "locked", True, None, "x")
    assert {v.rule for v in check([*journal.records, forged], specs=[door])} == {"illegal-edge"}


def test_user_machines_promise_no_end(door: MachineSpec, tmp_path: Path) -> None:
    # A door left open is no unfinished run: only the collection and the service must end.
    journal = Journal()
    Lifecycle(door, "door-1", journal).fire("open")
    assert check(journal) == []


# -- pinning -----------------------------------------------------------------------------------


def test_specs_must_be_machine_specs(door_journal: Path, door: MachineSpec) -> None:
    with pytest.raises(AuditInputError, match=r"takes lifecycle\.MachineSpec objects, not str"):
        audit(door_journal, specs=["door.toml"])  # type: ignore[list-item]
    other = spec_from_dict({**door.to_dict(), "initial": "locked"})
    with pytest.raises(AuditInputError, match="two different machines named 'door'"):
        audit(door_journal, specs=[door, other])
    with pytest.raises(AuditInputError, match="the built-in task machine is always"):
        audit(door_journal, specs=[spec_from_dict(other_task())])


def test_pinning_a_builtin_machine_as_it_is_changes_nothing(door_journal: Path) -> None:
    assert audit(door_journal, specs={"task": TASK}).violations == []


def test_audit_spec_with_a_bad_reference_exits_2(door_journal: Path, tmp_path: Path) -> None:
    done = lifecycle("audit", str(door_journal), "--spec", str(tmp_path / "none.toml"))
    assert done.returncode == 2 and "--spec" in done.stderr and "cannot read it" in done.stderr


def test_audit_spec_takes_module_references_and_repeats(
    door_journal: Path, tmp_path: Path
) -> None:
    done = lifecycle(
        "audit", str(door_journal), "--spec", "lifecycle.spec:TASK", "--spec", str(DOOR_FILE)
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- the outcome and the timeline read user machines -------------------------------------------


def test_outcome_and_timeline_follow_a_user_machine(door_journal: Path) -> None:
    result = outcome(door_journal)
    assert result.records == len(WALK) + 1 and result.skipped == 0
    drawn = timeline(door_journal)
    (door_row,) = [s for s in drawn.subjects if s.kind == "door"]
    assert [span.state for span in door_row.spans] == ["open", "closed", "locked", "closed",
                                                        "open", "closed"]  # fmt: skip
    for command in ("summary", "timeline"):
        done = lifecycle(command, str(door_journal))
        assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
        assert "skipped" not in done.stderr


# -- diagrams ----------------------------------------------------------------------------------


def test_diagram_spec_draws_the_doors_four_transitions_in_mermaid() -> None:
    done = lifecycle("diagram", "--spec", str(DOOR_FILE), "--format", "mermaid")
    assert done.returncode == 0, done.stderr
    arrows = [line.strip() for line in done.stdout.splitlines() if "-->" in line]
    assert sorted(arrows) == sorted(
        [
            "[*] --> s_closed",
            "s_closed --> s_open : open",
            "s_open --> s_closed : close",
            "s_closed --> s_locked : lock",
            "s_locked --> s_closed : unlock",
        ]
    )


@needs_dot
def test_diagram_spec_draws_the_door_in_dot_and_svg(tmp_path: Path) -> None:
    done = lifecycle("diagram", "--spec", str(DOOR_FILE), "--format", "dot")
    assert done.returncode == 0, done.stderr
    _, edges = dot_graph(done.stdout)
    labelled = sorted(e[2].get("label", "") for e in edges if e[2].get("label"))
    assert labelled == ["close", "lock", "open", "unlock"]
    out = tmp_path / "door.svg"
    done = lifecycle("diagram", "--spec", str(DOOR_FILE), "--out", str(out))
    assert done.returncode == 0, done.stderr
    shown = {text for texts in svg_node_texts(out.read_text()).values() for text in texts}
    assert {"closed", "open", "locked"} <= shown


def test_diagram_spec_with_a_journal_overlays_the_run(door_journal: Path) -> None:
    done = lifecycle("diagram", "--spec", str(DOOR_FILE), "--journal", str(door_journal))
    assert done.returncode == 0, done.stderr
    assert "s_closed --> s_open : open (2)" in done.stdout
    assert "s_locked --> s_closed : unlock (1)" in done.stdout
    assert "unlock (1)" in done.stdout.split("refused triggers")[1]


def test_diagram_spec_with_a_module_reference(tmp_path: Path) -> None:
    done = lifecycle("diagram", "--spec", "lifecycle.spec:SERVICE")
    assert done.returncode == 0 and "s_new --> s_starting : start" in done.stdout


def test_diagram_takes_a_machine_or_a_spec_not_both() -> None:
    done = lifecycle("diagram", "task", "--spec", str(DOOR_FILE))
    assert done.returncode == 2 and "not both" in done.stderr
    done = lifecycle("diagram", "--spec", "lifecycle.spec:SPECS")
    assert done.returncode == 2 and "expected a lifecycle.MachineSpec" in done.stderr


def test_a_printed_door_drawn_again_is_the_same_diagram(tmp_path: Path, door: MachineSpec) -> None:
    (tmp_path / "again.toml").write_text(to_toml(door))
    first = lifecycle("diagram", "--spec", str(DOOR_FILE)).stdout
    assert lifecycle("diagram", "--spec", str(tmp_path / "again.toml")).stdout == first
