"""Each hook of an async task runs in an asyncio task named ``{task}.{hook}`` (``run_loop-N``
for each of several workers): the names a blocking report or a debugger shows."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from lifecycle.aio import AsyncTask
from tests.aio_fakes import collected
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT


def _current_name() -> str:
    current = asyncio.current_task()
    return current.get_name() if current is not None else ""


@given(workers=st.integers(1, 4))
def test_every_hook_runs_in_an_asyncio_task_named_after_it(workers: int) -> None:
    names: list[str] = []

    class Named(AsyncTask):
        async def init_task(self) -> None:
            names.append(_current_name())

        async def run_loop(self) -> None:
            names.append(_current_name())
            await self.stop_event.wait()

        async def on_stop(self) -> None:
            names.append(_current_name())

    Named.workers = workers

    async def main() -> None:
        async with collected(Named) as tasks:
            task = tasks.require(Named)
            async with asyncio.timeout(WAIT):
                while len(names) < 1 + workers:  # a test's wait for the loop's progress
                    await asyncio.sleep(0.001)
            assert task.running

    asyncio.run(main())
    runs = ["Named.run_loop"] if workers == 1 else [f"Named.run_loop-{i}" for i in range(workers)]
    assert names[0] == "Named.init_task" and names[-1] == "Named.on_stop"
    assert sorted(names[1:-1]) == runs
