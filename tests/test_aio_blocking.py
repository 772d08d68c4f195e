"""BlockingDetector: a blocked loop is reported once per episode, naming the running task and
carrying its stack; a healthy or idle loop is not; start/stop are safe from anywhere."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifecycle import Service
from lifecycle.aio import AsyncTask
from lifecycle.aio.blocking import (
    BlockingDetector,
    BlockingDetectorError,
    InvalidThreshold,
)
from lifecycle.errors import LifecycleError
from tests.aio_support import asyncio_hygiene, serve  # noqa: F401  (autouse)
from tests.fakes import WAIT

THRESHOLD = 0.2
#: For the tests whose outcome rests on timing alone (a plain sleep is reported; a healthy
#: loop is not): long enough that a busy machine cannot flip them.
LENIENT = 0.5
ROOT = Path(__file__).resolve().parent.parent


class Watcher(logging.Handler):
    """Collects the detector's log records; `warned` and `answered` fire on each kind."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.warned = threading.Event()
        self.answered = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.levelno >= logging.WARNING:
            self.warned.set()
        elif "answered again" in record.getMessage():
            self.answered.set()

    @property
    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= logging.WARNING]


@pytest.fixture
def watcher() -> Iterator[Watcher]:
    handler = Watcher()
    log = logging.getLogger("lifecycle.aio.blocking")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def run(main: Any) -> Any:
    return asyncio.run(main())


# -- reporting -----------------------------------------------------------------------------


def test_a_coroutine_sleeping_three_thresholds_is_named_with_its_stack(watcher: Watcher) -> None:
    async def sleepy_body() -> None:
        time.sleep(LENIENT * 3)  # blocks the loop: the bug the detector is for

    async def main() -> BlockingDetector:
        with BlockingDetector(asyncio.get_running_loop(), LENIENT) as detector:
            await asyncio.create_task(sleepy_body(), name="Sleeper")
        return detector

    detector = run(main)
    assert len(watcher.warnings) == 1, watcher.warnings
    message = watcher.warnings[0]
    assert "asyncio task 'Sleeper'" in message
    assert "sleepy_body" in message
    assert "time.sleep(LENIENT * 3)" in message  # the blocking line, from the stack
    episode = detector.last_episode
    assert episode is not None
    assert (episode.task, episode.threshold) == ("Sleeper", LENIENT)
    assert episode.coroutine is not None and episode.coroutine.endswith("sleepy_body")
    assert episode.blocked_for >= LENIENT
    # The stack starts at the task's coroutine, not in the event loop's own machinery.
    assert episode.stack.lstrip().startswith("File") and "in sleepy_body" in episode.stack
    assert "_run_once" not in episode.stack
    assert watcher.records[0].blocked_episode is episode  # type: ignore[attr-defined]


def blocked_until_reported(watcher: Watcher, then: float = 0.0) -> None:
    """Block the calling loop until the detector warned, then ``then`` seconds more."""
    if not watcher.warned.wait(WAIT):
        raise AssertionError("the detector never reported the blocked loop")
    time.sleep(then)


def test_one_long_episode_gives_one_warning(watcher: Watcher) -> None:
    async def stuck() -> None:
        blocked_until_reported(watcher, then=THRESHOLD * 4)  # four more thresholds, blocked

    async def main() -> BlockingDetector:
        with BlockingDetector(asyncio.get_running_loop(), THRESHOLD) as detector:
            await asyncio.create_task(stuck(), name="Stuck")
            # Let the loop answer, so that the watchdog has seen the episode end.
            await loop_answered(watcher)
        return detector

    detector = run(main)
    assert detector.episodes == 1
    assert len(watcher.warnings) == 1


async def loop_answered(watcher: Watcher) -> None:
    """Wait (without blocking the loop) until the detector logged that the loop answered."""
    loop = asyncio.get_running_loop()
    answered = await loop.run_in_executor(None, watcher.answered.wait, WAIT)
    if not answered:
        raise AssertionError("the detector never saw the loop answer again")


