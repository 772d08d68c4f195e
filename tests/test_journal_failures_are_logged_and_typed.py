"""What a journal says when something around it fails: a listener, a notice listener or a
stream-error callback that raises is logged by name and ignored; a stopped stream is logged
with where it stopped and why; every write failure becomes a `JournalWriteError` that chains
what the OS (or the key file) said; and a failure that is no I/O failure is not hidden."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import IO, Any

import pytest

import lifecycle.journal
import lifecycle.seal
from lifecycle.errors import JournalWriteError
from lifecycle.journal import Journal, Notice, Transition
from lifecycle.seal import SealKeyError, keygen

LOGGER = "lifecycle.journal"


class Listener:
    """A callable with a `repr` of its own, so that a log line can be checked to name it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, item: object) -> None:
        raise RuntimeError(f"{self.name} broke")

    def __repr__(self) -> str:
        return f"<listener {self.name}>"


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


def record_one(journal: Journal, subject: str = "A") -> None:
    journal.record("task", subject, "create", "registered", "created", True)


def test_a_listener_that_raises_is_logged_by_name_and_the_others_are_still_called(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    seen: list[Transition] = []
    journal.subscribe(Listener("audit-hook"))
    journal.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, LOGGER):
        record_one(journal)
    assert [r.subject for r in seen] == ["A"]
    assert messages(caplog, logging.ERROR) == [
        "journal listener <listener audit-hook> raised; ignored"
    ]
    [log] = [r for r in caplog.records if r.name == LOGGER]
    assert log.exc_info is not None and str(log.exc_info[1]) == "audit-hook broke"


def test_a_notice_listener_that_raises_is_logged_by_name_and_the_others_are_still_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    seen: list[Notice] = []
    journal.subscribe_notices(Listener("probe"))
    journal.subscribe_notices(seen.append)
    with caplog.at_level(logging.ERROR, LOGGER):
        journal.notice("task", "Db", "ready", True)
    assert [n.subject for n in seen] == ["Db"]
    assert messages(caplog, logging.ERROR) == [
        "journal notice listener <listener probe> raised; ignored"
    ]


class FlakyFile:
    """A journal file whose flush starts failing (a disk that fills up) once ``failing`` is
    set, and whose ``close`` then raises ``close_error`` after closing."""

    def __init__(self, file: IO[str], close_error: BaseException | None) -> None:
        self._file = file
        self._close_error = close_error
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def flush(self) -> None:
        if self.failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self.failing and self._close_error is not None:
            raise self._close_error


def flaky_journal(
    path: Path, monkeypatch: pytest.MonkeyPatch, close_error: BaseException | None = None
) -> tuple[Journal, FlakyFile]:
    made: list[FlakyFile] = []

    def fake_open(target: Any, *args: Any, **kwargs: Any) -> FlakyFile:
        made.append(FlakyFile(open(target, *args, **kwargs), close_error))  # noqa: SIM115
        return made[-1]

    with monkeypatch.context() as patch:
        patch.setattr(lifecycle.journal, "open", fake_open, raising=False)
        journal = Journal(path)
    return journal, made[0]


def test_a_stopped_stream_is_logged_with_the_seq_it_stopped_at_and_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    journal, file = flaky_journal(tmp_path / "j.jsonl", monkeypatch)
    record_one(journal, "A")
    record_one(journal, "B")
    file.failing = True
    with caplog.at_level(logging.ERROR, LOGGER):
        record_one(journal, "C")
    error = journal.stream_error
    assert error is not None and error.errno == errno.ENOSPC
    assert messages(caplog, logging.ERROR) == [f"journal streaming stopped at seq 3: {error}"]
    journal.close()


def test_a_stream_that_fails_at_close_is_logged_as_stopped_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NFS reports a deferred write error when the file is closed.
    journal, file = flaky_journal(tmp_path / "j.jsonl", monkeypatch, OSError(errno.EIO, "EIO"))
    file.failing = True
    with caplog.at_level(logging.ERROR, LOGGER):
        journal.close()
    error = journal.stream_error
    assert error is not None and error.errno == errno.EIO
    assert messages(caplog, logging.ERROR) == [f"journal streaming stopped at close: {error}"]


