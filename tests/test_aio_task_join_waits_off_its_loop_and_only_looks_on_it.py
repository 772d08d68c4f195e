"""`AsyncTask.join`: from another thread it waits for the task's coroutines, at most its
timeout; on the loop's own thread, where waiting would block the very coroutines it waits for,
it only looks and returns at once."""

from __future__ import annotations

import asyncio

from lifecycle.aio import AsyncTask
from tests.aio_fakes import collected, in_thread
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT


class Runs(AsyncTask):
    async def run_loop(self) -> None:
        await self.stop_event.wait()


def test_join_from_another_thread_gives_up_after_its_timeout_while_the_code_runs() -> None:
    async def main() -> list[bool]:
        async with collected(Runs) as tasks:
            task = tasks.require(Runs)
            async with asyncio.timeout(WAIT):  # a bound for a join that ignores its timeout
                return [await in_thread(task.join, 0.001), task.running]

    assert asyncio.run(main()) == [False, True]


def test_join_from_another_thread_waits_until_the_code_ended() -> None:
    async def main() -> bool:
        async with collected(Runs) as tasks:
            task = tasks.require(Runs)

            def stop_then_join() -> bool:
                task.stop()  # it has nothing after it in the order
                return task.join(WAIT)

            return await in_thread(stop_then_join)

    assert asyncio.run(main()) is True


def test_join_on_the_loop_thread_only_looks_and_returns_at_once() -> None:
    async def main() -> tuple[bool, bool]:
        async with collected(Runs) as tasks:
            task = tasks.require(Runs)
            # Waiting here would block the loop that runs the coroutine waited for: a hang.
            return task.join(), task.running

    assert asyncio.run(main()) == (False, True)
