"""A run the engine interrupts (`LifecycleInterrupt` raised into a constructor or an
``init_task``) or a caller gives up on (`Tasks.fail`) ends with every task terminal, each with
its cause in the journal, and the collection failed with the reason it was given."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import audit
from lifecycle.collection import Tasks
from lifecycle.errors import ForcedShutdown, LifecycleError, LifecycleInterrupt, StopTimeout
from lifecycle.journal import Transition, cause_line, describe_cause
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import Task

C = CollectionState
T = TaskState

#: Generous bound for anything that should happen promptly.
WAIT = 10.0

#: The errors the engine ends a run with, carried by the interrupt it raises into user code.
REASONS = st.one_of(
    st.builds(StopTimeout, st.lists(st.sampled_from(["A", "B"]), max_size=2), st.just(1.5)),
    st.builds(ForcedShutdown, st.just([]), st.sampled_from(["SIGINT", "SIGTERM"])),
)


class Static(Task):
    LOOPLESS = True


def records(tasks: Tasks, subject: str, trigger: str) -> list[Transition]:
    return [
        r for r in tasks.journal.records if r.ok and r.subject == subject and r.trigger == trigger
    ]


def the_cause(tasks: Tasks, subject: str, trigger: str) -> str | None:
    (record,) = records(tasks, subject, trigger)
    return record.cause


def same_cause(recorded: str | None, expected: BaseException) -> bool:
    return cause_line(recorded) == cause_line(describe_cause(expected))


def three_in_a_row(middle: type[Task]) -> list[type[Task]]:
    """``Before``, ``middle``, ``After``: created (or initialized) in that order."""
    before = type("Before", (Static,), {})
    after = type("After", (Static,), {"WANTS": (middle,)})
    middle.WANTS = (before,)
    return [before, middle, after]


@given(REASONS)
def test_an_interrupted_constructor_leaves_every_task_terminal_and_fails_with_the_reason(
    reason: LifecycleError,
) -> None:
    class Interrupted(Static):
        def __init__(self, service: Any = None) -> None:
            raise LifecycleInterrupt(reason)

    tasks = Tasks(three_in_a_row(Interrupted))
    with pytest.raises(LifecycleInterrupt) as info:
        tasks.create()
    assert info.value.reason is reason
    assert tasks.state == C.FAILED
    assert tasks.failure is reason
    assert same_cause(the_cause(tasks, "tasks", "fail"), reason)
    # Made before the interrupt: stopped; interrupted: failed with the reason; never made:
    # failed, saying so.
    assert tasks.by_state() == {T.STOPPED: ["Before"], T.FAILED: ["Interrupted", "After"]}
    assert same_cause(the_cause(tasks, "Interrupted", "fail"), reason)
    not_made = the_cause(tasks, "After", "fail")
    assert not_made is not None and "before this task was created" in not_made
    assert audit.check(tasks.journal) == []


@given(REASONS)
def test_an_interrupted_init_task_fails_its_task_with_the_reason_and_stops_the_rest(
    reason: LifecycleError,
) -> None:
    class Interrupted(Static):
        def init_task(self) -> None:
            raise LifecycleInterrupt(reason)

    tasks = Tasks(three_in_a_row(Interrupted))
    tasks.create()
    with pytest.raises(LifecycleInterrupt) as info:
        tasks.init()
    assert info.value.reason is reason
    assert tasks.state == C.FAILED
    assert tasks.failure is reason
    assert tasks.initializing is None
    assert tasks.by_state() == {T.STOPPED: ["Before", "After"], T.FAILED: ["Interrupted"]}
    assert tasks.require("Interrupted").failure is reason
    assert same_cause(the_cause(tasks, "Interrupted", "fail"), reason)
    assert same_cause(the_cause(tasks, "tasks", "fail"), reason)
    assert audit.check(tasks.journal) == []


# -- fail ----------------------------------------------------------------------------------


def test_fail_while_registering_keeps_its_cause() -> None:
    cause = RuntimeError("gave up before create")
    tasks = Tasks([type("A", (Static,), {})])
    tasks.fail(cause)
    assert tasks.state == C.FAILED
    assert tasks.failure is cause
    assert same_cause(the_cause(tasks, "tasks", "fail"), cause)


def test_fail_once_created_stops_every_task_and_keeps_its_cause() -> None:
    cause = RuntimeError("gave up before init")
    tasks = Tasks([type("A", (Static,), {}), type("B", (Static,), {})])
    tasks.create()
    tasks.fail(cause)
    assert tasks.state == C.FAILED
    assert tasks.failure is cause
    assert tasks.by_state() == {T.STOPPED: ["A", "B"]}
    assert same_cause(the_cause(tasks, "tasks", "fail"), cause)
    assert audit.check(tasks.journal) == []


def test_fail_while_stopping_stops_the_rest_with_a_cause_naming_the_given_up_reason() -> None:
    cause = RuntimeError("the stop deadline passed")
    in_on_stop = threading.Event()
    release = threading.Event()

    class Needed(Static):
        pass

    class Stuck(Static):
        DEPS = (Needed,)

        def on_stop(self) -> None:
            in_on_stop.set()
            release.wait(WAIT)

    tasks = Tasks([Stuck])
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    try:
        assert in_on_stop.wait(WAIT)
        assert tasks.stragglers() == ["Stuck"]
        tasks.fail(cause)
        assert tasks.failure is cause
        assert tasks.state == C.FAILED
        # Needed's stop no longer waits for Stuck; its record says why it did not.
        left = tasks.join(WAIT)
        assert [t.name for t in left] == ["Stuck"]
        stopped_early = the_cause(tasks, "Needed", "stop")
        assert stopped_early is not None
        assert "RuntimeError: the stop deadline passed" in stopped_early
        assert "Stuck" in stopped_early
    finally:
        release.set()
    assert tasks.require("Stuck").join(WAIT)
    assert tasks.failure is cause
