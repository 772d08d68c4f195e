"""Every error a collection raises names what was wrong in its attributes, not only in its text:
the refused class (`InvalidTask.task`), the two classes that clash (`DuplicateTask`), the refused
action (`RegistrationClosed.action`), the task whose code raised a `BaseException`
(`TaskExit.task`), the name an attribute lookup did not find."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.collection import Tasks
from lifecycle.errors import (
    DuplicateTask,
    InitError,
    InvalidTask,
    RegistrationClosed,
    StopError,
    TaskExit,
)
from lifecycle.task import Task

#: Generous bound for anything that should happen promptly.
WAIT = 10.0

#: `BaseException`s that are not `Exception`s: a task's code may raise any of them.
NOT_EXCEPTIONS = st.sampled_from([SystemExit, KeyboardInterrupt, GeneratorExit])
#: Identifiers usable as task (class) names.
NAMES = st.from_regex(r"[A-Z][A-Za-z0-9]{0,12}", fullmatch=True)


class Static(Task):
    LOOPLESS = True


def static(name: str, **attrs: Any) -> type[Task]:
    return type(name, (Static,), dict(attrs))


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# -- InvalidTask -----------------------------------------------------------------------------


def invalid_classes() -> list[tuple[type[Task] | object, str]]:
    """(the refused object, a fragment of the problem) for each way a class can be unusable."""
    return [
        (42, "not a Task subclass"),
        (int, "not a Task subclass"),
        (type("NoLoop", (Task,), {}), "no run_loop"),
        (type("ListsAString", (Static,), {"DEPS": ("Db",)}), "DEPS lists 'Db'"),
        (type("WantsAnInt", (Static,), {"WANTS": (int,)}), "WANTS lists <class 'int'>"),
        (
            type("NoWorkers", (Task,), {"workers": 0, "run_loop": lambda self: None}),
            "workers must be an int >= 1",
        ),
    ]


@pytest.mark.parametrize(("bad", "problem"), invalid_classes())
def test_invalid_task_carries_the_refused_object_itself(bad: object, problem: str) -> None:
    tasks = Tasks()
    with pytest.raises(InvalidTask) as info:
        tasks.register(bad)  # type: ignore[arg-type]
    assert info.value.task is bad
    assert problem in info.value.problem
    assert str(info.value).startswith(repr(bad))
    assert tasks.task_classes == ()


@given(st.one_of(st.integers(), st.none(), st.floats(allow_nan=False), st.booleans()))
def test_register_all_refuses_what_is_not_iterable_naming_it(thing: object) -> None:
    tasks = Tasks()
    with pytest.raises(InvalidTask) as info:
        tasks.register_all(thing)  # type: ignore[arg-type]
    assert info.value.task is thing
    assert "iterable of task classes" in info.value.problem


def test_a_single_class_given_as_the_list_is_named_by_the_error() -> None:
    single = static("Single")
    with pytest.raises(InvalidTask) as info:
        Tasks(single)  # type: ignore[arg-type]
    assert info.value.task is single


# -- DuplicateTask -----------------------------------------------------------------------------


@given(NAMES)
def test_a_second_class_of_the_same_name_is_refused_naming_both_classes(name: str) -> None:
    first = static(name)
    second = static(name)
    second.__qualname__ = f"elsewhere.{name}"
    tasks = Tasks([first])
    with pytest.raises(DuplicateTask) as info:
        tasks.register(second)
    assert info.value.name == name
    assert info.value.existing == qualname(first)
    assert info.value.new == qualname(second)
    assert tasks.task_classes == (first,)


# -- RegistrationClosed --------------------------------------------------------------------


def created(*classes: type[Task]) -> Tasks:
    tasks = Tasks(classes)
    tasks.create()
    return tasks


@given(NAMES)
def test_unregistering_by_name_after_create_names_that_action(name: str) -> None:
    tasks = created(static(name))
    with pytest.raises(RegistrationClosed) as info:
        tasks.unregister(name)
    assert info.value.action == f"unregister {name}"
    assert info.value.trigger == "unregister"
    assert tasks.task_classes[0].__name__ == name
    tasks.stop()


def test_unregistering_a_class_after_create_names_it_by_its_qualified_name() -> None:
    kept = static("Kept")
    tasks = created(kept)
    with pytest.raises(RegistrationClosed) as info:
        tasks.unregister(kept)
    assert info.value.action == f"unregister {kept.__qualname__}"
    tasks.stop()


def test_registering_a_class_after_create_names_it_by_its_qualified_name() -> None:
    late = static("Late")
    tasks = created(static("Early"))
    with pytest.raises(RegistrationClosed) as info:
        tasks.register(late)
    assert info.value.action == f"register {late.__qualname__}"
    assert info.value.trigger == "register"
    tasks.stop()


@given(st.one_of(st.integers(), st.text(max_size=10).map(lambda s: [s]), st.just(object())))
def test_registering_anything_after_create_is_refused_naming_it_by_its_repr(
    thing: object,
) -> None:
    # Closed registration is reported before the object is even looked at: the action names
    # it as it is, whatever it is (it has no qualified name).
    tasks = created(static("Early"))
    with pytest.raises(RegistrationClosed) as info:
        tasks.register(thing)  # type: ignore[arg-type]
    assert info.value.action == f"register {thing!r}"
    tasks.stop()


# -- TaskExit ------------------------------------------------------------------------------


@given(NOT_EXCEPTIONS)
def test_a_base_exception_from_a_constructor_is_kept_in_a_task_exit_naming_the_task(
    kind: type[BaseException],
) -> None:
    raised = kind("from the constructor")

    class Unmade(Static):
        def __init__(self, service: object = None) -> None:
            raise raised

    tasks = Tasks([Unmade])
    with pytest.raises(InitError) as info:
        tasks.create()
    exit_ = info.value.failed["Unmade"]
    assert isinstance(exit_, TaskExit)
    assert exit_.task == "Unmade" and exit_.exception is raised
    assert "'Unmade'" in str(exit_)


@given(NOT_EXCEPTIONS)
def test_a_base_exception_from_init_task_is_kept_in_a_task_exit_naming_the_task(
    kind: type[BaseException],
) -> None:
    raised = kind("from init_task")

    class Quits(Static):
        def init_task(self) -> None:
            raise raised

    tasks = Tasks([Quits])
    tasks.create()
    with pytest.raises(InitError) as info:
        tasks.init()
    exit_ = info.value.failed["Quits"]
    assert isinstance(exit_, TaskExit)
    assert exit_.task == "Quits" and exit_.exception is raised
    assert tasks.require("Quits").failure is raised


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt])
def test_a_base_exception_from_on_stop_is_kept_in_a_task_exit_naming_the_task(
    kind: type[BaseException],
) -> None:
    raised = kind("from on_stop")
    stopped = threading.Event()

    class Leaves(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

        def on_stop(self) -> None:
            stopped.set()
            raise raised

    tasks = Tasks([Leaves])
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    with pytest.raises(StopError) as info:
        tasks.join(WAIT)
    assert stopped.is_set()
    exit_ = info.value.failed["Leaves"]
    assert isinstance(exit_, TaskExit)
    assert exit_.task == "Leaves" and exit_.exception is raised


# -- attribute lookups ---------------------------------------------------------------------


class NamedTasks(Tasks):
    """A collection class of its own: its errors name it."""


@given(NAMES)
def test_looking_up_a_missing_task_as_an_attribute_names_the_collection_and_the_task(
    name: str,
) -> None:
    tasks = NamedTasks(name="mine")
    with pytest.raises(AttributeError) as info:
        getattr(tasks, f"Missing{name}")
    assert str(info.value) == f"NamedTasks 'mine' has no registered task 'Missing{name}'"
    tasks.create()
    with pytest.raises(AttributeError) as info:
        getattr(tasks, f"Missing{name}")
    assert str(info.value) == f"NamedTasks 'mine' has no created task 'Missing{name}'"


def test_a_private_attribute_that_does_not_exist_is_named_by_the_error() -> None:
    tasks = Tasks()
    with pytest.raises(AttributeError) as info:
        tasks._no_such_thing  # noqa: B018
    assert str(info.value) == "_no_such_thing"