def test_a_second_episode_gives_a_second_warning_naming_its_own_task(watcher: Watcher) -> None:
    async def first() -> None:
        blocked_until_reported(watcher)

    async def second() -> None:
        blocked_until_reported(watcher)

    async def main() -> BlockingDetector:
        with BlockingDetector(asyncio.get_running_loop(), THRESHOLD) as detector:
            await asyncio.create_task(first(), name="First")
            await loop_answered(watcher)
            watcher.warned.clear()
            await asyncio.create_task(second(), name="Second")
        return detector

    detector = run(main)
    assert detector.episodes == 2
    assert len(watcher.warnings) == 2
    assert "'First'" in watcher.warnings[0] and "in first" in watcher.warnings[0]
    assert "'Second'" in watcher.warnings[1] and "in second" in watcher.warnings[1]
    assert any("answered again after" in r.getMessage() for r in watcher.records)


def test_a_blocking_callback_outside_any_task_is_reported_as_such(watcher: Watcher) -> None:
    async def main() -> BlockingDetector:
        loop = asyncio.get_running_loop()
        with BlockingDetector(loop, THRESHOLD) as detector:
            done = loop.create_future()

            def blocking_callback() -> None:
                blocked_until_reported(watcher)
                done.set_result(None)

            loop.call_soon(blocking_callback)
            await done
        return detector

    detector = run(main)
    assert len(watcher.warnings) == 1
    assert "a callback outside any asyncio task" in watcher.warnings[0]
    assert "in blocking_callback" in watcher.warnings[0]
    episode = detector.last_episode
    assert episode is not None and (episode.task, episode.coroutine) == (None, None)


# -- no false alarms -----------------------------------------------------------------------


def test_a_healthy_loop_gives_no_warning(watcher: Watcher) -> None:
    async def busy_but_cooperative() -> None:
        end = time.monotonic() + LENIENT * 2
        while time.monotonic() < end:
            time.sleep(LENIENT / 50)  # short slices of work ...
            await asyncio.sleep(0)  # ... each followed by a yield to the loop

    async def main() -> BlockingDetector:
        with BlockingDetector(asyncio.get_running_loop(), LENIENT) as detector:
            await asyncio.gather(
                asyncio.create_task(busy_but_cooperative(), name="Cooperative"),
                asyncio.sleep(LENIENT * 2),
            )
        return detector

    detector = run(main)
    assert watcher.warnings == []
    assert detector.episodes == 0


def test_a_loop_that_is_not_running_is_not_blocked(watcher: Watcher) -> None:
    loop = asyncio.new_event_loop()
    try:
        detector = BlockingDetector(loop, THRESHOLD).start()
        loop.run_until_complete(asyncio.sleep(0))  # one beat, then the loop stops running
        time.sleep(THRESHOLD * 3)  # the test thread, not the loop, waits here
        loop.run_until_complete(asyncio.sleep(THRESHOLD / 2))  # running again: it beats
        detector.stop()
    finally:
        loop.close()
    assert watcher.warnings == []
    assert detector.episodes == 0
    # Nor did it "answer again after being blocked": it was never blocked.
    assert [r.getMessage() for r in watcher.records] == []


# -- start and stop ------------------------------------------------------------------------


def detector_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lifecycle-blocking-detector"]


def test_stop_joins_the_watchdog_thread() -> None:
    async def main() -> None:
        detector = BlockingDetector(asyncio.get_running_loop(), THRESHOLD).start()
        assert detector.watching
        assert len(detector_threads()) == 1
        await asyncio.sleep(0)
        detector.stop()
        assert detector_threads() == []
        assert not detector.watching

    run(main)


def test_stop_on_the_loop_thread_cancels_the_pending_heartbeat() -> None:
    async def main() -> None:
        detector = BlockingDetector(asyncio.get_running_loop(), THRESHOLD).start()
        await asyncio.sleep(0)  # the first beat runs and schedules the next
        timer = detector._timer
        assert timer is not None
        detector.stop()
        assert timer.cancelled()

    run(main)


