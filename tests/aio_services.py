"""Services with async tasks that ``lifecycle run`` runs in a child process (test_aio_signals)."""

from __future__ import annotations

import asyncio

from lifecycle.aio import AsyncTask
from lifecycle.service import Service
from lifecycle.task import Task


class Waiter(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class Pump(AsyncTask):
    """Requires the thread task `Waiter`; two coroutines wait for the stop."""

    DEPS = (Waiter,)
    workers = 2

    async def run_loop(self) -> None:
        await self.stop_event.wait()

    async def on_stop(self) -> None:
        await asyncio.sleep(0.01)


class Reporter(Task):
    """A thread task requiring the async `Pump`."""

    DEPS = (Pump,)

    def run_loop(self) -> None:
        self.stop_event.wait()


class AsyncQuiet(Service):
    """Runs until a signal."""

    TASKS = (Reporter,)


class Exploder(AsyncTask):
    async def run_loop(self) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("coroutine exploded")


class AsyncCrashing(Service):
    TASKS = (Waiter, Exploder)


class Stubborn(AsyncTask):
    """Swallows every cancellation for a long while: only the deadline ends the run."""

    STOP_GRACE = 0.05

    async def run_loop(self) -> None:
        for _ in range(100):
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue


class AsyncStubborn(Service):
    TASKS = (Waiter, Stubborn)


class Finisher(AsyncTask):
    """Asks the service to stop as soon as it runs."""

    async def run_loop(self) -> None:
        self.service.shutdown("finisher is done")
        await self.stop_event.wait()


class AsyncSelfStopping(Service):
    TASKS = (Waiter, Finisher)
