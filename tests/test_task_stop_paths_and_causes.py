"""A task's stop while its ``on_stop`` still runs, ``join`` from the task's own worker, which
instances a collection holds, and the causes the collection's ``fail`` record keeps."""

from __future__ import annotations

import threading

import pytest

from lifecycle.collection import Tasks
from lifecycle.errors import InitError, StopError
from lifecycle.journal import Journal, Transition
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task
from tests.fakes import FakeService, running, stop

WAIT = 10.0  # a bound for what happens at once; never reached when the code is right


def _records(journal: Journal, subject: str, trigger: str) -> list[Transition]:
    return [r for r in journal.records if r.subject == subject and r.trigger == trigger]


# -- a worker that exits while on_stop still runs ------------------------------------------


def test_a_task_whose_worker_exits_while_on_stop_runs_ends_only_when_on_stop_returns() -> None:
    worker_gone, in_on_stop, release = threading.Event(), threading.Event(), threading.Event()

    class SlowHook(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)
            worker_gone.set()

        def on_stop(self) -> None:
            in_on_stop.set()
            release.wait(WAIT)

    journal = Journal()
    tasks = Tasks([SlowHook], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    try:
        tasks.stop()
        assert in_on_stop.wait(WAIT) and worker_gone.wait(WAIT)
        (worker,) = tasks.SlowHook.threads
        worker.join(WAIT)
        assert not worker.is_alive()
        # Its worker has exited, but on_stop still runs: the task has not finished.
        assert tasks.state_of("SlowHook") == TaskState.STOPPING
        assert _records(journal, "SlowHook", "finish") == []
    finally:
        release.set()
        stop(tasks)
    assert tasks.state_of("SlowHook") == TaskState.STOPPED
    (finish,) = _records(journal, "SlowHook", "finish")
    # A stop that went as asked is a clean finish: no "returned before any stop" cause.
    assert (finish.source, finish.dest, finish.cause) == ("stopping", "stopped", None)


def test_a_task_whose_worker_returns_unasked_says_so_on_its_finish_record() -> None:
    class Returns(Task):
        def run_loop(self) -> None:
            return

    journal = Journal()
    tasks = Tasks([Returns], journal=journal)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    try:
        (worker,) = tasks.Returns.threads
        worker.join(WAIT)
        assert tasks.state_of("Returns") == TaskState.STOPPED
    finally:
        stop(tasks)
    (finish,) = _records(journal, "Returns", "finish")
    assert finish.source == "running"
    assert finish.cause == "the run loop returned before any stop request"


# -- join from the task's own worker ---------------------------------------------------------


def test_join_called_from_the_tasks_own_worker_returns_without_waiting_for_itself() -> None:
    joined: list[bool] = []
    returned = threading.Event()

    class JoinsItself(Task):
        def run_loop(self) -> None:
            joined.append(self.join(WAIT))  # must not wait on (or fail joining) itself
            returned.set()
            self.stop_event.wait(WAIT)

    with running(JoinsItself) as tasks:
        assert returned.wait(WAIT)
        # Its own worker still runs, so not every thread exited: False, not a failure.
        assert joined == [False]
        assert tasks.state_of("JoinsItself") == TaskState.RUNNING
    assert tasks.state_of("JoinsItself") == TaskState.STOPPED
    assert tasks.JoinsItself.failure is None


# -- membership ------------------------------------------------------------------------------


class Member(Task):
    LOOPLESS = True


def test_a_task_instance_of_another_collection_is_not_in_this_one() -> None:
    ours, theirs = Tasks([Member]), Tasks([Member])
    for tasks in (ours, theirs):
        tasks.create(FakeService())
    try:
        assert ours.Member in ours
        assert theirs.Member in theirs
        # Same class, same name, another collection's instance: not a member here.
        assert theirs.Member not in ours
        assert ours.Member not in theirs
        assert Member in ours and "Member" in ours
    finally:
        for tasks in (ours, theirs):
            stop(tasks)


# -- the cause on the collection's fail record -----------------------------------------------


def test_the_collections_fail_record_names_the_init_error_and_the_task_that_failed() -> None:
    class BadInit(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            raise ValueError("no config")

    journal = Journal()
    tasks = Tasks([BadInit], journal=journal, name="svc")
    tasks.create(FakeService())
    with pytest.raises(InitError):
        tasks.init()
    assert tasks.state == CollectionState.FAILED
    (fail,) = _records(journal, "svc", "fail")
    assert fail.kind == "collection" and fail.ok
    assert fail.cause is not None
    assert "InitError" in fail.cause
    assert "BadInit" in fail.cause and "no config" in fail.cause
    assert isinstance(tasks.failure, InitError)


def test_the_collections_fail_record_names_the_stop_error_and_its_root_cause() -> None:
    class BadStop(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            raise OSError("cannot close")

    journal = Journal()
    tasks = Tasks([BadStop], journal=journal, name="svc")
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    tasks.stop()
    with pytest.raises(StopError) as caught:
        tasks.join(WAIT)
    assert isinstance(caught.value.__cause__, OSError)
    assert str(caught.value.__cause__) == "cannot close"
    assert tasks.state == CollectionState.FAILED
    assert tasks.failure is caught.value
    (fail,) = _records(journal, "svc", "fail")
    assert fail.source == "stopping" and fail.ok
    assert fail.cause is not None
    assert "StopError" in fail.cause and "cannot close" in fail.cause
