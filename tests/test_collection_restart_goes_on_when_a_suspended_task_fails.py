"""A restart suspends the tasks that require the crashed task before it makes a fresh instance;
one that fails while being suspended (its ``on_stop`` raised) has ended all the same, and the
restart goes on: the collection tells its supervisor of every task that ends."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lifecycle import audit
from lifecycle.collection import Tasks
from lifecycle.errors import StopError
from lifecycle.journal import Transition
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 10.0


class Service:
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def shutdown(self, reason: str | None = None) -> None:
        self.reasons.append(reason)


def test_a_task_that_fails_while_suspended_for_a_restart_does_not_hold_the_restart_up() -> None:
    made: list[int] = []

    class CrashesOnce(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            made.append(len(made) + 1)
            self.first = len(made) == 1
            self.go = threading.Event()

        def run_loop(self) -> None:
            if self.first:
                self.go.wait(WAIT)
                raise RuntimeError("the first instance crashes")
            self.stop_event.wait(WAIT)

    class FailsToSuspend(Task):
        LOOPLESS = True
        DEPS = (CrashesOnce,)

        def on_stop(self) -> None:
            raise RuntimeError("cannot stop cleanly")

    tasks = Tasks([FailsToSuspend])
    restarted = threading.Event()

    def on_record(record: Transition) -> None:
        if record.subject == "CrashesOnce" and record.trigger == "restart" and record.ok:
            restarted.set()

    unsubscribe = tasks.journal.subscribe(on_record)
    try:
        tasks.create(Service())
        tasks.init()
        tasks.start()
        assert tasks.state_of(FailsToSuspend) == TaskState.RUNNING
        tasks.require(CrashesOnce).go.set()  # type: ignore[attr-defined]
        assert restarted.wait(WAIT), "the restart waited for a task that had ended"
    finally:
        unsubscribe()
        tasks.stop()
        with pytest.raises(StopError) as info:  # the on_stop that raised
            tasks.join(WAIT)
    assert list(info.value.failed) == ["FailsToSuspend"]
    assert made == [1, 2]
    suspended = [
        (r.trigger, str(r.dest))
        for r in tasks.journal.records
        if r.ok and r.subject == "FailsToSuspend"
    ]
    assert suspended[-2:] == [("suspend", "suspending"), ("fail", "failed")]
    assert tasks.state == CollectionState.FAILED
    assert audit.check(tasks.journal) == []
