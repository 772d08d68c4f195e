"""A task's instances around a restart: an instance a restart replaced (crashed, or suspended
because a task it requires restarts) no longer counts as running; the crash record keeps the
failure (or says the run loop returned unasked); a dependent's suspend record names the task
that restarts, and its finish record what its queue dropped; a stop that comes while a
dependent is suspending does not call its ``on_stop`` again. Also: an unbound task's
engine-driven methods raise `LifecycleError`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from lifecycle.collection import Tasks
from lifecycle.context import ExecuteContext
from lifecycle.errors import LifecycleError, TaskStopped
from lifecycle.journal import Journal, Transition
from lifecycle.spec import TaskState
from lifecycle.task import RETURNED_EARLY, Task
from lifecycle.tasks import QueueTask
from lifecycle.tasks.queue import dropped_cause
from tests.fakes import FakeService, stop

WAIT = 10.0  # a bound for what happens at once; never reached when the code is right


def _when(journal: Journal, wanted: Callable[[Transition], bool]) -> threading.Event:
    """An event set once the journal holds a record ``wanted`` accepts (a listener)."""
    seen = threading.Event()

    def see(record: Transition) -> None:
        if wanted(record):
            seen.set()

    journal.subscribe(see)
    return seen


def _record(subject: str, trigger: str) -> Callable[[Transition], bool]:
    return lambda r: r.subject == subject and r.trigger == trigger and r.ok


def crashes_once_on(crash: threading.Event) -> type[Task]:
    """A task restarted on failure at once, whose first instance crashes once ``crash`` is set
    (set it once its dependents run: they must be there to suspend); later ones run until
    stopped."""

    class Restarts(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0
        made: list[int] = []

        def __init__(self, service: object = None) -> None:
            super().__init__(service)
            self.made.append(len(self.made))

        def run_loop(self) -> None:
            if len(self.made) == 1:
                crash.wait(WAIT)
                raise RuntimeError("crash")
            self.stop_event.wait(WAIT)

    return Restarts


def test_an_instance_a_restart_replaced_is_not_running_and_its_stop_event_is_set() -> None:
    class CrashesOnce(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0
        made: list[CrashesOnce] = []

        def __init__(self, service: object = None) -> None:
            super().__init__(service)
            self.made.append(self)

        def run_loop(self) -> None:
            if len(self.made) == 1:
                raise RuntimeError("crash")
            self.stop_event.wait(WAIT)

    journal = Journal()
    restarted = _when(journal, _record("CrashesOnce", "restart"))
    tasks = Tasks([CrashesOnce], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    try:
        assert restarted.wait(WAIT)
        old = CrashesOnce.made[0]
        old.join(WAIT)
        # Its lifecycle goes on with the fresh instance; the old one is done.
        assert old.running is False
        assert old.stop_event.is_set()
    finally:
        stop(tasks)
    assert len(CrashesOnce.made) == 2
    # The crash record keeps what the old instance failed with.
    (crash,) = [r for r in journal.records if _record("CrashesOnce", "crash")(r)]
    assert crash.cause is not None and "RuntimeError" in crash.cause and "crash" in crash.cause
    assert tasks.state_of("CrashesOnce") == TaskState.STOPPED


def test_a_suspended_dependent_replaced_by_a_fresh_instance_is_not_running() -> None:
    crash = threading.Event()

    Restarts = crashes_once_on(crash)

    class Dependent(Task):
        DEPS = (Restarts,)

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    journal = Journal()
    # Its start after the crash is the fresh instance's (the first came before the crash).
    back = _when(journal, lambda r: crash.is_set() and _record("Dependent", "start")(r))
    tasks = Tasks([Dependent], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    old = tasks.Dependent
    try:
        crash.set()
        assert back.wait(WAIT)  # suspended, then restarted as a fresh instance
        fresh = tasks.Dependent
        assert fresh is not old
        assert old.join(WAIT) is True
        assert old.running is False and fresh.running is True
    finally:
        stop(tasks)


def test_a_suspended_queue_task_says_on_its_finish_record_how_many_items_it_dropped() -> None:
    crash, entered, release = threading.Event(), threading.Event(), threading.Event()

    Restarts = crashes_once_on(crash)

    class Worker(QueueTask):
        DEPS = (Restarts,)

        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "gate":
                entered.set()
                release.wait(WAIT)
            return item

    journal = Journal()
    suspending = _when(journal, _record("Worker", "suspend"))
    to_backoff = _when(journal, lambda r: _record("Worker", "finish")(r) and r.dest == "backoff")
    tasks = Tasks([Worker], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    try:
        queue_task = tasks.Worker
        gate = queue_task.submit("gate")
        assert entered.wait(WAIT)
        waiting = [queue_task.submit(i) for i in range(2)]
        crash.set()
        assert suspending.wait(WAIT)
        release.set()
        assert gate.result(WAIT) == "gate"
        assert all(isinstance(f.exception(WAIT), TaskStopped) for f in waiting)
        assert to_backoff.wait(WAIT)
    finally:
        release.set()
        stop(tasks)
    (finish,) = [r for r in journal.records if _record("Worker", "finish")(r)
                 and r.dest == "backoff"]
    assert finish.source == "suspending" and finish.cause == dropped_cause(2)


def test_a_crash_record_of_a_run_loop_that_returned_unasked_says_so() -> None:
    class ReturnsOnce(Task):
        RESTART = "always"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0
        made: list[int] = []

        def __init__(self, service: object = None) -> None:
            super().__init__(service)
            self.made.append(len(self.made))

        def run_loop(self) -> None:
            if len(self.made) == 1:
                return  # nothing failed: the policy restarts it anyway
            self.stop_event.wait(WAIT)

    journal = Journal()
    restarted = _when(journal, _record("ReturnsOnce", "restart"))
    tasks = Tasks([ReturnsOnce], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    try:
        assert restarted.wait(WAIT)
    finally:
        stop(tasks)
    (crash,) = [r for r in journal.records if _record("ReturnsOnce", "crash")(r)]
    assert crash.cause == RETURNED_EARLY


def test_a_stop_while_a_dependent_is_suspending_neither_repeats_its_on_stop_nor_loses_it() -> (
    None
):
    crash, in_on_stop, release = threading.Event(), threading.Event(), threading.Event()
    stops: list[int] = []

    Restarts = crashes_once_on(crash)

    class User(Task):
        DEPS = (Restarts,)

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            stops.append(1)
            in_on_stop.set()
            release.wait(WAIT)

    journal = Journal()
    tasks = Tasks([User], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    try:
        crash.set()
        assert in_on_stop.wait(WAIT)  # User is suspending, held in its on_stop
        (suspend,) = [r for r in journal.records if _record("User", "suspend")(r)]
        assert suspend.source == "running" and suspend.dest == "suspending"
        assert "'Restarts'" in str(suspend.cause) and "restart" in str(suspend.cause)
        tasks.stop()
    finally:
        release.set()
        stop(tasks)
    assert stops == [1]
    assert tasks.state_of("User") == TaskState.STOPPED


@pytest.mark.parametrize("method", ["start", "stop"])
def test_an_unbound_task_refuses_to_be_driven_with_a_lifecycle_error(method: str) -> None:
    class Unbound(Task):
        LOOPLESS = True

    with pytest.raises(LifecycleError, match="not created by a collection"):
        getattr(Unbound(), method)()
