"""`Tasks.init` over a mix of thread and async tasks: every ``init_task`` runs once, in
dependency order, a thread task's on the driver and an async task's on the collection's loop;
the verdicts (initialized, skipped, failed) do not depend on how the tasks are mixed. A loop
that closes as the driver hands it the async inits, or that shuts down while one is awaited,
fails the tasks concerned, saying so."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import audit
from lifecycle.aio import AsyncTask
from lifecycle.collection import Tasks
from lifecycle.errors import InitError, LifecycleError
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import SkipTask, Task
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)

C = CollectionState
T = TaskState

#: Generous bound for anything that should happen promptly.
WAIT = 10.0

#: How a task is made: a thread task, an async task with an ``init_task`` to await, or an
#: async task without one (nothing to await: initialized on the driver at once).
NO_HOOK = "async without init_task"
KINDS = ("thread", "async", NO_HOOK)
OUTCOMES = ("returns", "skips", "raises")


class LoopThread:
    """An event loop running on a thread of its own, as `Service.serve` gives a collection."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop")
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


def make_task(
    name: str, kind: str, outcome: str, calls: list[tuple[str, str]], previous: type[Task] | None
) -> type[Task]:
    """A LOOPLESS task of ``kind`` whose ``init_task`` notes (name, thread) and then returns,
    skips or raises; ordered after ``previous`` (WANTS, so that a failure does not cascade)."""

    def verdict() -> None:
        calls.append((name, threading.current_thread().name))
        if outcome == "skips":
            raise SkipTask(f"{name} skips")
        if outcome == "raises":
            raise RuntimeError(f"{name} fails")

    attrs: dict[str, Any] = {
        "LOOPLESS": True,
        "WANTS": () if previous is None else (previous,),
    }
    if kind == "thread":

        def init_task(self: Task) -> None:
            verdict()

        return type(name, (Task,), {**attrs, "init_task": init_task})
    if kind == "async":

        async def async_init_task(self: Task) -> None:
            await asyncio.sleep(0)
            verdict()

        return type(name, (AsyncTask,), {**attrs, "init_task": async_init_task})
    return type(name, (AsyncTask,), attrs)


MIXES = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sampled_from(OUTCOMES)), min_size=1, max_size=7
)


@given(MIXES)
def test_every_init_task_runs_once_in_order_on_its_own_thread_whatever_the_mix(
    mix: list[tuple[str, str]],
) -> None:
    # A task without an init_task has nothing to skip or raise with: it returns.
    mix = [(kind, "returns" if kind == NO_HOOK else outcome) for kind, outcome in mix]
    running = LoopThread()
    try:
        calls: list[tuple[str, str]] = []
        classes: list[type[Task]] = []
        for index, (kind, outcome) in enumerate(mix):
            previous = classes[-1] if classes else None
            classes.append(make_task(f"T{index}", kind, outcome, calls, previous))
        tasks = Tasks(classes, loop=running.loop)
        tasks.create()
        failing = [f"T{i}" for i, (_, outcome) in enumerate(mix) if outcome == "raises"]
        if failing:
            with pytest.raises(InitError) as info:
                tasks.init()
            assert sorted(info.value.failed) == failing
        else:
            tasks.init()
            assert tasks.state == C.INITIALIZED

        hooked = [(f"T{i}", kind) for i, (kind, _) in enumerate(mix) if kind != NO_HOOK]
        assert [name for name, _ in calls] == [name for name, _ in hooked]
        driver = threading.current_thread().name
        for (name, thread), (_, kind) in zip(calls, hooked, strict=True):
            assert thread == (driver if kind == "thread" else running.thread.name), name

        ended_well = T.STOPPED if failing else T.INITIALIZED  # a failed init stops the others
        expected = {
            f"T{i}": {"returns": ended_well, "skips": T.SKIPPED, "raises": T.FAILED}[outcome]
            for i, (_, outcome) in enumerate(mix)
        }
        assert {name: tasks.state_of(name) for name in expected} == expected
        if not failing:
            tasks.stop()
        assert audit.check(tasks.journal) == []
    finally:
        running.close()


