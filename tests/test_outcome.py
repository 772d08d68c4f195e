"""`lifecycle.outcome`: what a run did, read from its journal in one pass."""

from __future__ import annotations

import os
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle.service
from lifecycle import outcome as outcomes
from lifecycle.audit import check
from lifecycle.journal import Journal, Transition
from lifecycle.outcome import (
    MAX_SPANS,
    OutcomeInputError,
    StopOrderBreach,
    TaskSummary,
    outcome,
    summarize,
    timeline,
)
from lifecycle.spec import TASK
from lifecycle.tasks import QueueTask
from lifecycle.tasks.queue import _DROPPED_CAUSE, dropped_in_cause
from tests.services import Crashing, Dropping, InitFailing
from tests.test_audit import drive, lines_of, rec, renumber, scenarios, task_run

# -- a real run ----------------------------------------------------------------------------------


def run_service(cls: type[lifecycle.service.Service], path: Path) -> lifecycle.service.Service:
    journal = Journal(path)
    service = cls(journal=journal)
    service.run()
    journal.close()
    return service


def test_a_crashed_run_names_the_failed_task_its_cause_and_the_root_cause(tmp_path: Path) -> None:
    service = run_service(Crashing, tmp_path / "run.jsonl")
    result = outcome(tmp_path / "run.jsonl")
    assert result.verdict == "failed" and not result.succeeded
    assert result.service is not None and result.service.state == "failed"
    assert result.cause == "RuntimeError: worker exploded"
    assert result.service.cause_text is not None
    assert result.service.cause_text.startswith("Traceback (most recent call last):")
    assert result.first_failure == "Crasher"
    assert result.stop_reason == "task 'Crasher' failed: RuntimeError: worker exploded"
    tasks = {t.name: t for t in result.tasks}
    assert tasks["Crasher"].state == "failed"
    assert tasks["Crasher"].cause == "RuntimeError: worker exploded"
    assert tasks["Crasher"].time_to_stop is None  # it failed unasked
    assert tasks["Waiter"].state == "stopped" and tasks["Waiter"].cause is None
    assert tasks["Waiter"].time_to_stop is not None and tasks["Waiter"].time_to_stop >= 0
    assert result.stop_order_kept is True and result.breaches == ()
    # The same outcome from the live journal and from the file.
    assert outcome(service.journal) == result


def test_an_init_failure_ends_the_run_failed_with_the_tasks_own_cause(tmp_path: Path) -> None:
    run_service(InitFailing, tmp_path / "run.jsonl")
    result = outcome(tmp_path / "run.jsonl")
    tasks = {t.name: t for t in result.tasks}
    assert result.verdict == "failed"
    assert result.cause == "RuntimeError: database unreachable"
    assert tasks["Broken"].time_to_running is None
    assert result.collection is not None
    assert result.collection.cause == "InitError: tasks failed to initialize: Broken"


def test_items_a_queue_task_dropped_are_read_from_its_finish_record(tmp_path: Path) -> None:
    service = run_service(Dropping, tmp_path / "run.jsonl")
    result = outcome(tmp_path / "run.jsonl")
    tasks = {t.name: t for t in result.tasks}
    assert result.verdict == "succeeded" and result.stop_reason == "queue filled"
    holding = service.tasks.get("Holding")
    assert isinstance(holding, QueueTask)
    assert tasks["Holding"].dropped == holding.dropped > 0  # 17, or 18 if stopped before a take
    assert tasks["Filler"].dropped == 0
    assert result.dropped == holding.dropped


@given(st.integers(0, 10**12), st.booleans())
def test_the_dropped_count_reads_back_what_the_queue_writes(count: int, early: bool) -> None:
    cause = _DROPPED_CAUSE.format(count=count)
    if early:
        cause = f"the run loop returned before any stop request; {cause}"
    assert dropped_in_cause(cause) == count


@pytest.mark.parametrize(
    "cause", [None, "", "queued item(s) not run", "x17 queued item(s) not run; ", "17 items"]
)
def test_a_cause_that_says_nothing_of_dropped_items_gives_none(cause: str | None) -> None:
    assert dropped_in_cause(cause) is None


