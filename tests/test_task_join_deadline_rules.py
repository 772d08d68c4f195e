"""`Task.join`: it waits for every worker and for the stop hook, never for the calling thread,
and its waits add up to at most the timeout it was given (None: no bound).

The budget is checked against a fake clock: each thread's ``join`` is replaced by one that
records the bound it was given and advances the clock by it, as a thread that never exits
would. No test here measures time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle.task as task_module
from lifecycle.collection import Tasks
from lifecycle.spec import TaskState
from lifecycle.task import Task
from tests.fakes import FakeService, stop

WAIT = 10.0  # a bound for what happens at once; never reached when the code is right


class _FakeClock:
    """Stands in for the `time` module of `lifecycle.task`: only ``monotonic`` is read."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@contextmanager
def _joins_recorded(
    threads: tuple[threading.Thread, ...], clock: _FakeClock | None = None
) -> Iterator[list[tuple[threading.Thread, float | None]]]:
    """Replace each thread's ``join`` by one that records ``(thread, timeout)`` and, with a
    ``clock``, spends the whole timeout on it (the thread never exits in time)."""
    waits: list[tuple[threading.Thread, float | None]] = []

    def fake_join(thread: threading.Thread) -> Any:
        def join(timeout: float | None = None) -> None:
            waits.append((thread, timeout))
            if clock is not None and timeout is not None:
                clock.now += timeout

        return join

    for thread in threads:
        thread.join = fake_join(thread)  # type: ignore[method-assign]
    try:
        yield waits
    finally:
        for thread in threads:
            del thread.join


@contextmanager
def _stuck_in_stop(workers: int) -> Iterator[tuple[Task, threading.Event]]:
    """A task with ``workers`` workers and an ``on_stop``, all blocked until the event is set,
    asked to stop: every one of its threads is alive."""
    release = threading.Event()

    class Stuck(Task):
        def run_loop(self) -> None:
            release.wait(WAIT)

        def on_stop(self) -> None:
            release.wait(WAIT)

    Stuck.workers = workers
    tasks = Tasks([Stuck])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    try:
        tasks.stop()
        task = tasks.Stuck
        assert task._hook is not None and task._hook.ident is not None
        yield task, release
    finally:
        release.set()
        stop(tasks)


def test_join_waits_for_the_stop_hook_after_the_workers_exited() -> None:
    in_on_stop, release = threading.Event(), threading.Event()

    class SlowHook(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            in_on_stop.set()
            release.wait(WAIT)

    tasks = Tasks([SlowHook])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    task = tasks.SlowHook
    try:
        tasks.stop()
        assert in_on_stop.wait(WAIT)
        (worker,) = task.threads
        worker.join(WAIT)
        assert not worker.is_alive()
        # Only on_stop still runs: the task's code has not all returned.
        assert task.join(0) is False
        assert task.state == TaskState.STOPPING
    finally:
        release.set()
        stop(tasks)
    # No timeout: it waits for everything, and then everything has exited.
    assert task.join() is True
    assert task.join(None) is True
    assert task.state == TaskState.STOPPED


def test_join_without_a_timeout_of_a_task_whose_code_returned_is_true() -> None:
    class Quick(Task):
        workers = 3

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    tasks = Tasks([Quick])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    stop(tasks)
    assert len(tasks.Quick.threads) == 3
    assert tasks.Quick.join() is True


@pytest.mark.parametrize("workers", [1, 3])
def test_the_waits_of_join_add_up_to_at_most_its_timeout(workers: int) -> None:
    with _stuck_in_stop(workers) as (task, _):
        threads = (*task.threads, task._hook)
        assert all(t is not None for t in threads)

        @given(
            start=st.floats(min_value=0.0, max_value=1e6),
            timeout=st.floats(min_value=0.0, max_value=1e3),
        )
        def check(start: float, timeout: float) -> None:
            clock = _FakeClock(start)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(task_module, "time", clock)
                with _joins_recorded(threads, clock) as waits:  # type: ignore[arg-type]
                    assert task.join(timeout) is False  # nothing exited in time
            # Every thread of the task was waited on, each with a bound, all within the one.
            assert [t for t, _ in waits] == list(threads)
            slack = 1e-9 * max(1.0, start + timeout)  # the clock's float rounding
            bounds = [bound for _, bound in waits]
            assert all(b is not None and 0.0 <= b <= timeout + slack for b in bounds), bounds
            assert clock.now - start <= timeout + slack

        check()


def test_join_without_a_timeout_waits_on_each_thread_without_a_bound() -> None:
    with _stuck_in_stop(2) as (task, _):
        threads = (*task.threads, task._hook)
        with _joins_recorded(threads) as waits:  # type: ignore[arg-type]
            assert task.join() is False
            assert task.join(None) is False
        assert [t for t, _ in waits] == list(threads) * 2
        assert [bound for _, bound in waits] == [None] * (2 * len(threads))


def test_join_from_one_of_the_tasks_own_workers_waits_on_every_other_thread_of_it() -> None:
    asked, answered, release = threading.Event(), threading.Event(), threading.Event()
    joined: list[bool] = []
    joiner: list[threading.Thread] = []

    class JoinsFromAWorker(Task):
        workers = 3

        def run_loop(self) -> None:
            if threading.current_thread() is self.threads[0]:
                asked.wait(WAIT)
                joiner.append(threading.current_thread())
                joined.append(self.join(WAIT))
                answered.set()
            release.wait(WAIT)

    tasks = Tasks([JoinsFromAWorker])
    tasks.create(FakeService())
    tasks.init()
    tasks.start()
    task = tasks.JoinsFromAWorker
    try:
        threads = task.threads
        with _joins_recorded(threads) as waits:
            asked.set()
            assert answered.wait(WAIT)
        # Itself skipped, the two workers after it waited on; False: itself still runs.
        assert joiner == [threads[0]]
        assert [t for t, _ in waits] == list(threads[1:])
        assert joined == [False]
    finally:
        release.set()
        stop(tasks)
