"""Each audit finding in full: its line, rule, subject and sequence number, not only its rule.

A consumer of the audit (`lifecycle audit --json`, `lifecycle.outcome`) shows where a problem is
and whose it is: a finding with the right rule but no line, no subject or another record's seq
would send its reader to the wrong place. The journals here are written by a `Journal` and, where
a test needs a clock the journal would never give, edited and re-chained (their hashes made
right again), so that only the rule under test is broken.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from lifecycle.audit import _FAST_LINE, Violation, check, fast_record
from lifecycle.journal import Journal, Transition, canonical
from lifecycle.restart import RestartPolicy
from lifecycle.seal import keygen
from lifecycle.spec import TASK
from tests.test_seal import forge, objects_of

#: A record as `Journal.record` takes it: kind, subject, trigger, source, dest, ok.
Record = tuple[str, str, str, str, str | None, bool]

SECOND = 1_000_000_000
#: A record line as the journal writes it (canonical JSON), for the fast reader.
_RECORD = (
    '{"cause":null,"dest":"created","hash":"' + "0" * 64 + '","kind":"task","mono":5,'
    '"ok":true,"seq":1,"source":"registered","subject":"A","thread":"MainThread",'
    '"time":1.5,"trigger":"create"}'
)


def _task(deps: Sequence[str] = (), restart: Mapping[str, Any] | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {"class": "x", "deps": list(deps), "wants": []}
    if restart is not None:
        described["restart"] = dict(restart)
    return described


def _steps(subject: str, *triggers: str) -> list[Record]:
    """The ``ok`` task records of ``subject`` firing ``triggers`` from its initial state."""
    out: list[Record] = []
    state = TASK.initial
    for trigger in triggers:
        dest = TASK.table[(state, trigger)]
        out.append(("task", subject, trigger, state, dest, True))
        state = dest
    return out


def _journal_file(
    tmp_path: Path,
    records: Iterable[Record],
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    monos: Sequence[int] | None = None,
) -> Path:
    """A journal file of ``records`` (line 1 the header, record ``i`` on line ``i + 2``), with
    the records' ``mono`` set to ``monos`` when given, its hash chain made right again."""
    journal = Journal()
    if tasks is not None:
        journal.describe_tasks(tasks)
    for rec in records:
        journal.record(*rec)
    path = tmp_path / "run.jsonl"
    journal.write(path)
    if monos is not None:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(lines) == len(monos) + 1
        for obj, mono in zip(lines[1:], monos, strict=True):
            obj["mono"] = mono
        previous, out = "", []
        for obj in lines:
            obj.pop("hash")
            previous = hashlib.sha256((previous + canonical(obj)).encode()).hexdigest()
            out.append(canonical({**obj, "hash": previous}) + "\n")
        path.write_text("".join(out))
    return path


def _found(path: Path, rule: str, *, partial: bool = True) -> list[tuple[Any, ...]]:
    return [
        (v.line, v.rule, v.subject, v.seq) for v in check(path, partial=partial) if v.rule == rule
    ]


# -- the restart rule ----------------------------------------------------------------------------


def test_a_crash_of_a_task_that_never_restarts_is_reported_on_its_own_line_subject_and_seq(
    tmp_path: Path,
) -> None:
    records = [*_steps("A", "create", "init", "start"), *_steps("B", "create")]
    records.append(("task", "A", "crash", "running", "backoff", True))
    path = _journal_file(tmp_path, records, {"A": _task(), "B": _task()})
    assert _found(path, "restart") == [(6, "restart", "A", 5)]


def test_a_crash_exactly_one_window_after_an_earlier_one_is_outside_that_window(
    tmp_path: Path,
) -> None:
    # One restart allowed per second: crashes one whole second apart are each the first in
    # their window; a crash a nanosecond sooner is the second within it.
    policy = RestartPolicy("on-failure", 0.0, 0.0, (1, 1.0)).to_dict()
    tasks = {"A": _task(restart=policy)}
    again = ["crash", "restart", "init", "start"]
    records = _steps("A", "create", "init", "start", *again, *again)
    #           create init start crash      restart init start crash        restart init start
    on_time = [0, 1, 2, 10, 11, 12, 13, 10 + SECOND, *[20 + SECOND] * 3]
    assert _found(_journal_file(tmp_path, records, tasks, on_time), "restart") == []
    too_soon = [*on_time[:7], 9 + SECOND, *on_time[8:]]
    assert _found(_journal_file(tmp_path, records, tasks, too_soon), "restart") == [
        (9, "restart", "A", 8)
    ]


