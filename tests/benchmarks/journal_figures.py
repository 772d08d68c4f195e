"""Figure 10: what one journal record costs, in memory and streamed to a file.

* 10a: the bytes one record holds in an in-memory `Journal` (tracemalloc over many records,
  five per subject as a LOOPLESS task leaves them), against the same records kept as plain
  tuples of their fields, one per record, in a list: the simplest honest way to keep them
  (and the journal's own way before its records went into columns).
* 10b: records per second streamed to a file (a line per record, chained, flushed as it is
  written, as a journal always streams) against a bare loop that writes and flushes the same
  lines, read back from the journal's own file, to a file of its own: the floor of any
  streamed journal.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from lifecycle.journal import Journal
from lifecycle.spec import TaskState
from tests.benchmarks.harness import Config, Row, interleave

__all__ = ["figure_10_journal"]

#: A LOOPLESS task's five records: the moves of its way from registered to stopped.
_STEPS = (
    ("create", TaskState.REGISTERED, TaskState.CREATED),
    ("init", TaskState.CREATED, TaskState.INITIALIZED),
    ("start", TaskState.INITIALIZED, TaskState.RUNNING),
    ("stop", TaskState.RUNNING, TaskState.STOPPING),
    ("finish", TaskState.STOPPING, TaskState.STOPPED),
)


def _subjects(count: int) -> list[str]:
    """One subject per five records (made before measuring: both sides share them)."""
    return [f"Task{i}" for i in range(max(1, count // len(_STEPS)))]


def _traced(build: Callable[[], object]) -> int:
    """Bytes still allocated after ``build()`` (what it returns is kept alive meanwhile)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del built
    return after - before


def _journal_bytes(subjects: list[str]) -> dict[str, float]:
    def build() -> Journal:
        journal = Journal()
        record = journal.record
        for trigger, source, dest in _STEPS:
            for subject in subjects:
                record("task", subject, trigger, source, dest, True)
        return journal

    return {"bytes": _traced(build) / (len(subjects) * len(_STEPS))}


def _tuple_bytes(subjects: list[str]) -> dict[str, float]:
    thread = "MainThread"

    def build() -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        seq = 0
        for trigger, source, dest in _STEPS:
            for subject in subjects:
                seq += 1
                mono = time.monotonic_ns()
                append(
                    (
                        seq,
                        time.time(),
                        mono,
                        "task",
                        subject,
                        trigger,
                        source._value_,
                        dest._value_,
                        True,
                        None,
                        thread,
                    )
                )
        return rows

    return {"bytes": _traced(build) / (len(subjects) * len(_STEPS))}


def _streamed(subjects: list[str], directory: str) -> dict[str, float]:
    path = os.path.join(directory, "streamed.jsonl")
    journal = Journal(path)
    journal.describe_tasks({s: {"class": "Task"} for s in subjects})
    record = journal.record
    record("service", "warm-up", "init", "created", "initializing", True)  # header rewritten
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    for trigger, source, dest in _STEPS:
        for subject in subjects:
            record("task", subject, trigger, source, dest, True)
    elapsed = clock() - start
    journal.close()
    count = len(subjects) * len(_STEPS)
    return {"per_second": count / (elapsed / 1e9), "us": elapsed / count / 1000.0}


def _bare(lines: list[str], directory: str) -> dict[str, float]:
    path = os.path.join(directory, "bare.jsonl")
    with open(path, "w", encoding="ascii") as out:
        write, flush = out.write, out.flush
        gc.collect()
        clock = time.perf_counter_ns
        start = clock()
        for line in lines:
            write(line)
            flush()
        elapsed = clock() - start
    return {"per_second": len(lines) / (elapsed / 1e9), "us": elapsed / len(lines) / 1000.0}


def figure_10_journal(config: Config) -> list[Row]:
    """A journal record: its bytes in memory, and records per second streamed to a file."""
    count: int = config.pick(10_000, 100_000)
    repeats: int = config.pick(2, 5)
    subjects = _subjects(count)
    memory = interleave(
        repeats,
        {"ours": lambda: _journal_bytes(subjects), "tuples": lambda: _tuple_bytes(subjects)},
    )
    ours, tuples = memory["ours"]["bytes"], memory["tuples"]["bytes"]
    rows = [
        Row(
            figure="10a",
            name="a journal record in memory vs a tuple of its fields in a list",
            ours=ours.median,
            baseline=tuples.median,
            unit="bytes/record",
            target="<= 0.25x",
            met=ours.median <= 0.25 * tuples.median,
            spread=(ours.spread, tuples.spread),
            note=f"{len(subjects) * len(_STEPS):,} records, five per subject",
            detail={"samples": {k: v["bytes"].to_dict() for k, v in memory.items()}},
        )
    ]

    streamed_count: int = config.pick(2_000, 20_000)
    stream_subjects = _subjects(streamed_count)
    stream_repeats: int = config.pick(3, 7)
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-") as directory:
        # The bare loop writes the very lines the journal wrote (the records', not the header).
        _streamed(stream_subjects, directory)
        with open(os.path.join(directory, "streamed.jsonl"), encoding="ascii") as written:
            lines = [line for line in written if '"seq"' in line]
        speed = interleave(
            stream_repeats,
            {
                "ours": lambda: _streamed(stream_subjects, directory),
                "bare": lambda: _bare(lines, directory),
            },
        )
    ours_speed, bare_speed = speed["ours"]["per_second"], speed["bare"]["per_second"]
    width = sum(map(len, lines)) / len(lines)
    rows.append(
        Row(
            figure="10b",
            name="records streamed to a file, flushed each, vs bare write+flush",
            ours=ours_speed.median,
            baseline=bare_speed.median,
            unit="records/s",
            target="(reference)",
            met=None,
            spread=(ours_speed.spread, bare_speed.spread),
            note=(
                f"{len(stream_subjects) * len(_STEPS):,} records of {width:.0f} bytes; "
                f"{speed['ours']['us'].median:.2f} vs {speed['bare']['us'].median:.2f} us each"
            ),
            detail={"samples": {k: v["per_second"].to_dict() for k, v in speed.items()}},
        )
    )
    return rows
