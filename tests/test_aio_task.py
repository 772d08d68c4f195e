"""`AsyncTask` as a class: its hooks must be coroutines, a thread task's must not, and it is
usable on its own (outside any collection)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lifecycle.aio import AsyncTask, SkipTask, TryLater
from lifecycle.errors import InvalidTask, LifecycleError
from lifecycle.options import option
from lifecycle.task import SkipTask as ThreadSkipTask
from lifecycle.task import Task
from lifecycle.task import TryLater as ThreadTryLater
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)


@pytest.mark.parametrize("hook", ["init_task", "run_loop", "on_stop"])
def test_a_thread_task_with_an_async_hook_is_a_type_error_pointing_to_async_task(
    hook: str,
) -> None:
    async def coroutine(self: Any) -> None:
        return None

    with pytest.raises(TypeError, match=r"lifecycle\.aio\.AsyncTask") as info:
        type("Rogue", (Task,), {hook: coroutine})
    assert isinstance(info.value, InvalidTask)
    assert f"Rogue.{hook}() is an async def" in str(info.value)


@pytest.mark.parametrize("hook", ["init_task", "run_loop", "on_stop"])
def test_an_async_task_with_a_plain_hook_is_a_type_error(hook: str) -> None:
    def plain(self: Any) -> None:
        return None

    with pytest.raises(InvalidTask, match=rf"Rogue\.{hook}\(\) is not an async def"):
        type("Rogue", (AsyncTask,), {hook: plain})


def test_an_async_task_may_not_have_init_thread() -> None:
    with pytest.raises(InvalidTask, match=r"no worker\s+threads"):

        class Rogue(AsyncTask):
            def init_thread(self) -> None:
                pass


def test_an_async_task_is_a_task_with_the_same_class_attributes() -> None:
    class Base(Task):
        LOOPLESS = True

    class Worker(AsyncTask):
        DEPS = (Base,)
        OPT_PREFIX = "work"
        workers = 3
        size = option(type=int, default=4)

        async def run_loop(self) -> None:
            await self.stop_event.wait()

    assert issubclass(Worker, Task)
    worker = Worker()
    assert worker.name == "Worker" and list(worker.DEPS) == [Base] and worker.workers == 3
    assert worker.get_option("size") == 4 and worker.get_option("stop-grace") is None
    worker.set_option("size", 7)
    assert worker.size == 7
    assert Worker.option_prefix() == "work"
    assert (ThreadSkipTask, ThreadTryLater) == (SkipTask, TryLater)  # one of each for both kinds


def test_a_standalone_async_task_runs_its_loop_until_its_stop_event_is_set() -> None:
    class Worker(AsyncTask):
        async def run_loop(self) -> None:
            self.began.set()
            await self.stop_event.wait()
            self.done = True

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.began = asyncio.Event()
            self.done = False

    async def main() -> Worker:
        task = Worker(service=None)
        run = asyncio.create_task(task.run_loop())
        await task.began.wait()
        assert not task.done
        task.stop_event.set()
        await run
        return task

    assert asyncio.run(main()).done


def test_a_standalone_async_task_has_no_state_and_says_why() -> None:
    class Worker(AsyncTask):
        LOOPLESS = True

    with pytest.raises(LifecycleError, match="not created by a collection"):
        _ = Worker().state
