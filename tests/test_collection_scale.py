"""What keeps a task cheap at scale keeps every promise: shared locks, deferred descriptions."""

from __future__ import annotations

import threading
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lifecycle.collection import Tasks
from lifecycle.journal import Journal, read_journal
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task

#: No wait in these tests is unbounded.
DEADLINE = 10.0


def looples(name: str, **attrs: object) -> type[Task]:
    return type(name, (Task,), {"LOOPLESS": True, **attrs})


def test_looples_tasks_share_a_bounded_set_of_locks_and_threaded_tasks_keep_their_own() -> None:
    classes = [looples(f"L{i}") for i in range(200)]

    class Worker(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(DEADLINE)

    tasks = Tasks([*classes, Worker])
    tasks.create()
    locks = {id(tasks.require(c).lifecycle.lock) for c in classes}
    assert 1 < len(locks) < len(classes)
    assert id(tasks.require(Worker).lifecycle.lock) not in locks


def test_two_collections_never_share_a_task_lock() -> None:
    # A stripe shared across collections could deadlock two drivers starting at once.
    classes = [looples(f"L{i}") for i in range(100)]
    one, two = Tasks(classes), Tasks(classes)
    one.create()
    two.create()
    ones = {id(one.require(c).lifecycle.lock) for c in classes}
    twos = {id(two.require(c).lifecycle.lock) for c in classes}
    assert not ones & twos


def test_a_long_deps_chain_of_looples_tasks_sharing_locks_runs_and_stops_in_order() -> None:
    # Starting a task holds its DEPS' locks, then its own: with 64 stripes, a chain of 150
    # makes a task's lock the very lock of a task it requires, many times over.
    classes: list[type[Task]] = []
    stopped: list[str] = []
    for i in range(150):
        classes.append(
            looples(
                f"C{i}",
                DEPS=tuple(classes[-1:]),
                on_stop=lambda self: stopped.append(self.name),
            )
        )
    tasks = Tasks([classes[-1]])
    done = threading.Event()

    def drive() -> None:
        tasks.create()
        tasks.init()
        tasks.start()
        tasks.stop()
        tasks.join(DEADLINE)
        done.set()

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    assert done.wait(DEADLINE), "the lifecycle of the chain did not end: a lock deadlocked"
    assert tasks.state == CollectionState.STOPPED
    assert stopped == [c.__name__ for c in reversed(classes)]


@given(st.integers(min_value=2, max_value=8), st.integers(min_value=1, max_value=40))
def test_tasks_sharing_a_lock_still_move_one_transition_at_a_time(
    threads: int, count: int
) -> None:
    # Many threads race to stop the same running tasks: each task is stopped exactly once,
    # and every other attempt is refused (and journaled), whichever lock it shares.
    classes = [looples(f"R{i}") for i in range(count)]
    tasks = Tasks(classes)
    tasks.create()
    tasks.init()
    tasks.start()
    instances = list(tasks)
    barrier = threading.Barrier(threads)
    refused = [0] * threads

    def racer(index: int) -> None:
        barrier.wait(DEADLINE)
        for task in instances:
            try:
                task.stop()
            except Exception:
                refused[index] += 1

    racers = [threading.Thread(target=racer, args=(i,)) for i in range(threads)]
    for racer_thread in racers:
        racer_thread.start()
    for racer_thread in racers:
        racer_thread.join(DEADLINE)
    assert sum(refused) == count * (threads - 1)
    assert all(tasks.state_of(c) == TaskState.STOPPED for c in classes)
    stops = [r for r in tasks.journal.records if r.trigger == "stop" and r.kind == "task"]
    assert sum(r.ok for r in stops) == count
    assert len(stops) == count * threads


def test_a_description_given_as_a_function_is_made_only_when_the_header_is() -> None:
    calls: list[str] = []

    def describe(name: str) -> dict[str, object]:
        calls.append(name)
        return {"class": f"m.{name}", "deps": ["b"]}

    journal = Journal()
    journal.describe_tasks({"a": describe, "b": {"class": "m.B"}})
    assert calls == []
    assert journal.tasks == {
        "a": {"class": "m.a", "deps": ["b"], "wants": []},
        "b": {"class": "m.B", "deps": [], "wants": []},
    }
    assert calls == ["a"]
    assert journal.header()["tasks"]["a"]["class"] == "m.a"


def test_the_header_written_to_a_file_describes_every_registered_task(tmp_path: Path) -> None:
    first = looples("First")
    second = looples("Second", DEPS=(first,), RESTART="on-failure")
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        tasks = Tasks([second], journal=journal)
        tasks.create()
        tasks.init()
        tasks.start()
        tasks.stop()
        tasks.join(DEADLINE)
    header, _ = read_journal(path)
    assert header["tasks"]["First"] == {
        "class": f"{__name__}.First",
        "deps": [],
        "wants": [],
    }
    assert header["tasks"]["Second"]["deps"] == ["First"]
    assert header["tasks"]["Second"]["restart"]["policy"] == "on-failure"


def test_a_class_whose_restart_policy_was_broken_after_it_was_made_is_described_without_it() -> (
    None
):
    # The description is made late, when the header is: it must never raise there.
    broken = looples("Broken", RESTART="always")
    tasks = Tasks([broken])
    broken.RESTART = "sometimes"
    assert tasks.journal.tasks["Broken"] == {
        "class": f"{__name__}.Broken",
        "deps": [],
        "wants": [],
    }
