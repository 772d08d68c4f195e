"""Interop: threads submit to async queue tasks and get `concurrent.futures.Future`s; coroutines
await thread tasks' futures; cancelled awaiting callers; submits racing a stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from lifecycle import ExecuteContext, Tasks, TaskState
from lifecycle.aio.queue import AsyncQueueTask
from lifecycle.errors import TaskNotRunning, TaskStopped
from lifecycle.futures import TaskFuture
from lifecycle.tasks import PeriodicTask, QueueTask
from tests.aio_fakes import by_hand, collected, in_thread
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT, FakeService, running, stop


def run(main: Any) -> Any:
    return asyncio.run(main())


class AsyncDoubler(AsyncQueueTask):
    WORKERS = 2

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        await asyncio.sleep(0)
        return item * 2


class AsyncGated(AsyncQueueTask):
    """Awaits `release` on the item ``"gate"``; records and doubles other items."""

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.seen: list[Any] = []

    async def execute(self, item: Any, context: ExecuteContext) -> Any:
        if item == "gate":
            self.entered.set()
            async with asyncio.timeout(WAIT):
                await self.release.wait()
            return "opened"
        self.seen.append(item)
        await asyncio.sleep(0)
        return item * 2


class ThreadGated(QueueTask):
    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[Any] = []

    def execute(self, item: Any, context: ExecuteContext) -> Any:
        if item == "gate":
            self.entered.set()
            if not self.release.wait(WAIT):
                raise TimeoutError("the test never released the gate")
            return "opened"
        self.seen.append(item)
        return item * 2


# -- threads submit to async queue tasks ---------------------------------------------------


def test_threads_submit_to_an_async_queue_task_and_get_concurrent_futures() -> None:
    def submit_many(task: AsyncDoubler, base: int) -> list[Any]:
        futures = [task.submit(base + i) for i in range(50)]
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)
        return [f.result(WAIT) for f in futures]  # blocking waits: this is a plain thread

    async def main() -> None:
        async with collected(AsyncDoubler) as tasks:
            task = tasks.AsyncDoubler
            results = await asyncio.gather(
                *(in_thread(submit_many, task, base) for base in (0, 100, 200, 300))
            )
            assert results == [[2 * (base + i) for i in range(50)] for base in (0, 100, 200, 300)]
            assert (task.submitted, task.completed, task.pending) == (200, 200, 0)

    run(main)


def test_a_thread_submit_after_stop_raises_task_not_running() -> None:
    async def main() -> Tasks:
        async with collected(AsyncDoubler) as tasks:
            pass
        return tasks

    tasks = run(main)  # the loop is closed now, as well as the task stopped
    with pytest.raises(TaskNotRunning, match="stopped"):
        tasks.AsyncDoubler.submit(1)
    with pytest.raises(TaskNotRunning, match="stopped"):
        tasks.AsyncDoubler.put(1)


def test_submits_from_a_thread_while_the_loop_stops_all_end_and_none_is_lost() -> None:
    futures: list[concurrent.futures.Future[Any]] = []
    refused: list[TaskNotRunning] = []
    started = threading.Event()

    def submit_until_refused(task: AsyncQueueTask) -> None:
        while True:
            try:
                futures.append(task.submit(len(futures)))
            except TaskNotRunning as exc:
                refused.append(exc)
                return
            started.set()

    async def main() -> AsyncQueueTask:
        async with collected(AsyncDoubler) as tasks:
            task = tasks.AsyncDoubler
            submitter = threading.Thread(target=submit_until_refused, args=(task,))
            submitter.start()
            assert await in_thread(started.wait, WAIT)
            await in_thread(stop, tasks)  # stops while the thread keeps submitting
            await in_thread(submitter.join, WAIT)
            assert not submitter.is_alive()
        return task  # type: ignore[no-any-return]

    task = run(main)
    assert len(refused) == 1 and refused[0].state in ("stopping", "stopped", "closed")
    assert all(f.done() for f in futures), "a future was left pending"
    outcomes = [f.exception() or f.result() for f in futures]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    stopped = [o for o in outcomes if isinstance(o, TaskStopped)]
    assert len(done) + len(stopped) == len(futures) == task.submitted
    assert (len(done), len(stopped)) == (task.completed, task.dropped)
    assert task.state == TaskState.STOPPED


def test_a_thread_submit_once_the_event_loop_closed_is_refused() -> None:
    async def main() -> AsyncDoubler:
        task = AsyncDoubler()
        runs = [asyncio.create_task(task.run_loop()) for _ in range(task.workers)]
        await asyncio.sleep(0)
        assert await task.submit(2) == 4
        del runs  # never stopped: asyncio.run cancels the workers as it closes the loop
        return task

    task = run(main)
    with pytest.raises(TaskNotRunning):
        task.submit(1)


# -- coroutines await thread tasks ---------------------------------------------------------


def test_async_code_awaits_a_thread_queue_tasks_futures() -> None:
    class Doubler(QueueTask):
        WORKERS = 2

        def execute(self, item: Any, context: ExecuteContext) -> Any:
            return item * 2

    async def main() -> None:
        with running(Doubler) as tasks:
            task = tasks.Doubler
            future = task.submit(21)
            assert isinstance(future, TaskFuture)
            assert await future == 42
            assert await future == 42  # awaited twice, by two coroutines too
            assert await asyncio.gather(*(task.submit(i) for i in range(20))) == [
                2 * i for i in range(20)
            ]

    run(main)


def test_async_code_awaits_a_thread_periodic_tasks_next_run() -> None:
    class Counter(PeriodicTask):
        INTERVAL = 0.001

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            self.count = 0

        def execute(self) -> Any:
            self.count += 1
            return self.count

    async def main() -> None:
        with running(Counter) as tasks:
            first = await tasks.Counter.execute_async()
            second = await tasks.Counter.execute_async()
            assert second > first >= 1

    run(main)


def test_a_service_mixing_kinds_passes_work_both_ways_across_deps() -> None:
    class Doubling(QueueTask):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            # A worker thread submitting to an async task, blocking on its future.
            return Adding.instance.submit(item * 2).result(WAIT)

    class Adding(AsyncQueueTask):
        DEPS = [Doubling]
        WORKERS = 2  # one awaits Doubling while the other serves Doubling's own submit
        instance: Adding

        async def init_task(self) -> None:
            type(self).instance = self

        async def execute(self, item: Any, context: ExecuteContext) -> Any:
            if context.attempt == 1 and item < 0:
                return await self.peer.submit(-item)  # a coroutine awaiting a thread task
            return item + 1

        peer: Doubling

    async def main() -> None:
        async with collected(Adding) as tasks:
            tasks.Adding.peer = tasks.Doubling
            assert await tasks.Adding.submit(-5) == 11  # -5 -> Doubling(5) -> Adding(10) + 1
            assert await in_thread(lambda: tasks.Doubling.submit(3).result(WAIT)) == 7

    run(main)


# -- cancelled awaiting callers ------------------------------------------------------------


def test_a_caller_cancelled_before_its_item_starts_cancels_the_item() -> None:
    async def main() -> AsyncGated:
        async with by_hand(AsyncGated()) as task:
            gate = task.submit("gate")
            await task.entered.wait()  # the only worker is busy: item 1 waits
            future = task.submit(1)
            caller = asyncio.create_task(future_result(future))
            await asyncio.sleep(0)  # the caller is awaiting now
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert future.cancelled()  # the cancellation reached the item's future
            task.release.set()
            assert await gate == "opened"
            assert await task.submit(2) == 4
        return task

    task = run(main)
    assert task.seen == [2]  # item 1 never ran
    assert (task.cancelled, task.completed) == (1, 2)


async def future_result(future: TaskFuture[Any]) -> Any:
    return await future


def test_a_caller_cancelled_after_its_item_started_leaves_the_item_to_finish() -> None:
    async def main() -> AsyncGated:
        async with by_hand(AsyncGated()) as task:
            future = task.submit("gate")
            caller = asyncio.create_task(future_result(future))
            await task.entered.wait()  # the item is running
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert not future.cancelled()  # too late to cancel the work ...
            task.release.set()
            assert await future == "opened"  # ... which completes, for anyone still awaiting
        return task

    task = run(main)
    assert (task.cancelled, task.completed) == (0, 1)


def test_a_caller_cancelled_while_awaiting_a_thread_queue_item_cancels_it_if_not_started() -> None:
    async def main() -> None:
        with running(ThreadGated) as tasks:
            task = tasks.ThreadGated
            gate = task.submit("gate")
            await in_thread(task.entered.wait, WAIT)
            future = task.submit(1)
            caller = asyncio.create_task(future_result(future))
            await asyncio.sleep(0)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert future.cancelled()
            task.release.set()
            assert await gate == "opened"
            assert await task.submit(2) == 4
            assert task.seen == [2]
            assert task.cancelled == 1

    run(main)


def test_a_future_awaited_on_one_loop_resolves_from_another_loops_task() -> None:
    # Two event loops, each on its own thread: a coroutine on one awaits the future of an
    # async queue task running on the other.
    box: dict[str, Any] = {}
    ready = threading.Event()
    done = threading.Event()

    async def host() -> None:
        async with by_hand(AsyncDoubler()) as task:
            box["task"] = task
            ready.set()
            await in_thread(done.wait, WAIT)

    hosting = threading.Thread(target=lambda: asyncio.run(host()))
    hosting.start()
    try:
        assert ready.wait(WAIT)

        async def guest() -> Any:
            return await box["task"].submit(8)

        assert asyncio.run(guest()) == 16
    finally:
        done.set()
        hosting.join(WAIT)
    assert not hosting.is_alive()


def test_stop_of_a_thread_queue_fails_an_awaited_item_with_task_stopped() -> None:
    async def main() -> None:
        tasks = Tasks([ThreadGated])
        tasks.create(FakeService())
        tasks.init()
        tasks.start()
        task = tasks.ThreadGated
        try:
            task.submit("gate")
            await in_thread(task.entered.wait, WAIT)
            waiting = task.submit(1)
            tasks.stop()
            with pytest.raises(TaskStopped):
                await waiting
        finally:
            task.release.set()
            await in_thread(stop, tasks)

    run(main)