def test_a_restart_too_soon_after_its_crash_is_reported_on_the_restart_record(
    tmp_path: Path,
) -> None:
    policy = RestartPolicy("on-failure", 5.0, 5.0, (3, 60.0)).to_dict()
    records = _steps("A", "create", "init", "start", "crash", "restart")
    path = _journal_file(tmp_path, records, {"A": _task(restart=policy)}, [0, 1, 2, 3, 4])
    found = [v for v in check(path, partial=True) if v.rule == "restart"]
    assert [(v.line, v.subject, v.seq) for v in found] == [(6, "A", 5)]
    assert found[0].message.endswith("it came 0.000000s after")


def test_a_restart_while_a_task_requiring_it_runs_names_the_restarted_task(
    tmp_path: Path,
) -> None:
    quick = RestartPolicy("on-failure", 0.0, 0.0, (3, 60.0)).to_dict()
    records = [
        *_steps("A", "create", "init", "start"),
        *_steps("B", "create", "init", "start"),
        ("task", "A", "crash", "running", "backoff", True),
        ("task", "A", "restart", "backoff", "created", True),
    ]
    tasks = {"A": _task(restart=quick), "B": _task(deps=["A"])}
    found = [v for v in check(_journal_file(tmp_path, records, tasks), partial=True)]
    assert [(v.line, v.rule, v.subject, v.seq) for v in found] == [(9, "restart", "A", 8)]
    assert found[0].message.endswith("'B' is running")


# -- the clock and the stop order ----------------------------------------------------------------


def test_a_mono_time_going_back_is_reported_on_its_line_for_its_subject(tmp_path: Path) -> None:
    records = [*_steps("A", "create"), *_steps("B", "create")]
    path = _journal_file(tmp_path, records, {"A": _task(), "B": _task()}, [5, 4])
    assert _found(path, "seq-order") == [(3, "seq-order", "B", 2)]


def test_a_stop_before_what_is_ordered_after_it_ended_names_the_task_line_and_seq(
    tmp_path: Path,
) -> None:
    records = [
        *_steps("A", "create", "init", "start"),
        *_steps("B", "create", "init", "start"),
        ("task", "A", "stop", "running", "stopping", True),
    ]
    found = [v for v in check(_journal_file(tmp_path, records, {"A": _task(), "B": _task(["A"])}))]
    stop = [v for v in found if v.rule == "stop-order"]
    assert [(v.line, v.subject, v.seq) for v in stop] == [(8, "A", 7)]
    assert stop[0].message.endswith("still waiting for 'B' (running)")


# -- the header ---------------------------------------------------------------------------------


def test_a_header_problem_is_the_headers_on_line_one(tmp_path: Path) -> None:
    path = _journal_file(tmp_path, [], {"A": _task(deps=["Gone"])})
    assert [(v.line, v.rule, v.subject) for v in check(path, partial=True)] == [
        (1, "header", "<header>")
    ]


def test_a_machine_the_header_declares_badly_is_a_header_problem_of_the_header(
    tmp_path: Path,
) -> None:
    path = _journal_file(tmp_path, [])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["specs"]["door"] = {"name": "door", "states": []}
    lines[0].pop("hash")
    lines[0]["hash"] = hashlib.sha256(canonical(lines[0]).encode()).hexdigest()
    path.write_text(canonical(lines[0]) + "\n")
    found = check(path, partial=True)
    assert [(v.line, v.rule, v.subject) for v in found] == [(1, "header", "<header>")]
    assert isinstance(found[0], Violation)


def test_a_stop_waiting_for_a_task_with_no_record_yet_shows_it_registered(
    tmp_path: Path,
) -> None:
    records = [
        *_steps("A", "create", "init", "start"),
        ("task", "A", "stop", "running", "stopping", True),
    ]
    path = _journal_file(tmp_path, records, {"A": _task(), "B": _task(["A"])})
    (stop,) = [v for v in check(path, partial=True) if v.rule == "stop-order"]
    assert stop.message.endswith("still waiting for 'B' (registered)")


# -- the file's own lines: the hash chain, machine and seal lines ---------------------------------


