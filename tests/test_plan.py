"""`lifecycle.plan` and `lifecycle plan`: a dry run of start layers, stop order and skip impact."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.cli import main
from lifecycle.collection import Tasks
from lifecycle.errors import BadReference, DependencyCycle, DuplicateTask, InvalidTask
from lifecycle.graph import dependents
from lifecycle.loading import load
from lifecycle.plan import Plan, PlanTargetError, plan
from lifecycle.task import Task
from tests.services import SelfStopping


def loopless(
    name: str, deps: tuple[type[Task], ...] = (), wants: tuple[type[Task], ...] = ()
) -> type[Task]:
    return type(name, (Task,), {"LOOPLESS": True, "DEPS": deps, "WANTS": wants})


A = loopless("A")
B = loopless("B", (A,))
C = loopless("C", (A,), (B,))
D = loopless("D", (C,))
E = loopless("E")


class Service:
    TASKS = (D, B, E)


def test_plan_of_a_service_class_gives_layers_orders_and_skips() -> None:
    result = plan(Service)
    assert result.layers == (("A", "E"), ("B",), ("C",), ("D",))
    assert result.start_order == ("A", "B", "C", "D", "E")
    # E and D have nothing ordered after them; C waits for D, B for C (WANTS), A for B and C.
    assert result.stop_layers == (("E", "D"), ("C",), ("B",), ("A",))
    assert result.stop_order == ("E", "D", "C", "B", "A")
    stops_after = {t.name: t.stops_after for t in result.tasks}
    assert stops_after == {"A": ("B", "C"), "B": ("C",), "C": ("D",), "D": (), "E": ()}
    skips = {t.name: t.skips for t in result.tasks}
    assert skips == {"A": ("B", "C", "D"), "B": (), "C": ("D",), "D": (), "E": ()}


def test_wants_orders_but_never_skips() -> None:
    skips = {t.name: t.skips for t in plan(Service).tasks}
    assert "C" not in skips["B"]  # C only WANTS B
    assert plan(Service).layers[1:3] == (("B",), ("C",))


def test_plan_of_a_task_class_includes_its_deps_and_wants() -> None:
    assert plan(D).start_order == ("A", "B", "C", "D")


def test_plan_of_a_collection_matches_the_order_the_collection_uses() -> None:
    tasks = Tasks([D, B, E])
    result = plan(tasks)
    tasks.create()
    assert result.start_order == tasks.order
    tasks.stop()


def test_plan_starts_nothing_and_runs_no_task_code() -> None:
    calls: list[str] = []

    class Loud(Task):
        LOOPLESS = True

        def __init__(self, service: object = None) -> None:
            calls.append("constructed")
            super().__init__(service)

        def init_task(self) -> None:
            calls.append("init")

    assert plan(Loud).start_order == ("Loud",)
    assert calls == []


def test_plan_data_renders_as_json() -> None:
    doc = plan(Service).to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["tasks"][0] == {
        "name": "A",
        "class": f"{__name__}.A",
        "deps": [],
        "wants": [],
        "loopless": True,
        "workers": 0,
        "layer": 0,
        "skips": ["B", "C", "D"],
        "stop_layer": 3,
        "stops_after": ["B", "C"],
    }


def test_cycles_are_errors_naming_the_cycle() -> None:
    x = loopless("X")
    y = loopless("Y", (x,))
    x.WANTS = (y,)
    with pytest.raises(DependencyCycle, match=r"X -> Y -> X|Y -> X -> Y"):
        plan(y)


def test_duplicate_names_and_invalid_dependencies_are_errors() -> None:
    other_a = loopless("A")
    with pytest.raises(DuplicateTask, match="'A'"):
        plan([A, other_a])
    with pytest.raises(InvalidTask, match="DEPS lists 'A'"):
        plan(loopless("Bad", ("A",)))  # type: ignore[arg-type]


def test_targets_that_are_not_tasks_raise_plan_target_error() -> None:
    for target in (object(), 42, "A", Tasks):
        with pytest.raises(PlanTargetError):
            plan(target)

    class NotAList:
        TASKS = 3

    with pytest.raises(PlanTargetError, match="TASKS"):
        plan(NotAList)


@st.composite
def dags(draw: st.DrawFn) -> list[type[Task]]:
    count = draw(st.integers(1, 8))
    classes: list[type[Task]] = []
    for index in range(count):
        deps = draw(st.sets(st.integers(0, index - 1), max_size=3)) if index else set()
        wants = draw(st.sets(st.integers(0, index - 1), max_size=2)) if index else set()
        classes.append(
            loopless(
                f"N{index}",
                tuple(classes[d] for d in sorted(deps)),
                tuple(classes[w] for w in sorted(wants)),
            )
        )
    return draw(st.permutations(classes))


@given(classes=dags())
def test_plan_orders_every_dependency_first_and_skips_what_deps_reach(
    classes: list[type[Task]],
) -> None:
    result: Plan = plan(classes)
    layer = {name: i for i, names in enumerate(result.layers) for name in names}
    position = {name: i for i, name in enumerate(result.start_order)}
    requires = {cls.__name__: [d.__name__ for d in cls.DEPS] for cls in classes}
    assert sorted(result.start_order) == sorted(layer) == sorted(requires)
    for cls in classes:
        for dep in (*cls.DEPS, *cls.WANTS):
            assert layer[dep.__name__] < layer[cls.__name__]
            assert position[dep.__name__] < position[cls.__name__]
    for task in result.tasks:
        assert set(task.skips) == dependents(task.name, requires)
    # The staged stop: whatever is ordered after a task stops in an earlier stop layer.
    stop_layer = {name: i for i, names in enumerate(result.stop_layers) for name in names}
    stop_position = {name: i for i, name in enumerate(result.stop_order)}
    assert sorted(result.stop_order) == sorted(requires)
    for cls in classes:
        for dep in (*cls.DEPS, *cls.WANTS):
            assert stop_layer[cls.__name__] < stop_layer[dep.__name__]
            assert stop_position[cls.__name__] < stop_position[dep.__name__]


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "plan_target.py").write_text(
        textwrap.dedent(
            """
            from lifecycle import Service as RealService, Task

            class A(Task):
                LOOPLESS = True

            class B(Task):
                DEPS = (A,)
                def run_loop(self):
                    self.stop_event.wait(1)

            class Service:
                TASKS = (B,)

            class App(RealService):
                TASKS = (B,)

            class X(Task):
                LOOPLESS = True

            class Y(Task):
                LOOPLESS = True
                DEPS = (X,)

            X.WANTS = (Y,)

            class Twin(Task):
                LOOPLESS = True

            Other = type("Twin", (Task,), {"LOOPLESS": True})

            class Twins:
                TASKS = (Twin, Other)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "plan_target"
    sys.modules.pop("plan_target", None)


