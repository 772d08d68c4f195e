"""The typed errors of the async task kinds name what was wrong: the class whose worker count
is bad, the bad blocking threshold itself, the class that did not implement `run_loop`, and
the closed event loop of the task that needed it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import ExecuteContext, Tasks, TaskState
from lifecycle.aio import AsyncTask
from lifecycle.aio.blocking import BlockingDetector, InvalidThreshold
from lifecycle.aio.queue import AsyncQueueTask
from lifecycle.errors import InitError, InvalidTask
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import FakeService


class Queue(AsyncQueueTask):
    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        return item


@given(workers=st.integers(max_value=0))
def test_a_bad_worker_count_set_in_code_names_the_queue_task_class(workers: int) -> None:
    class Counted(Queue):
        pass

    Counted.WORKERS = workers  # in code, past the option's check
    with pytest.raises(InvalidTask) as caught:
        Counted()
    assert caught.value.task is Counted
    assert caught.value.problem.startswith("workers must be an int")


@given(threshold=st.one_of(st.floats(max_value=0.0), st.just(float("inf"))))
def test_a_bad_blocking_threshold_is_named_in_the_error(threshold: float) -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(InvalidThreshold) as caught:
            BlockingDetector(loop, threshold)
    finally:
        loop.close()
    assert caught.value.threshold is threshold
    assert str(caught.value).endswith(f"not {threshold!r}")


def test_an_async_task_without_run_loop_says_which_class_must_implement_it() -> None:
    class Forgetful(AsyncTask):
        pass

    with pytest.raises(NotImplementedError) as caught:
        asyncio.run(Forgetful().run_loop())
    assert str(caught.value) == f"{Forgetful.__qualname__} must implement run_loop()"


class NeedsTheLoop(AsyncTask):
    LOOPLESS = True

    async def init_task(self) -> None:
        raise AssertionError("never awaited: the loop is closed")


def test_init_on_a_closed_loop_fails_the_task_saying_its_loop_is_closed() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    tasks = Tasks([NeedsTheLoop], loop=loop)
    tasks.create(FakeService())
    with pytest.raises(InitError):
        tasks.init()
    task = tasks.require(NeedsTheLoop)
    assert task.state == TaskState.FAILED
    assert str(task.failure) == "the event loop of async task 'NeedsTheLoop' is closed"
