"""The Service runtime in-process: lifecycle, crashes, deadlines, restart, signal handlers."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.errors import InitError, LifecycleError, StopError, StopTimeout
from lifecycle.journal import Journal
from lifecycle.service import Service
from lifecycle.spec import SERVICE, ServiceState, TaskState
from lifecycle.task import SkipTask, Task

WAIT = 30.0  # generous deadline for anything that should happen at once


class Idle(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class NeedsIdle(Task):
    DEPS = (Idle,)

    def run_loop(self) -> None:
        self.stop_event.wait()


class Crash(Task):
    def run_loop(self) -> None:
        raise RuntimeError("boom")


class Exits(Task):
    def run_loop(self) -> None:
        raise SystemExit(0)


class BadInit(Task):
    def init_task(self) -> None:
        raise ValueError("no config")

    def run_loop(self) -> None:
        self.stop_event.wait()


class BadStop(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()

    def on_stop(self) -> None:
        raise OSError("cannot close")


def _service(*tasks: type[Task], **options: Any) -> Service:
    cls = type("Svc", (Service,), {"TASKS": tasks})
    return cls(options or None)


def _service_trail(service: Service) -> list[tuple[str, str]]:
    return [(r.trigger, str(r.dest)) for r in service.journal.records if r.kind == "service"]


def test_a_clean_run_follows_the_service_table_and_exits_0() -> None:
    service = _service(NeedsIdle)
    service.start()
    assert service.state == ServiceState.RUNNING
    assert service.exit_code is None
    service.shutdown("test is done")
    assert service.wait(WAIT)
    assert _service_trail(service) == [
        ("start", "starting"),
        ("started", "running"),
        ("stop", "stopping"),
        ("finish", "stopped"),
    ]
    assert service.exit_code == 0
    assert service.failure is None
    assert all(t.state == TaskState.STOPPED and not t.running for t in service.tasks)


def test_the_collection_shares_the_service_journal() -> None:
    journal = Journal()
    service = type("Svc", (Service,), {"TASKS": (Idle,)})(journal=journal)
    assert service.journal is journal and service.tasks.journal is journal
    service.start()
    service.shutdown()
    service.wait(WAIT)
    kinds = {r.kind for r in journal.records}
    assert kinds == {"service", "collection", "task"}


def test_shutdown_is_a_request_kept_once_and_carried_out_by_the_waiter() -> None:
    service = _service(Idle)
    service.start()
    requester = threading.Thread(target=lambda: [service.shutdown("first"), service.shutdown()])
    requester.start()
    requester.join(WAIT)
    assert service.state == ServiceState.RUNNING  # nothing stopped until someone waits
    assert service.wait(WAIT)
    assert service.shutdown_reason == "first"
    stop = next(r for r in service.journal.records if r.kind == "service" and r.trigger == "stop")
    assert stop.cause == "first"
    service.shutdown("after the end is harmless")
    assert service.state == ServiceState.STOPPED


def test_wait_with_a_timeout_and_no_request_returns_false() -> None:
    service = _service(Idle)
    service.start()
    assert service.wait(0) is False
    assert service.state == ServiceState.RUNNING
    service.shutdown()
    assert service.wait(WAIT) is True


def test_wait_on_a_service_never_started_is_refused() -> None:
    with pytest.raises(LifecycleError, match="never started"):
        _service(Idle).wait(0)


def test_an_init_error_fails_the_service_and_raises_init_error_with_the_root_cause() -> None:
    service = _service(Idle, BadInit)
    with pytest.raises(InitError) as info:
        service.start()
    assert isinstance(info.value.__cause__, ValueError)
    assert service.state == ServiceState.FAILED
    assert service.exit_code == 1
    assert isinstance(service.failure, ValueError)
    assert service.wait(0) is True


def test_run_returns_1_on_an_init_error() -> None:
    service = _service(BadInit)
    assert service.run() == 1
    assert str(service.failure) == "no config"


@pytest.mark.parametrize(
    ("task", "kind"), [(Crash, RuntimeError), (Exits, SystemExit)], ids=["raise", "sys.exit"]
)
def test_a_crashing_worker_fails_the_service_with_exit_1(task: type[Task], kind: type) -> None:
    service = _service(Idle, task)
    assert service.run() == 1
    assert service.state == ServiceState.FAILED
    assert isinstance(service.failure, kind)
    assert service.tasks.state_of(task) == TaskState.FAILED
    assert service.tasks.state_of(Idle) == TaskState.STOPPED
    fail = next(
        r for r in service.journal.records if r.subject == task.__name__ and r.dest == "failed"
    )
    assert fail.cause is not None and "Traceback" in fail.cause
    assert "failed" in (service.shutdown_reason or "")


def test_failure_is_the_first_root_cause_and_later_errors_are_kept() -> None:
    service = _service(BadStop, Crash)
    assert service.run() == 1
    assert isinstance(service.failure, RuntimeError)  # the crash came before the stop
    assert any(isinstance(e, StopError) for e in service.errors)


def test_the_stop_deadline_fails_the_service_naming_the_task_that_did_not_stop() -> None:
    release = threading.Event()

    class Stuck(Task):
        def run_loop(self) -> None:
            release.wait(WAIT)

    service = _service(Idle, Stuck, stop_timeout=0.05)
    service.start()
    stuck = service.tasks.Stuck.threads
    try:
        service.shutdown()
        assert service.wait(WAIT)
        assert service.state == ServiceState.FAILED
        assert isinstance(service.failure, StopTimeout)
        assert service.failure.tasks == ("Stuck",)
        assert str(service.tasks.state) == "failed"
        assert all(t.daemon for t in stuck)  # why the process can still exit
    finally:
        release.set()
        for thread in stuck:
            thread.join(WAIT)


def test_a_shutdown_during_init_stops_before_any_worker_starts() -> None:
    class Quitter(Task):
        def init_task(self) -> None:
            self.service.shutdown("changed my mind")

        def run_loop(self) -> None:
            self.stop_event.wait()

    service = _service(Idle, Quitter)
    service.start()
    assert service.state == ServiceState.STARTING
    assert service.wait(WAIT)
    assert _service_trail(service) == [
        ("start", "starting"),
        ("stop", "stopping"),
        ("finish", "stopped"),
    ]
    assert not any(r.trigger == "start" for r in service.journal.records if r.kind == "task")


def test_restart_stops_gracefully_then_returns_a_fresh_started_service_same_options() -> (
    None
):
    service = _service(Idle, stop_timeout=5.0)
    service.start()
    fresh = service.restart()
    try:
        assert service.state == ServiceState.STOPPED
        assert fresh is not service and type(fresh) is type(service)
        assert fresh.state == ServiceState.RUNNING
        assert fresh.stop_timeout == 5.0
        assert fresh.journal is not service.journal
    finally:
        fresh.shutdown()
        fresh.wait(WAIT)


def test_restart_refuses_when_the_old_service_did_not_stop_cleanly() -> None:
    service = _service(BadStop)
    service.start()
    with pytest.raises(LifecycleError, match="not restarting"):
        service.restart()
    assert service.state == ServiceState.FAILED


def test_run_restores_the_previous_signal_handlers() -> None:
    class Done(Task):
        def run_loop(self) -> None:
            self.service.shutdown("done")
            self.stop_event.wait()

    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected")

    before = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert _service(Done).run() == 0
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_stop_timeout_must_be_a_non_negative_number() -> None:
    with pytest.raises(LifecycleError, match="stop-timeout"):
        _service(Idle, stop_timeout=-1.0)


def test_unknown_option_keys_are_refused() -> None:
    with pytest.raises(LifecycleError, match="nonsense"):
        _service(Idle, nonsense=1)


BEHAVIOURS = ("ok", "crash", "skip", "bad_init", "bad_stop")


def _task_class(index: int, behaviour: str) -> type[Task]:
    def run_loop(self: Task) -> None:
        if behaviour == "crash":
            raise RuntimeError(f"crash {index}")
        self.stop_event.wait()

    def init_task(self: Task) -> None:
        if behaviour == "skip":
            raise SkipTask("no config")
        if behaviour == "bad_init":
            raise ValueError(f"bad init {index}")

    def on_stop(self: Task) -> None:
        if behaviour == "bad_stop":
            raise OSError(f"bad stop {index}")

    body = {"run_loop": run_loop, "init_task": init_task, "on_stop": on_stop}
    return type(f"T{index}", (Task,), body)


@given(st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=5))
def test_the_service_ends_failed_exactly_when_some_task_fails(behaviours: list[str]) -> None:
    classes = [_task_class(i, b) for i, b in enumerate(behaviours)]
    service = _service(*classes)
    try:
        service.start()
    except InitError:
        assert "bad_init" in behaviours
    service.shutdown("end of example")  # a crash may have asked already; asking again is fine
    assert service.wait(WAIT)
    code = service.exit_code
    should_fail = any(b in ("crash", "bad_init", "bad_stop") for b in behaviours)
    assert code == (1 if should_fail else 0)
    assert service.state == (ServiceState.FAILED if should_fail else ServiceState.STOPPED)
    assert (service.failure is not None) == should_fail
    trail = [r for r in service.journal.records if r.kind == "service"]
    state = SERVICE.initial
    for rec in trail:
        assert rec.ok and rec.source == state
        state = SERVICE.next(state, rec.trigger)
        assert rec.dest == state
    assert SERVICE.is_terminal(state)
    assert not any(t.running for t in service.tasks)
    for task in service.tasks:
        assert task.state in (TaskState.STOPPED, TaskState.SKIPPED, TaskState.FAILED)
