"""Restart policies: a crashed task restarts as a fresh instance, what requires it is suspended
and brought back around it, the limit fails it for good, and the journal says all of it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from lifecycle import Journal, Service, Task, Tasks
from lifecycle.audit import check
from lifecycle.errors import InitError, RestartLimitExceeded
from lifecycle.journal import Transition, read_journal
from tests import restart_services as rs

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # a bound on waits that only a broken engine reaches, never a timing assertion


def _task_records(records: tuple[Transition, ...], name: str) -> list[tuple[str, str, str]]:
    return [
        (r.trigger, r.source, str(r.dest))
        for r in records
        if r.kind == "task" and r.subject == name and r.ok
    ]


class _Seen:
    """Wakes when the journal holds a record matching a predicate (a listener, no polling)."""

    def __init__(self, journal: Journal, wanted: Callable[[Transition], bool], count: int = 1):
        self._left = count
        self._wanted = wanted
        self.event = threading.Event()
        self._lock = threading.Lock()
        self.unsubscribe = journal.subscribe(self._see)

    def _see(self, rec: Transition) -> None:
        if self._wanted(rec):
            with self._lock:
                self._left -= 1
                if self._left <= 0:
                    self.event.set()

    def wait(self) -> bool:
        return self.event.wait(WAIT)


def _started(name: str) -> Callable[[Transition], bool]:
    return lambda r: r.kind == "task" and r.subject == name and r.trigger == "start" and r.ok


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    for cls in (rs.CrashesTwice, rs.UsesIt, rs.AsyncCrashesOnce):
        cls.made.clear()
    rs.AsyncCrashesOnce.crash.clear()
    rs.CrashesTwice.running.clear()
    rs.UsesIt.stops.clear()
    rs.UsesIt.up.clear()
    yield


def test_a_task_that_crashes_twice_then_runs_keeps_the_service_running() -> None:
    service = rs.RestartsTwice()
    back = _Seen(service.journal, _started("UsesIt"), count=3)  # first start, two restarts
    service.start()
    assert back.wait()
    assert service.state == "running" and not service.shutdown_requested
    service.shutdown("test over")
    assert service.wait(WAIT)
    assert service.exit_code == 0
    records = service.journal.records
    crashing = _task_records(records, "CrashesTwice")
    assert [t for t, _, _ in crashing].count("crash") == 2
    assert [t for t, _, _ in crashing].count("restart") == 2
    assert [t for t, _, _ in crashing][-2:] == ["stop", "finish"]
    assert len(rs.CrashesTwice.made) == 3  # a fresh instance per restart
    assert check(service.journal) == []


def test_a_dependent_is_suspended_before_and_restarted_after_each_restart() -> None:
    service = rs.RestartsTwice()
    back = _Seen(service.journal, _started("UsesIt"), count=3)
    service.start()
    assert back.wait()
    service.shutdown("test over")
    service.wait(WAIT)
    seq = [
        (r.subject, r.trigger)
        for r in service.journal.records
        if r.kind == "task" and r.ok and r.subject in ("CrashesTwice", "UsesIt")
    ]
    for crash in range(2):
        start = [i for i, s in enumerate(seq) if s == ("CrashesTwice", "crash")][crash]
        after = seq[start:]
        suspended = after.index(("UsesIt", "finish"))  # suspending -> backoff
        restarted = after.index(("CrashesTwice", "restart"))
        running_again = after.index(("CrashesTwice", "start"))
        user_back = after.index(("UsesIt", "restart"))
        assert after.index(("UsesIt", "suspend")) < suspended < restarted
        assert restarted < running_again < user_back
    # on_stop ran for each suspend and for the final stop, each time on another instance
    assert rs.UsesIt.stops == [1, 2, 3]
    # WANTS does not propagate: WantsIt ran throughout, started once
    assert [t for t, _, _ in _task_records(service.journal.records, "WantsIt")] == [
        "create", "init", "start", "stop", "finish"
    ]


def test_the_restart_limit_fails_the_task_and_the_service() -> None:
    service = rs.CrashLoop()
    code = service.run() if threading.current_thread() is not threading.main_thread() else None
    if code is None:
        service.start()
        assert service.wait(WAIT)
        code = service.exit_code
    assert code == 1
    failure = service.failure
    assert isinstance(failure, RestartLimitExceeded)
    assert (failure.task, failure.restarts, failure.burst, failure.seconds) == (
        "AlwaysCrashes", 3, 3, 60.0
    )
    assert isinstance(failure.__cause__, RuntimeError)
    triggers = [t for t, _, _ in _task_records(service.journal.records, "AlwaysCrashes")]
    assert triggers.count("crash") == 3 and triggers.count("restart") == 3
    assert triggers[-1] == "fail"
    assert check(service.journal) == []


@pytest.mark.slow
def test_lifecycle_run_of_a_crash_loop_exits_1_naming_the_task(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable, "-m", "lifecycle", "run", "tests.restart_services:CrashLoop",
            "--journal", str(journal),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "RestartLimitExceeded" in done.stdout + done.stderr
    assert "'AlwaysCrashes'" in done.stdout + done.stderr
    header, records = read_journal(journal)
    assert header["tasks"]["AlwaysCrashes"]["restart"]["limit"] == [3, 60.0]
    crashes = [r for r in records if r.subject == "AlwaysCrashes" and r.trigger == "crash"]
    assert len(crashes) == 3
    audited = subprocess.run(
        [sys.executable, "-m", "lifecycle", "audit", str(journal)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_an_async_task_restarts_and_its_dependent_follows() -> None:
    service = rs.AsyncRestarts()
    up = _Seen(service.journal, _started("AsyncUser"))
    back = _Seen(service.journal, _started("AsyncUser"), count=2)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(service.run()))
    runner.start()
    assert up.wait()
    rs.AsyncCrashesOnce.crash.set()
    assert back.wait()
    service.shutdown("test over")
    runner.join(WAIT)
    assert result == [0]
    triggers = [t for t, _, _ in _task_records(service.journal.records, "AsyncCrashesOnce")]
    assert triggers.count("crash") == 1 and triggers.count("restart") == 1
    assert len(rs.AsyncCrashesOnce.made) == 2
    assert check(service.journal) == []


def test_a_stop_during_a_backoff_ends_the_wait_at_once() -> None:
    class SlowToRestart(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 3600.0  # a wait the test could never sit out
        RESTART_DELAY_MAX = 3600.0

        def run_loop(self) -> None:
            raise RuntimeError("crash")

    class Svc(Service):
        TASKS = (SlowToRestart,)

    service = Svc()
    crashed = _Seen(service.journal, lambda r: r.trigger == "crash")
    service.start()
    assert crashed.wait()
    service.shutdown("stop during the backoff")
    assert service.wait(WAIT)
    assert service.exit_code == 0
    assert _task_records(service.journal.records, "SlowToRestart")[-1] == (
        "stop", "backoff", "stopped"
    )
    assert check(service.journal) == []


def test_always_restarts_a_run_loop_that_returned_and_never_does_not() -> None:
    returned: list[str] = []

    class Returns(Task):
        RESTART = "always"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def run_loop(self) -> None:
            returned.append("x")
            if len(returned) < 3:
                return
            self.stop_event.wait()

    tasks = Tasks([Returns])
    back = _Seen(tasks.journal, _started("Returns"), count=3)
    tasks.create()
    tasks.init()
    tasks.start()
    assert back.wait()
    tasks.stop()
    tasks.join(WAIT)
    triggers = [t for t, _, _ in _task_records(tasks.journal.records, "Returns")]
    assert triggers.count("crash") == 2
    assert tasks.state == "stopped"
    assert check(tasks.journal) == []


def test_on_failure_does_not_restart_a_run_loop_that_returned() -> None:
    class Returns(Task):
        RESTART = "on-failure"

        def run_loop(self) -> None:
            return

    tasks = Tasks([Returns])
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    tasks.join(WAIT)
    triggers = [t for t, _, _ in _task_records(tasks.journal.records, "Returns")]
    assert "crash" not in triggers and triggers[-1] == "finish"


def test_a_failure_during_init_is_not_restarted() -> None:
    class BadInit(Task):
        RESTART = "always"

        def init_task(self) -> None:
            raise RuntimeError("init")

        def run_loop(self) -> None:
            self.stop_event.wait()

    class Svc(Service):
        TASKS = (BadInit,)

    service = Svc()
    with pytest.raises(InitError):
        service.start()
    triggers = [t for t, _, _ in _task_records(service.journal.records, "BadInit")]
    assert triggers[-1] == "fail" and "crash" not in triggers


def test_a_failure_during_stop_is_not_restarted() -> None:
    class BadStop(Task):
        RESTART = "always"

        def run_loop(self) -> None:
            self.stop_event.wait()
            raise RuntimeError("raised while stopping")

    class Svc(Service):
        TASKS = (BadStop,)

    service = Svc()
    service.start()
    service.shutdown("stop")
    service.wait(WAIT)
    triggers = [t for t, _, _ in _task_records(service.journal.records, "BadStop")]
    assert triggers[-1] == "fail" and "crash" not in triggers
    assert service.exit_code == 1


def test_the_header_carries_each_restart_policy_and_never_is_left_out() -> None:
    tasks = Tasks([rs.UsesIt])
    described = tasks.journal.tasks
    assert described["CrashesTwice"]["restart"] == {
        "policy": "on-failure", "delay": 0.001, "delay_max": 0.004, "limit": [5, 10.0]
    }
    assert "restart" not in described["UsesIt"]


def test_options_override_the_policy_and_the_header_follows() -> None:
    class Svc(Service):
        TASKS = (rs.UsesIt,)

    service = Svc.from_argv(
        ["--UsesIt-restart", "always", "--UsesIt-restart-limit", "2/5",
         "--UsesIt-restart-delay", "0.5", "--UsesIt-restart-delay-max", "1"]
    )
    service.tasks.create(service)
    policy = service.tasks.require("UsesIt").current_restart_policy()
    assert (policy.mode, policy.delay, policy.delay_max, policy.limit) == (
        "always", 0.5, 1.0, (2, 5.0)
    )
    assert service.journal.tasks["UsesIt"]["restart"]["limit"] == [2, 5.0]


@pytest.mark.parametrize("state", ["suspending", "backoff"])
def test_stop_event_made_while_winding_down_for_a_restart_is_set(state: str) -> None:
    from lifecycle.aio import AsyncTask
    from lifecycle.engine import Lifecycle
    from lifecycle.spec import TASK

    class Plain(Task):
        def run_loop(self) -> None:
            pass

    class Coro(AsyncTask):
        async def run_loop(self) -> None:
            pass

    path = {"suspending": ("create", "init", "start", "suspend"),
            "backoff": ("create", "init", "start", "crash")}[state]
    for cls in (Plain, Coro):
        lc = Lifecycle(TASK, cls.__name__, None)
        for trigger in path:
            lc.fire(trigger)
        task = cls()
        task._bind(lc)
        assert task.stop_event.is_set(), cls


def test_a_stop_during_a_restarts_init_task_waits_for_it_then_stops_the_task() -> None:
    release = threading.Event()
    entered = threading.Event()

    class SlowInit(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0
        made: ClassVar[list[int]] = []

        def init_task(self) -> None:
            self.made.append(1)
            if len(self.made) == 2:  # the restart's init_task
                entered.set()
                release.wait(WAIT)

        def run_loop(self) -> None:
            if len(self.made) == 1:
                raise RuntimeError("crash")
            self.stop_event.wait()

    class Svc(Service):
        TASKS = (SlowInit,)

    service = Svc()
    service.start()
    assert entered.wait(WAIT)
    service.shutdown("stop during the restart's init_task")
    stopping = threading.Thread(target=service.wait, args=(WAIT,))
    stopping.start()
    # The stop waits for the hook: the task is not stopped while its init_task runs.
    assert service.tasks.state_of("SlowInit") == "created"
    release.set()
    stopping.join(WAIT)
    assert service.exit_code == 0
    assert _task_records(service.journal.records, "SlowInit")[-2:] == [
        ("init", "created", "initialized"), ("stop", "initialized", "stopped")
    ]
    assert check(service.journal) == []


@pytest.mark.parametrize(
    ("service_class", "task"),
    [
        (rs.TwoWorkersRestart, rs.OneOfTwoWorkersCrashes),
        (rs.WatchdogRestart, rs.SkipsHeartbeats),
    ],
    ids=["one-of-two-workers-raises", "missed-heartbeat"],
)
def test_a_failure_that_restarts_the_task_does_not_stop_the_service(
    service_class: type[Service], task: type[rs.OneOfTwoWorkersCrashes] | type[rs.SkipsHeartbeats]
) -> None:
    """The restart verdict comes when the task's last code returns: the service is asked to
    stop only if the task then fails for good, not when its first worker raises (or its
    watchdog fires) while siblings still run."""
    task.made.clear()
    task.back.clear()
    service = service_class()
    service.start()
    try:
        assert task.back.wait(WAIT)
        assert service.state == "running" and not service.shutdown_requested
    finally:
        service.shutdown("test over")
        assert service.wait(WAIT)
    assert service.exit_code == 0
    assert [t for t, _, _ in _task_records(service.journal.records, task.__name__)].count(
        "crash"
    ) == 1
    assert check(service.journal) == []
