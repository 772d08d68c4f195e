"""Details of `Service` that only the journal or the caller can see: whose start a summary
counts from, where a restarted service records, what `run` does with asyncio tasks user code
left on its loop, and how `serve` ends when its driver is stuck in a thread's hook."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import ClassVar

import pytest

from lifecycle.aio import AsyncTask
from lifecycle.errors import StopTimeout
from lifecycle.journal import Journal
from lifecycle.service import Service
from lifecycle.spec import ServiceState, TaskState
from lifecycle.task import Task

WAIT = 30.0  # a bound for what happens at once; never reached when the code is right
SECOND = 1_000_000_000  # ns


class Alpha(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class Beta(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


# -- summary ---------------------------------------------------------------------------------


def test_a_summary_counts_time_to_running_from_its_own_services_start_in_a_shared_journal() -> (
    None
):
    journal = Journal()
    first = type("First", (Service,), {"TASKS": (Alpha,)})(journal=journal)
    second = type("Second", (Service,), {"TASKS": (Beta,)})(journal=journal)
    first.start()
    second.start()
    try:
        records = journal.records

        def mono(kind: str, subject: str, trigger: str) -> int:
            (found,) = [
                r.mono
                for r in records
                if (r.kind, r.subject, r.trigger) == (kind, subject, trigger)
            ]
            return found

        second_start = mono("service", "Second", "start")
        assert mono("service", "First", "start") < second_start
        (beta,) = second.summary()
        assert beta.state == TaskState.RUNNING
        assert beta.time_to_running == pytest.approx(
            (mono("task", "Beta", "start") - second_start) / SECOND
        )
    finally:
        for service in (second, first):
            service.shutdown()
            assert service.wait(WAIT)


# -- restart ---------------------------------------------------------------------------------


def test_restart_records_the_fresh_run_in_the_journal_it_is_given_and_says_why_it_stopped() -> (
    None
):
    service = type("Restarted", (Service,), {"TASKS": (Alpha,)})()
    service.start()
    given = Journal()
    fresh = service.restart(journal=given)
    try:
        assert fresh.journal is given
        assert [r.trigger for r in given.records if r.kind == "service"] == ["start", "started"]
        (stop,) = [
            r for r in service.journal.records if r.kind == "service" and r.trigger == "stop"
        ]
        assert stop.cause == "restart requested"
    finally:
        fresh.shutdown()
        assert fresh.wait(WAIT)


# -- run() and the asyncio tasks user code leaves on its loop --------------------------------


class LeavesAStray(AsyncTask):
    """Starts an asyncio task of its own and never awaits it."""

    events: ClassVar[list[str]] = []
    stubborn: ClassVar[bool] = False

    async def run_loop(self) -> None:
        asyncio.get_running_loop().create_task(self._stray())
        await asyncio.sleep(0)  # let the stray begin
        self.service.shutdown("done")
        await self.stop_event.wait()

    async def _stray(self) -> None:
        self.events.append("began")
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.events.append("cancelled")
                if not self.stubborn:
                    raise


def test_run_cancels_the_asyncio_tasks_user_code_left_on_its_loop_before_closing_it() -> None:
    class Strays(Service):
        TASKS = (LeavesAStray,)

    LeavesAStray.events = []
    LeavesAStray.stubborn = False
    service = Strays()
    assert service.run() == 0
    assert LeavesAStray.events == ["began", "cancelled"]


def test_run_returns_even_when_a_stray_asyncio_task_ignores_its_cancellation() -> None:
    class StubbornStrays(Service):
        TASKS = (LeavesAStray,)

    LeavesAStray.events = []
    LeavesAStray.stubborn = True
    service = StubbornStrays()
    outcome: list[int] = []
    runner = threading.Thread(target=lambda: outcome.append(service.run()), daemon=True)
    runner.start()
    runner.join(WAIT)
    assert not runner.is_alive(), "run() waited for a stray that ignores its cancellation"
    assert outcome == [0]
    assert LeavesAStray.events == ["began", "cancelled"]


# -- serve() with its driver stuck in a thread's hook ----------------------------------------


def test_serve_ends_failed_naming_the_task_when_a_thread_init_task_hangs_past_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    class HangsInInit(Task):
        def init_task(self) -> None:
            self.service.shutdown("asked while initializing")
            release.wait(WAIT)

        def run_loop(self) -> None:
            self.stop_event.wait()

    class Beside(AsyncTask):
        async def run_loop(self) -> None:
            await self.stop_event.wait()

    class Stuck(Service):
        TASKS = (Beside, HangsInInit)

    service = Stuck({"stop_timeout": 0.05})
    caplog.set_level(logging.ERROR, logger="lifecycle.service")
    try:
        code = asyncio.run(asyncio.wait_for(service.serve(), WAIT))
    finally:
        release.set()
    assert code == 1
    assert service.state == ServiceState.FAILED
    failure = service.failure
    assert isinstance(failure, StopTimeout)
    assert failure.tasks == ("HangsInInit",)
    assert service.errors == [failure]
    (last,) = [r for r in service.journal.records if r.kind == "service"][-1:]
    assert (last.trigger, last.dest) == ("fail", "failed")
    assert last.cause is not None and "HangsInInit" in last.cause
    logged = [r.getMessage() for r in caplog.records if r.name == "lifecycle.service"]
    assert any("'Stuck'" in m and "HangsInInit" in m and "abandoned" in m for m in logged)
