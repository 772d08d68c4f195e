"""The journal's compact records: what is read back is what was recorded, the wall time is
derived from one monotonic read per record, a thread's name is read at each record, and a
streamed line is the canonical JSON of its record."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.bind import bind
from lifecycle.engine import Lifecycle
from lifecycle.journal import (
    _FIELDS,
    Journal,
    JournalIncomplete,
    Transition,
    _record_json,
    _row_dict,
    canonical,
    describe_cause,
    read_journal,
)
from lifecycle.spec import TASK, TaskState
from tests.test_journal import any_text, chain_problems

#: A state as a caller may give it: an enum member, or its text.
states = st.sampled_from(list(TaskState)).flatmap(
    lambda member: st.sampled_from([member, member.value])
)
causes = st.one_of(st.none(), any_text, st.builds(RuntimeError, any_text))

#: One `Journal.record` call's arguments (``dest`` None for a refused record).
records = st.tuples(
    st.sampled_from(["task", "collection", "service"]),
    any_text,  # subject
    st.sampled_from(["create", "init", "start", "stop", "made-up"]) | any_text,  # trigger
    states,
    st.none() | states,
    st.booleans(),
    causes,
)


def _expected(args: tuple[Any, ...], seq: int, thread: str) -> tuple[Any, ...]:
    kind, subject, trigger, source, dest, ok, cause = args
    text = getattr(source, "value", source)
    dest_text = None if dest is None else getattr(dest, "value", dest)
    return (seq, kind, subject, trigger, text, dest_text, ok, describe_cause(cause), thread)


def _read(rec: Transition) -> tuple[Any, ...]:
    return (
        rec.seq,
        rec.kind,
        rec.subject,
        rec.trigger,
        rec.source,
        rec.dest,
        rec.ok,
        rec.cause,
        rec.thread,
    )


@given(st.lists(records, max_size=40))
def test_records_read_back_equal_what_was_recorded(calls: list[tuple[Any, ...]]) -> None:
    journal = Journal()
    for args in calls:
        journal.record(*args)
    thread = threading.current_thread().name
    got = [_read(rec) for rec in journal.records]
    assert got == [_expected(args, seq, thread) for seq, args in enumerate(calls, 1)]
    assert all(type(rec.source) is str for rec in journal.records)  # text, not enum members


@given(st.lists(records, max_size=60), st.integers(1, 7))
def test_a_bounded_journal_reads_back_its_last_records(
    calls: list[tuple[Any, ...]], max_records: int
) -> None:
    journal = Journal(max_records=max_records)
    for args in calls:
        journal.record(*args)
    thread = threading.current_thread().name
    expected = [_expected(args, seq, thread) for seq, args in enumerate(calls, 1)]
    kept = expected[-max_records:] if expected else []
    assert [_read(rec) for rec in journal.records] == kept
    assert (len(journal), journal.dropped) == (len(kept), len(calls) - len(kept))
    if journal.dropped:
        with pytest.raises(JournalIncomplete):
            journal.write("/nonexistent/never-written.jsonl")


def test_a_bounded_journal_forgets_the_edges_of_records_it_dropped() -> None:
    # A stream of made-up trigger names (each a refused record) must not grow it unbounded.
    journal = Journal(max_records=10)
    for index in range(1_000):
        journal.record("task", "t", f"made-up-{index}", "running", None, False)
    assert len(journal._columns.loose) <= 2 * 10
    assert [rec.trigger for rec in journal.records] == [f"made-up-{i}" for i in range(990, 1000)]


@given(st.lists(st.sampled_from(["ok", "refused"]), max_size=30), st.none() | st.integers(1, 5))
def test_record_move_appends_what_record_would(kinds: list[str], max_records: int | None) -> None:
    by_move, by_record = Journal(max_records=max_records), Journal(max_records=max_records)
    moves = by_move.moves(TASK)
    (source, trigger), (dest, edge) = next(iter(moves.items()))
    for kind in kinds:
        for journal in (by_move, by_record):
            if kind == "refused":
                journal.record("task", "a", "nope", source, None, False, "why")
            elif journal is by_move:
                journal.record_move(edge, "a", "because")
            else:
                journal.record("task", "a", trigger, source, dest, True, "because")
    assert [_read(r) for r in by_move.records] == [_read(r) for r in by_record.records]
    assert by_move.moves(TASK) is moves


def test_the_wall_time_is_the_anchor_plus_the_monotonic_time_elapsed() -> None:
    journal = Journal()
    fire = Lifecycle(TASK, "t", journal).fire
    for trigger in ("create", "init", "start", "stop", "finish"):
        fire(trigger)
    recs = journal.records
    start = journal.header()["run"]["start"]
    first = recs[0]
    for rec in recs:
        # Derived from the first record's times: the same instant on both clocks.
        assert rec.time == pytest.approx(first.time + (rec.mono - first.mono) / 1e9, abs=1e-6)
    assert [r.time for r in recs] == sorted(r.time for r in recs)  # never backwards
    assert [r.mono for r in recs] == sorted(r.mono for r in recs)
    assert start <= first.time


def test_notices_take_their_wall_time_from_the_same_clock() -> None:
    journal = Journal()
    notices: list[Any] = []
    journal.subscribe_notices(notices.append)
    journal.record("task", "t", "create", "registered", "created", True)
    journal.notice("task", "t", "ready", True)
    rec, notice = journal.records[0], notices[0]
    assert notice.time - rec.time == pytest.approx((notice.mono - rec.mono) / 1e9, abs=1e-6)
    assert notice.time >= rec.time


def test_a_renamed_thread_is_recorded_under_its_new_name() -> None:
    journal = Journal()

    def work() -> None:
        journal.record("task", "t", "create", "registered", "created", True)
        threading.current_thread().name = "renamed"
        journal.record("task", "t", "init", "created", "initializing", True)

    thread = threading.Thread(target=work, name="first-name")
    thread.start()
    thread.join()
    assert [r.thread for r in journal.records] == ["first-name", "renamed"]


def test_each_thread_is_recorded_under_its_own_name_even_when_its_ident_is_reused() -> None:
    journal = Journal()
    names = [f"worker-{i}" for i in range(5)]
    for name in names:  # one after the other: the OS often gives each the same ident
        thread = threading.Thread(
            target=journal.record,
            args=("task", name, "create", "registered", "created", True),
            name=name,
        )
        thread.start()
        thread.join()
    assert [r.thread for r in journal.records] == names


def test_a_renamed_thread_is_recorded_under_its_new_name_by_a_lifecycle_fire() -> None:
    journal = Journal()
    lifecycle = Lifecycle(TASK, "t", journal)

    def work() -> None:
        lifecycle.fire("create")
        threading.current_thread().name = "renamed"
        lifecycle.fire("init")

    thread = threading.Thread(target=work, name="first-name")
    thread.start()
    thread.join()
    assert [r.thread for r in journal.records] == ["first-name", "renamed"]


_JOB_JOURNAL = Journal()


@bind(TASK, journal=_JOB_JOURNAL)
class _Job:
    """A class bound to the task machine, journaled: its plain triggers use `record_move`."""


def test_a_bound_class_records_its_moves_under_its_default_subject() -> None:
    first, second = _Job(), _Job()
    first.create()
    second.create()
    first.init()
    subjects = [r.subject for r in _JOB_JOURNAL.records[-3:]]
    assert subjects[0] == subjects[2] != subjects[1]
    assert all(s.startswith("_Job-") for s in subjects)
    assert [r.trigger for r in _JOB_JOURNAL.records[-3:]] == ["create", "create", "init"]


@given(st.lists(records, min_size=1, max_size=15))
def test_a_streamed_record_line_is_its_canonical_json(calls: list[tuple[Any, ...]]) -> None:
    journal = Journal()
    for args in calls:
        journal.record(*args)
    for rec in journal.records:
        row = tuple(getattr(rec, name) for name in _FIELDS)
        parts = _record_json(row)  # type: ignore[arg-type]
        assert parts is not None
        assert "".join(parts) == canonical(_row_dict(row))  # type: ignore[arg-type]


def test_a_streamed_file_reads_back_as_the_records_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.record("task", "a", "create", TaskState.REGISTERED, TaskState.CREATED, True)
        journal.record("task", "a\u2028\udc00é", "init", "created", None, False, ValueError("x"))
        fire = Lifecycle(TASK, "b", journal).fire
        fire("create")
    assert chain_problems(path) == []
    assert read_journal(path)[1] == list(journal.records)


def test_a_listener_may_ask_the_journal_its_length() -> None:
    # Listeners run with the journal's lock held: `len` must not take it (it never did).
    journal = Journal()
    lengths: list[int] = []
    journal.subscribe(lambda rec: lengths.append(len(journal)))
    worker = threading.Thread(
        target=journal.record, args=("task", "t", "create", "registered", "created", True)
    )
    worker.daemon = True  # a regression would deadlock it: the test fails, nothing hangs
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert lengths == [1]


@pytest.mark.parametrize("max_records", [None, 50_000])
def test_columns_widen_when_edges_or_thread_names_outgrow_two_bytes(
    max_records: int | None,
) -> None:
    # More loose edges than a signed 2-byte id holds, and more thread names than an unsigned
    # one: every record still reads back as recorded.
    journal = Journal(max_records=max_records)
    thread = threading.current_thread()
    original = thread.name
    count = 2**16 + 10
    try:
        for index in range(count):
            thread.name = f"name-{index}"
            journal.record("task", "t", f"trigger-{index}", "running", None, False)
    finally:
        thread.name = original
    recs = journal.records
    kept = count if max_records is None else max_records
    first = count - kept
    assert len(recs) == kept
    assert [(r.seq, r.trigger, r.thread) for r in recs] == [
        (i + 1, f"trigger-{i}", f"name-{i}") for i in range(first, count)
    ]
