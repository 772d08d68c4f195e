"""The header rewrite of a streamed journal (its task table changed after the file was opened)
replaces the file atomically: a new file beside it, then a rename, never a truncation a reader
could see; and every way that can fail leaves no temporary file and the journal consistent."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

import lifecycle.journal
from lifecycle.audit import check
from lifecycle.journal import Journal, read_journal


def change_the_task_table(journal: Journal) -> None:
    journal.describe_tasks({"Db": {"deps": []}, "Web": {"deps": ["Db"]}})


def record_one(journal: Journal, subject: str = "Db") -> None:
    journal.record("task", subject, "create", "registered", "created", True)


def header_tasks(path: Path) -> set[str]:
    with path.open(encoding="ascii") as file:
        return set(json.loads(file.readline())["tasks"])


def test_a_reader_of_the_old_file_sees_it_whole_after_the_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    first_header = path.read_text(encoding="ascii")
    with path.open(encoding="ascii") as reader:  # a tail -f, an auditor
        change_the_task_table(journal)
        record_one(journal)
        assert reader.read() == first_header  # its file was replaced, not cut and refilled
    journal.close()
    assert header_tasks(path) == {"Db", "Web"}
    assert check(path, partial=True) == []


def test_the_rewrite_gives_the_path_a_new_file_and_leaves_no_other_file(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    before = os.stat(path)
    change_the_task_table(journal)
    record_one(journal)
    after = os.stat(path)
    assert not os.path.samestat(before, after)
    assert os.listdir(tmp_path) == ["j.jsonl"]
    record_one(journal, "Web")  # later records go to the new file
    journal.close()
    _, records = read_journal(path)
    assert [r.subject for r in records] == ["Db", "Web"]


def test_a_journal_rotated_away_is_rewritten_where_it_is_and_the_new_file_is_left_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    path.rename(tmp_path / "j.jsonl.1")  # logrotate's "create": a new file at the old name
    path.write_text("another program's file\n", encoding="ascii")
    change_the_task_table(journal)
    record_one(journal)
    journal.close()
    assert journal.stream_error is None
    assert path.read_text(encoding="ascii") == "another program's file\n"
    assert header_tasks(tmp_path / "j.jsonl.1") == {"Db", "Web"}
    assert check(tmp_path / "j.jsonl.1", partial=True) == []


def test_the_temporary_file_is_a_hidden_one_named_after_the_journal_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process killed mid-rewrite leaves it behind: it must say whose it is, and be on the
    # journal's file system so that the rename is atomic.
    renamed: list[tuple[str, str]] = []
    real_replace = os.replace

    def watching_replace(source: Any, target: Any) -> None:
        renamed.append((os.fspath(source), os.fspath(target)))
        real_replace(source, target)

    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    monkeypatch.setattr(os, "replace", watching_replace)
    change_the_task_table(journal)
    record_one(journal)
    monkeypatch.undo()
    journal.close()
    [(source, target)] = renamed
    assert target == str(path)
    assert os.path.dirname(source) == str(tmp_path)
    name = os.path.basename(source)
    assert name.startswith(".j.jsonl.") and name.endswith(".tmp") and name != ".j.jsonl..tmp"


def test_a_file_system_that_refuses_chmod_still_gets_the_atomic_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")  # vfat, some mounts

    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    before = os.stat(path)
    monkeypatch.setattr(os, "fchmod", refuse)
    change_the_task_table(journal)
    record_one(journal)
    monkeypatch.undo()
    journal.close()
    assert journal.stream_error is None
    assert not os.path.samestat(before, os.stat(path))
    assert header_tasks(path) == {"Db", "Web"} and os.listdir(tmp_path) == ["j.jsonl"]


def interrupt(*args: object) -> None:
    raise KeyboardInterrupt


def refuse_unlink(path: object) -> None:
    raise PermissionError(errno.EACCES, "Permission denied")


@pytest.mark.parametrize("unlink_fails", [False, True], ids=["unlinked", "unlink-refused"])
def test_an_interrupt_while_the_temporary_file_is_made_propagates_and_leaves_it_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unlink_fails: bool
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    opened_before = set(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fchmod", interrupt)  # Ctrl-C lands in the middle of the rewrite
    if unlink_fails:
        monkeypatch.setattr(os, "unlink", refuse_unlink)
    change_the_task_table(journal)
    with pytest.raises(KeyboardInterrupt):
        record_one(journal)
    monkeypatch.undo()
    assert set(os.listdir("/proc/self/fd")) <= opened_before  # its descriptor was closed
    if not unlink_fails:
        assert os.listdir(tmp_path) == ["j.jsonl"]
    journal.close()


@pytest.mark.parametrize("unlink_fails", [False, True], ids=["unlinked", "unlink-refused"])
def test_a_failed_rename_stops_streaming_and_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unlink_fails: bool
) -> None:
    def refuse(source: Any, target: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    first_header = path.read_text(encoding="ascii")
    monkeypatch.setattr(os, "replace", refuse)
    if unlink_fails:
        monkeypatch.setattr(os, "unlink", refuse_unlink)
    change_the_task_table(journal)
    record_one(journal)  # a write error never reaches the code that fired the trigger
    monkeypatch.undo()
    error = journal.stream_error
    assert error is not None and error.errno == errno.EXDEV
    assert path.read_text(encoding="ascii") == first_header
    if not unlink_fails:
        assert os.listdir(tmp_path) == ["j.jsonl"]
    assert len(journal) == 1
    journal.close()


class ClosingFails:
    """A file whose ``close`` reports an error after closing (NFS reports a deferred write
    error at close), or whose flush fails, as a full disk makes it."""

    def __init__(self, file: IO[str], error: BaseException, *, flush_fails: bool) -> None:
        self._file = file
        self._error = error
        self._flush_fails = flush_fails

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def flush(self) -> None:
        if self._flush_fails:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        raise self._error


def opening(
    wrap: Callable[[IO[str]], ClosingFails], *, fds: bool
) -> Callable[..., IO[str] | ClosingFails]:
    """An `open` for the journal module that wraps the files it opens by path (``fds``:
    False) or by descriptor (True: the rewrite's new file)."""

    def fake_open(target: Any, *args: Any, **kwargs: Any) -> IO[str] | ClosingFails:
        file: IO[str] = open(target, *args, **kwargs)  # noqa: SIM115
        return wrap(file) if isinstance(target, int) == fds else file

    return fake_open


@pytest.mark.parametrize("error", [OSError(errno.EIO, "I/O error"), ValueError("closed")])
def test_an_error_closing_the_replaced_file_is_ignored_the_new_one_has_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = tmp_path / "j.jsonl"
    wrap = opening(lambda file: ClosingFails(file, error, flush_fails=False), fds=False)
    monkeypatch.setattr(lifecycle.journal, "open", wrap, raising=False)
    journal = Journal(path)
    monkeypatch.undo()
    change_the_task_table(journal)
    record_one(journal)
    record_one(journal, "Web")
    journal.close()
    assert journal.stream_error is None
    assert header_tasks(path) == {"Db", "Web"} and len(read_journal(path)[1]) == 2


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "full"), ValueError("closed")])
def test_a_rewrite_that_cannot_be_flushed_stops_streaming_with_the_flush_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    first_header = path.read_text(encoding="ascii")
    # The new file cannot be flushed (a full disk), and closing it fails too.
    wrap = opening(lambda file: ClosingFails(file, error, flush_fails=True), fds=True)
    monkeypatch.setattr(lifecycle.journal, "open", wrap, raising=False)
    change_the_task_table(journal)
    record_one(journal)
    monkeypatch.undo()
    stream_error = journal.stream_error
    assert stream_error is not None and stream_error.errno == errno.ENOSPC
    assert path.read_text(encoding="ascii") == first_header
    assert os.listdir(tmp_path) == ["j.jsonl"]
    journal.close()


def test_the_replacing_file_keeps_a_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    os.chmod(path, 0o600)
    change_the_task_table(journal)
    record_one(journal)
    journal.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
