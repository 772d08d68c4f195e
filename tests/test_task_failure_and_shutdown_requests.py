"""How a failing task asks its service to shut down: the first failure wins, a task that never
restarts asks at once (a sibling worker deaf to its stop cannot hold the service up), a task
that may restart asks once its fate is known and only once, a failed request or a missing
service is logged, and an unresponsive task is failed only while it runs."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from lifecycle.collection import Tasks
from lifecycle.engine import Lifecycle
from lifecycle.errors import InvalidTask, RestartLimitExceeded
from lifecycle.journal import Journal
from lifecycle.spec import TASK, TaskState
from lifecycle.task import Task
from tests.fakes import FakeService, stop

WAIT = 10.0  # a bound for what happens at once; never reached when the code is right


class First(RuntimeError):
    pass


class Second(RuntimeError):
    pass


def _started(*classes: type[Task], service: Any, journal: Journal | None = None) -> Tasks:
    tasks = Tasks(classes, journal=journal)
    tasks.create(service)
    tasks.init()
    tasks.start()
    return tasks


def _started_alone(task: Task, journal: Journal | None = None) -> None:
    """Start ``task`` on a lifecycle of its own, with no collection (and so no supervisor)."""
    lc = Lifecycle(TASK, task.name, journal)
    lc.fire("create")
    lc.fire("init")
    task._bind(lc)
    task.start()


# -- the first failure wins ------------------------------------------------------------------


def test_the_first_failure_of_a_task_is_kept_when_another_worker_raises_later() -> None:
    class TwoFailures(Task):
        workers = 2

        def run_loop(self) -> None:
            if self.threads.index(threading.current_thread()) == 0:
                raise First("first")
            self.stop_event.wait(WAIT)  # woken by the first failure
            raise Second("second")

    journal = Journal()
    service = FakeService()
    tasks = _started(TwoFailures, service=service, journal=journal)
    task = tasks.TwoFailures
    assert task.join(WAIT) is True
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, First)
    (fail,) = [r for r in journal.records if r.subject == "TwoFailures" and r.trigger == "fail"]
    assert "First" in str(fail.cause) and "Second" not in str(fail.cause)
    # Each worker that raised asked at once, with its own error (a task that never restarts).
    assert sorted(service.reasons) == [
        "task 'TwoFailures' failed: First: first", "task 'TwoFailures' failed: Second: second"
    ]
    stop(tasks)


# -- a task that never restarts asks at once ---------------------------------------------------


class _DeafSibling(Task):
    """Worker 0 raises; worker 1 ignores the stop and returns only when released."""

    workers = 2
    release: threading.Event

    def run_loop(self) -> None:
        if self.threads.index(threading.current_thread()) == 0:
            raise First("worker 0 failed")
        self.release.wait(WAIT)


def test_a_task_run_without_a_supervisor_asks_for_a_shutdown_while_a_sibling_still_runs() -> None:
    class Alone(_DeafSibling):
        release = threading.Event()

    service = FakeService()
    task = Alone(service)
    _started_alone(task)
    try:
        assert service.asked.wait(WAIT)
        assert task.threads[1].is_alive() and task.state == TaskState.RUNNING
        assert service.reasons == ["task 'Alone' failed: First: worker 0 failed"]
    finally:
        Alone.release.set()
    assert task.join(WAIT) is True
    assert task.state == TaskState.FAILED and len(service.reasons) == 1


def test_a_task_whose_restart_options_are_invalid_asks_for_a_shutdown_at_once() -> None:
    class BadOptions(_DeafSibling):
        RESTART = "on-failure"
        release = threading.Event()

    service = FakeService()
    tasks = Tasks([BadOptions])
    tasks.create(service)
    task = tasks.BadOptions
    task.set_option("restart-delay", 10.0)  # above the maximum below: no policy at all
    task.set_option("restart-delay-max", 1.0)
    tasks.init()
    tasks.start()
    try:
        assert service.asked.wait(WAIT)
        assert task.threads[1].is_alive() and task.state == TaskState.RUNNING
    finally:
        BadOptions.release.set()
    assert task.join(WAIT) is True
    # The supervisor then fails it with the policy's error: no restart.
    assert task.state == TaskState.FAILED and isinstance(task.failure, InvalidTask)
    assert len(service.reasons) == 1
    stop(tasks)


# -- a task that may restart asks when its fate is known, once ----------------------------------


def test_a_restartable_task_whose_last_worker_returned_asks_once_its_restart_is_refused() -> None:
    release = threading.Event()

    class NoRestartLeft(_DeafSibling):
        RESTART = "on-failure"
        RESTART_LIMIT = (0, 60.0)  # the first crash is over the limit

    NoRestartLeft.release = release
    service = FakeService()
    tasks = _started(NoRestartLeft, service=service)
    task = tasks.NoRestartLeft
    first, _ = task.threads
    first.join(WAIT)
    assert not first.is_alive()
    # The failed worker did not ask: the task may still restart while its sibling runs.
    assert service.reasons == [] and task.state == TaskState.RUNNING
    release.set()  # the sibling returns without an error of its own, last
    assert task.join(WAIT) is True
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, RestartLimitExceeded)
    assert service.asked.wait(WAIT)
    assert len(service.reasons) == 1 and "RestartLimitExceeded" in (service.reasons[0] or "")
    stop(tasks)


def test_a_restartable_task_asks_once_when_two_workers_see_it_failed() -> None:
    left_first, gate = threading.Event(), threading.Event()

    class BothSeeIt(Task):
        """Worker 0 raises and, once it has left, waits at the gate before it asks; worker 1
        returns after that, last, so both find the task failed when they ask."""

        workers = 2
        RESTART = "on-failure"
        RESTART_LIMIT = (0, 60.0)

        def run_loop(self) -> None:
            if self.threads.index(threading.current_thread()) == 0:
                raise First("worker 0 failed")
            left_first.wait(WAIT)

        def _leave(self) -> None:
            super()._leave()
            if threading.current_thread() is self.threads[0]:
                left_first.set()
                gate.wait(WAIT)

    service = FakeService()
    tasks = _started(BothSeeIt, service=service)
    task = tasks.BothSeeIt
    first, second = task.threads
    try:
        second.join(WAIT)
        assert not second.is_alive()
        assert task.state == TaskState.FAILED
    finally:
        gate.set()
    first.join(WAIT)
    assert not first.is_alive()
    assert len(service.reasons) == 1
    stop(tasks)


# -- what cannot be asked is logged --------------------------------------------------------------


class _Fails(Task):
    def run_loop(self) -> None:
        raise First("boom")


def test_a_failing_task_without_a_service_logs_its_failure_and_that_nothing_was_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Orphan(_Fails):
        pass

    task = Orphan()
    with caplog.at_level(logging.ERROR, logger="lifecycle.task"):
        _started_alone(task)
        assert task.join(WAIT) is True
    assert task.state == TaskState.FAILED
    (record,) = [r for r in caplog.records if r.name == "lifecycle.task"]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "task 'Orphan' failed: First: boom (no service to shut down)"


def test_a_shutdown_request_that_raises_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Refusing:
        def shutdown(self, reason: str | None = None) -> None:
            raise OSError("cannot shut down now")

    class Unheard(_Fails):
        pass

    task = Unheard(Refusing())
    with caplog.at_level(logging.ERROR, logger="lifecycle.task"):
        _started_alone(task)
        assert task.join(WAIT) is True
    assert task.state == TaskState.FAILED
    (record,) = [r for r in caplog.records if r.name == "lifecycle.task"]
    assert record.getMessage() == "shutdown request from task 'Unheard' raised"
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)


# -- an unresponsive task --------------------------------------------------------------------------


def test_an_unresponsive_task_is_failed_only_while_it_runs_and_only_once() -> None:
    class Silent(Task):
        LOOPLESS = True

    class Done(Task):
        LOOPLESS = True

    service = FakeService()
    tasks = _started(Silent, Done, service=service)
    overdue = TimeoutError("no heartbeat")
    assert tasks.Silent._fail_unresponsive(overdue) is True
    assert tasks.Silent.state == TaskState.FAILED and tasks.Silent.failure is overdue
    assert len(service.reasons) == 1
    # Failed already: nothing more is done.
    assert tasks.Silent._fail_unresponsive(TimeoutError("again")) is False
    assert tasks.Silent.failure is overdue and len(service.reasons) == 1
    # Not running (stopped): nothing is done, nothing is asked.
    tasks.Done.stop()
    assert tasks.Done.state == TaskState.STOPPED
    assert tasks.Done._fail_unresponsive(TimeoutError("late")) is False
    assert tasks.Done.failure is None and len(service.reasons) == 1
    stop(tasks)


def test_a_task_past_its_restart_limit_asks_naming_the_limit_even_once_its_policy_changed() -> None:
    class LimitThenNever(Task):
        """Fails past its limit; its restart option is turned off after the fail, before its
        worker asks (options may be set from any thread at any time)."""

        RESTART = "on-failure"
        RESTART_LIMIT = (0, 60.0)

        def run_loop(self) -> None:
            raise First("crash")

        def _leave(self) -> None:
            super()._leave()
            self.set_option("restart", "never")

    service = FakeService()
    tasks = _started(LimitThenNever, service=service)
    task = tasks.LimitThenNever
    assert task.join(WAIT) is True
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, RestartLimitExceeded)
    assert len(service.reasons) == 1
    assert "failed: RestartLimitExceeded:" in (service.reasons[0] or "")
    stop(tasks)


def test_an_instance_a_restart_replaced_asks_nothing_when_its_successor_fails_for_good() -> None:
    gate, successor_failed = threading.Event(), threading.Event()

    class CrashTwice(Task):
        """Each instance crashes; the first restarts, the second is over the limit. The first
        instance's worker waits at the gate, after it left and before it asks, until the
        second instance failed for good."""

        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0
        RESTART_LIMIT = (1, 60.0)
        made: list[int] = []

        def __init__(self, service: object = None) -> None:
            super().__init__(service)
            self.made.append(len(self.made))
            self.number = len(self.made)

        def run_loop(self) -> None:
            raise First(f"crash of instance {self.number}")

        def _leave(self) -> None:
            super()._leave()
            if self.number == 1:
                gate.wait(WAIT)
            else:
                successor_failed.set()

    service = FakeService()
    tasks = _started(CrashTwice, service=service)
    first = tasks.CrashTwice
    try:
        assert successor_failed.wait(WAIT)
        second = tasks.CrashTwice
        assert second is not first and second.join(WAIT) is True
        assert second.state == TaskState.FAILED
    finally:
        gate.set()
    assert first.join(WAIT) is True
    # Only the instance that failed for good asked, naming the limit.
    assert len(service.reasons) == 1
    assert "RestartLimitExceeded" in (service.reasons[0] or "")
    stop(tasks)


def test_a_worker_that_raises_after_its_task_was_failed_from_outside_still_asks() -> None:
    go = threading.Event()

    class FailedFromOutside(Task):
        def run_loop(self) -> None:
            go.wait(WAIT)
            raise First("late")

    service = FakeService()
    tasks = _started(FailedFromOutside, service=service)
    task = tasks.FailedFromOutside
    task.lifecycle.fire("fail", "failed by its owner")  # legal from running: any caller may
    go.set()
    assert task.join(WAIT) is True
    # The task had ended, so the error is not its failure; it is still reported, at once.
    assert task.failure is None and task.state == TaskState.FAILED
    assert service.reasons == ["task 'FailedFromOutside' failed: First: late"]
    stop(tasks)
