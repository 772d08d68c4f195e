"""User code that misbehaves: hooks that hang, raise `SystemExit`, or have a raising `__str__`.

Whatever a task does, the service ends (within its stop deadline), ends ``failed`` exactly
when something failed, keeps every cause, and resolves every future.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from lifecycle import audit
from lifecycle.collection import Tasks
from lifecycle.context import ExecuteContext
from lifecycle.errors import (
    ForcedShutdown,
    InitError,
    LifecycleInterrupt,
    StopError,
    StopTimeout,
    TaskExit,
    TaskStopped,
)
from lifecycle.service import Service
from lifecycle.spec import CollectionState, ServiceState, TaskState
from lifecycle.task import RETURNED_EARLY, Task
from lifecycle.tasks import QueueTask
from lifecycle.testing import wait_for_state
from tests.fakes import WAIT, FakeService

T = TaskState


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test: frees the hooks a test abandoned past a deadline."""
    event = threading.Event()
    yield event
    event.set()


class Unprintable(Exception):
    """An exception whose ``str`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class UnprintableItem:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    __str__ = __repr__


def run_until_stopped(service: Service, timeout: float = WAIT) -> None:
    service.start()
    service.shutdown("test")
    assert service.wait(timeout)


# -- hangs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("loopless", [False, True], ids=["threaded", "loopless"])
def test_an_on_stop_that_never_returns_is_abandoned_at_the_deadline(
    release: threading.Event, loopless: bool
) -> None:
    class Hung(Task):
        LOOPLESS = loopless

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            release.wait(WAIT)  # "never" returns

    class Svc(Service):
        TASKS = (Hung,)

    service = Svc({"stop_timeout": 0.2})
    run_until_stopped(service)
    assert service.state == ServiceState.FAILED and service.exit_code == 1
    assert isinstance(service.failure, StopTimeout) and service.failure.tasks == ("Hung",)
    assert audit.check(service.journal) == []


# -- zombies -------------------------------------------------------------------------------------


def test_a_worker_exception_with_a_raising_str_still_shuts_the_service_down() -> None:
    class Broken(Task):
        def run_loop(self) -> None:
            raise Unprintable

    class Other(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    class Svc(Service):
        TASKS = (Broken, Other)

    service = Svc()
    service.start()
    assert service.wait(WAIT)  # returns because the crash asked for a shutdown
    assert service.state == ServiceState.FAILED
    assert isinstance(service.failure, Unprintable)
    assert "Unprintable" in (service.shutdown_reason or "")
    assert audit.check(service.journal) == []


def test_a_worker_thread_that_cannot_start_fails_its_task_and_asks_for_a_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Unlucky(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == "Unlucky":
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    service = FakeService()
    tasks = Tasks([Unlucky])
    tasks.create(service)
    tasks.init()
    tasks.start()
    assert service.asked.is_set()
    assert "can't start new thread" in (service.reasons[0] or "")
    assert tasks.state_of(Unlucky) == T.FAILED
    tasks.stop()
    assert tasks.join(WAIT) == []
    assert tasks.state == CollectionState.FAILED


# -- exceptions that must not escape -------------------------------------------------------------


@pytest.mark.parametrize("raised", [SystemExit(0), KeyboardInterrupt()], ids=repr)
def test_system_exit_from_on_stop_fails_the_task_and_every_other_task_still_stops(
    raised: BaseException,
) -> None:
    class Below(Task):
        LOOPLESS = True

    class Exiting(Task):
        LOOPLESS = True
        DEPS = (Below,)

        def on_stop(self) -> None:
            raise raised

    class Svc(Service):
        TASKS = (Exiting,)

    service = Svc()
    run_until_stopped(service)
    assert service.state == ServiceState.FAILED
    assert service.tasks.state_of(Exiting) == T.FAILED
    assert service.tasks.state_of(Below) == T.STOPPED
    (error,) = [e for e in service.errors if isinstance(e, StopError)]
    wrapped = error.failed["Exiting"]
    assert isinstance(wrapped, TaskExit) and wrapped.exception is raised
    assert audit.check(service.journal) == []


@pytest.mark.parametrize("where", ["constructor", "init_task"])
def test_system_exit_0_from_a_constructor_or_init_task_is_that_tasks_failure(
    where: str,
) -> None:
    class Quitter(Task):
        LOOPLESS = True

        def __init__(self, service: Any = None) -> None:
            if where == "constructor":
                raise SystemExit(0)
            super().__init__(service)

        def init_task(self) -> None:
            raise SystemExit(0)

    class Svc(Service):
        TASKS = (Quitter,)

    service = Svc()
    with pytest.raises(InitError) as info:
        service.start()
    wrapped = info.value.failed["Quitter"]
    assert isinstance(wrapped, TaskExit) and isinstance(wrapped.exception, SystemExit)
    assert info.value.__cause__ is wrapped.exception
    assert service.state == ServiceState.FAILED and service.exit_code == 1
    assert audit.check(service.journal) == []


def test_run_returns_1_for_system_exit_in_init_task() -> None:
    class Quitter(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            raise SystemExit(0)

    class Svc(Service):
        TASKS = (Quitter,)

    assert Svc().run() == 1


# -- nothing lost --------------------------------------------------------------------------------


def test_queued_items_with_a_raising_repr_still_get_their_futures_failed_at_stop(
    release: threading.Event,
) -> None:
    gate = release
    entered = threading.Event()

    class Slow(QueueTask):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            entered.set()
            gate.wait(WAIT)
            return None

    tasks = Tasks([Slow])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    first = tasks.Slow.submit("first")
    assert entered.wait(WAIT)
    waiting: list[Future[Any]] = [tasks.Slow.submit(UnprintableItem()) for _ in range(3)]
    tasks.stop()
    for future in waiting:
        error = future.exception(WAIT)
        assert isinstance(error, TaskStopped)
        assert "UnprintableItem" in str(error)  # a placeholder naming the type
    gate.set()
    assert first.result(WAIT) is None
    assert tasks.join(WAIT) == []


def test_a_run_loop_that_returns_unasked_says_so_in_its_finish_record() -> None:
    class Brief(Task):
        def run_loop(self) -> None:
            return

    tasks = Tasks([Brief])
    tasks.create()
    tasks.init()
    tasks.start()
    wait_for_state(tasks.Brief, T.STOPPED, WAIT)  # it finished, on its worker's thread
    assert tasks.join(WAIT) == []
    (finish,) = [r for r in tasks.journal.records if r.trigger == "finish" and r.kind == "task"]
    assert (finish.source, finish.dest, finish.cause) == ("running", "stopped", RETURNED_EARLY)
    tasks.stop()
    assert tasks.join(WAIT) == []
    assert tasks.state == CollectionState.STOPPED


def test_an_interrupt_between_two_collection_calls_still_leaves_every_task_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second signal can land after create() returned and before init() runs a hook: the
    # collection, created, must still end with every task terminal.
    class Quiet(Task):
        LOOPLESS = True

    class Svc(Service):
        TASKS = (Quiet,)

    service = Svc()
    reason = ForcedShutdown([], "SIGINT")

    def interrupted() -> None:
        raise LifecycleInterrupt(reason)

    monkeypatch.setattr(service.tasks, "init", interrupted)
    with pytest.raises(LifecycleInterrupt):
        service.start()
    assert service.state == ServiceState.FAILED and service.failure is reason
    assert service.tasks.state == CollectionState.FAILED
    assert service.tasks.state_of(Quiet) == T.STOPPED
    assert audit.check(service.journal) == []


def test_a_hung_init_task_on_another_thread_does_not_hang_the_waiter(
    release: threading.Event,
) -> None:
    # Only run() on the main thread can interrupt a hook; a waiter elsewhere still returns.
    entered = threading.Event()

    class Hanging(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            entered.set()
            release.wait(WAIT)

    class Svc(Service):
        TASKS = (Hanging,)

    service = Svc({"stop_timeout": 0.1})
    starter = threading.Thread(target=service.start)
    starter.start()
    try:
        assert entered.wait(WAIT)
        service.shutdown("test")
        assert service.wait(WAIT)
        assert service.state == ServiceState.FAILED
        assert isinstance(service.failure, StopTimeout)
        assert service.failure.tasks == ("Hanging",)
    finally:
        release.set()
        starter.join(WAIT)