def _rewritten(tmp_path: Path, objs: list[dict[str, Any]]) -> Path:
    """A file of ``objs`` with its hash chain (and a seal line's head) made right again."""
    path = tmp_path / "rewritten.jsonl"
    path.write_bytes(forge(objs))
    return path


def test_a_broken_chain_names_the_hash_the_line_should_follow(tmp_path: Path) -> None:
    path = _journal_file(tmp_path, _steps("A", "create", "init"), {"A": _task()})
    objs = objects_of(path)
    objs[2]["trigger"] = "skip"  # line 3 edited, its hash left as it was
    objs[0]["tasks"]["A"]["class"] = "y"  # line 1 too
    path.write_text("".join(canonical(obj) + "\n" for obj in objs))
    found = [v for v in check(path, partial=True) if v.rule == "hash-chain"]
    assert [(v.line, v.subject) for v in found] == [(1, "<header>"), (3, "A")]
    assert found[0].message.startswith("expected the hash of the start of the chain and ")
    assert found[1].message.startswith("expected the hash of line 2's hash and this line")


def test_an_edge_from_no_state_or_a_terminal_one_says_which(tmp_path: Path) -> None:
    records: list[Record] = [
        ("task", "A", "create", "nowhere", "created", True),
        ("task", "B", "init", "stopped", "initialized", True),
    ]
    path = _journal_file(tmp_path, records, {"A": _task(), "B": _task()})
    edges = [v for v in check(path, partial=True) if v.rule == "illegal-edge"]
    states = ", ".join(s.value for s in TASK.states)
    assert [(v.line, v.subject, v.message) for v in edges] == [
        (2, "A", f"expected a task state ({states}); 'nowhere' is not one"),
        (
            3,
            "B",
            "expected a trigger that 'stopped' accepts (nothing (terminal state)); the task "
            "machine has no edge 'init' from it",
        ),
    ]


def test_a_subject_left_unfinished_is_reported_on_its_last_line(tmp_path: Path) -> None:
    records: list[Record] = [
        ("collection", "tasks", "create", "registered", "created", True),
        *_steps("A", "create"),
    ]
    path = _journal_file(tmp_path, records, {"A": _task()})
    ends = [(v.line, v.subject) for v in check(path) if v.rule == "not-terminal"]
    assert ends == [(2, "tasks")]


def test_a_seal_line_in_an_unsealed_journal_is_a_format_finding_of_the_journal(
    tmp_path: Path,
) -> None:
    objs = objects_of(_journal_file(tmp_path, _steps("A", "create"), {"A": _task()}))
    objs.append({"seal": {"records": 1, "head": ""}})
    found = check(_rewritten(tmp_path, objs), partial=True)
    assert [(v.line, v.rule, v.subject, v.message) for v in found] == [
        (3, "format", "<journal>", "expected a record; found a seal line in an unsealed journal")
    ]


def test_a_machine_line_where_the_version_has_none_is_a_format_finding(tmp_path: Path) -> None:
    objs = objects_of(_journal_file(tmp_path, _steps("A", "create"), {"A": _task()}))
    objs[0]["version"] = 2
    objs.append({"machine": objs[0]["specs"]["task"]})
    found = check(_rewritten(tmp_path, objs), partial=True)
    assert [(v.line, v.rule, v.subject, v.message) for v in found] == [
        (
            3,
            "format",
            "<journal>",
            "expected a record; found a machine line in a version 2 journal (machine lines "
            "exist since version 3)",
        )
    ]


def test_a_machine_line_with_more_than_its_machine_is_a_format_finding(tmp_path: Path) -> None:
    objs = objects_of(_journal_file(tmp_path, _steps("A", "create"), {"A": _task()}))
    objs.append({"machine": objs[0]["specs"]["task"], "note": "x"})
    found = check(_rewritten(tmp_path, objs), partial=True)
    assert [(v.line, v.rule, v.subject, v.message) for v in found] == [
        (
            3,
            "format",
            "<journal>",
            "expected a machine line to hold only 'machine' (and its hash); it has ['note']",
        )
    ]


@pytest.mark.parametrize("machine", [["door"], "door", 7, None])
def test_a_machine_line_whose_machine_is_no_mapping_is_a_header_finding(
    tmp_path: Path, machine: Any
) -> None:
    objs = objects_of(_journal_file(tmp_path, _steps("A", "create"), {"A": _task()}))
    objs.append({"machine": machine})
    found = check(_rewritten(tmp_path, objs), partial=True)
    assert [(v.line, v.rule, v.subject) for v in found] == [(3, "header", "<header>")]
    assert found[0].message.startswith("expected a valid machine in the machine line 3: ")


