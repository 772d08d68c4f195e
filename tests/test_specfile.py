"""Machines declared in TOML and JSON files, and references to machines (`lifecycle.specfile`)."""

from __future__ import annotations

import enum
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import Lifecycle, load_spec, resolve_spec
from lifecycle.errors import BadReference, IllegalTransition, InvalidSpec
from lifecycle.journal import Journal
from lifecycle.spec import SPECS, TASK, Edge, MachineSpec
from lifecycle.specfile import MAX_SPEC_BYTES, dump_spec, spec_from_dict, to_json, to_toml

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DOOR = FIXTURES / "door.toml"


def door_dict() -> dict[str, object]:
    return load_spec(DOOR).to_dict()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- loading -----------------------------------------------------------------------------------


def test_the_door_loads_from_toml_as_a_strict_machine() -> None:
    door = load_spec(DOOR)
    assert door.name == "door"
    assert [s.value for s in door.states] == ["closed", "open", "locked"]
    assert issubclass(door.states, enum.StrEnum) and door.states.__name__ == "DoorState"
    assert door.initial == "closed" and door.terminal == frozenset()
    assert {(s, t): d for s, t, d in door.edges()} == {
        ("closed", "open"): "open",
        ("open", "close"): "closed",
        ("closed", "lock"): "locked",
        ("locked", "unlock"): "closed",
    }
    lc = Lifecycle(door, "door-1", Journal())
    assert lc.fire("lock") == door.states.LOCKED
    with pytest.raises(IllegalTransition):
        lc.fire("open")


def test_a_json_file_loads_the_same_machine(tmp_path: Path) -> None:
    path = write(tmp_path, "door.json", json.dumps(door_dict()))
    assert load_spec(path).to_dict() == door_dict()


def test_the_json_document_lifecycle_spec_prints_for_one_machine_loads(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "lifecycle", "spec", "--spec", str(DOOR), "--json"],
        capture_output=True,
        check=True,
    ).stdout
    path = tmp_path / "door.json"
    path.write_bytes(printed)
    assert load_spec(path).to_dict() == door_dict()


def test_the_toml_lifecycle_spec_prints_loads_back(tmp_path: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "lifecycle", "spec", "--spec", str(DOOR), "--toml"],
        capture_output=True,
        check=True,
    ).stdout
    path = tmp_path / "again.toml"
    path.write_bytes(printed)
    assert load_spec(path).to_dict() == door_dict()


def test_a_printed_builtin_machine_loads_back_equal(tmp_path: Path) -> None:
    for spec in SPECS.values():
        for fmt in ("toml", "json"):
            path = write(tmp_path, f"{spec.name}.{fmt}", dump_spec(spec, fmt))
            assert load_spec(path).to_dict() == spec.to_dict()


def test_when_may_be_left_out(tmp_path: Path) -> None:
    doc = door_dict()
    for edge in doc["transitions"]:  # type: ignore[attr-defined]
        del edge["when"]
    path = write(tmp_path, "door.json", json.dumps(doc))
    assert {e.when for e in load_spec(path).transitions} == {""}


# -- what is refused, and how it is said -------------------------------------------------------


def problem_of(path: Path) -> str:
    with pytest.raises(InvalidSpec) as caught:
        load_spec(path)
    assert caught.value.spec == os.fspath(path)  # the error names the file
    assert os.fspath(path) in str(caught.value)
    return caught.value.problem


def with_changes(**changes: object) -> str:
    doc = door_dict()
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"initial": None}, "the machine lacks 'initial'"),
        ({"colour": "red"}, "unknown key(s) 'colour'"),
        ({"states": "closed"}, "'states' must be a list of strings, not a string"),
        ({"states": ["closed", 1]}, "'states' must hold only strings, not an integer"),
        ({"name": 3}, "'name' must be a string, not an integer"),
        ({"terminal": None}, "lacks 'terminal'"),
        ({"transitions": {}}, "'transitions' must be a list, not a table"),
        ({"states": ["closed", "open", "locked", "open"]}, "state 'open' is listed twice"),
        ({"states": ["closed", "open", "locked", "my state"]}, "'my state' is not usable"),
        ({"states": ["closed", "open", "locked", "_x"]}, "'_x' is not usable"),
        ({"states": ["closed", "open", "locked", "Open"]}, "differ only in case"),
        ({"initial": "ajar"}, "initial state 'ajar' is not a state"),
        ({"states": ["closed", "open", "locked", "broken"]}, "'broken' is unreachable"),
    ],
)
def test_a_bad_machine_object_is_an_invalid_spec_naming_the_problem(
    tmp_path: Path, changes: dict[str, object], expected: str
) -> None:
    assert expected in problem_of(write(tmp_path, "door.json", with_changes(**changes)))


