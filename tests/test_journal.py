"""The journal: numbering, snapshots, listeners, the JSONL file and its hash chain."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle.engine import Lifecycle
from lifecycle.errors import InitError
from lifecycle.journal import (
    FORMAT,
    FORMAT_VERSION,
    Journal,
    JournalFormatError,
    Transition,
    canonical,
    cause_line,
    chain_hash,
    describe_cause,
    read_journal,
)
from lifecycle.spec import SPECS, TASK
from tests.strategies import sequence_problems

# Arbitrary text, lone surrogates and line separators included: the file must still
# round-trip it and keep one record per line.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)


def chain_problems(path: Path) -> list[str]:
    """Recompute the hash chain of a journal file from scratch; the lines that break it."""
    problems = []
    previous = ""
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        data = json.loads(line)
        stored = data.pop("hash")
        if line != canonical({**data, "hash": stored}):
            problems.append(f"line {number} is not canonical JSON")
        previous = chain_hash(previous, canonical(data))
        if stored != previous:
            problems.append(f"line {number}: hash {stored} != {previous}")
    return problems


def fill(journal: Journal, count: int) -> list[Transition]:
    """Record ``count`` creations; return the records they made."""
    before = len(journal)
    for i in range(count):
        journal.record("task", f"t{i}", "create", "registered", "created", True)
    return list(journal.records[before:])


# -- in memory -----------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=50))
def test_seq_counts_up_from_one_with_no_gaps(count: int) -> None:
    journal = Journal()
    returned = fill(journal, count)
    assert [r.seq for r in returned] == list(range(1, count + 1))
    assert sequence_problems(journal.records) == []
    assert len(journal) == count


def test_records_is_a_snapshot_that_later_records_do_not_change() -> None:
    journal = Journal()
    fill(journal, 2)
    snapshot = journal.records
    fill(journal, 3)
    assert isinstance(snapshot, tuple)
    assert [r.seq for r in snapshot] == [1, 2]
    assert len(journal.records) == 5


def test_a_record_keeps_every_field_it_was_given() -> None:
    journal = Journal()
    journal.record("task", "db", "stop", "running", "stopping", True, "asked")
    (rec,) = journal.records
    assert (rec.kind, rec.subject, rec.trigger, rec.source, rec.dest, rec.ok, rec.cause) == (
        "task",
        "db",
        "stop",
        "running",
        "stopping",
        True,
        "asked",
    )
    assert rec.thread == "MainThread"
    assert rec.time > 0 and rec.mono > 0
    with pytest.raises(AttributeError):
        rec.seq = 7  # type: ignore[misc]


def test_subscribers_see_every_later_record_in_order_until_they_unsubscribe() -> None:
    journal = Journal()
    fill(journal, 1)
    seen: list[int] = []
    unsubscribe = journal.subscribe(lambda r: seen.append(r.seq))
    fill(journal, 3)
    unsubscribe()
    fill(journal, 2)
    assert seen == [2, 3, 4]
    unsubscribe()  # twice is harmless


def test_unsubscribing_one_listener_keeps_the_others() -> None:
    journal = Journal()
    first: list[int] = []
    second: list[int] = []
    undo_first = journal.subscribe(lambda r: first.append(r.seq))
    journal.subscribe(lambda r: second.append(r.seq))
    fill(journal, 1)
    undo_first()
    fill(journal, 1)
    assert (first, second) == ([1], [1, 2])


def test_a_listener_that_raises_is_logged_and_does_not_break_firing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    after: list[str] = []

    def broken(record: Transition) -> None:
        raise RuntimeError("listener bug")

    journal.subscribe(broken)
    journal.subscribe(lambda r: after.append(r.trigger))
    lc = Lifecycle(TASK, "t", journal)
    with caplog.at_level(logging.ERROR, logger="lifecycle.journal"):
        assert lc.fire("create") == "created"
        assert lc.fire("init") == "initialized"
    assert lc.state == "initialized"
    assert after == ["create", "init"]
    assert len(journal.records) == 2
    logged = [r for r in caplog.records if r.name == "lifecycle.journal"]
    assert len(logged) == 2
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in logged)
    assert "listener" in logged[0].getMessage()


def test_describe_cause_keeps_type_message_and_traceback() -> None:
    assert describe_cause(None) is None
    assert describe_cause("plain words") == "plain words"
    try:
        raise KeyError("missing")
    except KeyError as exc:
        text = describe_cause(exc)
    assert text is not None
    assert text.startswith("Traceback (most recent call last):")
    assert text.endswith("KeyError: 'missing'")
    assert describe_cause(OSError("never raised")) == "OSError: never raised"


# -- files ---------------------------------------------------------------------------------


record_args = st.tuples(
    st.sampled_from(sorted(SPECS)),
    any_text,  # subject
    any_text,  # trigger
    any_text,  # source
    st.one_of(st.none(), any_text),  # dest
    st.booleans(),
    st.one_of(st.none(), any_text),  # cause
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(record_args, max_size=8), any_text)
def test_write_then_read_journal_round_trips_every_record(
    tmp_path: Path, args: list[tuple[Any, ...]], task_name: str
) -> None:
    journal = Journal()
    journal.describe_tasks({task_name: {"class": "mod.Cls", "deps": [task_name], "wants": []}})
    for kind, subject, trigger, source, dest, ok, cause in args:
        journal.record(kind, subject, trigger, source, dest, ok, cause)
    path = tmp_path / "journal.jsonl"
    journal.write(path)
    header, records = read_journal(path)
    assert records == list(journal.records)
    assert header["format"] == FORMAT and header["version"] == FORMAT_VERSION
    assert header["specs"] == {name: spec.to_dict() for name, spec in SPECS.items()}
    assert header["tasks"] == {task_name: {"class": "mod.Cls", "deps": [task_name], "wants": []}}
    assert len(path.read_bytes().splitlines()) == 1 + len(args)
    assert chain_problems(path) == []


def test_streaming_brings_the_header_up_to_the_tasks_known_at_the_first_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.jsonl"
    with Journal(path) as journal:
        journal.describe_tasks({"db": {"class": "app.Db"}})
        assert read_journal(path) == ({**journal.header(), "tasks": {}, "hash": ANY}, [])
        journal.describe_tasks({"web": {"class": "app.Web", "deps": ["db"]}})
        lc = Lifecycle(TASK, "db", journal)
        lc.fire("create")
        header, records = read_journal(path)
        assert set(header["tasks"]) == {"db", "web"}
        assert header["tasks"]["web"] == {"class": "app.Web", "deps": ["db"], "wants": []}
        assert records == list(journal.records)
        # Each record is flushed as it is written: readable while the journal is open.
        for expected in (2, 3):
            lc.fire("init" if expected == 2 else "start")
            assert len(read_journal(path)[1]) == expected
    assert read_journal(path)[1] == list(journal.records)
    assert chain_problems(path) == []


def test_a_streamed_file_equals_the_written_file(tmp_path: Path) -> None:
    live = tmp_path / "live.jsonl"
    with Journal(live) as journal:
        journal.describe_tasks({"a": {"class": "m.A"}})
        fill(journal, 4)
    written = tmp_path / "written.jsonl"
    journal.write(written)
    assert live.read_text() == written.read_text()


def test_forget_task_drops_a_task_description() -> None:
    journal = Journal()
    journal.describe_tasks({"a": {"class": "m.A"}, "b": {"class": "m.B", "deps": ["a"]}})
    journal.forget_task("a")
    journal.forget_task("never-described")
    assert journal.tasks == {"b": {"class": "m.B", "deps": ["a"], "wants": []}}
    assert journal.header()["tasks"] == journal.tasks


def test_closing_an_empty_streamed_journal_writes_the_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    journal = Journal(path)
    journal.close()
    journal.close()  # idempotent
    header, records = read_journal(path)
    assert header["format"] == FORMAT and records == []
    assert chain_problems(path) == []


def test_the_hash_chain_detects_an_edited_dropped_or_swapped_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal()
    fill(journal, 4)
    journal.write(path)
    lines = path.read_text().splitlines()
    assert chain_problems(path) == []

    edited = lines.copy()
    edited[2] = edited[2].replace('"t1"', '"tX"')
    dropped = lines[:2] + lines[3:]
    swapped = [lines[0], lines[2], lines[1], *lines[3:]]
    for variant in (edited, dropped, swapped):
        path.write_text("\n".join(variant) + "\n")
        assert chain_problems(path) != []


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("", 1, "empty file"),
        ("[1, 2]\n", 1, "not an object"),
        ("{not json\n", 1, "not JSON"),
        ('{"format": "other", "version": 1}\n', 1, "not a lifecycle journal"),
        ('{"format": "lifecycle-journal", "version": 99}\n', 1, "unsupported journal version"),
        ("HEADER\n{}\n", 2, "record lacks"),
        ("HEADER\nRECORD\n\n", 3, "not JSON"),
        ("HEADER\nRECORD\nRECORD\n" + '"text"\n', 4, "not an object"),
    ],
)
def test_a_bad_file_raises_journal_format_error_with_its_line_number(
    tmp_path: Path, content: str, line: int, reason: str
) -> None:
    journal = Journal()
    fill(journal, 1)
    good = tmp_path / "good.jsonl"
    journal.write(good)
    header_line, record_line = good.read_text().splitlines()
    path = tmp_path / "bad.jsonl"
    path.write_text(content.replace("HEADER", header_line).replace("RECORD", record_line))
    with pytest.raises(JournalFormatError) as info:
        read_journal(path)
    assert info.value.line == line
    assert reason in str(info.value)
    assert str(info.value).startswith(f"line {line}:")


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", True), ("seq", "1"), ("ok", 1), ("dest", 3), ("cause", ["x"]), ("time", None)],
)
def test_a_record_field_of_the_wrong_type_is_refused(
    tmp_path: Path, field: str, value: object
) -> None:
    journal = Journal()
    fill(journal, 2)
    path = tmp_path / "journal.jsonl"
    journal.write(path)
    lines = path.read_text().splitlines()
    data = json.loads(lines[2])
    data[field] = value
    lines[2] = json.dumps(data)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JournalFormatError, match=f"'{field}' has a bad value") as info:
        read_journal(path)
    assert info.value.line == 3


def test_an_unreadable_file_raises_journal_format_error(tmp_path: Path) -> None:
    with pytest.raises(JournalFormatError, match="cannot read") as info:
        read_journal(tmp_path / "missing.jsonl")
    assert info.value.line is None
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(JournalFormatError, match=r"^line 1: not UTF-8$"):
        read_journal(binary)


def test_journal_format_error_is_a_value_error() -> None:
    assert issubclass(JournalFormatError, ValueError)


def test_a_collection_refuses_a_journal_that_is_not_one() -> None:
    from lifecycle.collection import Tasks

    with pytest.raises(TypeError, match=r"journal must be a lifecycle\.Journal"):
        Tasks([], journal="run.jsonl")  # type: ignore[arg-type]


# -- cause_line: the one-line form of a cause ----------------------------------------------------

#: One line of text with no line break of any kind (``str.splitlines`` splits on many).
one_line = (
    st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """``exc`` after being raised (so that it has a traceback), chained to ``cause``."""
    try:
        raise exc from cause
    except BaseException as caught:  # the point is to catch anything
        return caught


def test_cause_line_of_an_init_error_is_the_group_message_naming_the_failed_tasks() -> None:
    root = _raised(RuntimeError("database unreachable"))
    group = InitError({"Database": root, "Cache": _raised(ValueError("bad size"))})
    assert isinstance(root, Exception)
    for text in (describe_cause(group), describe_cause(_raised(group, root))):
        assert cause_line(text) == "InitError: tasks failed to initialize: Database, Cache"


def test_cause_line_is_the_raised_exception_line_not_a_note_nor_a_message_tail() -> None:
    inner = _raised(KeyError("k"))
    outer = _raised(ValueError("first line\nsecond line"), inner)
    outer.add_note("a note")
    assert cause_line(describe_cause(outer)) == "ValueError: first line"


def test_cause_line_of_a_reason_or_an_unraised_exception_is_its_first_line() -> None:
    assert cause_line("dependency 'Metrics' ended skipped") == "dependency 'Metrics' ended skipped"
    assert cause_line("see example.org: details") == "see example.org: details"
    assert cause_line(describe_cause(InitError({"A": ValueError("x")}))) == (
        "InitError: tasks failed to initialize: A"
    )
    assert cause_line(None) is None and cause_line("") is None and cause_line("\n \n") is None


@given(
    kind=st.sampled_from([RuntimeError, ValueError, OSError, SystemExit, KeyboardInterrupt]),
    message=one_line,
)
def test_cause_line_of_any_raised_exception_is_type_and_message(
    kind: type[BaseException], message: str
) -> None:
    assert cause_line(describe_cause(_raised(kind(message)))) == f"{kind.__name__}: {message}"


@given(message=one_line, count=st.integers(1, 4), raised=st.booleans())
def test_cause_line_of_any_exception_group_is_its_message(
    message: str, count: int, raised: bool
) -> None:
    group = ExceptionGroup(message, [_raised(ValueError(str(i))) for i in range(count)])
    text = describe_cause(_raised(group) if raised else group)
    assert cause_line(text) == f"ExceptionGroup: {message}"
