"""A task that crashes on its own while a restart waits to suspend it has ended all the same:
the restart goes on (its crash is news the restart's staged stop wakes on), and both tasks
are brought back."""

from __future__ import annotations

import threading
from typing import Any

from lifecycle import audit
from lifecycle.collection import Tasks
from lifecycle.journal import Transition
from lifecycle.spec import TaskState
from lifecycle.task import Task

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 10.0


class Service:
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def shutdown(self, reason: str | None = None) -> None:
        self.reasons.append(reason)


def test_a_task_that_crashes_while_its_user_is_being_suspended_does_not_hold_the_restart_up(
) -> None:
    top_up = threading.Event()
    crash_middle = threading.Event()
    middle_crashed = threading.Event()
    everything_back = threading.Event()

    def numbered(made: list[int]) -> int:
        made.append(len(made) + 1)
        return len(made)

    class Base(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0
        made: list[int] = []

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.number = numbered(self.made)

        def run_loop(self) -> None:
            if self.number == 1:
                top_up.wait(WAIT)  # crash once everything that requires it runs
                raise RuntimeError("the first Base crashes")
            self.stop_event.wait(WAIT)

    class Middle(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0
        DEPS = (Base,)
        made: list[int] = []

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.number = numbered(self.made)

        def run_loop(self) -> None:
            if self.number == 1:
                crash_middle.wait(WAIT)
                raise RuntimeError("the first Middle crashes while Top is suspended")
            self.stop_event.wait(WAIT)

    class Top(Task):
        DEPS = (Middle,)
        made: list[int] = []

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.number = numbered(self.made)

        def run_loop(self) -> None:
            top_up.set()
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            if self.number == 1:  # Base's restart suspends Top first, then Middle
                crash_middle.set()
                middle_crashed.wait(WAIT)

    tasks = Tasks([Top])
    starts: dict[str, int] = {}

    def on_record(record: Transition) -> None:
        if not record.ok or record.kind != "task":
            return
        if record.subject == "Middle" and record.trigger == "crash":
            middle_crashed.set()
        if record.trigger == "start":
            starts[record.subject] = starts.get(record.subject, 0) + 1
            if all(starts.get(name, 0) == 2 for name in ("Base", "Middle", "Top")):
                everything_back.set()

    unsubscribe = tasks.journal.subscribe(on_record)
    try:
        tasks.create(Service())
        tasks.init()
        tasks.start()
        assert everything_back.wait(WAIT), "the restart waited for a task that had crashed"
        assert [tasks.state_of(n) for n in ("Base", "Middle", "Top")] == [TaskState.RUNNING] * 3
    finally:
        unsubscribe()
        tasks.stop()
        assert tasks.join(WAIT) == []
    assert (Base.made, Middle.made, Top.made) == ([1, 2], [1, 2], [1, 2])
    assert audit.check(tasks.journal) == []
