"""The journal on disk: streaming, flushing per record, the hash chain, and a killed writer."""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.audit import check
from lifecycle.cli import main
from lifecycle.collection import Tasks
from lifecycle.errors import JournalWriteError, LifecycleError
from lifecycle.journal import Journal, canonical, chain_hash, read_journal
from lifecycle.task import Task
from tests.services import Quiet, SelfStopping
from tests.test_signals import Child


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


def test_header_is_written_at_open_and_updated_by_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "early.jsonl"
    journal = Journal(path)
    try:
        header, records = read_journal(path)
        assert (header["tasks"], records) == ({}, [])
        tasks = Tasks([Leaf], journal=journal)
        tasks.create()
        header, records = read_journal(path)
        assert set(header["tasks"]) == {"Base", "Leaf"}
        assert header["tasks"]["Leaf"]["deps"] == ["Base"]
        assert len(records) == len(journal)
        assert check(path, partial=True) == []
    finally:
        journal.close()


def test_close_brings_the_header_of_a_journal_without_records_up_to_date(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registered.jsonl"
    with Journal(path) as journal:
        Tasks([Leaf], journal=journal)
    header, records = read_journal(path)
    assert set(header["tasks"]) == {"Base", "Leaf"} and records == []


def test_the_rewritten_file_keeps_the_mode_and_the_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    link = tmp_path / "link.jsonl"
    real.touch(mode=0o640)
    real.chmod(0o640)
    link.symlink_to(real)
    with Journal(link) as journal:
        run_collection(journal)
    assert link.is_symlink() and (real.stat().st_mode & 0o777) == 0o640
    header, records = read_journal(real)
    assert set(header["tasks"]) == {"Base", "Leaf"} and len(records) == len(journal)
    assert {p.name for p in tmp_path.iterdir()} == {"real.jsonl", "link.jsonl"}  # no temp left


def test_a_table_changed_after_records_rewrites_the_whole_file_truthfully(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.jsonl"
    with Journal(path) as journal:
        journal.record("task", "A", "create", "registered", "created", True)
        journal.describe_tasks({"A": {"class": "m.A"}})
        journal.record("task", "A", "init", "created", "initialized", True)
        header, records = read_journal(path)
        assert header["tasks"] == {"A": {"class": "m.A", "deps": [], "wants": []}}
        assert [r.seq for r in records] == [1, 2]
    assert check(path, partial=True) == []
    journal.write(tmp_path / "written.jsonl")
    assert path.read_bytes() == (tmp_path / "written.jsonl").read_bytes()


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
    if sys.argv[2] == "before-registering":
        print(0, flush=True)
        time.sleep(60)
    tasks = Tasks([Worker], journal=journal)
    if sys.argv[2] == "before-the-first-record":
        print(0, flush=True)
        time.sleep(60)
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
@pytest.mark.parametrize("when", ["before-registering", "before-the-first-record", "streaming"])
def test_a_sigkilled_writer_leaves_a_prefix_that_audits_clean_as_partial(
    tmp_path: Path, when: str
) -> None:
    path = tmp_path / "killed.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), when],
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
    if when == "streaming":
        # Without partial, the run plainly did not end: the collection never stopped.
        assert "not-terminal" in {v.rule for v in check(path)}
    else:
        assert read_journal(path) == ({**Journal().header(), "run": ANY, "hash": ANY}, [])


# -- a file that cannot be written (ENOSPC, EIO, EFBIG, a closed file) ------------------------

FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")


@needs_dev_full
def test_a_write_error_becomes_a_typed_stream_error_and_every_record_is_kept(
    tmp_path: Path,
) -> None:
    journal = Journal(FULL)
    run_collection(journal)  # the engine goes on: no error reaches the code firing triggers
    error = journal.stream_error
    assert isinstance(error, JournalWriteError) and isinstance(error, OSError)
    assert isinstance(error, LifecycleError)
    assert error.path == str(FULL) and error.errno == errno.ENOSPC
    assert isinstance(error.error, OSError) and error.error.errno == errno.ENOSPC
    assert error.__cause__ is error.error
    assert str(error) == (
        "journal '/dev/full' could not be written: [Errno 28] No space left on device"
    )
    assert [r.dest for r in journal.records][-1] == "stopped" and len(journal) > 10
    journal.close()
    journal.write(tmp_path / "kept.jsonl")
    assert check(tmp_path / "kept.jsonl") == []


@needs_dev_full
def test_close_reports_a_final_flush_error_in_stream_error_without_raising() -> None:
    journal = Journal(FULL)  # a device: its header is written with the first record, or at close
    assert journal.stream_error is None
    journal.close()
    assert isinstance(journal.stream_error, JournalWriteError)
    assert journal.stream_error.errno == errno.ENOSPC
    journal.close()


def test_writing_to_a_file_closed_under_the_journal_is_a_stream_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "closed.jsonl")
    journal.record("task", "A", "create", "registered", "created", True)
    # Someone closed the journal's file (the journal has no public handle on it).
    file = journal._file
    assert file is not None
    file.close()
    journal.record("task", "A", "init", "created", "initialized", True)
    error = journal.stream_error
    assert isinstance(error, JournalWriteError) and error.errno == errno.EBADF
    assert "closed.jsonl' could not be written: [Errno 9]" in str(error)
    assert len(journal) == 2
    journal.close()


def test_a_closed_file_descriptor_is_a_stream_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "fd.jsonl")
    file = journal._file
    assert file is not None
    os.close(file.fileno())
    journal.record("task", "A", "create", "registered", "created", True)
    assert isinstance(journal.stream_error, JournalWriteError)
    assert journal.stream_error.errno == errno.EBADF
    journal.close()
    assert len(journal) == 1


