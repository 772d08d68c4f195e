"""Details of `Service` that only the journal or the caller can see: whose start a summary
counts from, where a restarted service records, what `run` does with asyncio tasks user code
left on its loop, and how `serve` ends when its driver is stuck in a thread's hook."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
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


# -- what a service logs, and how it shows itself ---------------------------------------------


def test_run_logs_that_the_service_failed_to_start_naming_it_and_the_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Refuses(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            raise RuntimeError("no database")

    class NoStart(Service):
        TASKS = (Refuses,)

    caplog.set_level(logging.ERROR, logger="lifecycle.service")
    assert NoStart().run() == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "lifecycle.service"]
    assert any("'NoStart'" in m and "failed to start" in m and "no database" in m for m in logged)


def test_a_stop_past_its_deadline_is_logged_naming_the_service_and_the_task_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    class Lingers(Task):
        def run_loop(self) -> None:
            self.stop_event.wait()
            release.wait(WAIT)

    class Late(Service):
        TASKS = (Lingers,)

    caplog.set_level(logging.ERROR, logger="lifecycle.service")
    service = Late({"stop_timeout": 0.01})
    service.start()
    service.shutdown()
    try:
        assert service.wait(WAIT)
    finally:
        release.set()
    assert isinstance(service.failure, StopTimeout)
    assert service.errors == [service.failure]
    logged = [r.getMessage() for r in caplog.records if r.name == "lifecycle.service"]
    assert any("'Late'" in m and "Lingers" in m for m in logged)


def test_a_stop_while_start_hangs_on_another_thread_gives_up_naming_the_task_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    in_init, release = threading.Event(), threading.Event()

    class HangsInInit(Task):
        def init_task(self) -> None:
            in_init.set()
            release.wait(WAIT)

        def run_loop(self) -> None:
            self.stop_event.wait()

    class Starting(Service):
        TASKS = (HangsInInit,)

    caplog.set_level(logging.ERROR, logger="lifecycle.service")
    service = Starting({"stop_timeout": 0.01})
    starter = threading.Thread(target=service.start, daemon=True)
    starter.start()
    assert in_init.wait(WAIT)
    service.shutdown("while starting")
    try:
        assert service.wait(WAIT)
        assert service.state == ServiceState.FAILED
        failure = service.failure
        assert isinstance(failure, StopTimeout) and failure.tasks == ("HangsInInit",)
        logged = [r.getMessage() for r in caplog.records if r.name == "lifecycle.service"]
        assert any("'Starting'" in m and "HangsInInit" in m for m in logged), logged
    finally:
        release.set()
        starter.join(WAIT)


def test_a_second_waiter_without_a_timeout_waits_for_the_end_of_a_long_stop() -> None:
    in_on_stop, release = threading.Event(), threading.Event()

    class SlowStop(Task):
        def run_loop(self) -> None:
            self.stop_event.wait()

        def on_stop(self) -> None:
            in_on_stop.set()
            release.wait(WAIT)

    class Slow(Service):
        TASKS = (SlowStop,)

    service = Slow()
    service.start()
    first: list[bool] = []
    second: list[bool] = []
    stopper = threading.Thread(target=lambda: first.append(service.wait()), daemon=True)
    service.shutdown()
    stopper.start()
    assert in_on_stop.wait(WAIT)
    waiter = threading.Thread(target=lambda: second.append(service.wait()), daemon=True)
    waiter.start()
    waiter.join(1.5)  # longer than any fixed wait a waiter without a timeout might make
    still_waiting = waiter.is_alive()
    release.set()
    stopper.join(WAIT)
    waiter.join(WAIT)
    assert still_waiting, "a wait() without a timeout returned before the stop ended"
    assert first == [True] and second == [True]


def test_repr_shows_the_class_the_service_name_and_its_state() -> None:
    class Shown(Service):
        name = "shown-service"
        TASKS = (Alpha,)

    assert repr(Shown()) == f"<{Shown.__qualname__} 'shown-service' new>"
    assert Shown.__qualname__.endswith(".Shown")


# -- serve() ---------------------------------------------------------------------------------


class Quick(AsyncTask):
    async def run_loop(self) -> None:
        self.service.shutdown("done")
        await self.stop_event.wait()


def test_shutdown_after_serve_returned_is_harmless() -> None:
    class Served(Service):
        TASKS = (Quick,)

    service = Served()
    assert asyncio.run(service.serve()) == 0
    service.shutdown("again")
    assert service.state == ServiceState.STOPPED


def test_serve_drives_the_service_from_a_daemon_thread_named_after_it() -> None:
    seen: list[tuple[str, bool]] = []

    class LooksAtTheDriver(AsyncTask):
        async def init_task(self) -> None:
            records = self.service.journal.records
            (start,) = [r for r in records if (r.kind, r.trigger) == ("service", "start")]
            (driver,) = [t for t in threading.enumerate() if t.name == start.thread]
            seen.append((driver.name, driver.daemon))

        async def run_loop(self) -> None:
            self.service.shutdown("done")
            await self.stop_event.wait()

    class Driven(Service):
        TASKS = (LooksAtTheDriver,)

    assert asyncio.run(Driven().serve()) == 0
    assert seen == [("Driven.driver", True)]


@pytest.mark.parametrize("handle_signals", [False, True])
def test_serve_takes_sigterm_only_when_asked(handle_signals: bool) -> None:
    # SIGTERM: asyncio.run() installs a SIGINT handler of its own.
    before = {signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    during: dict[int, object] = {}

    class Looks(AsyncTask):
        async def run_loop(self) -> None:
            during.update({sig: signal.getsignal(sig) for sig in before})
            self.service.shutdown("done")
            await self.stop_event.wait()

    class Signalled(Service):
        TASKS = (Looks,)

    assert asyncio.run(Signalled().serve(handle_signals=handle_signals)) == 0
    assert (during != before) is handle_signals
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_serve_never_gives_up_on_a_service_running_longer_than_its_stop_timeout_unasked() -> None:
    class Patient(AsyncTask):
        async def run_loop(self) -> None:
            # Longer than the stop timeout and both graces: no deadline runs before a request.
            await asyncio.sleep(1.2)
            self.service.shutdown("done")
            await self.stop_event.wait()

    class Long(Service):
        TASKS = (Patient,)

    service = Long({"stop_timeout": 0.01})
    assert asyncio.run(service.serve()) == 0
    assert service.failure is None


def test_an_async_init_task_hanging_past_the_deadline_is_cancelled_and_the_driver_ends_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class HangsAsync(AsyncTask):
        async def init_task(self) -> None:
            self.service.shutdown("asked while initializing")
            await asyncio.Event().wait()

        async def run_loop(self) -> None:
            await self.stop_event.wait()

    class AsyncStuck(Service):
        TASKS = (HangsAsync,)

    caplog.set_level(logging.ERROR, logger="lifecycle.service")
    service = AsyncStuck({"stop_timeout": 0.05})
    assert asyncio.run(asyncio.wait_for(service.serve(), WAIT)) == 1
    assert service.state == ServiceState.FAILED
    assert service.tasks.state_of("HangsAsync") == TaskState.FAILED
    logged = [r.getMessage() for r in caplog.records if r.name == "lifecycle.service"]
    assert not any("stuck" in m for m in logged), logged


def test_serve_logs_the_coroutines_it_abandons_and_keeps_them_quiet_when_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unkillable(AsyncTask):
        STOP_GRACE = 0.01

        async def run_loop(self) -> None:
            self.service.shutdown("test over")
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    continue

    class Abandons(Service):
        TASKS = (Unkillable,)

    caplog.set_level(logging.ERROR)
    service = Abandons({"stop_timeout": 0.05})
    assert service.run() == 1
    assert [run.get_name() for run in service.abandoned] == ["Unkillable.run_loop"]
    logged = [r.getMessage() for r in caplog.records if r.name == "lifecycle.service"]
    assert any("'Abandons'" in m and "Unkillable.run_loop" in m for m in logged), logged
    del service
    gc.collect()
    destroyed = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert destroyed == []
