"""A `run_loop` coroutine that raises wakes its sibling workers through `stop_event` at once,
without waiting for anyone to stop the task: the task fails as soon as they return."""

from __future__ import annotations

import asyncio

from lifecycle import TaskState
from lifecycle.aio import AsyncTask
from tests.aio_fakes import collected
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT, FakeService


class OneOfThreeFails(AsyncTask):
    workers = 3

    def __init__(self, service: object = None) -> None:
        super().__init__(service)
        self.started = 0
        self.siblings_waiting = asyncio.Event()
        self.woken = 0

    async def run_loop(self) -> None:
        self.started += 1
        if self.started == 1:  # the one that fails, once the others wait on stop_event
            await self.siblings_waiting.wait()
            raise RuntimeError("one worker breaks")
        if self.started == self.workers:
            self.siblings_waiting.set()
        await self.stop_event.wait()
        self.woken += 1


def test_a_failing_worker_wakes_its_siblings_and_the_task_fails_without_a_stop() -> None:
    service = FakeService()  # records the request to shut down, and does nothing about it

    async def main() -> OneOfThreeFails:
        async with collected(OneOfThreeFails, service=service) as tasks:
            task = tasks.require(OneOfThreeFails)
            async with asyncio.timeout(WAIT):
                while task.state == TaskState.RUNNING:  # a test's wait for the loop's progress
                    await asyncio.sleep(0.001)
            records = [r.trigger for r in tasks.journal.records if r.subject == task.name]
            assert "stop" not in records  # nobody stopped it: the failure woke the siblings
            return task

    task = asyncio.run(main())
    assert task.state == TaskState.FAILED and task.woken == 2
    assert isinstance(task.failure, RuntimeError) and str(task.failure) == "one worker breaks"
    assert service.asked.is_set()
