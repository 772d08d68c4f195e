"""`lifecycle.bind`: a user's class bound to a machine, its hooks, guards and journal rule."""

from __future__ import annotations

import copy
import enum
import pickle
import threading
from collections import Counter
from typing import Any

import attrs
import pytest

from lifecycle import (
    IllegalTransition,
    Journal,
    TransitionVetoed,
    bind,
    lock_of,
)
from lifecycle.bind import VETO_CAUSE_PREFIX, BindingError, binding_of, is_veto_cause
from lifecycle.spec import TASK, Edge, MachineSpec, TaskState
from lifecycle.testing.machines import replay


class DoorState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    LOCKED = "locked"


DOOR = MachineSpec(
    name="door",
    states=DoorState,
    initial=DoorState.CLOSED,
    terminal=(),
    transitions=(
        Edge("open", (DoorState.CLOSED,), DoorState.OPEN),
        Edge("close", (DoorState.OPEN,), DoorState.CLOSED),
        Edge("lock", (DoorState.CLOSED,), DoorState.LOCKED),
        Edge("unlock", (DoorState.LOCKED,), DoorState.CLOSED),
    ),
)


@bind(DOOR, journal=Journal())
class Door:
    """A door with no hooks (the check_machine tests use it too)."""


def journal_of(obj: object) -> Journal:
    journal = binding_of(obj).journal
    assert journal is not None
    return journal


def truthful(obj: Any) -> None:
    """The journal replays to the object's live state, with no problem."""
    states, problems = replay(journal_of(obj).records, DOOR)
    assert problems == []
    assert states.get(binding_of(obj).subject_of(obj), DOOR.initial) == obj.state


# -- the instance API ------------------------------------------------------------------------


def test_a_bound_object_starts_initial_and_moves_along_the_table() -> None:
    door = Door()
    assert door.state is DoorState.CLOSED  # type: ignore[attr-defined]
    assert door.allowed() == ("open", "lock")  # type: ignore[attr-defined]
    assert door.can("open") and not door.can("close")  # type: ignore[attr-defined]
    assert door.open() is DoorState.OPEN  # type: ignore[attr-defined]
    assert door.fire("close", cause="draught") is DoorState.CLOSED  # type: ignore[attr-defined]
    mine = [r for r in journal_of(door).records if r.subject == binding_of(door).subject_of(door)]
    assert [(r.trigger, r.source, r.dest, r.ok, r.cause) for r in mine] == [
        ("open", "closed", "open", True, None),
        ("close", "open", "closed", True, "draught"),
    ]
    assert all(r.kind == "door" for r in mine)
    truthful(door)


@pytest.mark.parametrize("trigger", ["close", "unlock", "no_such_trigger", "to_open", ""])
def test_an_illegal_trigger_raises_changes_nothing_and_is_journaled_refused(trigger: str) -> None:
    door: Any = Door()
    with pytest.raises(IllegalTransition) as info:
        door.fire(trigger)
    err = info.value
    name = binding_of(door).subject_of(door)
    assert (err.subject, err.kind, err.state, err.trigger) == (name, "door", "closed", trigger)
    assert err.allowed == ("open", "lock")
    assert door.state is DoorState.CLOSED
    (rec,) = [r for r in journal_of(door).records if r.subject == name]
    assert (rec.trigger, rec.source, rec.dest, rec.ok) == (trigger, "closed", None, False)
    truthful(door)


def test_state_cannot_be_assigned() -> None:
    door: Any = Door()
    with pytest.raises(AttributeError):
        door.state = DoorState.OPEN
    assert door.state is DoorState.CLOSED


def test_without_a_journal_nothing_is_recorded_and_it_is_as_strict() -> None:
    @bind(DOOR)
    class Quiet:
        pass

    door: Any = Quiet()
    assert binding_of(door).journal is None
    door.open()
    assert not hasattr(door, "_lifecycle_subject")  # no name is made when nothing is recorded
    with pytest.raises(IllegalTransition, match="door 'Quiet-"):
        door.open()
    assert door.state is DoorState.OPEN


