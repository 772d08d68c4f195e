"""`AsyncPeriodicTask`'s own rules: an interval made invalid in code after create fails the task
with an `InvalidTask` naming its class; no run starts before its deadline, however close the
deadline is; and a run that fails the task tells the futures waiting for the next run that
the task failed (not that it stopped)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import TaskState
from lifecycle.aio.periodic import AsyncPeriodicTask
from lifecycle.errors import InvalidTask, TaskStopped
from lifecycle.futures import TaskFuture
from tests.aio_fakes import collected
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT


class Retuned(AsyncPeriodicTask):
    INTERVAL = 1.0

    async def init_task(self) -> None:
        self.interval = -1.0  # set in code after create: only run_loop can see it

    async def execute(self) -> None:
        raise AssertionError("a task with an invalid interval must never run")


def test_an_interval_made_invalid_after_create_fails_the_task_naming_its_class() -> None:
    async def main() -> AsyncPeriodicTask:
        async with collected(Retuned) as tasks:
            task = tasks.require(Retuned)
            async with asyncio.timeout(WAIT):
                while task.state == TaskState.RUNNING:  # a test's wait for the loop's progress
                    await asyncio.sleep(0.001)
            return task

    task = asyncio.run(main())
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, InvalidTask) and task.failure.task is Retuned
    assert "interval" in task.failure.problem


@given(interval=st.floats(min_value=0.001, max_value=3600.0))
def test_no_run_starts_before_its_deadline_on_a_clock_that_stands_still(interval: float) -> None:
    runs: list[int] = []

    class Frozen(AsyncPeriodicTask):
        INTERVAL = interval

        def _now(self) -> float:
            return 100.0  # the next deadline never comes

        async def execute(self) -> None:
            runs.append(len(runs))
            if len(runs) == 1:  # stop once the loop next gets a turn
                asyncio.get_running_loop().call_soon(self.stop_event.set)
            else:
                await asyncio.sleep(0)  # a run too early: let the stop in, then fail below

    async def main() -> None:
        async with asyncio.timeout(WAIT):
            await Frozen().run_loop()

    asyncio.run(main())
    assert runs == [0]


class FailsWhileAwaited(AsyncPeriodicTask):
    INTERVAL = 0.001

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.waiting: TaskFuture[Any] | None = None

    async def execute(self) -> None:
        self.waiting = self.execute_async()  # for the next run, which never comes
        raise RuntimeError("the run breaks")


def test_a_run_that_fails_the_task_fails_the_next_runs_futures_saying_it_failed() -> None:
    async def main() -> AsyncPeriodicTask:
        async with collected(FailsWhileAwaited) as tasks:
            task = tasks.require(FailsWhileAwaited)
            async with asyncio.timeout(WAIT):
                while task.state == TaskState.RUNNING:  # a test's wait for the loop's progress
                    await asyncio.sleep(0.001)
            return task

    task = asyncio.run(main())
    assert isinstance(task, FailsWhileAwaited) and task.waiting is not None
    with pytest.raises(TaskStopped, match=r"'FailsWhileAwaited' failed before the next run"):
        task.waiting.result(0)
