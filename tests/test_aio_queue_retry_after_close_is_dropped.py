"""An item whose `execute` asks for a retry (`TryLater`) after the queue closed is not put back:
it is dropped, counted, and its future fails with `TaskStopped` saying why the queue closed
(the task stopped, or it failed) before that attempt ran. A queue closed by a crash refuses
new work as "closed" while the task still runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lifecycle import ExecuteContext, Tasks, TaskState, TryLater
from lifecycle.aio.queue import AsyncQueueTask
from lifecycle.errors import TaskNotRunning, TaskStopped
from lifecycle.tasks.queue import dropped_in_cause
from tests.aio_fakes import collected, in_thread
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT


class RetriesLate(AsyncQueueTask):
    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.inside = asyncio.Event()
        self.closed = asyncio.Event()
        self.after: float | None = None

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        self.inside.set()
        await self.closed.wait()
        raise TryLater(after=self.after)  # once the stop closed the queue

    async def on_stop(self) -> None:
        await super().on_stop()  # closes the queue
        self.closed.set()


@pytest.mark.parametrize("after", [None, 0.0, 5.0])
def test_a_retry_asked_after_the_queue_closed_drops_the_item(after: float | None) -> None:
    async def main() -> tuple[Tasks, BaseException | None]:
        async with collected(RetriesLate) as tasks:
            task = tasks.RetriesLate
            task.after = after
            future = task.submit("late")
            await task.inside.wait()
            assert await in_thread(lambda: (tasks.stop(), tasks.join(WAIT))[1]) == []
            async with asyncio.timeout(WAIT):  # a bound for an item left waiting forever
                error = await asyncio.gather(future, return_exceptions=True)
        return tasks, error[0]

    tasks, error = asyncio.run(main())
    assert isinstance(error, TaskStopped)
    assert (error.task, error.item, error.attempt) == ("RetriesLate", "late", 2)
    assert str(error) == "task 'RetriesLate' stopped before item 'late' (attempt 2) ran"
    task = tasks.RetriesLate
    assert task.state == TaskState.STOPPED and task.dropped == 1
    records = tasks.journal.records
    finish = [r for r in records if r.subject == "RetriesLate" and r.trigger == "finish"]
    assert dropped_in_cause(finish[0].cause) == 1


class CrashWhileRetrying(AsyncQueueTask):
    """Two workers: one crashes on an item nobody awaits (closing the queue as failed) while
    the other is inside `execute`, which then asks for a retry."""

    WORKERS = 2

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.retrying_inside = asyncio.Event()
        self.refused: list[tuple[str, TaskState]] = []

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        if item == "crash":
            await self.retrying_inside.wait()
            raise RuntimeError("a crash")
        self.retrying_inside.set()
        await self.stop_event.wait()  # set once the crash closed the queue
        try:
            self.submit("more")
        except TaskNotRunning as exc:  # still running (this execute runs), but closed
            self.refused.append((exc.state, self.state))
        raise TryLater()


def test_a_retry_after_a_crash_closed_the_queue_says_the_task_failed() -> None:
    async def main() -> tuple[CrashWhileRetrying, BaseException | None]:
        async with collected(CrashWhileRetrying) as tasks:
            task = tasks.CrashWhileRetrying
            future = task.submit("late")
            task.put("crash")
            async with asyncio.timeout(WAIT):  # a bound for an item left waiting forever
                error = await asyncio.gather(future, return_exceptions=True)
        return task, error[0]

    task, error = asyncio.run(main())
    assert task.refused == [("closed", TaskState.RUNNING)]
    assert isinstance(error, TaskStopped)
    assert str(error) == "task 'CrashWhileRetrying' failed before item 'late' (attempt 2) ran"
