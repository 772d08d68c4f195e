"""What a journal file's lines look like (canonical JSON), reading a file whose last line has no
newline, a failing write that leaves the lifecycle it records intact, and listeners that are
removed once their owner is done."""

from __future__ import annotations

import errno
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from lifecycle import cli
from lifecycle.audit import check
from lifecycle.collection import Tasks
from lifecycle.errors import IllegalTransition, JournalWriteError
from lifecycle.journal import Journal, Transition, canonical, read_journal
from lifecycle.service import Service
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task
from lifecycle.testing import StateTimeout, wait_for_state
from tests.fakes import FakeService

FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
WAIT = 10.0


class Static(Task):
    LOOPLESS = True


class NeedsStatic(Task):
    LOOPLESS = True
    DEPS = (Static,)


def _run_collection(journal: Journal) -> Tasks:
    tasks = Tasks([NeedsStatic], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    tasks.stop()
    tasks.join(WAIT)
    return tasks


def _written(tmp_path: Path) -> Path:
    path = tmp_path / "run.jsonl"
    journal = Journal(path)
    _run_collection(journal)
    journal.close()
    return path


# -- the canonical form of a line ------------------------------------------------------------


def test_canonical_json_sorts_keys_has_no_spaces_and_escapes_non_ascii() -> None:
    assert canonical({"b": 1, "a": "é", "c": [1, {"z": None, "y": True}]}) == (
        '{"a":"\\u00e9","b":1,"c":[1,{"y":true,"z":null}]}'
    )


def test_every_line_of_a_journal_file_is_its_own_canonical_json(tmp_path: Path) -> None:
    lines = _written(tmp_path).read_text(encoding="ascii").splitlines()
    assert len(lines) > 10
    for line in lines:
        obj = json.loads(line)
        assert line == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert list(obj) == sorted(obj)


def test_each_hash_chains_the_previous_hash_and_the_lines_canonical_json(tmp_path: Path) -> None:
    previous = ""
    for line in _written(tmp_path).read_text().splitlines():
        obj = json.loads(line)
        stored = obj.pop("hash")
        assert stored == hashlib.sha256((previous + canonical(obj)).encode()).hexdigest()
        previous = stored


def test_a_line_rewritten_with_the_same_content_but_unsorted_keys_fails_the_audit(
    tmp_path: Path,
) -> None:
    path = _written(tmp_path)
    lines = path.read_text().splitlines()
    obj = json.loads(lines[2])
    lines[2] = json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    assert [(v.line, v.rule) for v in check(path)] == [(3, "format")]


# -- a last line without its newline ---------------------------------------------------------


def test_read_journal_keeps_the_last_record_of_a_file_without_a_final_newline(
    tmp_path: Path,
) -> None:
    path = _written(tmp_path)
    header, records = read_journal(path)
    text = path.read_bytes()
    assert text.endswith(b"\n")
    path.write_bytes(text[:-1])
    header_cut, records_cut = read_journal(path)
    assert header_cut == header
    assert records_cut == records
    assert records_cut[-1].dest == "stopped"


# -- a failing write leaves the lifecycle intact ---------------------------------------------


@needs_dev_full
def test_a_journal_that_cannot_be_written_leaves_the_lifecycle_it_records_intact() -> None:
    told: list[JournalWriteError] = []
    journal = Journal(FULL)
    journal.on_stream_error(told.append)
    tasks = _run_collection(journal)  # nothing the engine fires raises for the disk
    assert tasks.state == CollectionState.STOPPED
    assert tasks.state_of("Static") == TaskState.STOPPED
    assert tasks.state_of("NeedsStatic") == TaskState.STOPPED
    # A refused trigger is still refused as such, not as a disk error.
    with pytest.raises(IllegalTransition):
        tasks.start()
    error = journal.stream_error
    assert isinstance(error, JournalWriteError) and error.errno == errno.ENOSPC
    assert told == [error]  # told once, when streaming stopped
    late: list[JournalWriteError] = []
    journal.on_stream_error(late.append)
    assert late == [error]  # told at once when it had already happened
    # Every record is still kept in memory, the refused one included.
    assert journal.records[-1].ok is False and journal.records[-1].trigger == "start"
    assert [r.dest for r in journal.records if r.subject == "Static"][-1] == "stopped"
    journal.close()


def test_an_in_memory_journal_never_reports_a_stream_error() -> None:
    told: list[JournalWriteError] = []
    journal = Journal()
    journal.on_stream_error(told.append)
    _run_collection(journal)
    assert journal.stream_error is None and told == []


# -- listeners are removed once their owner is done ------------------------------------------


class CountingJournal(Journal):
    """A journal that counts the calls its listeners get, to see which outlive their use."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def subscribe(self, listener: Any) -> Any:
        def counted(rec: Transition) -> None:
            self.calls += 1
            listener(rec)

        return super().subscribe(counted)


def test_wait_for_state_stops_listening_once_it_gives_up() -> None:
    journal = CountingJournal()
    tasks = Tasks([Static], journal=journal)
    # Nothing fires: the waiter subscribes, times out and must leave no listener behind.
    with pytest.raises(StateTimeout):
        wait_for_state(tasks, "created", 0.01)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    tasks.stop()
    tasks.join(WAIT)
    assert journal.calls == 0


def test_wait_for_state_stops_listening_once_the_state_came() -> None:
    journal = CountingJournal()
    tasks = Tasks([Static], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    waited: list[object] = []
    thread = threading.Thread(target=lambda: waited.append(wait_for_state(tasks, "stopped", WAIT)))
    thread.start()
    tasks.start()
    tasks.stop()
    tasks.join(WAIT)
    thread.join(WAIT)
    assert waited == [CollectionState.STOPPED]
    calls = journal.calls
    journal.record("collection", tasks.name, "stop", "stopped", None, False)
    assert journal.calls == calls  # no listener left behind to hear a later record


def test_lifecycle_run_stops_printing_transitions_once_the_run_is_over(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Done(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            self.service.shutdown("done")

    service = type("Once", (Service,), {"TASKS": (Done,)})()
    journal = service.journal
    assert cli._run_service(service, journal, False, "lifecycle") == 0
    printed = capsys.readouterr().out
    assert "Done" in printed
    journal.record("task", "Late", "create", "registered", "created", True)
    assert capsys.readouterr().out == ""
