"""A task restarted after a crash is a fresh instance made exactly as `create` made the first,
with the same positional and keyword arguments, and it takes the first one's place."""

from __future__ import annotations

import threading
from typing import Any

from lifecycle.collection import Tasks
from lifecycle.journal import Transition
from lifecycle.task import Task

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 30.0


class Service:
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def shutdown(self, reason: str | None = None) -> None:
        self.reasons.append(reason)


def test_a_restarted_task_is_made_with_the_arguments_create_was_given() -> None:
    made: list[tuple[Any, int, str]] = []

    class CrashesOnce(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def __init__(self, service: Any = None, *, flag: int = 0, label: str = "") -> None:
            super().__init__(service)
            made.append((service, flag, label))
            self.first = len(made) == 1

        def run_loop(self) -> None:
            if self.first:
                raise RuntimeError("the first instance crashes")
            self.stop_event.wait(WAIT)

    started_again = threading.Event()
    starts: list[Transition] = []

    def on_record(record: Transition) -> None:
        if record.subject == "CrashesOnce" and record.trigger == "start" and record.ok:
            starts.append(record)
            if len(starts) == 2:
                started_again.set()

    service = Service()
    tasks = Tasks([CrashesOnce])
    unsubscribe = tasks.journal.subscribe(on_record)
    try:
        tasks.create(service, flag=3, label="given")
        tasks.init()
        tasks.start()
        assert started_again.wait(WAIT)
    finally:
        unsubscribe()
        tasks.stop()
        assert tasks.join(WAIT) == []
    assert made == [(service, 3, "given"), (service, 3, "given")]
    current = tasks.require(CrashesOnce)
    assert isinstance(current, CrashesOnce) and not current.first  # the fresh instance
    assert service.reasons == []
