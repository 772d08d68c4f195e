"""Services whose tasks crash, for the restart tests (some run as ``lifecycle run
tests.restart_services:NAME``). Delays are kept tiny: the tests pin order, never timing."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

from lifecycle.aio import AsyncTask
from lifecycle.service import Service
from lifecycle.task import Task


class CrashesTwice(Task):
    """Its first two instances crash once an instance of `UsesIt` runs (so that each crash
    has a dependent to suspend); the third runs until stopped."""

    RESTART = "on-failure"
    RESTART_DELAY = 0.001
    RESTART_DELAY_MAX = 0.004
    #: Instances made so far, shared by every instance: the count survives restarts.
    made: ClassVar[list[int]] = []
    running = threading.Event()

    def __init__(self, service: object = None) -> None:
        super().__init__(service)
        self.made.append(len(self.made))
        self.number = len(self.made)

    def run_loop(self) -> None:
        if self.number <= 2:
            UsesIt.up.wait(30)  # a bound for a broken engine only
            UsesIt.up.clear()
            raise RuntimeError(f"crash of instance {self.number}")
        self.running.set()
        self.stop_event.wait()


class UsesIt(Task):
    """Requires `CrashesTwice`: suspended and restarted around each of its restarts."""

    DEPS = (CrashesTwice,)
    stops: ClassVar[list[int]] = []
    #: Set by each instance as it runs.
    up = threading.Event()

    made: ClassVar[list[int]] = []

    def __init__(self, service: object = None) -> None:
        super().__init__(service)
        self.made.append(len(self.made))
        self.number = len(self.made)

    def run_loop(self) -> None:
        self.up.set()
        self.stop_event.wait()

    def on_stop(self) -> None:
        self.stops.append(self.number)


class WantsIt(Task):
    """Only WANTS `CrashesTwice`: its restarts leave this one running."""

    WANTS = (CrashesTwice,)

    def run_loop(self) -> None:
        self.stop_event.wait()


class RestartsTwice(Service):
    TASKS = (UsesIt, WantsIt)


class AlwaysCrashes(Task):
    """Crashes every time; three restarts within a minute, then it fails for good."""

    RESTART = "on-failure"
    RESTART_DELAY = 0.001
    RESTART_DELAY_MAX = 0.002
    RESTART_LIMIT = (3, 60)

    def run_loop(self) -> None:
        raise RuntimeError("crashes every time")


class CrashLoop(Service):
    TASKS = (AlwaysCrashes,)


class AsyncCrashesOnce(AsyncTask):
    """An async task whose first instance's run loop raises."""

    RESTART = "on-failure"
    RESTART_DELAY = 0.001
    made: ClassVar[list[int]] = []
    #: Set by the test once the dependent runs: the first instance crashes only then, so that
    #: the dependent is suspended and restarted rather than started once, after the restart.
    crash = threading.Event()

    def __init__(self, service: object = None) -> None:
        super().__init__(service)
        self.made.append(len(self.made))
        self.number = len(self.made)

    async def run_loop(self) -> None:
        if self.number == 1:
            await asyncio.to_thread(self.crash.wait, 30.0)
            raise RuntimeError("async crash")
        await self.stop_event.wait()


class AsyncUser(AsyncTask):
    DEPS = (AsyncCrashesOnce,)

    async def run_loop(self) -> None:
        await self.stop_event.wait()


class AsyncRestarts(Service):
    TASKS = (AsyncUser,)


class OneOfTwoWorkersCrashes(Task):
    """Two workers; one worker of the first instance crashes, the other returns once woken.
    The later instances run until stopped."""

    RESTART = "on-failure"
    RESTART_DELAY = 0.001
    RESTART_DELAY_MAX = 0.002
    workers = 2
    made: ClassVar[list[int]] = []
    #: Set by a worker of a restarted instance.
    back = threading.Event()

    def __init__(self, service: object = None) -> None:
        super().__init__(service)
        self.made.append(len(self.made))
        self.number = len(self.made)
        self._first_worker = threading.Lock()

    def run_loop(self) -> None:
        if self.number == 1 and self._first_worker.acquire(blocking=False):
            raise RuntimeError("one worker of the first instance crashes")
        if self.number > 1:
            self.back.set()
        self.stop_event.wait()


class TwoWorkersRestart(Service):
    TASKS = [OneOfTwoWorkersCrashes]


class SkipsHeartbeats(Task):
    """Its first instance never beats: the watchdog fails it, and it restarts."""

    RESTART = "on-failure"
    RESTART_DELAY = 0.001
    RESTART_DELAY_MAX = 0.002
    WATCHDOG = 0.05
    made: ClassVar[list[int]] = []
    back = threading.Event()

    def __init__(self, service: object = None) -> None:
        super().__init__(service)
        self.made.append(len(self.made))
        self.number = len(self.made)

    def run_loop(self) -> None:
        if self.number > 1:
            self.back.set()
            while not self.stop_event.wait(0.01):
                self.heartbeat()
            return
        self.stop_event.wait()


class WatchdogRestart(Service):
    TASKS = [SkipsHeartbeats]
