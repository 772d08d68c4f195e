"""Starting an async task whose event loop has closed since init cannot launch its `run_loop`
workers: the task fails at once with the loop's `RuntimeError` (none of its code runs, so it
ends), and it asks its service to shut down, naming that error."""

from __future__ import annotations

import asyncio
import threading

from lifecycle import Tasks, TaskState
from lifecycle.aio import AsyncTask
from tests.fakes import WAIT, FakeService


class Workers(AsyncTask):
    workers = 2

    async def run_loop(self) -> None:
        raise AssertionError("never run: the loop is closed")


def test_starting_on_a_closed_loop_fails_the_task_and_asks_for_a_shutdown() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    service = FakeService()
    tasks = Tasks([Workers], loop=loop)
    tasks.create(service)
    tasks.init()
    loop.call_soon_threadsafe(loop.stop)
    runner.join(WAIT)
    loop.close()

    tasks.start()  # the failure is the task's, reported as any worker's failure is
    task = tasks.require(Workers)
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, RuntimeError)
    assert task.join(WAIT)
    assert len(service.reasons) == 1
    assert "'Workers' failed: RuntimeError" in (service.reasons[0] or "")
