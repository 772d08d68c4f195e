"""A WANTS cycle made after registration (a class attribute changed later) cannot be ordered:
`create` refuses it before any constructor runs, fails the collection, and keeps the
`DependencyCycle` as the collection's `failure` and as the cause of its ``fail`` record."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.collection import Tasks
from lifecycle.errors import DependencyCycle
from lifecycle.journal import cause_line
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task


def looped(length: int, made: list[str]) -> list[type[Task]]:
    """``length`` LOOPLESS classes, each wanting the one before it, registered as such; then
    the first is made to want the last, closing a cycle."""

    def __init__(self: Task, service: Any = None) -> None:
        made.append(type(self).__name__)
        Task.__init__(self, service)

    classes: list[type[Task]] = []
    for index in range(length):
        wants = (classes[-1],) if classes else ()
        attrs = {"LOOPLESS": True, "WANTS": wants, "__init__": __init__}
        classes.append(type(f"C{index}", (Task,), attrs))
    return classes


@given(st.integers(min_value=1, max_value=5))
def test_create_refuses_a_cycle_closed_after_registration_and_keeps_it_as_the_failure(
    length: int,
) -> None:
    made: list[str] = []
    classes = looped(length, made)
    tasks = Tasks([classes[-1]])
    classes[0].WANTS = (classes[-1],)
    with pytest.raises(DependencyCycle) as info:
        tasks.create()
    cycle = info.value
    assert set(cycle.cycle) == {c.__name__ for c in classes}
    assert made == []
    assert tasks.state == CollectionState.FAILED
    assert tasks.failure is cycle
    (record,) = [r for r in tasks.journal.records if r.subject == "tasks" and r.ok]
    assert record.trigger == "fail"
    assert cause_line(record.cause) == f"DependencyCycle: {cycle}"
    assert tasks.by_state() == {TaskState.REGISTERED: [c.__name__ for c in classes]}
