"""What a record shows, whatever recorded it: its wall time is the journal's start plus the
monotonic time elapsed, its thread is named even when `threading` did not start it, and its
states are the text of an enum's members."""

from __future__ import annotations

import _thread
import enum
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle
import lifecycle.journal
from lifecycle.journal import Journal
from lifecycle.spec import TASK

WAIT = 10.0


@given(
    st.integers(min_value=0, max_value=2**62),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.integers(min_value=1, max_value=10**9),  # its nanoseconds exact in a float
)
def test_a_record_time_is_the_journal_start_plus_the_monotonic_time_elapsed(
    anchor: int, start: float, elapsed_ms: int
) -> None:
    clock = iter([anchor, anchor + elapsed_ms * 10**6])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lifecycle.journal, "_monotonic_ns", lambda: next(clock))
        patch.setattr(time, "time", lambda: start)
        journal = Journal()
        journal.record("task", "A", "create", "registered", "created", True)
    (record,) = journal.records
    assert journal.header()["run"]["start"] == start
    assert record.mono == anchor + elapsed_ms * 10**6
    assert record.time == start + elapsed_ms / 1000


def _on_a_thread_threading_did_not_start(body: Callable[[], None]) -> str:
    """Run ``body`` on a thread made by `_thread` (as C code makes them); the name that
    thread has for `threading` when it is done."""
    done = threading.Event()
    seen: list[str] = []

    def run() -> None:
        try:
            body()
            seen.append(threading.current_thread().name)
        finally:
            # threading keeps a foreign thread's stand-in object for good on some versions:
            # drop it, so that the thread is gone once it ends.
            with threading._active_limbo_lock:  # type: ignore[attr-defined]
                threading._active.pop(threading.get_ident(), None)  # type: ignore[attr-defined]
            done.set()

    _thread.start_new_thread(run, ())
    if not done.wait(WAIT):
        pytest.fail("the thread did not end")
    return seen[0]


def test_a_record_made_on_a_thread_threading_did_not_start_names_that_thread() -> None:
    journal = Journal()
    name = _on_a_thread_threading_did_not_start(
        lambda: journal.record("task", "A", "create", "registered", "created", True)
    )
    assert [r.thread for r in journal.records] == [name]


def test_a_move_recorded_on_a_thread_threading_did_not_start_names_that_thread() -> None:
    journal = Journal()
    _, edge = journal.moves(TASK)[("registered", "create")]
    name = _on_a_thread_threading_did_not_start(lambda: journal.record_move(edge, "A"))
    (record,) = journal.records
    assert (record.trigger, record.dest, record.thread) == ("create", "created", name)


class Door(str, enum.Enum):  # noqa: UP042 (its str() must differ from its value)
    """States of a user's machine, as an enum mixed with str (its str() is not its value)."""

    OPEN = "open"
    SHUT = "shut"


def test_states_given_as_enum_members_are_recorded_as_their_values() -> None:
    journal = Journal()
    journal.record("door", "front", "close", Door.OPEN, Door.SHUT, True)
    journal.record("door", "front", "open", Door.SHUT, None, False, "jammed")
    assert [(r.source, r.dest) for r in journal.records] == [("open", "shut"), ("shut", None)]
    assert all(type(r.source) is str for r in journal.records)


#: Imports the journal first on a thread whose class answers ``name`` itself, then records
#: there: the record must show the name the thread gives (what `current_thread().name` says).
SELF_NAMED_IMPORT = """
import threading

class SelfNamed(threading.Thread):
    @property
    def name(self):
        return "self-named"

    @name.setter
    def name(self, value):
        pass

def run():
    from lifecycle.journal import Journal
    journal = Journal()
    journal.record("task", "A", "create", "registered", "created", True)
    print(journal.records[0].thread, threading.current_thread().name)

thread = SelfNamed(target=run)
thread.start()
thread.join()
"""


def test_a_thread_that_answers_its_own_name_and_first_imports_the_journal_is_named_so() -> None:
    root = Path(lifecycle.__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", SELF_NAMED_IMPORT],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["self-named", "self-named"]