def test_subjects_are_named_by_attribute_or_callable_or_uniquely_by_default() -> None:
    journal = Journal()

    @bind(DOOR, journal=journal, subject="label")
    class Named:
        def __init__(self, label: str) -> None:
            self.label = label

    @bind(DOOR, journal=journal, subject=lambda d: f"door:{d.number}")
    class Numbered:
        def __init__(self, number: int) -> None:
            self.number = number

    Named("front").open()  # type: ignore[attr-defined]
    Numbered(7).open()  # type: ignore[attr-defined]
    a: Any = Door()
    b: Any = Door()
    a.open()
    b.open()
    subjects = [r.subject for r in journal.records]
    assert subjects == ["front", "door:7"]
    assert binding_of(a).subject_of(a) != binding_of(b).subject_of(b)


# -- hooks and guards ------------------------------------------------------------------------


class Calls:
    """Every hook of a door, logging its calls; ``fail`` names hooks that raise."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.key = True
        self.jammed = False

    def _hook(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def has_key(self) -> bool:
        self.calls.append("cond has_key")
        return self.key

    def is_jammed(self) -> bool:
        self.calls.append("unless is_jammed")
        return self.jammed

    def before_unlock(self) -> None:
        self._hook("before_unlock")

    def on_exit_locked(self) -> None:
        self._hook("on_exit_locked")

    def on_enter_closed(self) -> None:
        self._hook("on_enter_closed")

    def after_unlock(self) -> None:
        self._hook("after_unlock")


def hooked_door() -> Any:
    @bind(DOOR, journal=Journal(), cond={"unlock": "has_key"}, unless={"unlock": "is_jammed"})
    class HookedDoor(Calls):
        pass

    door = HookedDoor()
    door.lock()  # type: ignore[attr-defined]
    door.calls.clear()
    return door


def test_hooks_run_in_order_around_the_move() -> None:
    door = hooked_door()
    states: list[str] = []
    door.fail = {}
    original = door._hook

    def spy(name: str) -> None:
        states.append(door.state)
        original(name)

    door._hook = spy
    assert door.unlock() is DoorState.CLOSED
    assert door.calls == [
        "cond has_key",
        "unless is_jammed",
        "before_unlock",
        "on_exit_locked",
        "on_enter_closed",
        "after_unlock",
    ]
    assert states == ["locked", "locked", "closed", "closed"]
    truthful(door)


@pytest.mark.parametrize(
    ("setup", "hook"),
    [
        ({"key": False}, "cond HookedDoor.has_key"),
        ({"jammed": True}, "unless HookedDoor.is_jammed"),
    ],
)
def test_a_guard_with_the_wrong_answer_vetoes(setup: dict[str, bool], hook: str) -> None:
    door = hooked_door()
    for name, value in setup.items():
        setattr(door, name, value)
    with pytest.raises(TransitionVetoed) as info:
        door.unlock()
    err = info.value
    assert not isinstance(err, IllegalTransition)
    assert (err.state, err.trigger, err.dest) == ("locked", "unlock", "closed")
    option, _, name = hook.partition(" ")
    assert err.hook.startswith(option) and err.hook.endswith(name)
    hook = err.hook
    assert err.__cause__ is None
    assert door.state is DoorState.LOCKED
    assert "before_unlock" not in door.calls
    rec = journal_of(door).records[-1]
    assert (rec.trigger, rec.source, rec.dest, rec.ok) == ("unlock", "locked", None, False)
    (answer,) = setup.values()
    assert rec.cause == f"{VETO_CAUSE_PREFIX}{hook}: returned {answer}"
    assert is_veto_cause(rec.cause)
    truthful(door)


@pytest.mark.parametrize("failing", ["before_unlock", "on_exit_locked"])
def test_a_before_hook_that_raises_vetoes_with_its_error_as_the_cause(failing: str) -> None:
    door = hooked_door()
    boom = RuntimeError("the bolt is stuck")
    door.fail = {failing: boom}
    with pytest.raises(TransitionVetoed) as info:
        door.unlock()
    assert info.value.__cause__ is boom
    assert info.value.hook.endswith(f"HookedDoor.{failing}")
    assert "RuntimeError: the bolt is stuck" in str(info.value)
    assert door.state is DoorState.LOCKED
    assert "on_enter_closed" not in door.calls
    rec = journal_of(door).records[-1]
    assert not rec.ok and rec.cause is not None
    assert rec.cause.startswith(f"{VETO_CAUSE_PREFIX}{info.value.hook}: Traceback")
    assert "RuntimeError: the bolt is stuck" in rec.cause
    truthful(door)


def test_a_guard_that_raises_vetoes() -> None:
    door = hooked_door()

    def broken() -> bool:
        raise ValueError("no key ring")

    door.has_key = broken
    with pytest.raises(TransitionVetoed) as info:
        door.unlock()
    assert isinstance(info.value.__cause__, ValueError)
    assert door.state is DoorState.LOCKED
    truthful(door)


@pytest.mark.parametrize("failing", ["on_enter_closed", "after_unlock"])
def test_an_after_hook_that_raises_leaves_the_move_and_reaches_the_caller(failing: str) -> None:
    door = hooked_door()
    boom = RuntimeError("the light did not switch on")
    door.fail = {failing: boom}
    with pytest.raises(RuntimeError) as info:
        door.unlock()
    assert info.value is boom
    assert any("the move stands" in note for note in getattr(boom, "__notes__", []))
    assert door.state is DoorState.CLOSED
    rec = journal_of(door).records[-1]
    assert (rec.trigger, rec.source, rec.dest, rec.ok) == ("unlock", "locked", "closed", True)
    if failing == "on_enter_closed":
        assert "after_unlock" not in door.calls  # the hooks after the one that raised do not run
    truthful(door)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_a_base_exception_from_a_before_hook_is_journaled_as_a_veto_and_re_raised_as_is(
    error: BaseException,
) -> None:
    door = hooked_door()
    door.fail = {"before_unlock": error}
    with pytest.raises(type(error)) as info:
        door.unlock()
    assert info.value is error
    assert door.state is DoorState.LOCKED
    rec = journal_of(door).records[-1]
    assert not rec.ok and is_veto_cause(rec.cause)
    truthful(door)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)])
def test_a_base_exception_from_an_after_hook_leaves_the_move(error: BaseException) -> None:
    door = hooked_door()
    door.fail = {"after_unlock": error}
    with pytest.raises(type(error)):
        door.unlock()
    assert door.state is DoorState.CLOSED
    truthful(door)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def test_an_error_whose_str_raises_still_vetoes_and_is_journaled() -> None:
    door = hooked_door()
    door.fail = {"before_unlock": Unprintable()}
    with pytest.raises(TransitionVetoed) as info:
        door.unlock()
    assert "str() raised" in str(info.value)
    assert door.state is DoorState.LOCKED
    assert is_veto_cause(journal_of(door).records[-1].cause)
    door.fail = {"after_unlock": Unprintable()}
    with pytest.raises(Unprintable):
        door.unlock()
    assert door.state is DoorState.CLOSED
    truthful(door)


def test_a_hook_may_fire_again_after_the_move_and_both_moves_are_journaled_in_order() -> None:
    @bind(DOOR, journal=Journal())
    class SelfLocking:
        def on_enter_closed(self) -> None:
            self.lock()  # type: ignore[attr-defined]

    door: Any = SelfLocking()
    door.open()
    assert door.close() is DoorState.CLOSED  # what close did; the door then locked itself
    assert door.state is DoorState.LOCKED
    assert [(r.trigger, r.dest) for r in journal_of(door).records] == [
        ("open", "open"),
        ("close", "closed"),
        ("lock", "locked"),
    ]
    truthful(door)


def test_a_before_hook_that_moves_its_own_subject_vetoes_the_trigger_being_decided() -> None:
    @bind(DOOR, journal=Journal())
    class Meddling:
        def before_open(self) -> None:
            self.lock()  # type: ignore[attr-defined]

    door: Any = Meddling()
    with pytest.raises(TransitionVetoed, match="moved the subject to locked"):
        door.open()
    assert door.state is DoorState.LOCKED
    records = journal_of(door).records
    assert [(r.trigger, r.source, r.dest, r.ok) for r in records] == [
        ("lock", "closed", "locked", True),
        ("open", "locked", None, False),
    ]
    truthful(door)


# -- class-time checks -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["open", "state", "fire", "can", "allowed", "_lifecycle_state"])
def test_a_name_clash_is_refused_when_the_class_is_made(name: str) -> None:
    with pytest.raises(BindingError, match=f"'{name}' would replace Clash.{name}"):
        bind(DOOR)(type("Clash", (), {name: lambda self: None}))


def test_a_clash_with_a_base_class_attribute_is_refused_too() -> None:
    class Base:
        state = "mine"

    with pytest.raises(BindingError, match=r"would replace \S*Base\.state"):
        bind(DOOR)(type("Child", (Base,), {}))


def test_trigger_methods_false_keeps_the_class_own_methods() -> None:
    @bind(DOOR, trigger_methods=False)
    class Window:
        def open(self) -> str:
            return "the window's own"

    window: Any = Window()
    assert window.open() == "the window's own"
    assert window.fire("open") is DoorState.OPEN


def test_a_subclass_cannot_override_a_trigger_or_the_api() -> None:
    with pytest.raises(BindingError, match=r"would replace Sneaky\.open"):
        type("Sneaky", (Door,), {"open": lambda self: None})
    with pytest.raises(BindingError, match=r"would replace Sneaky\.state"):
        type("Sneaky", (Door,), {"state": "open"})


def test_a_bound_class_is_not_bound_twice() -> None:
    with pytest.raises(BindingError, match="Door is already bound"):
        bind(TASK)(type("Twice", (Door,), {}))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("on_enter_opne", "'opne' is not a state"),
        ("on_exit_ajar", "'ajar' is not a state"),
        ("before_slam", "'slam' is not a trigger"),
        ("after_opne", "'opne' is not a trigger"),
        ("on_open", "there is no on_<trigger> hook"),
    ],
)
def test_a_hook_for_an_unknown_state_or_trigger_is_a_typo(name: str, message: str) -> None:
    with pytest.raises(BindingError, match=message):
        bind(DOOR)(type("Typo", (), {name: lambda self: None}))


def test_a_hook_that_is_not_callable_or_async_is_refused() -> None:
    with pytest.raises(BindingError, match="not callable"):
        bind(DOOR)(type("NotCallable", (), {"on_enter_open": 3}))

    async def on_enter_open(self: object) -> None:
        pass

    with pytest.raises(BindingError, match="async def"):
        bind(DOOR)(type("Async", (), {"on_enter_open": on_enter_open}))


def test_guards_are_checked_when_the_class_is_made() -> None:
    with pytest.raises(BindingError, match="cond names trigger 'slam'"):
        bind(DOOR, cond={"slam": "ok"})(type("G", (), {}))
    with pytest.raises(BindingError, match="guard 'has_key' of 'unlock' is not a method"):
        bind(DOOR, unless={"unlock": "has_key"})(type("G", (), {}))
    with pytest.raises(BindingError, match="must be a method name or a callable"):
        bind(DOOR, cond={"unlock": [3]})(type("G", (), {}))  # type: ignore[list-item]


def test_bind_refuses_what_is_not_a_spec_or_a_class_or_a_journal() -> None:
    with pytest.raises(BindingError, match="takes a MachineSpec"):
        bind("door")  # type: ignore[arg-type]
    with pytest.raises(BindingError, match="journal must be a Journal"):
        bind(DOOR, journal=[])  # type: ignore[arg-type]
    with pytest.raises(BindingError, match="decorates a class"):
        bind(DOOR)(lambda: None)  # type: ignore[type-var]


@bind(DOOR, journal=Journal())
class Roomy:
    __slots__ = ("_lifecycle_lock", "_lifecycle_state", "_lifecycle_subject", "x")


def test_a_slotted_class_needs_the_lifecycle_slots() -> None:
    with pytest.raises(BindingError, match="add those to its __slots__"):
        bind(DOOR)(type("Slotted", (), {"__slots__": ("x",)}))
    roomy: Any = Roomy()
    roomy.open()
    assert roomy.state is DoorState.OPEN
    assert pickle.loads(pickle.dumps(roomy)).state is DoorState.OPEN


def test_a_frozen_attrs_class_can_be_bound() -> None:
    @bind(DOOR)
    @attrs.frozen(slots=False)
    class Frozen:
        name: str

    door: Any = Frozen("x")
    door.open()
    assert door.state is DoorState.OPEN
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        door.name = "y"


# -- subclasses, copies ----------------------------------------------------------------------


def test_a_subclass_has_its_own_hooks_and_its_base_keeps_none() -> None:
    @bind(DOOR, journal=Journal())
    class Plain:
        pass

    class Chiming(Plain):
        def __init_subclass__(cls, **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)

        def on_enter_open(self) -> None:
            self.chimed = True

    class Grand(Chiming):
        def before_close(self) -> None:
            raise RuntimeError("held open")

    plain: Any = Plain()
    plain.open()
    assert not hasattr(plain, "chimed")
    grand: Any = Grand()
    grand.open()
    assert grand.chimed
    with pytest.raises(TransitionVetoed):
        grand.close()
    assert isinstance(grand, Plain) and binding_of(grand) is binding_of(Plain)
    with pytest.raises(BindingError, match="'opne' is not a state"):
        type("Typo", (Plain,), {"on_enter_opne": lambda self: None})


@bind(DOOR, journal=Journal())
class CopiedDoor:
    """A door whose copies are journaled apart: a copy is a new subject whose first record
    starts where the copy was made, not at the initial state, which `truthful` would report
    in the journal the other tests share (and check whatever the order the tests run in)."""


def test_a_copy_or_a_pickle_carries_the_state_but_is_a_new_subject() -> None:
    door: Any = CopiedDoor()
    door.open()
    for twin in (copy.copy(door), copy.deepcopy(door), pickle.loads(pickle.dumps(door))):
        assert twin.state is DoorState.OPEN
        assert lock_of(twin) is not lock_of(door)
        twin.close()
        assert twin.state is DoorState.CLOSED and door.state is DoorState.OPEN
        assert binding_of(twin).subject_of(twin) != binding_of(door).subject_of(door)


def test_lock_of_makes_a_check_and_a_fire_atomic() -> None:
    door: Any = Door()
    with lock_of(door):
        assert door.can("open")
        door.open()
    with pytest.raises(BindingError, match="not a bound class"):
        lock_of(object())


# -- threads ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_many_threads_firing_at_one_object_lose_and_double_no_move() -> None:
    journal = Journal()

    @bind(DOOR, journal=journal)
    class Busy:
        def __init__(self) -> None:
            self.entered = 0

        def on_enter_open(self) -> None:
            self.entered += 1  # under the object's lock: no lost update

    door: Any = Busy()
    done: Counter[str] = Counter()
    tally = threading.Lock()
    start = threading.Barrier(8)

    def hammer(trigger: str) -> None:
        start.wait()
        mine = 0
        for _ in range(500):
            try:
                door.fire(trigger)
                mine += 1
            except IllegalTransition:
                pass
        with tally:
            done[trigger] += mine

    threads = [
        threading.Thread(target=hammer, args=(t,)) for t in ("open", "close", "lock", "unlock") * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    records = journal.records
    assert len(records) == 8 * 500
    ok = Counter(r.trigger for r in records if r.ok)
    assert ok == done
    assert door.entered == done["open"]
    states, problems = replay(records, DOOR)
    assert problems == []
    assert states[binding_of(door).subject_of(door)] == door.state


# -- the built-in machines bind too ----------------------------------------------------------


def test_the_task_machine_binds_to_a_users_class() -> None:
    @bind(TASK)
    class Job:
        def on_enter_running(self) -> None:
            self.ran = True

    job: Any = Job()
    for trigger in ("create", "init", "start"):
        job.fire(trigger)
    assert job.state is TaskState.RUNNING and job.ran
