"""A task's threads: daemon threads named after the task, and what happens when one cannot be
started (the interpreter is out of threads): the task fails with that error once the code
that did start has returned, and the collection reports the stop hook's error."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from lifecycle.collection import Tasks
from lifecycle.errors import StopError
from lifecycle.journal import Journal
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task
from tests.fakes import FakeService, stop

WAIT = 10.0  # a bound for what happens at once; never reached when the code is right


class NoThreadLeft(RuntimeError):
    """What `threading.Thread.start` raises when no thread can be made."""


def _refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, refused: Callable[[threading.Thread], bool]
) -> NoThreadLeft:
    """Make `threading.Thread.start` raise for the threads ``refused`` picks; the error."""
    error = NoThreadLeft("can't start new thread")
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if refused(thread):
            raise error
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return error


def _started(*classes: type[Task], journal: Journal | None = None) -> tuple[Tasks, FakeService]:
    service = FakeService()
    tasks = Tasks(classes, journal=journal)
    tasks.create(service)
    tasks.init()
    tasks.start()
    return tasks, service


# -- names and daemon threads ------------------------------------------------------------------


def test_a_tasks_workers_and_stop_hook_are_daemon_threads_named_after_it() -> None:
    hook_thread: list[threading.Thread] = []

    class Named(Task):
        workers = 3

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            hook_thread.append(threading.current_thread())

    class Single(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    tasks, _ = _started(Named, Single)
    try:
        # A stop deadline that passes must not keep the process alive: daemon threads only.
        assert [(t.name, t.daemon) for t in tasks.Named.threads] == [
            ("Named-0", True), ("Named-1", True), ("Named-2", True)
        ]
        assert [(t.name, t.daemon) for t in tasks.Single.threads] == [("Single", True)]
    finally:
        stop(tasks)
    (hook,) = hook_thread
    assert (hook.name, hook.daemon) == ("Named.on_stop", True)


# -- a worker that cannot start ----------------------------------------------------------------


def test_a_worker_that_cannot_start_fails_its_task_once_the_started_workers_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    class ThreeWorkers(Task):
        workers = 3

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)  # woken by the failure
            release.wait(WAIT)

    error = _refuse_to_start(monkeypatch, lambda t: t.name == "ThreeWorkers-1")
    journal = Journal()
    tasks, service = _started(ThreeWorkers, journal=journal)
    task = tasks.ThreeWorkers
    try:
        # Only the worker that started is the task's; it still runs, so the task has not
        # failed yet, but the failure is kept and the service asked to shut down.
        (first,) = task.threads
        assert first.name == "ThreeWorkers-0" and first.is_alive()
        assert task.state == TaskState.RUNNING
        assert task.failure is error
        assert task.stop_event.is_set()
        assert service.asked.is_set() and "can't start new thread" in (service.reasons[0] or "")
        assert task.join(0) is False
    finally:
        release.set()
    assert task.join(WAIT) is True
    # Its last started worker returned: the task failed with the error, on that worker.
    assert task.state == TaskState.FAILED
    (fail,) = [r for r in journal.records if r.subject == "ThreeWorkers" and r.trigger == "fail"]
    assert fail.thread == "ThreeWorkers-0"
    stop(tasks)
    assert tasks.state == CollectionState.FAILED


def test_a_first_worker_that_cannot_start_fails_its_task_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class TwoWorkers(Task):
        workers = 2

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    error = _refuse_to_start(monkeypatch, lambda t: t.name == "TwoWorkers-0")
    tasks, service = _started(TwoWorkers)
    task = tasks.TwoWorkers
    assert task.threads == ()
    assert task.state == TaskState.FAILED and task.failure is error
    assert task.join() is True
    assert len(service.reasons) == 1
    stop(tasks)


# -- a stop hook that cannot start ---------------------------------------------------------------


@pytest.mark.parametrize("loopless", [True, False], ids=["loopless", "with-a-worker"])
def test_a_stop_hook_that_cannot_start_fails_its_task_with_that_error_as_a_stop_error(
    monkeypatch: pytest.MonkeyPatch, loopless: bool
) -> None:
    called: list[bool] = []

    class Hooked(Task):
        LOOPLESS = loopless

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            called.append(True)

    class Below(Task):
        LOOPLESS = True

    Hooked.DEPS = (Below,)
    error = _refuse_to_start(monkeypatch, lambda t: t.name == "Hooked.on_stop")
    tasks, _ = _started(Hooked)
    task = tasks.Hooked
    tasks.stop()
    with pytest.raises(StopError) as info:
        tasks.join(WAIT)
    assert called == []
    assert task.state == TaskState.FAILED and task.failure is error
    assert info.value.failed == {"Hooked": error}
    assert info.value.__cause__ is error
    # Nothing of it runs and it has no hook thread to wait for.
    assert task.join() is True and task.join(0) is True
    # What it requires still stopped after it, cleanly.
    assert tasks.state_of("Below") == TaskState.STOPPED
    assert tasks.state == CollectionState.FAILED
