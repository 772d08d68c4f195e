"""Notices as their listeners get them, `Journal.write`'s copy and its errors, a bounded
journal that stays bounded whatever comes and goes, and what reading a missing file says."""

from __future__ import annotations

import errno
import os
import threading
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.audit import check
from lifecycle.errors import JournalWriteError
from lifecycle.journal import Journal, JournalFormatError, Notice, read_journal
from lifecycle.seal import keygen


@given(
    kind=st.sampled_from(["task", "service"]),
    subject=st.text(max_size=6),
    what=st.sampled_from(["ready", "live"]),
    value=st.booleans(),
    reason=st.one_of(st.none(), st.text(max_size=6)),
)
def test_a_notice_carries_what_was_told_and_the_telling_thread(
    kind: str, subject: str, what: str, value: bool, reason: str | None
) -> None:
    journal = Journal()
    seen: list[Notice] = []
    journal.subscribe_notices(seen.append)
    journal.notice(kind, subject, what, value, reason)
    [notice] = seen
    assert (notice.kind, notice.subject, notice.what, notice.value, notice.reason) == (
        kind,
        subject,
        what,
        value,
        reason,
    )
    assert notice.thread == threading.current_thread().name


def test_an_unsubscribed_notice_listener_is_no_longer_told_and_the_others_still_are() -> None:
    journal = Journal()
    first: list[Notice] = []
    second: list[Notice] = []
    unsubscribe_first = journal.subscribe_notices(first.append)
    journal.subscribe_notices(second.append)
    journal.notice("task", "Db", "ready", True)
    unsubscribe_first()
    journal.notice("task", "Db", "ready", False, "lost its connection")
    assert [n.value for n in first] == [True]
    assert [n.value for n in second] == [True, False]


def test_the_copy_of_a_sealed_journal_is_unsealed_and_audits_clean(tmp_path: Path) -> None:
    keygen(tmp_path / "seal.key", tmp_path / "verify.key")
    journal = Journal(tmp_path / "j.jsonl", seal=tmp_path / "seal.key")
    journal.record("task", "A", "create", "registered", "created", True)
    journal.write(tmp_path / "copy.jsonl")
    journal.close()
    header, records = read_journal(tmp_path / "copy.jsonl")
    assert "seal" not in header and "seal" in read_journal(tmp_path / "j.jsonl")[0]
    assert len(records) == 1
    assert check(tmp_path / "copy.jsonl", partial=True) == []


def test_a_copy_that_cannot_be_written_raises_journal_write_error_naming_the_file(
    tmp_path: Path,
) -> None:
    journal = Journal()
    journal.record("task", "A", "create", "registered", "created", True)
    target = tmp_path / "no-such-dir" / "copy.jsonl"
    with pytest.raises(JournalWriteError) as info:
        journal.write(target)
    error = info.value
    assert error.path == os.fspath(target) and error.errno == errno.ENOENT
    assert isinstance(error.error, FileNotFoundError) and error.__cause__ is error.error
    assert str(error) == f"journal {os.fspath(target)!r} could not be written: {error.error}"


@pytest.mark.parametrize("keep", [1, 3])
def test_a_bounded_journal_stays_bounded_after_a_listener_came_and_went(keep: int) -> None:
    journal = Journal(max_records=keep)
    unsubscribe = journal.subscribe(lambda record: None)
    unsubscribe()
    for index in range(10 * keep):
        journal.record("task", f"T{index}", "create", "registered", "created", True)
    assert keep <= len(journal) < 2 * keep
    assert journal.dropped == 10 * keep - len(journal)
    assert journal.records[-1].subject == f"T{10 * keep - 1}"


def test_a_bounded_journal_keeps_its_memory_bounded_after_a_listener_came_and_went() -> None:
    # What the bound is for: a long-lived process. Every record costs about 20 bytes while it
    # is held; 20,000 records held would take some 400 kB more.
    journal = Journal(max_records=10)
    journal.subscribe(lambda record: None)()
    subject = "T"

    def record(count: int) -> None:
        for _ in range(count):
            journal.record("task", subject, "create", "registered", "created", True)

    record(1000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        record(20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes more after 20,000 records with max_records=10"
    assert len(journal) == 10


def test_reading_a_missing_file_says_the_os_reason_once(tmp_path: Path) -> None:
    path = tmp_path / "missing.jsonl"
    with pytest.raises(JournalFormatError) as info:
        read_journal(path)
    assert str(info.value) == f"cannot read {str(path)!r}: {os.strerror(errno.ENOENT)}"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ('{"format":"syslog","version":1}', "not a lifecycle journal (format 'syslog')"),
        ('{"format":"lifecycle-journal","version":99}', "unsupported journal version 99 "),
    ],
)
def test_a_header_of_another_format_or_version_is_refused_naming_the_value_found(
    tmp_path: Path, header: str, problem: str
) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text(header + "\n", encoding="ascii")
    with pytest.raises(JournalFormatError) as info:
        read_journal(path)
    assert info.value.line == 1 and str(info.value).startswith(f"line 1: {problem}")
