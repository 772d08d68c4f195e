"""Drivers for async task kinds in tests: by hand (the hooks awaited directly, as a user's own
test would) and through a `Tasks` collection bound to the running loop (the engine's path)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from lifecycle import Service, Tasks
from lifecycle.aio import AsyncTask
from lifecycle.spec import ServiceState
from lifecycle.task import Task
from tests.fakes import WAIT, FakeService, stop

T = TypeVar("T", bound=AsyncTask)
K = TypeVar("K", bound=Task)


@asynccontextmanager
async def by_hand(task: T) -> AsyncIterator[T]:
    """``task`` with no collection: `init_task` awaited, ``workers`` `run_loop` coroutines
    running; afterwards `stop_event` set, `on_stop` awaited and every worker awaited (within
    `WAIT`), their exceptions raised."""
    await task.init_task()
    runs = [asyncio.create_task(task.run_loop(), name=task.name) for _ in range(task.workers)]
    await asyncio.sleep(0)  # let the workers begin
    try:
        yield task
    finally:
        task.stop_event.set()
        await task.on_stop()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*runs)


@asynccontextmanager
async def collected(*classes: type, service: Any = None) -> AsyncIterator[Tasks]:
    """A started collection of ``classes`` whose async tasks run on the running loop, driven
    from a thread (as `Service.serve` does); stopped and joined within `WAIT` afterwards."""
    tasks = Tasks(classes, loop=asyncio.get_running_loop())

    def begin() -> None:
        tasks.create(service if service is not None else FakeService())
        tasks.init()
        tasks.start()

    await asyncio.to_thread(begin)
    try:
        yield tasks
    finally:
        await asyncio.to_thread(stop, tasks)


async def in_thread(function: Any, *args: Any) -> Any:
    """``function(*args)`` on a thread of its own, awaited without blocking the loop."""
    return await asyncio.to_thread(function, *args)


async def started(service: Service, cls: type[K]) -> K:
    """The running instance of ``cls`` in ``service`` (being served), once the service runs."""
    async with asyncio.timeout(WAIT):
        while service.state != ServiceState.RUNNING:
            await asyncio.sleep(0.001)  # a test's wait for another thread's progress
    return service.tasks.require(cls)
