"""The health model (started, ready, live), the heartbeat watchdog and the notices."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.aio import AsyncTask
from lifecycle.health import (
    HealthMonitor,
    InvalidWatchdog,
    TaskView,
    WatchdogTimeout,
    assess,
    watchdog_of,
)
from lifecycle.journal import Journal, Notice
from lifecycle.service import Service
from lifecycle.spec import ServiceState, TaskState
from lifecycle.task import Task

# -- the pure model -------------------------------------------------------------------------

views = st.builds(
    TaskView,
    name=st.sampled_from(["a", "b", "c", "d"]),
    state=st.sampled_from(list(TaskState)),
    readiness=st.sampled_from([(True, None), (False, "warming up")]),
    watchdog=st.none() | st.just(1.0),
    due=st.none() | st.floats(0, 10),
    missed=st.none() | st.just("missed its heartbeat"),
)


@given(
    state=st.sampled_from(list(ServiceState)),
    stop_requested=st.booleans(),
    tasks=st.lists(views, max_size=4, unique_by=lambda v: v.name),
    now=st.floats(0, 10),
)
def test_ready_means_running_unasked_to_stop_with_every_required_task_running_and_ready(
    state: ServiceState, stop_requested: bool, tasks: list[TaskView], now: float
) -> None:
    report = assess("S", state, started=True, stop_requested=stop_requested, tasks=tasks, now=now)
    required = [t for t in tasks if t.state != TaskState.SKIPPED]
    expected = (
        state == ServiceState.RUNNING
        and not stop_requested
        and all(t.state == TaskState.RUNNING and t.readiness[0] for t in required)
        and all(h.live for h in report.tasks if h.required)
    )
    assert report.ready == expected
    assert (report.reason is None) == report.ready


@given(tasks=st.lists(views, max_size=4, unique_by=lambda v: v.name), now=st.floats(0, 10))
def test_live_means_no_task_missed_or_overdue(tasks: list[TaskView], now: float) -> None:
    report = assess(
        "S", ServiceState.RUNNING, started=True, stop_requested=False, tasks=tasks, now=now
    )
    overdue = [
        t
        for t in tasks
        if t.missed is not None
        or (t.state == TaskState.RUNNING and t.due is not None and now > t.due)
    ]
    assert report.live == (not overdue)
    assert (report.live_reason is None) == report.live


def test_a_skipped_task_does_not_hold_readiness_back() -> None:
    tasks = [TaskView("a", TaskState.RUNNING), TaskView("b", TaskState.SKIPPED)]
    report = assess(
        "S", ServiceState.RUNNING, started=True, stop_requested=False, tasks=tasks, now=0
    )
    assert report.ready


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "5", True])
def test_a_watchdog_that_is_not_seconds_is_refused_naming_the_class(value: object) -> None:
    cls = type("Bad", (Task,), {"WATCHDOG": value, "LOOPLESS": True})
    with pytest.raises(InvalidWatchdog, match=r"Bad\.WATCHDOG"):
        watchdog_of(cls)
    with pytest.raises(InvalidWatchdog, match=r"Bad\.WATCHDOG"):
        _service(cls)


def test_set_ready_refuses_what_is_not_a_bool() -> None:
    with pytest.raises(TypeError, match="bool"):
        Loopless().set_ready("yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        Loopless().set_ready(False, 42)  # type: ignore[arg-type]


# -- a monitored service --------------------------------------------------------------------


class Loopless(Task):
    LOOPLESS = True


class Holding(Task):
    """Runs until stopped; its on_stop waits for ``release`` and records that it began."""

    LOOPLESS = True
    began = threading.Event()
    release = threading.Event()

    def on_stop(self) -> None:
        type(self).began.set()
        type(self).release.wait(30)


class Silent(Task):
    """A worker that never beats, with a watchdog: it is failed once the deadline passes."""

    WATCHDOG = 0.05

    def run_loop(self) -> None:
        self.stop_event.wait()


class SilentLoopless(Task):
    LOOPLESS = True
    WATCHDOG = 0.05


@pytest.fixture
def notices() -> Iterator[tuple[Journal, list[Notice]]]:
    journal = Journal()
    seen: list[Notice] = []
    undo = journal.subscribe_notices(seen.append)
    yield journal, seen
    undo()


def _service(*tasks: type[Task], journal: Journal | None = None) -> Service:
    cls = type("Monitored", (Service,), {"TASKS": tasks})
    return cls(journal=journal)


def test_readiness_turns_false_at_the_stop_request_before_any_on_stop_runs() -> None:
    Holding.began.clear()
    Holding.release.clear()
    service = _service(Holding)
    with service.health as monitor:
        service.start()
        assert monitor.ready
        service.shutdown("test")
        assert not Holding.began.is_set()
        report = monitor.report()
        assert not report.ready
        assert report.reason == "stop requested"
        stopper = threading.Thread(target=service.wait)
        stopper.start()
        assert Holding.began.wait(30)
        assert not monitor.ready  # still draining
        Holding.release.set()
        stopper.join(30)
    assert service.state == ServiceState.STOPPED


def test_set_ready_changes_are_notices_not_records(
    notices: tuple[Journal, list[Notice]],
) -> None:
    journal, seen = notices
    service = _service(Loopless, journal=journal)
    task_ready = threading.Event()
    task_unready = threading.Event()

    def watch(notice: Notice) -> None:
        if (notice.kind, notice.subject, notice.what) == ("service", "Monitored", "ready"):
            (task_ready if notice.value else task_unready).set()

    journal.subscribe_notices(watch)
    with service.health as monitor:
        service.start()
        assert task_ready.wait(30)
        records = len(journal.records)
        task = service.tasks.require(Loopless)
        task.set_ready(False, "cache cold")
        assert task_unready.wait(30)
        assert not monitor.ready
        assert "cache cold" in (monitor.report().reason or "")
        assert len(journal.records) == records  # nothing was recorded
        service.shutdown()
        service.wait()
    unready = [n for n in seen if n.subject == "Loopless" and n.what == "ready" and not n.value]
    assert unready[0].reason == "cache cold"
    assert all(r.kind in {"service", "collection", "task"} for r in journal.records)


def test_a_task_that_misses_its_heartbeat_fails_with_watchdog_timeout_and_the_service_stops(
    notices: tuple[Journal, list[Notice]],
) -> None:
    journal, seen = notices
    service = _service(Silent, Loopless, journal=journal)
    with service.health as monitor:
        service.start()
        service.wait()
        assert not monitor.live
        assert monitor.thread is not None
        monitor.thread.join(30)
        assert not monitor.thread.is_alive()  # it ended with the service
    assert service.state == ServiceState.FAILED
    assert isinstance(service.failure, WatchdogTimeout)
    assert service.failure.task == "Silent"
    fail = next(r for r in journal.records if r.subject == "Silent" and r.trigger == "fail")
    assert "WatchdogTimeout" in (fail.cause or "")
    assert any(n.subject == "Silent" and n.what == "live" and not n.value for n in seen)
    assert any(n.subject == "Monitored" and n.what == "live" and not n.value for n in seen)


def test_a_loopless_task_that_misses_its_heartbeat_fails_too() -> None:
    service = _service(SilentLoopless)
    service.start()  # with a WATCHDOG, the service starts its monitor itself
    service.wait()
    assert service.tasks.state_of(SilentLoopless) == TaskState.FAILED
    assert isinstance(service.failure, WatchdogTimeout)


class Beats(Task):
    """Beats on demand: the test calls ``heartbeat`` and watches the deadline move."""

    LOOPLESS = True
    WATCHDOG = 1000.0


def test_a_heartbeat_moves_the_deadline() -> None:
    clock = [0.0]
    service = _service(Beats)
    monitor = HealthMonitor(service, clock=lambda: clock[0])
    with monitor:
        service.start()
        task = service.tasks.require(Beats)
        since = task._last_heartbeat
        assert since is None
        clock[0] = 10**9  # far past the first deadline
        assert not monitor.report().live
        task.heartbeat()
        clock[0] = task._last_heartbeat + 1.0  # type: ignore[operator]
        assert monitor.report().live
        service.shutdown()
        service.wait()


class AsyncReady(AsyncTask):
    """An async task that says it is not ready, then ready, and beats, from its coroutine."""

    LOOPLESS = True
    WATCHDOG = 1000.0

    async def init_task(self) -> None:
        self.set_ready(False, "loading")

    async def on_stop(self) -> None:
        await asyncio.sleep(0)


def test_an_async_task_reports_readiness_and_heartbeats_from_its_coroutines() -> None:
    service = _service(AsyncReady)
    seen: list[bool] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        running = asyncio.Event()
        service.journal.subscribe(
            lambda r: r.trigger == "started" and loop.call_soon_threadsafe(running.set)
        )
        serving = asyncio.ensure_future(service.serve())
        await running.wait()
        seen.append(monitor.ready)
        task = service.tasks.require(AsyncReady)
        task.set_ready(True)
        task.heartbeat()
        seen.append(monitor.ready)
        service.shutdown()
        return await serving

    with service.health as monitor:
        assert asyncio.run(main()) == 0
    assert seen == [False, True]


def test_the_monitor_thread_ends_with_the_service() -> None:
    service = _service(Loopless)
    monitor = service.health
    service.start()  # a service without WATCHDOG starts no monitor thread of its own
    assert monitor.thread is None
    monitor.start()
    service.shutdown()
    service.wait()
    assert monitor.thread is not None
    monitor.thread.join(30)
    assert not monitor.thread.is_alive()
    monitor.close()


def test_a_monitor_starts_once() -> None:
    service = _service(Loopless)
    with service.health as monitor, pytest.raises(Exception, match="started once"):
        monitor.start()


def test_started_latches_once_every_task_ran() -> None:
    service = _service(Loopless)
    with service.health as monitor:
        assert not monitor.started
        service.start()
        assert monitor.started
        service.shutdown()
        service.wait()
        assert monitor.started


def _blocked_signals(thread: threading.Thread) -> set[int]:
    """The signals ``thread`` blocks, as Linux's /proc says."""
    with open(f"/proc/self/task/{thread.native_id}/status") as status:
        line = next(x for x in status if x.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux's /proc")
def test_the_monitor_thread_leaves_the_stop_signals_to_the_main_thread() -> None:
    # A second signal sent right after the first can be handed to any thread that does not
    # block it; on the monitor thread it never reached the main thread's handler (a forced
    # exit during a hung init_task hung instead).
    service = _service(Beats)
    service.start()
    try:
        assert service.health.thread is not None
        blocked = _blocked_signals(service.health.thread)
        assert {signal.SIGINT, signal.SIGTERM, signal.SIGALRM} <= blocked
    finally:
        service.shutdown()
        service.wait()


class SilentAsync(AsyncTask):
    WATCHDOG = 0.05

    async def run_loop(self) -> None:
        await self.stop_event.wait()


def test_an_async_task_that_misses_its_heartbeat_fails_on_its_loop() -> None:
    service = _service(SilentAsync)
    assert asyncio.run(service.serve()) == 1
    assert isinstance(service.failure, WatchdogTimeout)
    assert service.tasks.state_of(SilentAsync) == TaskState.FAILED