def test_stop_is_safe_before_start_twice_from_another_thread_and_after_close() -> None:
    loop = asyncio.new_event_loop()
    BlockingDetector(loop).stop()  # never started

    detector = BlockingDetector(loop, THRESHOLD).start()
    loop.run_until_complete(asyncio.sleep(0))
    stopper = threading.Thread(target=detector.stop)
    stopper.start()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    detector.stop()  # twice
    loop.close()
    detector.stop()  # after the loop closed
    assert detector_threads() == []

    closed_later = BlockingDetector(loop := asyncio.new_event_loop(), THRESHOLD)
    closed_later.start()
    loop.close()  # closed while watching, never run
    closed_later.stop()
    assert detector_threads() == []


def test_a_detector_starts_once() -> None:
    loop = asyncio.new_event_loop()
    try:
        detector = BlockingDetector(loop, THRESHOLD).start()
        with pytest.raises(BlockingDetectorError, match="already watching"):
            detector.start()
        detector.stop()
        with pytest.raises(BlockingDetectorError, match="stopped"):
            detector.start()
    finally:
        loop.close()


def test_a_closed_loop_cannot_be_watched() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(BlockingDetectorError, match="closed event loop"):
        BlockingDetector(loop).start()
    assert detector_threads() == []


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("nan"), float("inf"), "1", True, None])
def test_a_bad_threshold_raises_invalid_threshold(bad: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(InvalidThreshold, match="finite number of seconds > 0") as caught:
            BlockingDetector(loop, bad)
    finally:
        loop.close()
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, LifecycleError)
    assert caught.value.threshold is bad


def test_something_that_is_not_a_loop_is_refused() -> None:
    with pytest.raises(BlockingDetectorError, match="needs an asyncio event loop"):
        BlockingDetector("loop")  # type: ignore[arg-type]


def test_the_default_threshold_is_one_second() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert BlockingDetector(loop).threshold == 1.0
    finally:
        loop.close()


# -- end to end, through a Service ---------------------------------------------------------


def hog_service(watcher: Watcher) -> type[Service]:
    class Hog(AsyncTask):
        async def run_loop(self) -> None:
            await asyncio.sleep(0)
            hog_the_loop(watcher)
            self.service.shutdown("test over")
            await self.stop_event.wait()

    class HogService(Service):
        TASKS = (Hog,)

    return HogService


def hog_the_loop(watcher: Watcher) -> None:
    """Block the loop until the detector warned, or (when none watches) for a few thresholds."""
    watcher.warned.wait(THRESHOLD * 4)


def test_a_served_service_with_a_blocking_threshold_names_the_task_blocking_its_loop(
    watcher: Watcher,
) -> None:
    service = hog_service(watcher)()
    service.blocking_threshold = THRESHOLD  # as `lifecycle run` sets it
    code, left = serve(service)
    assert code == 0 and left == set()
    assert len(watcher.warnings) == 1
    assert "asyncio task 'Hog.run_loop'" in watcher.warnings[0]  # named after the task
    assert "in hog_the_loop" in watcher.warnings[0] and "in run_loop" in watcher.warnings[0]
    # The coroutine named is the user's, not the engine's wrapper around its hooks.
    episode = watcher.records[0].blocked_episode  # type: ignore[attr-defined]
    assert episode.coroutine.endswith("Hog.run_loop")
    assert detector_threads() == []  # the detector stopped with serve()


def test_the_detector_is_off_by_default(watcher: Watcher) -> None:
    service = hog_service(watcher)()
    assert service.blocking_threshold is None
    code, _ = serve(service)
    assert code == 0
    assert watcher.warnings == []


@pytest.mark.slow
def test_lifecycle_run_shows_the_blocked_loop_warning_on_stderr() -> None:
    # `lifecycle run` configures no logging: the warning must still reach the operator.
    done = subprocess.run(
        [sys.executable, "-m", "lifecycle", "run", "tests.aio_blocking_services:HogService"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "event loop blocked for at least" in done.stderr
    assert "asyncio task 'Hog.run_loop'" in done.stderr
    assert "time.sleep(BLOCKING_THRESHOLD * 3)" in done.stderr  # the stack, down to the call
    assert done.stderr.count("event loop blocked") == 1  # one episode, one warning