def test_a_dependency_that_failed_on_the_loop_skips_the_tasks_that_require_it(
    loop_thread: LoopThread,
) -> None:
    calls: list[tuple[str, str]] = []
    broken = make_task("Broken", "async", "raises", calls, None)
    needs = type(
        "Needs", (AsyncTask,), {"LOOPLESS": True, "DEPS": (broken,), "init_task": _never_called}
    )
    after = make_task("After", "async", "returns", calls, needs)
    tasks = Tasks([broken, needs, after], loop=loop_thread.loop)
    tasks.create()
    with pytest.raises(InitError) as info:
        tasks.init()
    assert list(info.value.failed) == ["Broken"]
    assert [name for name, _ in calls] == ["Broken", "After"]
    assert tasks.by_state() == {
        T.FAILED: ["Broken"],
        T.SKIPPED: ["Needs"],
        T.STOPPED: ["After"],
    }


async def _never_called(self: Task) -> None:
    raise AssertionError("the init_task of a task whose dependency failed was awaited")


class ClosesOnHandOff(asyncio.SelectorEventLoop):
    """A loop that another thread closes just as the driver hands it the async inits."""

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:
        self.close()
        return super().call_soon_threadsafe(*args, **kwargs)


def test_a_loop_that_closes_as_the_inits_are_handed_over_fails_each_async_task_saying_so() -> (
    None
):
    calls: list[tuple[str, str]] = []
    first = make_task("First", "thread", "returns", calls, None)
    one = make_task("One", "async", "returns", calls, first)
    two = make_task("Two", "async", "returns", calls, one)
    loop = ClosesOnHandOff()
    try:
        tasks = Tasks([first, one, two], loop=loop)
        tasks.create()
        with pytest.raises(InitError) as info:
            tasks.init()
    finally:
        loop.close()
    assert sorted(info.value.failed) == ["One", "Two"]
    for name in ("One", "Two"):
        error = info.value.failed[name]
        assert isinstance(error, LifecycleError) and "closed" in str(error)
    assert [name for name, _ in calls] == ["First"]
    assert tasks.by_state() == {T.STOPPED: ["First"], T.FAILED: ["One", "Two"]}
    assert tasks.state == C.FAILED


def test_a_loop_shut_down_while_an_init_task_is_awaited_fails_that_task_and_goes_no_further(
) -> None:
    entered = threading.Event()
    calls: list[tuple[str, str]] = []

    class Hangs(AsyncTask):
        LOOPLESS = True

        async def init_task(self) -> None:
            entered.set()
            await asyncio.sleep(WAIT)

    later = make_task("Later", "async", "returns", calls, Hangs)
    holder: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        holder["loop"] = asyncio.get_running_loop()
        holder["stop"] = stop = asyncio.Event()
        ready.set()
        await stop.wait()  # then asyncio.run cancels every task left and closes the loop

    loop_thread = threading.Thread(target=asyncio.run, args=(main(),), name="test-loop")
    loop_thread.start()
    try:
        assert ready.wait(WAIT)
        tasks = Tasks([Hangs, later], loop=holder["loop"])
        tasks.create()
        outcome: list[BaseException] = []

        def drive() -> None:
            try:
                tasks.init()
            except BaseException as exc:
                outcome.append(exc)

        driver = threading.Thread(target=drive, name="driver")
        driver.start()
        assert entered.wait(WAIT)
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        driver.join(WAIT)
        assert not driver.is_alive()
    finally:
        if "stop" in holder and not holder["loop"].is_closed():
            holder["loop"].call_soon_threadsafe(holder["stop"].set)
        loop_thread.join(WAIT)
    (raised,) = outcome
    assert isinstance(raised, concurrent.futures.CancelledError)
    assert tasks.state_of("Hangs") == T.FAILED
    assert isinstance(tasks.require("Hangs").failure, asyncio.CancelledError)
    assert tasks.state_of("Later") == T.CREATED
    assert calls == []
    assert tasks.initializing is None
