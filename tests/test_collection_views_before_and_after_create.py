"""What a collection shows of itself: before `create` its registered classes, from `create` on
its instances (only those a constructor made), in dependency order once that is fixed, and the
attributes a driver reads (`loop`, `failure`, `initializing`) from the moment it is made."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.collection import Tasks
from lifecycle.errors import InitError
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import SkipTask, Task

T = TaskState


class Static(Task):
    LOOPLESS = True


def static(name: str, **attrs: Any) -> type[Task]:
    return type(name, (Static,), dict(attrs))


def failing_constructor(name: str) -> type[Task]:
    def __init__(self: Task, service: object = None) -> None:
        raise RuntimeError(f"{name} cannot be made")

    return static(name, __init__=__init__)


#: For each of a few tasks: whether its constructor raises.
CONSTRUCTORS_FAIL = st.lists(st.booleans(), min_size=1, max_size=6)


def made_and_unmade(fails: list[bool]) -> list[type[Task]]:
    return [
        failing_constructor(f"T{i}") if fail else static(f"T{i}") for i, fail in enumerate(fails)
    ]


# -- the driver's attributes ---------------------------------------------------------------


def test_a_collection_keeps_the_loop_it_is_given() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert Tasks(loop=loop).loop is loop
        assert Tasks().loop is None
    finally:
        loop.close()


def test_a_new_collection_has_no_failure_and_no_task_initializing() -> None:
    tasks = Tasks([static("A")])
    assert tasks.failure is None
    assert tasks.initializing is None
    assert tasks.first_failure() is None


@pytest.mark.parametrize("outcome", ["returns", "raises", "skips"])
def test_initializing_names_the_task_whose_init_task_runs_and_only_while_it_runs(
    outcome: str,
) -> None:
    seen: dict[str, str | None] = {}
    tasks = Tasks()

    class First(Static):
        def init_task(self) -> None:
            seen["First"] = tasks.initializing
            if outcome == "raises":
                raise RuntimeError("init fault")
            if outcome == "skips":
                raise SkipTask("not today")

    class Second(Static):
        WANTS = (First,)

        def init_task(self) -> None:
            seen["Second"] = tasks.initializing

    tasks.register_all([Second])
    tasks.create()
    assert tasks.initializing is None
    if outcome == "raises":
        with pytest.raises(InitError):
            tasks.init()
    else:
        tasks.init()
    assert seen == {"First": "First", "Second": "Second"}
    assert tasks.initializing is None


# -- len, get, first_failure once constructors failed ---------------------------------------


@given(CONSTRUCTORS_FAIL)
def test_from_create_on_len_and_iteration_count_the_instances_made(fails: list[bool]) -> None:
    tasks = Tasks(made_and_unmade(fails))
    assert len(tasks) == len(fails)
    if any(fails):
        with pytest.raises(InitError):
            tasks.create()
    else:
        tasks.create()
    made = [f"T{i}" for i, fail in enumerate(fails) if not fail]
    assert len(tasks) == len(made)
    assert [t.name for t in tasks] == made


@given(CONSTRUCTORS_FAIL)
def test_get_gives_the_default_for_a_task_without_an_instance(fails: list[bool]) -> None:
    tasks = Tasks(made_and_unmade(fails))
    default = object()
    assert tasks.get("Nope", default) is default
    assert tasks.get("T0", default) is tasks.task_classes[0]
    if any(fails):
        with pytest.raises(InitError):
            tasks.create()
    else:
        tasks.create()
    assert tasks.get("Nope", default) is default
    for i, fail in enumerate(fails):
        found = tasks.get(f"T{i}", default)
        if fail:
            assert found is default
        else:
            assert isinstance(found, Task) and found.name == f"T{i}"


@given(CONSTRUCTORS_FAIL.filter(any))
def test_first_failure_answers_without_raising_when_constructors_raised(
    fails: list[bool],
) -> None:
    # A constructor that raised left no instance to hold a failure: the collection's
    # InitError (`failure`) has its error, and first_failure must still answer, with nothing
    # or with the first of those errors, not trip over the missing instance.
    tasks = Tasks(made_and_unmade(fails))
    with pytest.raises(InitError) as info:
        tasks.create()
    assert tasks.failure is info.value
    first_unmade = next(iter(info.value.failed.values()))
    assert tasks.first_failure() in (None, first_unmade)


# -- order and by_state --------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=6))
def test_by_state_before_create_lists_every_registered_task_as_registered(count: int) -> None:
    names = [f"T{i}" for i in range(count)]
    tasks = Tasks([static(n) for n in names])
    assert tasks.by_state() == {T.REGISTERED: names}


def test_after_create_views_follow_dependency_order_not_registration_order() -> None:
    # Registered first, then unregistered and registered again: the wanted task now comes
    # after the one that wants it in registration order, but before it in dependency order.
    wanted = static("Wanted")
    wanting = static("Wanting", WANTS=(wanted,))
    tasks = Tasks([wanting])
    tasks.unregister(wanted)
    tasks.register(wanted)
    assert [c.__name__ for c in tasks.task_classes] == ["Wanting", "Wanted"]
    assert tasks.order == ("Wanted", "Wanting")
    tasks.create()
    assert tasks.order == ("Wanted", "Wanting")
    assert tasks.by_state() == {T.CREATED: ["Wanted", "Wanting"]}
    assert [t.name for t in tasks] == ["Wanted", "Wanting"]
    tasks.stop()
    assert tasks.state == CollectionState.STOPPED


# -- attribute access ----------------------------------------------------------------------


def test_a_task_whose_name_is_private_is_not_an_attribute_but_can_be_looked_up() -> None:
    hidden = static("_Hidden")
    tasks = Tasks([hidden])
    with pytest.raises(AttributeError):
        tasks._Hidden  # noqa: B018
    assert tasks["_Hidden"] is hidden
    tasks.create()
    with pytest.raises(AttributeError):
        tasks._Hidden  # noqa: B018
    assert tasks["_Hidden"].name == "_Hidden"
    tasks.stop()


def test_a_collection_not_initialized_yet_answers_attribute_lookups_with_attribute_error() -> None:
    # As copy and pickle see an instance before its __init__ ran: hasattr must say False.
    bare = Tasks.__new__(Tasks)
    assert not hasattr(bare, "Anything")
    assert not hasattr(bare, "_anything")
