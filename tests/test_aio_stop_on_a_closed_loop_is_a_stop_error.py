"""Stopping an async task whose event loop has closed meanwhile cannot run its `on_stop`: the
task fails with the loop's `RuntimeError`, and the collection's stop ends in a `StopError`
naming it, raised by `join` (a hook that could not run is a stop error, not a clean stop)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lifecycle import Tasks, TaskState
from lifecycle.aio import AsyncTask
from lifecycle.errors import StopError
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT, FakeService


class Hooked(AsyncTask):
    LOOPLESS = True
    stopped_on_loop = False

    async def on_stop(self) -> None:
        self.stopped_on_loop = True  # never: its loop is closed by then


def test_stopping_a_task_whose_loop_closed_fails_it_and_raises_stop_error() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    tasks = Tasks([Hooked], loop=loop)
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    loop.call_soon_threadsafe(loop.stop)
    runner.join(WAIT)
    loop.close()

    tasks.stop()
    with pytest.raises(StopError) as caught:
        tasks.join(WAIT)
    task = tasks.require(Hooked)
    assert task.state == TaskState.FAILED and not task.stopped_on_loop
    assert isinstance(task.failure, RuntimeError)
    assert "Hooked" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