def test_summarize_keeps_its_home_in_service_as_an_alias() -> None:
    assert lifecycle.service.summarize is summarize
    assert lifecycle.service.TaskSummary is TaskSummary
    summary = summarize(task_run("a"), ["a", "ghost"])
    assert [(s.name, s.state) for s in summary] == [("a", "stopped"), ("ghost", "registered")]


# -- every run: the outcome agrees with the live states ---------------------------------------


@given(scenario=scenarios())
def test_the_outcome_of_any_run_agrees_with_its_live_states(scenario: object) -> None:
    journal = Journal()
    tasks = drive(scenario, journal)  # type: ignore[arg-type]
    result = outcome(journal)
    live = {name: tasks.state_of(name).value for name in tasks.order}
    assert {t.name: t.state for t in result.tasks} == live
    assert result.collection is not None
    assert result.collection.state == tasks.state.value
    assert result.service is None  # a collection driven by hand
    failed = any(state == "failed" for state in live.values()) or tasks.state.value == "failed"
    assert result.verdict == ("failed" if failed else "succeeded")
    assert result.stop_order_kept is True  # the engine keeps the order it is judged by
    for summary in result.tasks:
        if summary.state in ("failed", "skipped"):
            assert summary.cause is not None
        else:
            assert summary.cause is None


@given(scenario=scenarios(), data=st.data())
def test_stop_order_kept_exactly_when_the_audit_finds_no_stop_order_violation(
    scenario: object, data: st.DataObject
) -> None:
    journal = Journal()
    drive(scenario, journal)  # type: ignore[arg-type]
    records = list(journal.records)
    stops = [i for i, r in enumerate(records) if r.kind == TASK.name and r.trigger == "stop"]
    if len(stops) >= 2:
        first, second = data.draw(st.lists(st.sampled_from(stops), min_size=2, max_size=2))
        records[first], records[second] = records[second], records[first]
        records = renumber(records)
    result = outcome(records, tasks=journal.tasks)
    found = {v.subject for v in check(records, tasks=journal.tasks) if v.rule == "stop-order"}
    assert result.stop_order_kept is (not found)
    assert {b.task for b in result.breaches} == found


def test_a_stop_before_a_dependent_ended_is_a_breach_naming_what_it_waited_for() -> None:
    tasks = {"Base": {"deps": []}, "User": {"deps": ["Base"]}}
    records = renumber(
        [
            *task_run("Base")[:3],
            *task_run("User")[:3],
            rec(0, "Base", "stop", "running", "stopping"),
            rec(0, "Base", "finish", "stopping", "stopped"),
            *task_run("User")[3:],
        ]
    )
    result = outcome(records, tasks=tasks)
    assert result.stop_order_kept is False
    assert result.breaches == (StopOrderBreach("Base", 7, ("User",)),)


def test_without_a_task_table_the_stop_order_is_not_judged() -> None:
    assert outcome(task_run("a")).stop_order_kept is None


# -- streaming and bounds -----------------------------------------------------------------------


