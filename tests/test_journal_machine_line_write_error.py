"""A machine described while the journal's file can no longer be written: the machine is
still described, the caller sees no error, and the stream error says what failed, where, and
keeps its cause."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from lifecycle import load_spec
from lifecycle.errors import JournalWriteError
from lifecycle.journal import Journal

DOOR_FILE = Path(__file__).resolve().parent / "fixtures" / "door.toml"


def test_a_machine_line_that_cannot_be_written_is_a_stream_error_naming_the_machine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    door = load_spec(DOOR_FILE)
    journal = Journal(tmp_path / "journal.jsonl")  # its header is written: a machine gets a line
    told: list[JournalWriteError] = []
    journal.on_stream_error(told.append)
    # Someone closed the journal's file under it (the journal has no public handle on it).
    file = journal._file
    assert file is not None
    file.close()
    with caplog.at_level(logging.ERROR, logger="lifecycle.journal"):
        journal.describe_machine(door)  # no error reaches the caller
    assert journal.machines["door"] is door
    error = journal.stream_error
    assert isinstance(error, JournalWriteError) and told == [error]
    assert error.errno == errno.EBADF
    # The OS-level error keeps what was raised on the closed file as its cause.
    assert isinstance(error.error.__cause__, ValueError)
    assert [r.getMessage() for r in caplog.records] == [
        f"journal streaming stopped declaring machine 'door': {error}"
    ]
    journal.record("door", "front", "open", "closed", "open", True)
    assert len(journal) == 1  # recording goes on, in memory
    journal.close()
