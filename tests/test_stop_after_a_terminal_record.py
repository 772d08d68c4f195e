"""A staged stop that begins while a task's terminal fire is still writing its record: the
task ordered before it is asked to stop only after that record, so the journal shows the
order the stop kept."""

from __future__ import annotations

import threading
from typing import Any

from lifecycle import Tasks
from lifecycle.audit import check
from lifecycle.spec import TaskState
from lifecycle.task import Task

WAIT = 30.0  # a bound only a broken engine reaches


class Base(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class User(Task):
    DEPS = (Base,)
    go = threading.Event()

    def run_loop(self) -> None:
        self.go.wait(WAIT)
        raise RuntimeError("the user crashes, for good")


def test_a_stop_begun_during_a_dependents_failing_fire_waits_for_its_record() -> None:
    User.go.clear()
    tasks = Tasks([Base, User])
    journal = tasks.journal
    recording = threading.Event()
    release = threading.Event()
    real = journal.record_move

    def record_move(edge: Any, subject: str, cause: Any = None) -> None:
        # Hold the user's failing fire between its state change and its record.
        if subject == "User" and tasks.state_of("User") == TaskState.FAILED:
            recording.set()
            release.wait(WAIT)
        real(edge, subject, cause)

    journal.record_move = record_move  # type: ignore[method-assign]
    tasks.create(None)
    tasks.init()
    tasks.start()
    User.go.set()
    assert recording.wait(WAIT)
    stopper = threading.Thread(target=tasks.stop)
    stopper.start()
    # Without the rule, the stop asks Base to stop at once, before User's record is written;
    # with it, the stop waits for that record. Either way the test goes on after this bound.
    stopper.join(1.0)
    release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert tasks.join(WAIT) == []
    assert check(journal) == []
