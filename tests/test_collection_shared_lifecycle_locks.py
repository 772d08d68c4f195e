"""The LOOPLESS tasks of a collection share a bounded set of lifecycle locks, handed out in turn
so that tasks registered one after another do not share one; a task with workers has a lock of
its own, and no lock is shared between two collections."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lifecycle.collection import _LOCK_STRIPES, Tasks
from lifecycle.task import Task


class Static(Task):
    LOOPLESS = True


class Worker(Task):
    def run_loop(self) -> None:
        self.stop_event.wait(10.0)


def loopless_chain(count: int, *, chained: bool, prefix: str = "T") -> list[type[Task]]:
    """``count`` LOOPLESS classes; if ``chained``, each requires the one before it (so each is
    registered as the dependency of the next)."""
    classes: list[type[Task]] = []
    for index in range(count):
        attrs: dict[str, Any] = {"DEPS": (classes[-1],)} if chained and classes else {}
        classes.append(type(f"{prefix}{index}", (Static,), attrs))
    return classes


def created_locks(tasks: Tasks) -> list[threading.RLock]:
    tasks.create()
    return [task.lifecycle.lock for task in tasks]


def distinct(locks: list[threading.RLock]) -> int:
    return len({id(lock) for lock in locks})


@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize(
    "count", [1, 2, 3, _LOCK_STRIPES, _LOCK_STRIPES + 1, 2 * _LOCK_STRIPES + 3]
)
def test_loopless_tasks_share_a_bounded_set_of_locks_handed_out_in_turn(
    count: int, chained: bool
) -> None:
    classes = loopless_chain(count, chained=chained)
    # Registered last first when chained: registering the last pulls in the whole chain.
    tasks = Tasks([classes[-1]] if chained else classes)
    locks = created_locks(tasks)
    assert [t.name for t in tasks] == [c.__name__ for c in classes]
    assert distinct(locks) == min(count, _LOCK_STRIPES)
    neighbours_sharing = [i for i in range(count - 1) if locks[i] is locks[i + 1]]
    assert neighbours_sharing == []
    tasks.stop()


def test_a_task_with_workers_has_a_lock_of_its_own() -> None:
    classes = [*loopless_chain(3, chained=False), Worker]
    tasks = Tasks(classes)
    locks = created_locks(tasks)
    worker_lock = tasks.require(Worker).lifecycle.lock
    assert sum(1 for lock in locks if lock is worker_lock) == 1
    tasks.stop()


def test_two_collections_share_no_lifecycle_lock() -> None:
    first = Tasks(loopless_chain(3, chained=False, prefix="A"))
    second = Tasks(loopless_chain(3, chained=False, prefix="B"))
    first_locks = {id(lock) for lock in created_locks(first)}
    second_locks = {id(lock) for lock in created_locks(second)}
    assert first_locks.isdisjoint(second_locks)
    first.stop()
    second.stop()
