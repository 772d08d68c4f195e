"""`lifecycle.testing.machines.check_machine`: passes for sound bindings, fails for broken ones."""

from __future__ import annotations

import time
from typing import Any

import pytest

from lifecycle.bind import bind
from lifecycle.errors import IllegalTransition
from lifecycle.journal import Journal
from lifecycle.spec import COLLECTION, SERVICE, TASK, MachineSpec
from lifecycle.testing.machines import check_machine, replay
from tests.test_bind import DOOR, Door, DoorState

EXAMPLES = 25


@pytest.mark.parametrize("spec", [TASK, COLLECTION, SERVICE, DOOR], ids=lambda s: s.name)
def test_check_machine_passes_for_a_default_binding(spec: MachineSpec) -> None:
    check_machine(spec, max_examples=EXAMPLES)


def test_check_machine_passes_for_a_users_bound_class_with_hooks() -> None:
    journal = Journal()

    @bind(DOOR, journal=journal)
    class Logged:
        def __init__(self) -> None:
            self.entered: list[str] = []

        def on_enter_open(self) -> None:
            self.entered.append("open")

    check_machine(DOOR, Logged, max_examples=EXAMPLES)
    assert len(journal) > 0


def test_check_machine_passes_without_a_journal() -> None:
    check_machine(DOOR, bind(DOOR)(type("Bare", (), {})), max_examples=EXAMPLES)


class _Liar:
    """Wraps a sound door but reports the state it was in before its last move."""

    def __init__(self) -> None:
        self.door = Door()
        self.said: Any = self.door.state

    @property
    def state(self) -> Any:
        return self.said

    def fire(self, trigger: str) -> Any:
        before = self.door.state
        result = self.door.fire(trigger)
        self.said = before
        return result

    def can(self, trigger: str) -> bool:
        return bool(self.door.can(trigger))

    def allowed(self) -> tuple[str, ...]:
        return tuple(self.door.allowed())


def test_check_machine_fails_for_an_object_that_lies_about_its_state() -> None:
    with pytest.raises(AssertionError) as info:
        check_machine(DOOR, _Liar, max_examples=EXAMPLES)
    message = str(info.value)
    assert "is in closed, but the table says open" in message
    assert "minimal scenario:" in message
    # The minimal scenario: make one door, open it.
    assert "1. made object 0" in message
    assert "object 0 in closed: fire('open') returned open" in message
    assert len(message.split("minimal scenario:")[1].strip().splitlines()) <= 4


class _Lenient(_Liar):
    """Ignores illegal triggers instead of refusing them."""

    def fire(self, trigger: str) -> Any:
        try:
            return self.door.fire(trigger)
        except IllegalTransition:
            return self.door.state

    @property
    def state(self) -> Any:
        return self.door.state


def test_check_machine_fails_for_an_object_that_accepts_illegal_triggers() -> None:
    with pytest.raises(AssertionError, match=r"no such edge|a lost or doubled move"):
        check_machine(DOOR, _Lenient, max_examples=EXAMPLES)


class _Racy(_Lenient):
    """Reads, then writes, without a lock: concurrent triggers can apply twice or be lost."""

    def __init__(self) -> None:
        super().__init__()
        self.value = DoorState.CLOSED

    @property
    def state(self) -> Any:
        return self.value

    def fire(self, trigger: str) -> Any:
        source = self.value
        dest = DOOR.table.get((source, trigger))
        if dest is None:
            raise IllegalTransition("racy", "door", source, trigger, DOOR.allowed(source))
        time.sleep(0.001)  # widen the window between the read and the write
        self.value = DOOR.state(dest)
        return self.value

    def can(self, trigger: str) -> bool:
        return (self.value, trigger) in DOOR.table

    def allowed(self) -> tuple[str, ...]:
        return DOOR.allowed(self.value)


def test_check_machine_fails_for_an_object_that_loses_concurrent_moves() -> None:
    with pytest.raises(AssertionError, match="a lost or doubled move"):
        check_machine(DOOR, _Racy, max_examples=200)


def test_check_machine_fails_when_the_journal_lies() -> None:
    journal = Journal()

    @bind(DOOR, journal=journal)
    class Forger:
        def after_open(self) -> None:
            journal.record("door", "someone", "close", "closed", "open", True)

        def on_enter_open(self) -> None:
            # A record claiming this door went somewhere the table does not go.
            journal.record("door", type(self).__lifecycle__.subject_of(self), "lock", "open",
                           "locked", True)

    with pytest.raises(AssertionError, match="the journal does not tell the truth"):
        check_machine(DOOR, Forger, max_examples=EXAMPLES)


def test_replay_accepts_a_veto_and_refuses_a_refusal_of_a_legal_edge() -> None:
    journal = Journal()
    journal.record("door", "d", "open", "closed", None, False, "vetoed by Door.before_open: no")
    assert replay(journal.records, DOOR) == ({"d": "closed"}, [])
    journal.record("door", "d", "open", "closed", None, False, "no reason")
    _, problems = replay(journal.records, DOOR)
    assert len(problems) == 1 and "accepts 'open'" in problems[0]


def test_check_machine_refuses_what_is_not_a_spec() -> None:
    with pytest.raises(TypeError, match="MachineSpec"):
        check_machine("door", max_examples=1)  # type: ignore[arg-type]
