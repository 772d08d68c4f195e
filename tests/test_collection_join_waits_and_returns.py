"""`Tasks.join`: it waits for the started tasks to end by themselves, drives a stop to its end,
gives up at its deadline even while another thread joins, stops waiting once ``until`` holds,
and never hangs on a thread of a task that has ended; what it reports (`stragglers`) names only
the tasks whose code still runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lifecycle.collection import Tasks
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task

C = CollectionState
T = TaskState

#: Generous bound for anything that should happen promptly.
WAIT = 10.0


class Service:
    """Records shutdown requests; blocks them until ``release`` is set when told to."""

    def __init__(self, block: threading.Event | None = None) -> None:
        self.block = block
        self.asked = threading.Event()

    def shutdown(self, reason: str | None = None) -> None:
        self.asked.set()
        if self.block is not None:
            self.block.wait(3 * WAIT)  # longer than any wait of the test itself


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of every test: frees whatever a test left waiting on it."""
    event = threading.Event()
    yield event
    event.set()


def started(*classes: type[Task], service: Any = None) -> Tasks:
    tasks = Tasks(classes)
    tasks.create(service if service is not None else Service())
    tasks.init()
    tasks.start()
    return tasks


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` on a thread of its own; its return value lands in the list."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def waiting_until(event: threading.Event) -> type[Task]:
    class Waits(Task):
        def run_loop(self) -> None:
            event.wait(WAIT)

    return Waits


def test_join_without_a_timeout_waits_for_the_tasks_to_end_by_themselves(
    release: threading.Event,
) -> None:
    tasks = started(waiting_until(release))
    checks: list[bool] = []

    def until() -> bool:
        # Consulted once join found a task still running: only then may the task end.
        checks.append(True)
        release.set()
        return False

    assert tasks.join(until=until) == []
    assert checks
    assert tasks.state_of("Waits") == T.STOPPED
    tasks.stop()
    assert tasks.join(WAIT) == []
    assert tasks.state == C.STOPPED


def test_join_with_a_deadline_returns_while_another_thread_joins(
    release: threading.Event,
) -> None:
    tasks = started(waiting_until(release))
    first_waits = threading.Event()

    def first_until() -> bool:
        first_waits.set()
        return False

    first, first_left = in_thread(lambda: tasks.join(until=first_until))
    assert first_waits.wait(WAIT)
    second, second_left = in_thread(lambda: tasks.join(0.01))
    second.join(WAIT)
    assert not second.is_alive(), "a join with a deadline waited for the other joiner"
    assert [t.name for t in second_left[0]] == ["Waits"]
    release.set()
    first.join(WAIT)
    assert first_left == [[]]
    tasks.stop()
    assert tasks.join(WAIT) == []


def test_a_second_join_without_a_timeout_also_waits_for_the_end(
    release: threading.Event,
) -> None:
    tasks = started(waiting_until(release))
    first_waits = threading.Event()

    def first_until() -> bool:
        first_waits.set()
        return False

    first, first_left = in_thread(lambda: tasks.join(until=first_until))
    assert first_waits.wait(WAIT)
    second, second_left = in_thread(tasks.join)
    # The second joiner has no deadline: it must still be waiting while the task runs. (A
    # bounded look, which the correct code passes however long it takes.)
    second.join(1.5)
    assert second.is_alive() and second_left == []
    release.set()
    first.join(WAIT)
    second.join(WAIT)
    assert first_left == [[]] and second_left == [[]]
    tasks.stop()
    assert tasks.join(WAIT) == []


def test_join_while_stopping_returns_once_until_holds(release: threading.Event) -> None:
    in_on_stop = threading.Event()

    class SlowToStop(Task):
        LOOPLESS = True

        def on_stop(self) -> None:
            in_on_stop.set()
            release.wait(WAIT)

    tasks = started(SlowToStop)
    tasks.stop()
    assert in_on_stop.wait(WAIT)
    give_up = threading.Event()
    joiner, left = in_thread(lambda: tasks.join(until=give_up.is_set))
    give_up.set()
    tasks.wake()
    joiner.join(WAIT)
    assert not joiner.is_alive(), "join went on waiting after until() held"
    assert [t.name for t in left[0]] == ["SlowToStop"]
    assert tasks.state == C.STOPPING
    release.set()
    assert tasks.join(WAIT) == []
    assert tasks.state == C.STOPPED


def test_join_does_not_hang_on_the_thread_of_a_task_that_ended(
    release: threading.Event,
) -> None:
    # The worker's task has failed (its terminal record is written), but the thread itself is
    # still busy asking the service to shut down, which does not return: join gives it a
    # moment, then returns rather than wait for it.
    service = Service(block=release)

    class Crashes(Task):
        def run_loop(self) -> None:
            raise RuntimeError("worker fault")

    tasks = started(Crashes, service=service)
    assert service.asked.wait(WAIT)
    joiner, left = in_thread(tasks.join)
    joiner.join(WAIT)
    assert not joiner.is_alive(), "join waited for a thread of a task that had ended"
    assert left == [[]]
    assert tasks.state_of("Crashes") == T.FAILED
    release.set()
    assert tasks.require("Crashes").join(WAIT)


def test_a_task_that_ended_before_the_stop_does_not_hold_back_what_it_requires() -> None:
    class Needed(Task):
        LOOPLESS = True

    class Crashes(Task):
        DEPS = (Needed,)

        def run_loop(self) -> None:
            raise RuntimeError("worker fault")

    service = Service()
    tasks = started(Crashes, service=service)
    looks: list[None] = []

    def crashed() -> bool:
        # False at the first look: join then takes the news of the crash off its queue, so
        # that the stop cannot learn of the crash from it.
        looks.append(None)
        return len(looks) > 1 and tasks.state_of("Crashes") == T.FAILED

    left = tasks.join(WAIT, until=crashed)
    assert [t.name for t in left] == ["Needed"]
    assert tasks.state_of("Crashes") == T.FAILED
    tasks.stop()
    assert tasks.join(WAIT) == []
    assert tasks.state == C.FAILED
    assert tasks.by_state() == {T.STOPPED: ["Needed"], T.FAILED: ["Crashes"]}


def test_no_task_is_a_straggler_once_the_stop_completed(release: threading.Event) -> None:
    in_on_stop = threading.Event()

    class Hooked(Task):
        LOOPLESS = True

        def on_stop(self) -> None:
            in_on_stop.set()
            release.wait(WAIT)

    class First(Task):
        LOOPLESS = True

    tasks = started(type("Last", (Hooked,), {"WANTS": (First,)}))
    tasks.stop()
    assert in_on_stop.wait(WAIT)
    assert tasks.stragglers() == ["Last"]
    release.set()
    assert tasks.join(WAIT) == []
    assert tasks.state == C.STOPPED
    assert tasks.stragglers() == []