def test_memory_grows_with_subjects_not_records() -> None:
    def records(count: int) -> Iterator[Transition]:
        seq = 0
        for name in ("a", "b", "c"):
            for r in task_run(name)[:3]:  # create, init, start: now running
                seq += 1
                yield Transition(
                    seq, 0.0, seq, "task", name, r.trigger, r.source, r.dest, True, None, "t"
                )
        for _ in range(count):  # refused triggers: records that change no state
            seq += 1
            yield Transition(
                seq, 0.0, seq, "task", "a", "init", "running", None, False, "x" * 200, "t"
            )

    tracemalloc.start()
    try:
        result = outcome(records(200_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.records == 200_009
    assert peak < 2 * 2**20, f"peak {peak} bytes for 200,000 records of 3 subjects"


def test_a_subject_moved_back_and_forth_keeps_at_most_max_spans() -> None:
    moves = []
    for _ in range(500):
        moves += [
            rec(0, "a", "create", "registered", "created"),
            rec(0, "a", "stop", "created", "registered"),  # off the spec: still drawn
        ]
    drawn = timeline(renumber(moves))
    (subject,) = drawn.subjects
    assert len(subject.spans) == MAX_SPANS and subject.dropped == 1000 - MAX_SPANS


def test_timeline_spans_follow_each_other_and_select_kinds_and_subjects(tmp_path: Path) -> None:
    run_service(Crashing, tmp_path / "run.jsonl")
    whole = timeline(tmp_path / "run.jsonl")
    assert [(s.kind, s.name) for s in whole.subjects] == [
        ("service", "Crashing"),
        ("collection", "tasks"),
        ("task", "Waiter"),  # in the order the collection created them
        ("task", "Crasher"),
    ]
    for subject in whole.subjects:
        for before, after in zip(subject.spans, subject.spans[1:], strict=False):
            assert before.end == after.start
        assert subject.spans[-1].end is None
    service = whole.subjects[0]
    assert [s.state for s in service.spans] == ["starting", "running", "stopping", "failed"]
    assert service.spans[-1].cause == "RuntimeError: worker exploded"
    only = timeline(tmp_path / "run.jsonl", kinds=["task"], subjects=["Waiter"])
    assert [(s.kind, s.name) for s in only.subjects] == [("task", "Waiter")]
    with pytest.raises(OutcomeInputError, match="unknown kind 'job'"):
        timeline(tmp_path / "run.jsonl", kinds=["job"])


def test_lines_that_are_not_records_are_skipped_and_counted(tmp_path: Path) -> None:
    run_service(Crashing, tmp_path / "run.jsonl")
    path = tmp_path / "run.jsonl"
    lines = lines_of(path)
    clean = outcome(path)
    lines.insert(3, "not json\n")
    lines.insert(4, '{"seq": 1}\n')
    path.write_text("".join(lines) + '{"cut')
    damaged = outcome(path)
    assert damaged.skipped == 3
    assert damaged.tasks == clean.tasks and damaged.records == clean.records


def test_input_without_an_outcome_raises_one_typed_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "other.jsonl").write_text('{"format": "other"}\n')
    for path in (tmp_path / "absent.jsonl", tmp_path / "empty.jsonl", tmp_path / "other.jsonl"):
        with pytest.raises(OutcomeInputError):
            outcome(path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(OutcomeInputError, match="a FIFO, not a regular file"):
            outcome(tmp_path / "fifo")  # refused before it is opened: no hang
    with pytest.raises(OutcomeInputError, match="item 1 is a str"):
        outcome([task_run("a")[0], "x"])  # type: ignore[list-item]
    with pytest.raises(OutcomeInputError, match="cannot read the outcome of 'int'"):
        outcome(42)  # type: ignore[arg-type]
    with pytest.raises(OutcomeInputError, match="tasks= is only for records"):
        outcome(tmp_path / "empty.jsonl", tasks={})


def test_the_module_is_the_documented_public_home() -> None:
    for name in outcomes.__all__:
        assert getattr(outcomes, name).__doc__, name


def test_a_builder_fed_record_by_record_gives_the_same_outcome(tmp_path: Path) -> None:
    service = run_service(Crashing, tmp_path / "run.jsonl")
    builder = outcomes.OutcomeBuilder(spans=True)
    builder.describe(service.journal.tasks)
    for record in service.journal.records:
        builder.feed(record)
    builder.skip()
    built = builder.outcome()
    assert built.skipped == 1
    assert attrs.evolve(built, skipped=0) == outcome(tmp_path / "run.jsonl")
    assert builder.timeline().subjects == timeline(tmp_path / "run.jsonl").subjects


@given(scenario=scenarios(), names=st.lists(st.text(min_size=1, max_size=12), max_size=3))
def test_a_file_read_by_the_fast_pattern_gives_the_outcome_of_its_records(
    scenario: object, names: list[str]
) -> None:
    # Most lines go through the audit's pattern, not JSON; lines with escapes or non-ASCII
    # names go the general way. Either way the outcome is the one of the records themselves.
    journal = Journal()
    drive(scenario, journal)  # type: ignore[arg-type]
    for index, name in enumerate(names):  # hostile subjects: quotes, escapes, unicode
        journal.record("task", name, "create", "registered", "created", True, f"c{index}\n\"")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.jsonl"
        journal.write(path)
        from_file = outcome(path)
    assert from_file == outcome(journal)
    assert from_file.records == len(journal)