def test_a_machine_declared_twice_differently_is_judged_by_its_first_definition(
    tmp_path: Path,
) -> None:
    door = {
        "name": "door",
        "initial": "closed",
        "terminal": ["open"],
        "states": ["closed", "open"],
        "transitions": [{"trigger": "open", "sources": ["closed"], "dest": "open"}],
    }
    other = {**door, "transitions": [{"trigger": "shut", "sources": ["closed"], "dest": "open"}]}
    objs = objects_of(_journal_file(tmp_path, []))
    objs += [{"machine": door}, {"machine": door}, {"machine": other}]
    base = _journal_file(tmp_path, [("door", "d", "open", "closed", "open", True)])
    objs.append(objects_of(base)[1] | {"seq": 1})
    found = check(_rewritten(tmp_path, objs), partial=True)
    assert [(v.line, v.rule, v.subject, v.message) for v in found] == [
        (
            4,
            "header",
            "<header>",
            "expected one definition of the door machine; the machine line 4 declares it "
            "again, differently (its records are judged by the first)",
        )
    ]


def test_fast_record_reads_a_line_up_to_its_length_limit_and_no_longer() -> None:
    room = _FAST_LINE - len(_RECORD) + 1  # the subject's length on the longest line

    def line(subject: str) -> bytes:
        return _RECORD.replace('"subject":"A"', f'"subject":"{subject}"').encode()

    assert len(line("A" * room)) == _FAST_LINE
    rec = fast_record(line("A" * room))
    assert rec is not None and rec.subject == "A" * room
    # One byte more could hold an integer the parser refuses: the general reader decides.
    assert fast_record(line("A" * (room + 1))) is None
    huge_seq = _RECORD.replace('"seq":1', '"seq":' + "9" * _FAST_LINE).encode()
    assert fast_record(huge_seq) is None


def test_an_invalid_machine_a_line_declares_is_named_in_the_finding(tmp_path: Path) -> None:
    trap = {
        "name": "door",
        "initial": "closed",
        "terminal": [],
        "states": ["closed", "open"],
        "transitions": [{"trigger": "open", "sources": ["closed"], "dest": "open"}],
    }
    objs = [*objects_of(_journal_file(tmp_path, [])), {"machine": trap}]
    (found,) = check(_rewritten(tmp_path, objs), partial=True)
    assert (found.line, found.rule, found.subject) == (2, "header", "<header>")
    assert found.message.startswith(
        "expected a valid machine in the machine line 2: machine 'door': "
    )


def test_fast_record_reads_every_field_as_the_general_reader_does(tmp_path: Path) -> None:
    records: list[Record] = [
        ("task", "A", "create", "registered", "created", True),
        ("task", "A", "start", "created", None, False),
    ]
    path = _journal_file(tmp_path, records, {"A": _task()})
    for raw in path.read_bytes().splitlines()[1:]:
        general = Transition.from_dict(
            {k: v for k, v in json.loads(raw).items() if k not in ("hash", "mac")}
        )
        assert fast_record(raw) == general


def _sealed_file(tmp_path: Path) -> Path:
    """A sealed journal of two records, closed (its last line the seal line)."""
    keygen(tmp_path / "seal.key", tmp_path / "verify.key")
    path = tmp_path / "sealed.jsonl"
    with Journal(path, seal=tmp_path / "seal.key") as journal:
        journal.record("task", "A", "create", "registered", "created", True)
        journal.record("task", "A", "init", "created", "initialized", True)
    return path


def test_a_seal_line_that_miscounts_the_records_is_a_seal_finding_on_that_line(
    tmp_path: Path,
) -> None:
    objs = objects_of(_sealed_file(tmp_path))
    assert objs[-1]["seal"]["records"] == 2
    objs[-1]["seal"]["records"] = 3  # the seal line claims a record that is not there
    found = check(_rewritten(tmp_path, objs), partial=True)
    number = len(objs)
    assert [(v.line, v.rule, v.subject) for v in found] == [(number, "seal", "<journal>")]
    assert found[0].message.startswith("expected the seal line to count 2 record(s) ending at ")