def test_cli_prints_layers_stop_order_and_skips(
    module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", f"{module}:Service"]) == 0
    out = capsys.readouterr().out
    assert "  1: A\n  2: B\n" in out
    assert "stop layers" in out and "  1: B\n  2: A (after B)\n" in out
    assert "stop order: B, A" in out
    assert "  A: B\n" in out and "  B: (nothing)\n" in out


def test_cli_json_is_the_plan(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--json", f"{module}:Service"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["layers"] == [["A"], ["B"]] and doc["stop_order"] == ["B", "A"]
    assert doc["stop_layers"] == [["B"], ["A"]]
    assert [t["stops_after"] for t in doc["tasks"]] == [["B"], []]


@pytest.mark.parametrize(("name", "message"), [("Y", "Y -> X -> Y"), ("Twins", "'Twin'")])
def test_cli_exits_2_for_cycles_and_duplicates_in_one_line(
    module: str, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    # A bad definition is bad input, as for `run` and `diagram`: exit 2, one line.
    assert main(["plan", f"{module}:{name}"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("tasks", [["B"], ["B,A"], ["A", "B"], ["B", ","]])
def test_cli_plans_a_selection_and_what_it_requires(
    module: str, capsys: pytest.CaptureFixture[str], tasks: list[str]
) -> None:
    assert main(["plan", "--json", f"{module}:App", "--tasks", *tasks]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["start_order"] == ["A", "B"]


def test_cli_plans_only_the_selection(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", f"{module}:App", "--tasks", "A"]) == 0
    out = capsys.readouterr().out
    assert f"plan of {module}:App --tasks A: 1 task" in out
    assert "stop order: A\n" in out


def test_cli_selection_is_the_one_run_would_make(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--json", "tests.services:SelfStopping", "--tasks", "Waiter"]) == 0
    doc = json.loads(capsys.readouterr().out)
    selected = SelfStopping.selected_task_classes(["Waiter"])
    assert [t["name"] for t in doc["tasks"]] == [c.__name__ for c in selected] == ["Waiter"]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (["Ghost"], "unknown task 'Ghost'; available: A, B"),
        (["A,Ghost"], "unknown task 'Ghost'; available: A, B"),
        ([","], "--tasks needs at least one task name"),
    ],
)
def test_cli_exits_2_for_an_unknown_or_missing_task_name(
    module: str, capsys: pytest.CaptureFixture[str], tasks: list[str], message: str
) -> None:
    assert main(["plan", f"{module}:App", "--tasks", *tasks]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_selects_only_among_the_tasks_of_a_service(
    module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", f"{module}:Service", "--tasks", "A"]) == 2
    assert "Service subclass" in capsys.readouterr().err


@pytest.mark.parametrize(
    "target", ["no_such_module_here:X", "plan_target:Nope", "plan_target", "plan_target:A.B"]
)
def test_cli_exits_2_for_a_bad_target(
    module: str, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    assert main(["plan", target]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_load_names_what_is_wrong() -> None:
    with pytest.raises(BadReference, match="expected MODULE:NAME"):
        load("nocolon")
    with pytest.raises(BadReference, match="has no attribute"):
        load("lifecycle:NoSuchThing")
    with pytest.raises(BadReference, match="importing 'no_such_module_here' raised"):
        load("no_such_module_here:X")
    assert load("lifecycle.task:Task") is Task


def test_plan_of_an_object_owning_a_collection_uses_that_collection() -> None:
    class Owner:
        TASKS = (A, E)  # the class-wide list; the instance selected fewer

        def __init__(self) -> None:
            self.tasks = Tasks([B])

    assert plan(Owner()).start_order == ("A", "B")
    assert plan(Owner).start_order == ("A", "E")