def test_a_file_that_cannot_be_opened_raises_journal_write_error(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "j.jsonl"
    with pytest.raises(JournalWriteError) as info:
        Journal(path)
    assert info.value.path == str(path) and info.value.errno == errno.ENOENT
    assert isinstance(info.value.__cause__, FileNotFoundError)


FSIZE_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from lifecycle import Journal, JournalWriteError, Tasks, Task

    class Base(Task):
        LOOPLESS = True

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        journal = Journal(sys.argv[1])
    except JournalWriteError as exc:
        print(json.dumps({"raised": exc.errno}))
        sys.exit(0)
    tasks = Tasks([Base], journal=journal)
    tasks.create()
    tasks.init()
    journal.close()
    error = journal.stream_error
    print(json.dumps({"stream_error": error and error.errno, "records": len(journal)}))
    """
)


def run_with_file_size_limit(path: Path, limit: int) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(path), str(limit)],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_header_that_cannot_be_written_at_open_raises(tmp_path: Path) -> None:
    assert run_with_file_size_limit(tmp_path / "small.jsonl", 100) == {"raised": errno.EFBIG}


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_full_disk_at_the_header_rewrite_stops_streaming_and_keeps_the_file(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.jsonl"
    Journal(empty).close()
    limit = empty.stat().st_size + 10  # room for the header at open, not for the rewrite
    path = tmp_path / "limited.jsonl"
    assert run_with_file_size_limit(path, limit) == {"stream_error": errno.EFBIG, "records": 4}
    assert check(path, partial=True) == []  # the file left is a whole (stale) journal


# -- the command line: a run whose journal could not be written failed ------------------------


@needs_dev_full
def test_run_with_an_unwritable_journal_exits_1_naming_the_file_and_the_os_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--quiet", "--journal", str(FULL), "tests.services:SelfStopping"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "journal '/dev/full' could not be written: [Errno 28] No space left on device" in err
    assert "Traceback" not in err


@pytest.mark.slow
@needs_dev_full
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_run_whose_journal_is_dev_full_stops_itself_with_exit_1_without_a_traceback() -> None:
    # No SIGTERM needed: the first failed write asks the service to stop.
    child = Child("--journal", str(FULL), "tests.services:Quiet")
    _, err = child.finish()
    assert child.proc.returncode == 1, err
    assert "journal '/dev/full' could not be written: [Errno 28] No space left on device" in err
    assert "Traceback" not in err


@needs_dev_full
def test_a_service_whose_journal_cannot_be_written_fails_with_the_write_error() -> None:
    service = SelfStopping({}, journal=Journal(FULL))
    assert service.run() == 1
    assert service.state == "failed"
    assert isinstance(service.failure, JournalWriteError)
    assert service.failure is service.journal.stream_error


@needs_dev_full
def test_a_journal_write_error_stops_a_running_service_at_once() -> None:
    # Nothing else would ever stop this service: the write error must ask for the shutdown.
    service = Quiet({}, journal=Journal(FULL))
    service.start()
    assert service.wait(10)
    assert service.state == "failed"
    assert isinstance(service.failure, JournalWriteError)
    assert "the journal failed" in (service.shutdown_reason or "")
    assert len(service.journal) > 0  # every record is still kept in memory


# -- the header stays truthful, whatever the order of registrations and records -----------------

Operation = tuple[str, str, tuple[str, ...]]

operations = st.lists(
    st.tuples(
        st.sampled_from(["describe", "forget", "record", "record"]),
        st.sampled_from(["A", "B", "C"]),
        st.lists(st.sampled_from(["A", "B", "C"]), max_size=2).map(tuple),
    ),
    max_size=12,
)


@given(ops=operations)
def test_the_streamed_file_always_shows_the_table_of_its_last_record(ops: list[Operation]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "j.jsonl")
        journal = Journal(path)
        table_at_last_record: dict[str, Any] = {}
        for op, name, deps in ops:
            if op == "describe":
                journal.describe_tasks({name: {"class": f"m.{name}", "deps": deps}})
            elif op == "forget":
                journal.forget_task(name)
            else:
                journal.record("task", name, "create", "registered", "created", True)
                table_at_last_record = journal.tasks
            header, records = read_journal(path)  # whole after every step
            assert header["tasks"] == table_at_last_record
            assert records == list(journal.records)
            assert not {"format", "hash-chain"} & {v.rule for v in check(path, partial=True)}
        journal.close()
        header, records = read_journal(path)
        assert header["tasks"] == journal.tasks and records == list(journal.records)
        journal.write(Path(tmp, "written.jsonl"))
        assert path.read_bytes() == Path(tmp, "written.jsonl").read_bytes()
        assert set(os.listdir(tmp)) == {"j.jsonl", "written.jsonl"}  # no temporary file left


def test_without_a_temporary_file_the_header_is_rewritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    path = tmp_path / "here.jsonl"
    journal = Journal(path)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # a directory we may not write to
    run_collection(journal)
    journal.close()
    assert journal.stream_error is None
    header, records = read_journal(path)
    assert set(header["tasks"]) == {"Base", "Leaf"} and len(records) == len(journal)
    assert check(path) == []


def test_a_relative_path_is_rewritten_where_it_was_opened_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    journal = Journal("rel.jsonl")
    monkeypatch.chdir(tmp_path / "second")  # a daemon's chdir("/"), say
    run_collection(journal)
    journal.close()
    assert os.listdir(tmp_path / "second") == []
    header, records = read_journal(tmp_path / "first" / "rel.jsonl")
    assert set(header["tasks"]) == {"Base", "Leaf"} and len(records) == len(journal)


def test_a_journal_moved_while_open_is_rewritten_where_it_is_now(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "before.jsonl")
    (tmp_path / "before.jsonl").rename(tmp_path / "after.jsonl")  # log rotation, say
    run_collection(journal)
    journal.close()
    assert os.listdir(tmp_path) == ["after.jsonl"]
    header, records = read_journal(tmp_path / "after.jsonl")
    assert set(header["tasks"]) == {"Base", "Leaf"} and len(records) == len(journal)
    assert check(tmp_path / "after.jsonl") == []
