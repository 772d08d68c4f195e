"""A restart whose fresh instance cannot be made or initialized is not retried: the task fails
with that error as its cause and the service is asked to shut down, naming it. A task that
requires it, suspended for that restart, is then skipped when brought back, with a reason
naming the dependency that failed; it is never started beside it."""

from __future__ import annotations

import threading
from typing import Any

from lifecycle.collection import Tasks
from lifecycle.journal import Transition
from lifecycle.spec import TaskState
from lifecycle.task import Task

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 10.0


class Service:
    """Records the shutdown requests; the test stops the collection itself."""

    def __init__(self) -> None:
        self.reasons: list[str | None] = []
        self.asked = threading.Event()

    def shutdown(self, reason: str | None = None) -> None:
        self.reasons.append(reason)
        self.asked.set()


class _After:
    """Wakes on the first record of ``subject`` whose trigger is one of ``triggers`` once its
    ``restart`` record was seen (a journal listener: no polling)."""

    def __init__(self, tasks: Tasks, subject: str, triggers: tuple[str, ...]) -> None:
        self.seen: list[Transition] = []
        self.event = threading.Event()
        self._restarted = False
        self._subject, self._triggers = subject, triggers
        self.unsubscribe = tasks.journal.subscribe(self._see)

    def _see(self, record: Transition) -> None:
        if record.subject != self._subject or not record.ok:
            return
        if record.trigger == "restart":
            self._restarted = True
        elif self._restarted and record.trigger in self._triggers and not self.event.is_set():
            self.seen.append(record)
            self.event.set()


def _stop(tasks: Tasks) -> None:
    tasks.stop()
    tasks.join(WAIT)


def test_a_constructor_that_raises_on_restart_fails_the_task_and_asks_for_shutdown() -> None:
    made: list[int] = []

    class Fragile(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def __init__(self, service: Any = None) -> None:
            if made:
                raise RuntimeError("no second instance")
            made.append(1)
            super().__init__(service)

        def run_loop(self) -> None:
            raise RuntimeError("the first instance crashes")

    tasks = Tasks([Fragile])
    service = Service()
    tasks.create(service)
    tasks.init()
    try:
        tasks.start()
        assert service.asked.wait(WAIT), "the service was not asked to shut down"
        assert tasks.state_of(Fragile) == TaskState.FAILED
        failure = tasks.require(Fragile).failure
        assert isinstance(failure, RuntimeError) and str(failure) == "no second instance"
    finally:
        _stop(tasks)
    assert service.reasons == ["task 'Fragile' failed: RuntimeError: no second instance"]
    triggers = [r.trigger for r in tasks.journal.records if r.subject == "Fragile" and r.ok]
    assert triggers == ["create", "init", "start", "crash", "fail"]
    fail = [r for r in tasks.journal.records if r.subject == "Fragile" and r.trigger == "fail"]
    assert fail[0].cause is not None and "no second instance" in fail[0].cause


def test_an_init_task_that_raises_on_restart_fails_the_task_instead_of_starting_it() -> None:
    made: list[int] = []

    class InitsOnce(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            made.append(len(made) + 1)
            self.number = len(made)

        def init_task(self) -> None:
            if self.number > 1:
                raise RuntimeError("cannot initialize again")

        def run_loop(self) -> None:
            if self.number == 1:
                raise RuntimeError("the first instance crashes")
            self.stop_event.wait(WAIT)

    tasks = Tasks([InitsOnce])
    service = Service()
    after = _After(tasks, "InitsOnce", ("fail", "start"))
    tasks.create(service)
    tasks.init()
    try:
        tasks.start()
        assert after.event.wait(WAIT), "the fresh instance neither failed nor started"
        assert [r.trigger for r in after.seen] == ["fail"]
        assert service.asked.wait(WAIT), "the service was not asked to shut down"
    finally:
        after.unsubscribe()
        _stop(tasks)
    assert made == [1, 2]
    assert tasks.state_of(InitsOnce) == TaskState.FAILED
    failure = tasks.require(InitsOnce).failure
    assert isinstance(failure, RuntimeError) and str(failure) == "cannot initialize again"
    assert service.reasons == ["task 'InitsOnce' failed: RuntimeError: cannot initialize again"]


def test_a_dependent_brought_back_after_its_dependency_failed_to_restart_is_skipped() -> None:
    made: list[int] = []
    user_up = threading.Event()

    class Dep(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            made.append(len(made) + 1)
            self.number = len(made)

        def init_task(self) -> None:
            if self.number > 1:
                raise RuntimeError("cannot initialize again")

        def run_loop(self) -> None:
            user_up.wait(WAIT)  # crash only once the user runs: it is then suspended
            raise RuntimeError("the first instance crashes")

    class User(Task):
        DEPS = (Dep,)

        def run_loop(self) -> None:
            user_up.set()
            self.stop_event.wait(WAIT)

    tasks = Tasks([User])
    service = Service()
    after = _After(tasks, "User", ("skip", "init", "start", "fail"))
    tasks.create(service)
    tasks.init()
    try:
        tasks.start()
        assert after.event.wait(WAIT), "the suspended user was not brought back"
    finally:
        after.unsubscribe()
        _stop(tasks)
    assert [r.trigger for r in after.seen] == ["skip"]
    cause = after.seen[0].cause
    assert cause is not None and "'Dep'" in cause and "failed" in cause
    assert tasks.state_of(Dep) == TaskState.FAILED
    assert tasks.state_of(User) == TaskState.SKIPPED
