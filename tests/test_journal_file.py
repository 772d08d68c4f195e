"""The journal on disk: streaming, flushing per record, the hash chain, and a killed writer."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lifecycle.audit import check
from lifecycle.collection import Tasks
from lifecycle.journal import Journal, canonical, chain_hash, read_journal
from lifecycle.task import Task


class Base(Task):
    LOOPLESS = True


class Leaf(Task):
    DEPS = (Base,)
    LOOPLESS = True


def run_collection(journal: Journal) -> None:
    tasks = Tasks([Leaf], journal=journal)
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    tasks.join(timeout=10)


def test_streamed_file_is_byte_identical_to_a_written_one(tmp_path: Path) -> None:
    with Journal(tmp_path / "streamed.jsonl") as journal:
        run_collection(journal)
    journal.write(tmp_path / "written.jsonl")
    streamed = (tmp_path / "streamed.jsonl").read_bytes()
    assert streamed == (tmp_path / "written.jsonl").read_bytes()
    assert streamed.count(b"\n") == 1 + len(journal)


def test_each_record_is_on_disk_as_soon_as_it_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    journal = Journal(path)
    try:
        for count in range(1, 4):
            journal.record("task", "A", "stop", "created", "stopped", True)
            # Read through another handle while the journal is still open.
            assert path.read_bytes().count(b"\n") == 1 + count
    finally:
        journal.close()


def test_header_comes_with_the_first_record_and_names_tasks_registered_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lazy.jsonl"
    journal = Journal(path)
    try:
        tasks = Tasks([Leaf], journal=journal)
        assert path.read_bytes() == b""
        tasks.create()
        header, records = read_journal(path)
        assert set(header["tasks"]) == {"Base", "Leaf"}
        assert header["tasks"]["Leaf"]["deps"] == ["Base"]
        assert len(records) == len(journal)
    finally:
        journal.close()


def test_close_writes_the_header_of_an_empty_journal_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    journal = Journal(path)
    journal.close()
    journal.close()
    header, records = read_journal(path)
    assert records == [] and header["format"] == "lifecycle-journal"
    assert check(path) == []


def test_every_line_chains_to_the_previous_lines_hash(tmp_path: Path) -> None:
    with Journal(tmp_path / "chain.jsonl") as journal:
        run_collection(journal)
    previous = ""
    for line in (tmp_path / "chain.jsonl").read_text().splitlines():
        obj = json.loads(line)
        assert line == canonical(obj)
        stored = obj.pop("hash")
        assert stored == chain_hash(previous, canonical(obj))
        previous = stored


CHILD = textwrap.dedent(
    """
    import sys, time
    from lifecycle import IllegalTransition, Journal, Task, Tasks

    class Base(Task):
        LOOPLESS = True

    class Worker(Task):
        DEPS = (Base,)

        def run_loop(self):
            self.stop_event.wait(60)

    journal = Journal(sys.argv[1])
    tasks = Tasks([Worker], journal=journal)
    tasks.create()
    tasks.init()
    tasks.start()
    # Everything recorded so far must survive the kill; then keep the writer busy so that the
    # kill lands while records are being streamed.
    print(len(journal), flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            tasks.init()
        except IllegalTransition:
            pass
    """
)


@pytest.mark.slow
def test_a_sigkilled_writer_leaves_a_prefix_that_audits_clean_as_partial(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=60)
        assert ready, "the child did not report readiness within 60 s"
        recorded_before_ready = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    content = path.read_bytes()
    complete_records = content.count(b"\n") - 1
    assert complete_records >= recorded_before_ready
    assert check(path, partial=True) == []
    # Without partial, the run plainly did not end: the collection never stopped.
    assert "not-terminal" in {v.rule for v in check(path)}
