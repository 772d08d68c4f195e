"""An async task's collection driven from its own event loop's thread is refused with a typed
error naming the task, never a hang; an async task overriding ``init_thread`` is refused
naming its class."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

import pytest

from lifecycle.aio import AsyncTask
from lifecycle.collection import Tasks
from lifecycle.errors import InitError, InvalidTask, LifecycleError
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)

#: Generous bound for what should happen at once.
WAIT = 10.0


class Awaits(AsyncTask):
    LOOPLESS: ClassVar[bool] = True

    async def init_task(self) -> None:
        return None


def test_init_driven_from_the_loops_own_thread_fails_naming_the_task_without_hanging() -> None:
    loop = asyncio.new_event_loop()
    outcome: list[BaseException | None] = []

    async def drive(tasks: Tasks) -> None:
        try:
            tasks.init()
        except BaseException as exc:  # what init raises is the finding
            outcome.append(exc)
        else:
            outcome.append(None)

    def run() -> None:
        tasks = Tasks([Awaits], loop=loop)
        tasks.create()
        loop.run_until_complete(drive(tasks))

    thread = threading.Thread(target=run, name="drives-on-its-loop", daemon=True)
    thread.start()
    thread.join(WAIT)
    try:
        assert not thread.is_alive(), "init hung on its own loop's thread"
        [error] = outcome
        assert isinstance(error, InitError)
        cause = error.failed["Awaits"]
        assert isinstance(cause, LifecycleError)
        assert "'Awaits' is driven from its own event loop's thread" in str(cause)
    finally:
        if not thread.is_alive():
            loop.close()


def test_an_async_task_overriding_init_thread_is_refused_naming_its_class() -> None:
    with pytest.raises(InvalidTask) as info:

        class Rogue(AsyncTask):
            def init_thread(self) -> None:
                pass

    assert info.value.task.__qualname__.endswith("Rogue")