def test_a_bad_transition_row_names_its_index(tmp_path: Path) -> None:
    doc = door_dict()
    doc["transitions"][2]["dest"] = ["open"]  # type: ignore[index]
    assert "transitions[2].dest must be a string, not a list" in problem_of(
        write(tmp_path, "door.json", json.dumps(doc))
    )
    del doc["transitions"][2]["dest"]  # type: ignore[index]
    assert "transitions[2] lacks 'dest'" in problem_of(
        write(tmp_path, "door.json", json.dumps(doc))
    )


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    text = DOOR.read_text().replace('dest = "locked"', 'dest = "locked', 1)
    problem = problem_of(write(tmp_path, "door.toml", text))
    line = text.splitlines().index('dest = "locked') + 1
    assert problem.startswith("not valid TOML") and f"line {line}" in problem


def test_a_json_syntax_error_names_its_line(tmp_path: Path) -> None:
    text = json.dumps(door_dict(), indent=2).replace('"initial"', "initial", 1)
    line = next(n for n, s in enumerate(text.splitlines(), 1) if "initial" in s)
    assert problem_of(write(tmp_path, "door.json", text)).startswith(f"line {line}: not valid JSON")


def test_nan_is_not_json(tmp_path: Path) -> None:
    assert "NaN is not a JSON value" in problem_of(write(tmp_path, "x.json", '{"name": NaN}'))


def test_a_file_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "door.toml"
    path.write_bytes(DOOR.read_bytes().replace(b"someone opens it", b"someone \xff it"))
    assert problem_of(path).endswith("not UTF-8")


def test_another_suffix_is_refused_before_reading(tmp_path: Path) -> None:
    for name in ("door.yaml", "door", "door.toml.bak"):
        assert "expected a .toml or .json file" in problem_of(write(tmp_path, name, "x"))


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.toml").mkdir()
    assert "it is a directory, not a regular file" in problem_of(tmp_path / "dir.toml")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    assert "it is a FIFO, not a regular file" in problem_of(fifo)


def test_a_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with path.open("wb") as out:
        out.write(b"#" * (MAX_SPEC_BYTES + 1))
    assert f"larger than {MAX_SPEC_BYTES} bytes" in problem_of(path)


def test_a_missing_file_is_an_invalid_spec(tmp_path: Path) -> None:
    assert "cannot read it" in problem_of(tmp_path / "nothing.toml")


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="expected a machine object"):
        spec_from_dict(["door"])


def test_a_json_spec_document_of_two_machines_is_refused(tmp_path: Path) -> None:
    doc = {"schema": 1, "machines": [door_dict(), door_dict()]}
    assert "of one machine; it has 2" in problem_of(write(tmp_path, "d.json", json.dumps(doc)))


# -- round trip --------------------------------------------------------------------------------

state_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
free_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@st.composite
def valid_specs(draw: st.DrawFn) -> MachineSpec:
    """A valid machine: a chain through every state (so each is reachable and not a trap unless
    terminal), plus extra edges between non-terminal states, arbitrary names and texts."""
    values = draw(st.lists(state_names, min_size=1, max_size=6, unique_by=str.upper))
    ends = draw(st.integers(0, 1)) if len(values) > 1 else 0
    terminal = set(values[len(values) - ends :])
    live = [v for v in values if v not in terminal]
    triggers = st.from_regex(r"[a-zé_][a-z0-9é_]{0,6}", fullmatch=True)
    edges = [
        Edge(draw(triggers), (values[i],), values[i + 1], draw(free_text))
        for i in range(len(values) - 1)
    ]
    if live:
        # Close the chain on the last live state, so that no live state is a trap.
        edges.append(Edge(draw(triggers), (live[-1],), values[0], draw(free_text)))
        for _ in range(draw(st.integers(0, 3))):
            sources = draw(st.lists(st.sampled_from(live), min_size=1, max_size=3, unique=True))
            edges.append(Edge(draw(triggers), sources, draw(st.sampled_from(values))))
    states = enum.StrEnum("S", [(v.upper(), v) for v in values])  # type: ignore[misc]
    try:
        return MachineSpec(draw(free_text.filter(bool)), states, values[0], terminal, edges)
    except InvalidSpec:
        from hypothesis import reject

        reject()  # two destinations for one (state, trigger): not a valid machine


