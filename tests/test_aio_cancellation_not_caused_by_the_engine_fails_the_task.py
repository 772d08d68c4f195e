"""Only the engine's own cancellation ends an async task cleanly: a `run_loop` whose asyncio
task someone else cancelled, or that raises `CancelledError` by hand after the engine's
cancellation was taken back, fails the task with that `CancelledError`."""

from __future__ import annotations

import asyncio

from lifecycle import Tasks, TaskState
from lifecycle.aio import AsyncTask
from tests.aio_fakes import collected, in_thread
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT


class Waits(AsyncTask):
    async def run_loop(self) -> None:
        await self.stop_event.wait()


def test_a_run_loop_cancelled_by_someone_else_fails_the_task() -> None:
    async def main() -> AsyncTask:
        async with collected(Waits) as tasks:
            task = tasks.require(Waits)
            [run] = [t for t in asyncio.all_tasks() if t.get_name() == "Waits.run_loop"]
            run.cancel()  # not the engine: nobody asked this task to stop
            async with asyncio.timeout(WAIT):
                while task.state == TaskState.RUNNING:  # a test's wait for the loop's progress
                    await asyncio.sleep(0.001)
            return task

    task = asyncio.run(main())
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, asyncio.CancelledError)


class TakesItBack(AsyncTask):
    """Swallows the grace's cancellation (uncancel), then raises a CancelledError of its own."""

    STOP_GRACE = 0.0

    async def run_loop(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            assert current is not None
            current.uncancel()
        raise asyncio.CancelledError("raised by hand")


def test_a_cancelled_error_raised_by_hand_after_the_grace_fails_the_task() -> None:
    async def main() -> Tasks:
        async with collected(TakesItBack) as tasks:
            await in_thread(lambda: (tasks.stop(), tasks.join(WAIT)))
        return tasks

    task = asyncio.run(main()).require(TakesItBack)
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, asyncio.CancelledError)
    assert task.failure.args == ("raised by hand",)
