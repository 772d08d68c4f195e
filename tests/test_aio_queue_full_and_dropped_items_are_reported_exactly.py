"""An async queue task's refusals and drops carry exact facts: a submitter's bad timeout names
the call it was given to, a wait for room gives up after its own timeout with a `QueueFull` that
states it, and every item the stop grace cut short is counted and names its task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import ExecuteContext, Tasks, TaskState
from lifecycle.aio.queue import AsyncQueueTask
from lifecycle.errors import QueueFull, TaskStopped
from lifecycle.tasks.queue import dropped_in_cause
from tests.aio_fakes import collected, in_thread
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT


class Idle(AsyncQueueTask):
    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        return item


@given(
    bad=st.sampled_from([-1.0, -0.001, float("inf"), float("nan")]),
    call=st.sampled_from(["put", "submit"]),
)
def test_a_bad_timeout_is_a_value_error_naming_the_call(bad: float, call: str) -> None:
    task = Idle()
    with pytest.raises(ValueError, match=rf"^{call}\(\) timeout must be a finite number >= 0"):
        getattr(task, call)("item", timeout=bad)


class Held(AsyncQueueTask):
    """Holds the item it executes until `release` is set: one taken, one more fills it."""

    MAX_ITEMS = 1

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        self.inside.set()
        await self.release.wait()
        return item


@pytest.mark.parametrize("call", ["put", "submit"])
def test_a_wait_for_room_gives_up_after_its_timeout_with_queue_full_stating_it(call: str) -> None:
    async def main() -> QueueFull:
        async with collected(Held) as tasks:
            task = tasks.Held
            first = task.submit("taken")
            await task.inside.wait()
            second = task.submit("waiting")  # the queue of one is full now

            def refused() -> QueueFull:
                with pytest.raises(QueueFull) as caught:
                    getattr(task, call)("refused", timeout=0.002)
                return caught.value

            async with asyncio.timeout(WAIT):  # a bound for a wait that ignores its timeout
                error = await in_thread(refused)
            task.release.set()
            assert [await first, await second] == ["taken", "waiting"]
            assert task.submitted == 2
            return error

    error = asyncio.run(main())
    assert (error.task, error.max_items, error.timeout) == ("Held", 1, 0.002)


class Stubborn(AsyncQueueTask):
    """Its items never end on their own: only the stop grace's cancellation ends them."""

    WORKERS = 3
    STOP_GRACE = 0.0

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.entered = 0
        self.all_inside = asyncio.Event()

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        self.entered += 1
        if self.entered == self.WORKERS:
            self.all_inside.set()
        await asyncio.Event().wait()


def test_every_item_cut_short_by_the_stop_grace_is_counted_and_names_its_task() -> None:
    async def main() -> tuple[Tasks, list[BaseException]]:
        async with collected(Stubborn) as tasks:
            task = tasks.Stubborn
            futures = [task.submit(n) for n in range(Stubborn.WORKERS)]
            await task.all_inside.wait()
            assert await in_thread(lambda: (tasks.stop(), tasks.join(WAIT))[1]) == []
            errors = await asyncio.gather(*futures, return_exceptions=True)
        return tasks, list(errors)

    tasks, errors = asyncio.run(main())
    assert all(isinstance(e, TaskStopped) for e in errors)
    assert sorted((e.task, e.item) for e in errors) == [  # type: ignore[attr-defined]
        ("Stubborn", n) for n in range(Stubborn.WORKERS)
    ]
    task = tasks.Stubborn
    assert task.state == TaskState.STOPPED and task.dropped == Stubborn.WORKERS
    finish = [r for r in tasks.journal.records if r.subject == "Stubborn" and r.trigger == "finish"]
    assert dropped_in_cause(finish[0].cause) == Stubborn.WORKERS