@given(spec=valid_specs(), fmt=st.sampled_from(["toml", "json"]))
def test_any_valid_machine_printed_loads_back_as_it_was(
    tmp_path_factory: pytest.TempPathFactory, spec: MachineSpec, fmt: str
) -> None:
    path = tmp_path_factory.mktemp("spec") / f"machine.{fmt}"
    path.write_text(dump_spec(spec, fmt), encoding="utf-8")
    assert load_spec(path).to_dict() == spec.to_dict()


def test_to_toml_and_to_json_are_the_two_formats_of_dump_spec() -> None:
    assert dump_spec(TASK, "toml") == to_toml(TASK)
    assert dump_spec(TASK, "json") == to_json(TASK)
    with pytest.raises(ValueError, match="unknown machine file format 'yaml'"):
        dump_spec(TASK, "yaml")


# -- references --------------------------------------------------------------------------------


def test_a_reference_to_a_file_loads_it() -> None:
    assert resolve_spec(str(DOOR)).to_dict() == door_dict()


def test_a_module_reference_takes_the_spec_attribute() -> None:
    assert resolve_spec("lifecycle.spec:TASK") is TASK


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("lifecycle.spec:SPECS", "expected a lifecycle.MachineSpec, got dict"),
        ("lifecycle.spec:NOPE", "has no attribute 'NOPE'"),
        ("no_such_module_here:X", "importing 'no_such_module_here' raised"),
        ("lifecycle.spec", "expected MODULE:NAME"),
        ("missing/door.toml", "cannot read it"),
    ],
)
def test_a_bad_reference_is_a_bad_reference_naming_it(reference: str, problem: str) -> None:
    with pytest.raises(BadReference) as caught:
        resolve_spec(reference)
    assert caught.value.reference == reference and problem in str(caught.value)


def test_a_bad_machine_file_reference_keeps_the_invalid_spec_as_cause(tmp_path: Path) -> None:
    path = write(tmp_path, "door.json", with_changes(initial=None))
    with pytest.raises(BadReference, match="lacks 'initial'") as caught:
        resolve_spec(str(path))
    assert isinstance(caught.value.__cause__, InvalidSpec)


# -- the command -------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lifecycle", *args], capture_output=True, text=True, check=False
    )


def test_lifecycle_spec_prints_a_file_machine_table() -> None:
    done = run_cli("spec", "--spec", str(DOOR))
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == "door (initial: closed; terminal: none)"
    assert "unlock   locked  closed  unlocked with the key" in done.stdout


def test_lifecycle_spec_with_a_bad_reference_exits_2_naming_it(tmp_path: Path) -> None:
    done = run_cli("spec", "--spec", str(tmp_path / "nothing.toml"))
    assert done.returncode == 2
    assert f"--spec {tmp_path / 'nothing.toml'}: cannot read it" in done.stderr


def test_toml_output_needs_one_machine() -> None:
    assert run_cli("spec", "--toml").returncode == 2


# -- the README --------------------------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def _own_machines_blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### In a file; audit and diagrams", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_the_readme_door_is_the_fixture_door(tmp_path: Path) -> None:
    (toml_text,) = _own_machines_blocks("toml")
    path = write(tmp_path, "door.toml", toml_text)
    assert load_spec(path).to_dict() == door_dict()


def test_the_readme_door_example_runs_and_audits_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (code,) = _own_machines_blocks("python")
    write(tmp_path, "door.toml", DOOR.read_text())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {})
    done = run_cli("audit", "door.jsonl", "--spec", "door.toml")
    assert done.returncode == 0, done.stdout + done.stderr