@pytest.mark.parametrize("close_error", [OSError(errno.EIO, "I/O error"), ValueError("closed")])
def test_a_file_that_fails_to_flush_and_to_close_stops_the_stream_with_the_flush_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, close_error: BaseException
) -> None:
    journal, file = flaky_journal(tmp_path / "j.jsonl", monkeypatch, close_error)
    file.failing = True
    record_one(journal)  # nothing reaches the code that fired the trigger
    error = journal.stream_error
    assert error is not None and error.errno == errno.ENOSPC
    assert len(journal) == 1
    journal.close()


def test_a_stream_error_callback_that_raises_is_logged_by_name_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    journal, file = flaky_journal(tmp_path / "j.jsonl", monkeypatch)
    told: list[JournalWriteError] = []
    journal.on_stream_error(Listener("shutdown-request"))
    journal.on_stream_error(told.append)
    file.failing = True
    with caplog.at_level(logging.ERROR, LOGGER):
        record_one(journal)
    assert told == [journal.stream_error]
    assert "journal stream-error callback <listener shutdown-request> raised; ignored" in (
        messages(caplog, logging.ERROR)
    )
    journal.close()


def test_a_header_that_fails_at_open_and_at_close_raises_journal_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FailingFromTheStart(FlakyFile):
        def __init__(self, file: IO[str], close_error: BaseException | None) -> None:
            super().__init__(file, close_error)
            self.failing = True

    def fake_open(target: Any, *args: Any, **kwargs: Any) -> FlakyFile:
        return FailingFromTheStart(open(target, *args, **kwargs), OSError(errno.EIO, "EIO"))

    monkeypatch.setattr(lifecycle.journal, "open", fake_open, raising=False)
    with pytest.raises(JournalWriteError) as info:
        Journal(tmp_path / "j.jsonl")
    assert info.value.errno == errno.ENOSPC and info.value.path == str(tmp_path / "j.jsonl")


def test_a_file_closed_under_the_journal_is_a_stream_error_that_chains_the_value_error(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    file = journal._file
    assert file is not None
    file.close()
    record_one(journal)
    error = journal.stream_error
    assert error is not None and error.errno == errno.EBADF
    assert error.strerror == "I/O operation on closed file"
    assert isinstance(error.error.__cause__, ValueError)
    journal.close()


@pytest.fixture
def seal_key(tmp_path: Path) -> Path:
    keygen(tmp_path / "seal.key", tmp_path / "verify.key")
    return tmp_path / "seal.key"


def test_a_key_file_that_cannot_move_on_is_an_eio_stream_error_caused_by_the_key_error(
    tmp_path: Path, seal_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "j.jsonl", seal=seal_key, seal_epoch=2)

    def refuse(source: str, target: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lifecycle.seal.os, "replace", refuse)
    for index in range(3):
        record_one(journal, f"T{index}")
    monkeypatch.undo()
    journal.close()
    error = journal.stream_error
    assert error is not None and error.errno == errno.EIO
    assert isinstance(error.error.__cause__, SealKeyError)
    assert len(journal) == 3


def test_a_record_that_cannot_be_encoded_is_a_bug_raised_to_the_caller_not_a_stream_error(
    tmp_path: Path,
) -> None:
    subject: list[Any] = []
    subject.append(subject)  # no JSON text exists for it: a caller's bug, not a full disk
    journal = Journal(tmp_path / "j.jsonl")
    with pytest.raises(ValueError, match="Circular reference"):
        journal.record("task", subject, "create", "registered", "created", True)  # type: ignore[arg-type]
    assert journal.stream_error is None
    journal.close()


def test_a_record_that_cannot_be_encoded_leaves_the_journal_streaming_the_records_after_it(
    tmp_path: Path,
) -> None:
    subject: list[Any] = []
    subject.append(subject)
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    record_one(journal, "Before")
    with pytest.raises(ValueError, match="Circular reference"):
        journal.record("task", subject, "create", "registered", "created", True)  # type: ignore[arg-type]
    record_one(journal, "After")
    journal.close()
    assert journal.stream_error is None
    # The unencodable record is missing from the file, a gap its reader sees; none after it.
    _, records = lifecycle.journal.read_journal(path)
    assert [r.subject for r in records] == ["Before", "After"]


def test_a_header_that_can_no_longer_change_is_warned_about_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path, max_records=1)
    for index in range(3):
        record_one(journal, f"T{index}")  # a bounded journal drops the first records
    journal.describe_tasks({"Late": {"deps": []}})
    with caplog.at_level(logging.WARNING, LOGGER):
        record_one(journal, "Late")
    [warning] = messages(caplog, logging.WARNING)
    assert warning.startswith(f"journal {path}: the task table changed after the header")
    journal.close()
