"""A task whose dependency crashed into backoff while the collection was starting is held back,
not started beside a dependency that does not run: the supervisor starts it once that
dependency runs again, and `start_order` lists it then."""

from __future__ import annotations

import threading

import pytest

from lifecycle import audit
from lifecycle.collection import Tasks
from lifecycle.journal import Transition
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 30.0


class Service:
    def __init__(self) -> None:
        self.reasons: list[str | None] = []

    def shutdown(self, reason: str | None = None) -> None:
        self.reasons.append(reason)


@pytest.fixture
def first_thread_of_dep_cannot_start(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The first worker thread of the task named ``Dep`` fails to start (as when the process
    is out of threads): its task crashes into backoff during the collection's `start` itself,
    before the tasks after it are started."""
    refused: list[threading.Thread] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "Dep" and not refused:
            refused.append(thread)
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return refused


def test_a_task_is_started_only_once_the_dependency_that_crashed_while_starting_runs_again(
    first_thread_of_dep_cannot_start: list[threading.Thread],
) -> None:
    class Dep(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    class User(Task):
        LOOPLESS = True
        DEPS = (Dep,)

    class UserOfUser(Task):
        LOOPLESS = True
        DEPS = (User,)

    class Free(Task):
        LOOPLESS = True

    tasks = Tasks([Dep, User, UserOfUser, Free])
    last_started = threading.Event()

    def on_record(record: Transition) -> None:
        if record.subject == "UserOfUser" and record.trigger == "start" and record.ok:
            last_started.set()

    unsubscribe = tasks.journal.subscribe(on_record)
    try:
        tasks.create(Service())
        tasks.init()
        tasks.start()
        assert first_thread_of_dep_cannot_start, "the fault was not injected"
        assert tasks.state == CollectionState.RUNNING
        assert last_started.wait(WAIT)
    finally:
        unsubscribe()
        tasks.stop()
        assert tasks.join(WAIT) == []
    starts = [
        r.subject
        for r in tasks.journal.records
        if r.ok and r.kind == "task" and r.trigger in ("start", "restart")
    ]
    # Dep started, crashed and was restarted; only then were the tasks requiring it started.
    assert starts == ["Dep", "Free", "Dep", "Dep", "User", "UserOfUser"]
    assert tasks.start_order == ("Dep", "Free", "User", "UserOfUser")
    assert all(tasks.state_of(name) == TaskState.STOPPED for name in tasks.order)
    assert audit.check(tasks.journal) == []
