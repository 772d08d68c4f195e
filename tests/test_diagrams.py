"""Diagrams: machines, annotated machines and dependency graphs as Mermaid, DOT and SVG.

DOT output is checked by Graphviz itself (``dot`` parses it and the SVG shows the names);
Mermaid output here by a structural check of the grammar this module emits, and by Mermaid's
own parser in ``test_mermaid_parser.py``. Tests that need ``dot`` are skipped when it is not
installed, and fail in CI, which installs it (`tests.external`).
"""

from __future__ import annotations

import enum
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import diagrams
from lifecycle.cli import main
from lifecycle.collection import Tasks
from lifecycle.diagrams import (
    STATE_COLOURS,
    DependencyDiagram,
    DiagramError,
    GraphvizNotFound,
    MachineDiagram,
    dependency_diagram,
    dependency_graph,
    journal_dependency_diagram,
    journal_machine_diagram,
    machine_diagram,
    mermaid,
    printable,
    shorten,
)
from lifecycle.errors import InvalidSpec
from lifecycle.journal import Journal, JournalFormatError, Transition
from lifecycle.spec import SPECS, TASK, Edge, MachineSpec, TaskState
from lifecycle.task import SkipTask, Task
from tests.external import unavailable

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def graphviz() -> None:
    if not diagrams.has_graphviz():
        unavailable("Graphviz's dot is not installed (apt-get install graphviz)")


needs_dot = pytest.mark.usefixtures("graphviz")
SVG = "{http://www.w3.org/2000/svg}"

# -- helpers -----------------------------------------------------------------------------------


def run_dot(text: str, fmt: str = "json") -> str:
    """``text`` through ``dot -T<fmt>``; fails the test on any complaint from Graphviz."""
    done = subprocess.run(
        ["dot", f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr == b"", done.stderr.decode(errors="replace")
    return done.stdout.decode()


def dot_graph(text: str) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, dict[str, Any]]]]:
    """The nodes (name -> attributes) and edges (tail, head, attributes) Graphviz reads."""
    doc = json.loads(run_dot(text, "json"))
    objects = doc.get("objects", [])
    names = {o["_gvid"]: o["name"] for o in objects}
    nodes = {o["name"]: o for o in objects if "nodes" not in o}
    edges = [(names[e["tail"]], names[e["head"]], e) for e in doc.get("edges", [])]
    return nodes, edges


def svg_node_texts(svg_text: str) -> dict[str, list[str]]:
    """Node id -> the lines of text the SVG shows in that node."""
    root = ET.fromstring(svg_text)
    shown = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            title = group.find(f"{SVG}title")
            assert title is not None
            shown[title.text or ""] = [t.text or "" for t in group.iter(f"{SVG}text")]
    return shown


_ENTITY = re.compile(r"#(\d+);")
_ID = r"[A-Za-z][A-Za-z0-9_]*"
# Text as emitted: no quote, no newline, no raw '#' other than entity codes, no '-->' or ':'.
_TEXT = r"(?:[A-Za-z0-9 _.,()/+=?!@*']|#\d+;)*"
_MACHINE_LINE = [
    re.compile(p)
    for p in (
        r"stateDiagram-v2",
        rf"    classDef {_ID} [a-z-]+:[#0-9a-z]+(,[a-z-]+:[#0-9a-z]+)*",
        rf'    state "{_TEXT}" as {_ID}',
        rf"    (\[\*\]|{_ID}) --> (\[\*\]|{_ID})( : {_TEXT})?",
        rf"    {_ID} : {_TEXT}",
        rf"    class {_ID}(,{_ID})* {_ID}",
    )
]
_FLOW_TEXT = rf"(?:{_TEXT[3:-2]}|<br/>)*"
_FLOW_LINE = [
    re.compile(p)
    for p in (
        r"flowchart TD",
        rf"    classDef {_ID} [a-z-]+:[#0-9a-z ]+(,[a-z-]+:[#0-9a-z ]+)*",
        rf'    {_ID}\["{_FLOW_TEXT}"\]',
        rf"    {_ID} (-->|-\.->) {_ID}",
        rf"    class {_ID}(,{_ID})* {_ID}",
    )
]


def decode_mermaid(text: str) -> str:
    return _ENTITY.sub(lambda m: chr(int(m.group(1))), text.replace("<br/>", "\n"))


def _shortened(text: str) -> str:
    """``text`` as a Mermaid label shows it."""
    return shorten([text])[text]


def mermaid_problems(text: str, grammar: Sequence[re.Pattern[str]]) -> list[str]:
    """Lines that match none of ``grammar``, and ids used but never declared."""
    problems = [line for line in text.splitlines() if not any(g.fullmatch(line) for g in grammar)]
    if not text.endswith("\n") or not text.isascii():
        problems.append("not ASCII text ending with a newline")
    declared = set(re.findall(rf'^    state "[^"]*" as ({_ID})$', text, re.M))
    declared |= set(re.findall(rf'^    ({_ID})\["', text, re.M))
    used = set(re.findall(rf"^    ({_ID}) (?:-->|-\.->) ", text, re.M))
    used |= set(re.findall(rf"^    \S+ (?:-->|-\.->) ({_ID})", text, re.M))
    problems += [f"undeclared id {name}" for name in sorted(used - declared)]
    return problems


def declared_labels(text: str) -> dict[str, str]:
    """Mermaid id -> decoded label, for both diagram kinds."""
    labels = {
        i: decode_mermaid(t) for t, i in re.findall(rf'^    state "(.*)" as ({_ID})$', text, re.M)
    }
    labels |= {i: decode_mermaid(t) for i, t in re.findall(rf'^    ({_ID})\["(.*)"\]$', text, re.M)}
    return labels


def record(
    seq: int,
    subject: str,
    trigger: str,
    source: str,
    dest: str | None,
    mono: int,
    kind: str = "task",
) -> Transition:
    return Transition(
        seq, 0.0, mono, kind, subject, trigger, source, dest, dest is not None, None, "t"
    )


# -- tasks used by the live tests --------------------------------------------------------------


class Store(Task):
    LOOPLESS = True


class Cache(Task):
    LOOPLESS = True

    def init_task(self) -> None:
        raise SkipTask("no cache configured")


class Api(Task):
    LOOPLESS = True
    DEPS = (Store,)
    WANTS = (Cache,)


class Warmer(Task):
    LOOPLESS = True
    DEPS = (Cache,)


class FakeService:
    TASKS = (Api, Warmer, Cache)
    name = "shop"

    def __init__(self) -> None:
        self.tasks = Tasks(self.TASKS, name=self.name)


@pytest.fixture
def ran(tmp_path: Path) -> Iterator[tuple[Tasks, Path]]:
    """A collection of the tasks above, run and stopped, journaled to a file."""
    path = tmp_path / "run.jsonl"
    with Journal(path) as journal:
        tasks = Tasks([Api, Warmer, Cache], journal=journal, name="shop")
        tasks.create()
        tasks.init()
        tasks.start()
        tasks.stop()
        tasks.join(timeout=10)
    yield tasks, path


# -- machines ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_machine_mermaid_draws_exactly_the_spec_edges(spec: MachineSpec) -> None:
    text = mermaid(machine_diagram(spec))
    assert mermaid_problems(text, _MACHINE_LINE) == []
    labels = declared_labels(text)
    assert sorted(labels.values()) == sorted(s.value for s in spec.states)
    drawn = set()
    for source, dest, label in re.findall(rf"^    ({_ID}) --> ({_ID}) : (.*)$", text, re.M):
        for trigger in decode_mermaid(label).split(", "):
            drawn.add((labels[source], trigger, labels[dest]))
    assert drawn == set(spec.edges())
    ends = re.findall(rf"^    ({_ID}) --> \[\*\]$", text, re.M)
    assert {labels[i] for i in ends} == set(spec.terminal)
    assert re.findall(rf"^    \[\*\] --> ({_ID})$", text, re.M) == [f"s_{spec.initial}"]


@needs_dot
@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_machine_dot_draws_exactly_the_spec_edges(spec: MachineSpec) -> None:
    nodes, edges = dot_graph(diagrams.dot(machine_diagram(spec)))
    label = {name: node.get("label") for name, node in nodes.items()}
    drawn = {
        (label[tail], trigger, label[head])
        for tail, head, e in edges
        if tail != "__initial"
        for trigger in e["label"].split(", ")
    }
    assert drawn == set(spec.edges())
    assert [label[h] for t, h, _ in edges if t == "__initial"] == [spec.initial]
    doubled = {label[n] for n, node in nodes.items() if node.get("peripheries") == "2"}
    assert doubled == set(spec.terminal)


def test_triggers_sharing_source_and_dest_share_one_arrow() -> None:
    class S(enum.StrEnum):
        A = "a"
        B = "b"

    spec = MachineSpec("two", S, "a", {"b"}, (Edge("go", ("a",), "b"), Edge("jump", ("a",), "b")))
    diagram = machine_diagram(spec)
    assert [(a.source, a.dest, a.label) for a in diagram.arrows] == [("a", "b", "go, jump")]


@pytest.mark.parametrize("state", [s.value for s in TaskState])
def test_current_state_is_highlighted_alone(state: str) -> None:
    diagram = machine_diagram(TASK, current=state)
    assert f"    class s_{state} current\n" in mermaid(diagram)
    filled = [line for line in diagrams.dot(diagram).splitlines() if "filled" in line]
    assert len(filled) == 1
    assert filled[0].startswith(f'    "s_{state}" ')


def test_highlighting_an_unknown_state_raises_invalid_spec() -> None:
    with pytest.raises(InvalidSpec, match="'sleeping' is not a state"):
        machine_diagram(TASK, current="sleeping")


def test_output_is_byte_stable() -> None:
    for spec in SPECS.values():
        assert mermaid(machine_diagram(spec)) == mermaid(machine_diagram(spec))
        assert diagrams.dot(machine_diagram(spec)) == diagrams.dot(machine_diagram(spec))
    assert "0x" not in diagrams.dot(dependency_diagram(FakeService()))


# -- escaping ----------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12)
edge_cases = st.sampled_from(['"', "-->", "{}", "a\nb", "\\", "&amp;", "#35;", "%%", "é😀", "\x00"])
task_names = st.lists(st.one_of(names, edge_cases), min_size=1, max_size=6, unique=True)


@st.composite
def graphs(draw: st.DrawFn) -> DependencyDiagram:
    """A dependency graph of arbitrary names, arrows and (some unknown) states."""
    tasks = draw(task_names)
    info = {
        name: {
            "deps": draw(st.lists(st.sampled_from(tasks), max_size=3, unique=True)),
            "wants": draw(st.lists(st.one_of(st.sampled_from(tasks), names), max_size=2)),
        }
        for name in tasks
    }
    states = {
        name: draw(st.one_of(st.sampled_from([s.value for s in TaskState]), names))
        for name in tasks
    }
    return dependency_graph(info, states, title=draw(names))


@st.composite
def machines(draw: st.DrawFn) -> MachineSpec:
    """A chain machine whose state values are arbitrary text, and unicode triggers."""
    values = draw(st.lists(st.one_of(names, edge_cases), min_size=2, max_size=5, unique=True))
    triggers = draw(
        st.lists(
            st.from_regex(r"[a-zé_][a-z0-9é_]{0,6}", fullmatch=True),
            min_size=len(values) - 1,
            max_size=len(values) - 1,
        )
    )
    states = enum.StrEnum("States", [(f"S{i}", v) for i, v in enumerate(values)])  # type: ignore[misc]
    edges = [Edge(t, (values[i],), values[i + 1]) for i, t in enumerate(triggers)]
    return MachineSpec(draw(names), states, values[0], {values[-1]}, edges)


def annotated(spec: MachineSpec, junk: Sequence[tuple[str, str]]) -> MachineDiagram:
    """``spec``'s diagram from a journal of one walk down the chain plus refusals ``junk``."""
    records = [
        record(i + 1, "x", t, src, dest, 1000 * i, kind=spec.name)
        for i, (src, t, dest) in enumerate(spec.edges())
    ]
    n = len(records)
    records += [
        record(n + i + 1, "y", t, s, None, 0, kind=spec.name) for i, (s, t) in enumerate(junk)
    ]
    return journal_machine_diagram(spec, ({}, records))


@given(st.lists(graphs(), min_size=1, max_size=4))
def test_mermaid_of_any_names_is_well_formed_and_round_trips(
    batch: list[DependencyDiagram],
) -> None:
    for diagram in batch:
        text = mermaid(diagram)
        assert mermaid_problems(text, _FLOW_LINE) == []
        shown = sorted(declared_labels(text).values())
        names = shorten(name for name, _ in diagram.states)
        expected = sorted(
            names[name] + "\n" + _shortened(state if state is not None else "(not registered)")
            for name, state in diagram.states
        )
        assert shown == expected


@given(machines(), st.lists(st.tuples(names, names), max_size=3))
def test_mermaid_of_any_machine_is_well_formed_and_round_trips(
    spec: MachineSpec, junk: list[tuple[str, str]]
) -> None:
    for diagram in (machine_diagram(spec, current=spec.initial), annotated(spec, junk)):
        text = mermaid(diagram)
        assert mermaid_problems(text, _MACHINE_LINE) == []
        labels = declared_labels(text)
        # a state diagram's labels are one line: newlines are shown as spaces
        states = shorten(s.value for s in spec.states)
        assert sorted(labels.values()) == sorted(
            [states[s.value].replace("\n", " ") for s in spec.states]
            + (["refused triggers"] if diagram.aside else [])
        )
        described = [decode_mermaid(t) for t in re.findall(r"^    aside : (.*)$", text, re.M)]
        if diagram.aside:
            refusals = [f"{s}: {t} ({n})" for (s, t), n in Counter(junk).items()]
            asides = shorten(refusals)
            assert sorted(described) == sorted(asides[r].replace("\n", " ") for r in refusals)


@needs_dot
@given(st.lists(graphs(), min_size=1, max_size=4))
def test_dot_of_any_names_parses_and_shows_the_names(batch: list[DependencyDiagram]) -> None:
    # One dot call per batch of graphs keeps this fast.
    text = "".join(diagrams.dot(d) for d in batch)
    shown = [svg_node_texts(part) for part in _split_svgs(run_dot(text, "svg"))]
    assert len(shown) == len(batch)
    for diagram, nodes in zip(batch, shown, strict=True):
        ids = {name: node for name, node in nodes.items()}
        assert len(ids) == len(diagram.states)
        expected = sorted(
            _lines(printable(name) + "\n" + printable(state or "(not registered)"))
            for name, state in diagram.states
        )
        assert sorted(_lines(*texts) for texts in nodes.values()) == expected


@needs_dot
@given(machines(), st.lists(st.tuples(names, names), max_size=3))
def test_dot_of_any_machine_parses_and_shows_the_states(
    spec: MachineSpec, junk: list[tuple[str, str]]
) -> None:
    plain, notes = machine_diagram(spec, current=spec.initial), annotated(spec, junk)
    text = diagrams.dot(plain) + diagrams.dot(notes)
    first, second = (svg_node_texts(p) for p in _split_svgs(run_dot(text, "svg")))
    states = sorted(_lines(printable(s.value)) for s in spec.states)
    assert sorted(_lines(*v) for k, v in first.items() if k != "__initial") == states
    assert _lines(*second.get("aside", [])) == _lines(*(printable(x) for x in notes.aside))


def _split_svgs(text: str) -> list[str]:
    parts = text.split("<?xml")
    return [
        "<?xml" + p.split("<!DOCTYPE", 1)[0] + "<!DOCTYPE" + p.split("<!DOCTYPE", 1)[1]
        for p in parts[1:]
    ]


def _lines(*texts: str) -> list[str]:
    """The non-blank lines of ``texts``, stripped: Graphviz draws no blank line of text and may
    trim the blanks at the ends of a line, and it writes runs of spaces as no-break spaces;
    every other character must be shown."""
    lines = (line.replace("\xa0", " ").strip() for text in texts for line in text.split("\n"))
    return [line for line in lines if line]


def test_printable_shows_control_and_format_characters_as_escapes() -> None:
    assert printable("a\x00b\u202ec\nd\u2028") == "a\\x00b\\u202ec\nd\\u2028"
    assert printable('é😀 {}-->"') == 'é😀 {}-->"'


# -- dependency graphs -------------------------------------------------------------------------


def test_every_task_state_has_its_own_colour() -> None:
    assert set(STATE_COLOURS) == set(TaskState)
    assert len(set(STATE_COLOURS.values())) == len(TaskState)


def test_live_graph_colours_tasks_by_state_and_dashes_wants(ran: tuple[Tasks, Path]) -> None:
    tasks, _ = ran
    diagram = dependency_diagram(tasks)
    assert dict(diagram.states) == {
        "Api": "stopped",
        "Cache": "skipped",
        "Store": "stopped",
        "Warmer": "skipped",
    }
    assert [(a.source, a.dest, a.label) for a in diagram.arrows] == [
        ("Api", "Cache", "wants"),
        ("Api", "Store", "deps"),
        ("Warmer", "Cache", "deps"),
    ]
    text = mermaid(diagram)
    assert "    t_Api -.-> t_Cache\n" in text
    assert "    t_Api --> t_Store\n" in text
    assert "    class t_Cache,t_Warmer skipped\n" in text
    dot_text = diagrams.dot(diagram)
    assert f'fillcolor="{STATE_COLOURS[TaskState.SKIPPED]}"' in _line(dot_text, '"t_Cache" [')
    assert "style=dashed" in _line(dot_text, '"t_Api" -> "t_Cache"')
    assert "style=solid" in _line(dot_text, '"t_Api" -> "t_Store"')


def _line(text: str, start: str) -> str:
    (line,) = [x for x in text.splitlines() if x.strip().startswith(start)]
    return line


def test_graph_of_a_service_object_class_or_task_class() -> None:
    service = FakeService()
    assert dependency_diagram(service) == dependency_diagram(service.tasks)
    from_class = dependency_diagram(FakeService)
    assert from_class.title == "dependencies of shop"
    assert {state for _, state in from_class.states} == {"registered"}
    # A task class brings what it requires and what it wants.
    assert [name for name, _ in dependency_diagram(Api).states] == ["Api", "Cache", "Store"]


def test_graph_of_a_real_service_is_titled_with_its_name() -> None:
    service_module = pytest.importorskip("lifecycle.service")

    class Shop(service_module.Service):  # type: ignore[name-defined,misc]
        TASKS = (Api, Warmer)
        name = "shop"

    live = dependency_diagram(Shop())
    assert live.title == "dependencies of shop"
    assert (live.states, live.arrows) == (
        dependency_diagram(Shop).states,
        dependency_diagram(Shop).arrows,
    )


def test_graph_of_something_else_raises_diagram_error() -> None:
    with pytest.raises(DiagramError, match="has no dependency graph"):
        dependency_diagram(object())


def test_observed_graph_from_a_journal_matches_the_live_one(ran: tuple[Tasks, Path]) -> None:
    tasks, path = ran
    live, observed = dependency_diagram(tasks), journal_dependency_diagram(path)
    assert (observed.states, observed.arrows) == (live.states, live.arrows)
    assert journal_dependency_diagram(tasks.journal).states == live.states


def test_graph_order_does_not_depend_on_registration_order() -> None:
    one = {"b": {"deps": ["a"], "wants": []}, "a": {"deps": [], "wants": ["c"]}}
    two = {"a": {"deps": [], "wants": ["c"]}, "b": {"deps": ["a"], "wants": []}}
    assert mermaid(dependency_graph(one)) == mermaid(dependency_graph(two))
    assert dict(dependency_graph(one).states) == {"a": None, "b": None, "c": None}


def test_malformed_journal_tasks_raise_journal_format_error() -> None:
    with pytest.raises(JournalFormatError, match="deps is not a list"):
        journal_dependency_diagram(({"tasks": {"a": {"deps": "b"}}}, []))
    with pytest.raises(JournalFormatError, match="'tasks' is not an object"):
        journal_dependency_diagram(({"tasks": ["a"]}, []))


# -- journal-annotated machines ----------------------------------------------------------------


def test_journal_machine_counts_edges_times_and_refusals() -> None:
    records = [
        record(1, "a", "create", "registered", "created", 100),
        record(2, "b", "create", "registered", "created", 150),
        record(3, "a", "init", "created", "initialized", 300),
        record(4, "b", "skip", "created", "skipped", 1150),
        record(5, "a", "start", "initialized", "running", 2_000_300),
        record(6, "a", "start", "running", None, 2_000_400),
        record(7, "a", "start", "running", None, 2_000_500),
        record(8, "b", "init", "skipped", None, 2_000_600),
        record(9, "c", "fail", "running", "failed", 9),
        record(10, "svc", "start", "new", "starting", 5, kind="service"),
    ]
    diagram = journal_machine_diagram(TASK, ({}, records))
    labels = {(a.source, a.dest): a.label for a in diagram.arrows}
    assert labels[("registered", "created")] == "create (2)"
    assert labels[("created", "skipped")] == "skip (1)"
    assert labels[("running", "stopped")] == "finish (0)"
    assert {(a.source, a.dest) for a in diagram.arrows if a.faint} == {
        k for k, v in labels.items() if v.endswith("(0)")
    }
    assert diagram.notes["created"] == ("2 visits", "total 1.2 us, longest 1 us")
    assert diagram.notes["initialized"] == ("1 visit", "total 2 ms, longest 2 ms")
    assert diagram.notes["running"] == ("2 visits",)
    assert diagram.aside == ("running: start (2)", "skipped: init (1)")
    assert "stopping" in diagram.unvisited
    assert diagram.title == "task machine: 3 subjects, 6 transitions, 3 refused"
    text = mermaid(diagram)
    assert "    aside : running#58; start (2)\n" in text
    assert "    s_created : total 1.2 us, longest 1 us\n" in text


def test_journal_machine_lists_moves_off_the_spec_apart() -> None:
    records = [record(1, "a", "create", "registered", "running", 1)]
    diagram = journal_machine_diagram(TASK, ({}, records))
    assert diagram.aside == ("not in spec: registered -create-> running (1)",)
    assert all(a.label.endswith("(0)") for a in diagram.arrows)


def test_journal_machine_of_a_real_run_counts_every_fired_trigger(ran: tuple[Tasks, Path]) -> None:
    tasks, path = ran
    fired = [r for r in tasks.journal.records if r.kind == "task" and r.ok]
    diagram = journal_machine_diagram(TASK, path)
    counted = sum(int(n) for a in diagram.arrows for n in re.findall(r"\((\d+)\)", a.label))
    assert counted == len(fired) > 0
    assert diagram.aside == ()


# -- SVG ---------------------------------------------------------------------------------------


def test_svg_without_graphviz_names_the_missing_program() -> None:
    with pytest.raises(GraphvizNotFound, match="'no-such-dot-program' program is not installed"):
        diagrams.svg(machine_diagram(TASK), program="no-such-dot-program")


@needs_dot
def test_svg_is_rendered_by_dot() -> None:
    image = diagrams.svg(machine_diagram(TASK))
    root = ET.fromstring(image)
    assert root.tag == f"{SVG}svg"
    assert "running" in svg_node_texts(image.decode())["s_running"]


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-dot"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.skipif(sys.platform == "win32", reason="shell script stands in for dot")
def test_svg_reports_a_failing_or_hanging_dot(tmp_path: Path) -> None:
    failing = _script(tmp_path, "echo 'Error: syntax error in line 1' >&2; exit 3")
    with pytest.raises(DiagramError, match=r"failed \(exit 3\): Error: syntax error in line 1"):
        diagrams.svg(machine_diagram(TASK), program=failing)
    hanging = _script(tmp_path, "exec sleep 30")
    with pytest.raises(DiagramError, match=r"did not finish within 0\.3s"):
        diagrams.svg(machine_diagram(TASK), program=hanging, timeout=0.3)


def test_render_rejects_an_unknown_format() -> None:
    with pytest.raises(DiagramError, match="unknown diagram format 'png'"):
        diagrams.render(machine_diagram(TASK), "png")


# -- checked-in files --------------------------------------------------------------------------


def test_committed_diagrams_match_a_fresh_generation(tmp_path: Path) -> None:
    written = diagrams.write_all(tmp_path, svgs=False)
    fresh = {p.name: p.read_text(encoding="utf-8") for p in written}
    committed = {
        p.name: p.read_text(encoding="utf-8")
        for p in (ROOT / "diagrams").iterdir()
        if p.suffix in (".mmd", ".dot")
    }
    assert sorted(committed) == sorted(fresh), "run `lifecycle diagram --all diagrams/`"
    for name, text in fresh.items():
        assert committed[name] == text, (
            f"diagrams/{name} is stale: run `lifecycle diagram --all diagrams/`"
        )


def test_write_all_includes_the_demo_service_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagrams, "DEMO_SERVICE", f"{__name__}:FakeService")
    written = diagrams.write_all(tmp_path, svgs=False)
    assert tmp_path / "demo-dependencies.mmd" in written
    expected = mermaid(dependency_diagram(FakeService))
    assert (tmp_path / "demo-dependencies.mmd").read_text(encoding="utf-8") == expected


def test_write_all_skips_the_demo_while_its_module_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagrams, "DEMO_SERVICE", "lifecycle.no_such_demo_xyz:Demo")
    written = diagrams.write_all(tmp_path, svgs=False)
    assert sorted(p.name for p in written) == sorted(
        f"{m}{s}" for m in SPECS for s in (".dot", ".mmd")
    )


def readme_block() -> str:
    """The README text between the diagram markers, as generated from the specs."""
    parts = [
        "",
        "The three machines, drawn from `lifecycle.spec` (regenerate the files in `diagrams/` with",
        "`lifecycle diagram --all diagrams/`; terminal states have a thick border):",
        "",
    ]
    for spec in SPECS.values():
        parts += [
            f"**{spec.name.capitalize()}**",
            "",
            "```mermaid",
            mermaid(machine_diagram(spec)).rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(parts)


def test_readme_shows_each_machine_as_generated() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- diagrams:begin -->", 1)[1].split("<!-- diagrams:end -->", 1)[0]
    assert block == readme_block()


# -- command line ------------------------------------------------------------------------------


def test_cli_prints_a_machine(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["diagram", "service"]) == 0
    assert capsysbinary.readouterr().out.decode() == mermaid(machine_diagram(SPECS["service"]))
    assert main(["diagram", "task", "--format", "dot", "--highlight", "running"]) == 0
    assert capsysbinary.readouterr().out.decode() == diagrams.dot(machine_diagram(TASK, "running"))


def test_cli_takes_the_format_from_the_out_suffix(tmp_path: Path) -> None:
    out = tmp_path / "deps.dot"
    assert main(["diagram", "--deps", f"{__name__}:FakeService", "--out", str(out)]) == 0
    assert out.read_text() == diagrams.dot(dependency_diagram(FakeService))


def test_cli_draws_from_a_journal(ran: tuple[Tasks, Path], tmp_path: Path) -> None:
    _, path = ran
    out = tmp_path / "o.mmd"
    assert main(["diagram", "task", "--journal", str(path), "--out", str(out)]) == 0
    assert out.read_text() == mermaid(journal_machine_diagram(TASK, path))
    assert main(["diagram", "--journal", str(path), "--out", str(out)]) == 0
    assert out.read_text() == mermaid(journal_dependency_diagram(path))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diagram", "bogus"], "unknown machine 'bogus'"),
        (["diagram", "--deps", "no_colon"], "expected MODULE:NAME"),
        (["diagram", "--deps", "no_such_module_xyz:X"], "importing 'no_such_module_xyz' raised"),
        (["diagram", "--deps", "lifecycle.spec:Nope"], "has no attribute 'Nope'"),
        (["diagram", "--deps", "lifecycle.spec:TASK"], "has no dependency graph"),
        (["diagram", "--journal", "/no/such/journal.jsonl"], "cannot read"),
        (["diagram", "task", "--format", "png"], "unknown format 'png'"),
        (["diagram"], "nothing to draw"),
        (["diagram", "task", "--deps", "x:Y"], "not both"),
        (["diagram", "--all", "d", "task"], "--all DIR takes no machine"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_rejects_a_journal_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["diagram", "task", "--journal", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "line 1: not JSON" in err and err.count("\n") == 1


@needs_dot
def test_cli_all_writes_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagram", "--all", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"{m}{s}" for m in _expected_stems() for s in (".mmd", ".dot", ".svg"))
    assert capsys.readouterr().out.count("\n") == len(names)


def _expected_stems() -> list[str]:
    demo = importlib.util.find_spec("lifecycle.demo") is not None
    return [*SPECS, *(["demo-dependencies"] if demo else [])]


def test_cli_all_without_graphviz_writes_text_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["diagram", "--all", str(tmp_path / "out")]) == 1
    assert "'dot' program is not installed" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.svg"))
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()).count(".mmd") == len(
        _expected_stems()
    )
    assert os.environ["PATH"] == str(tmp_path / "empty")


# -- Mermaid's text limit ----------------------------------------------------------------------


def test_two_5000_character_task_names_stay_within_mermaids_text_limit() -> None:
    long_a, long_b = "é" * 4999 + "a", "é" * 4999 + "b"
    graph = dependency_graph({long_a: {"deps": [long_b]}, long_b: {}})
    text = mermaid(graph)
    assert len(text) <= diagrams.MERMAID_MAX_TEXT_SIZE
    names = sorted(label.split("\n")[0] for label in declared_labels(text).values())
    assert len(set(names)) == 2
    assert all(name.startswith("é" * 10) and "…" in name for name in names)


def test_shorten_keeps_short_labels_and_cuts_long_ones_visibly() -> None:
    long = "x" * 100
    labels = shorten(["short", long, "a\x00"])
    assert labels["short"] == "short"
    assert labels["a\x00"] == "a\\x00"
    assert len(labels[long]) == diagrams.MERMAID_LABEL_LIMIT
    assert re.fullmatch(r"x+…[0-9a-f]{8}", labels[long])
    assert shorten([long]) == {long: labels[long]}, "a label does not depend on its neighbours"


def test_shorten_tells_apart_texts_that_would_be_shown_alike() -> None:
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
    imitation = shorten([long_a])[long_a]  # a short name spelled like another's label
    for group in (["\x00", "\\x00"], [long_a, long_b, imitation]):
        labels = shorten(group)
        assert len(set(labels.values())) == len(group), labels
        assert all("…" in labels[text] for text in group if len(printable(text)) > 60)


# What a name may repeat: Mermaid's quotes, brackets, comments, arrows and entities, a newline,
# characters written as entity codes or escapes.
hostile_units = st.sampled_from(
    ["\n", " a", "\x00", "\u202e", "\"'", "[](){}", "%%", "é😀", "-->#;", "<br/>&", "\\"]
)
hostile_names = st.one_of(
    st.text(min_size=1, max_size=20),
    st.builds(lambda unit, n, tail: unit * n + tail, hostile_units, st.integers(1, 5000), names),
)


@given(st.lists(hostile_names, max_size=12, unique=True), st.sampled_from([20, 60]))
def test_shorten_gives_distinct_labels_that_show_where_they_were_cut(
    texts: list[str], limit: int
) -> None:
    labels = shorten(texts, limit)
    assert sorted(labels) == sorted(texts)
    assert len(set(labels.values())) == len(texts)
    for text, label in labels.items():
        shown = printable(text)
        if label != shown:
            head, ellipsis, digest = label.rpartition("…")
            assert ellipsis and re.fullmatch(r"[0-9a-f]{8,64}", digest), label
            assert shown.startswith(head) and head
        if len(shown) > limit:
            assert label != shown and len(label) <= limit + 56


@given(st.lists(hostile_names, min_size=1, max_size=8, unique=True), st.data())
def test_mermaid_of_hostile_task_names_fits_mermaids_limit_with_distinct_labels(
    tasks: list[str], data: st.DataObject
) -> None:
    info = {
        name: {"deps": data.draw(st.lists(st.sampled_from(tasks), max_size=3))} for name in tasks
    }
    states = {name: data.draw(st.sampled_from([s.value for s in TaskState])) for name in tasks}
    text = mermaid(dependency_graph(info, states))
    assert len(text) <= diagrams.MERMAID_MAX_TEXT_SIZE
    assert mermaid_problems(text, _FLOW_LINE) == []
    shown = [label.rsplit("\n", 1)[0] for label in declared_labels(text).values()]
    assert len(shown) == len(set(shown)) == len(tasks)


@given(st.lists(hostile_names, min_size=2, max_size=6, unique=True), st.data())
def test_mermaid_of_hostile_machines_and_journals_fits_mermaids_limit(
    values: list[str], data: st.DataObject
) -> None:
    states = enum.StrEnum("States", [(f"S{i}", v) for i, v in enumerate(values)])  # type: ignore[misc]
    # triggers are identifiers (the spec checks), but may be long and not ASCII
    trigger = st.builds(
        lambda unit, n: "t" + unit * n, st.sampled_from(["é", "_", "x1"]), st.integers(0, 5000)
    )
    triggers = data.draw(st.lists(trigger, min_size=len(values) - 1, max_size=len(values) - 1))
    spec = MachineSpec(
        "hostile",
        states,
        values[0],
        {values[-1]},
        [Edge(t, (values[i],), values[i + 1]) for i, t in enumerate(triggers)],
    )
    junk = data.draw(st.lists(st.tuples(hostile_names, hostile_names), max_size=4))
    for diagram in (machine_diagram(spec, current=values[-1]), annotated(spec, junk)):
        text = mermaid(diagram)
        assert len(text) <= diagrams.MERMAID_MAX_TEXT_SIZE
        assert mermaid_problems(text, _MACHINE_LINE) == []
        labels = [label for i, label in declared_labels(text).items() if i != "aside"]
        assert len(set(labels)) == len(values)


def test_ten_thousand_tasks_degrade_visibly_within_mermaids_limit() -> None:
    names = [f"task-{i:05d}-" + "é" * 40 for i in range(10_000)]
    info = {name: {"deps": [names[i - 1]] if i else []} for i, name in enumerate(names)}
    text = mermaid(dependency_graph(info))
    assert len(text) <= diagrams.MERMAID_MAX_TEXT_SIZE
    assert mermaid_problems(text, _FLOW_LINE) == []
    labels = declared_labels(text)
    note = labels.pop("omitted")
    drawn = len(labels)
    assert 0 < drawn < 10_000
    assert note.startswith(f"… {10_000 - drawn:,} more tasks and {10_000 - drawn:,} more arrows")
    assert "the dot and svg formats show everything" in note
    # the tasks drawn are the first by name, with labels of the shortest kind
    assert all(label.startswith(f"task-{i:05d}-") for i, label in enumerate(labels.values()))
    assert max(len(label.split("\n")[0]) for label in labels.values()) == (
        diagrams.MERMAID_MIN_LABEL_LIMIT
    )
    assert mermaid(dependency_graph(info)) == text, "byte-stable"


def test_many_refused_triggers_degrade_visibly_within_mermaids_limit() -> None:
    junk = [("running", f"trigger-{i:05d}-" + "x" * 50) for i in range(5_000)]
    diagram = annotated(TASK, junk)
    text = mermaid(diagram)
    assert len(text) <= diagrams.MERMAID_MAX_TEXT_SIZE
    assert mermaid_problems(text, _MACHINE_LINE) == []
    described = [decode_mermaid(t) for t in re.findall(r"^    aside : (.*)$", text, re.M)]
    drawn = len(described) - 1
    assert 0 < drawn < 5_000
    assert described[-1].startswith(f"… {5_000 - drawn:,} more refused triggers not drawn")


def test_a_machine_too_large_for_mermaid_raises_diagram_error() -> None:
    values = [f"state-{i:04d}" for i in range(3_000)]
    states = enum.StrEnum("States", [(f"S{i}", v) for i, v in enumerate(values)])  # type: ignore[misc]
    edges = [Edge(f"go{i}", (v,), values[i + 1]) for i, v in enumerate(values[:-1])]
    spec = MachineSpec("huge", states, values[0], {values[-1]}, edges)
    with pytest.raises(DiagramError, match=r"the huge machine \(3000 states.*use the dot or svg"):
        mermaid(machine_diagram(spec))
    assert "state-2999" in diagrams.dot(machine_diagram(spec)), "DOT has no such limit"


def test_a_flowchart_keeps_within_mermaids_arrow_limit() -> None:
    names = [f"t{i:03d}" for i in range(100)]
    crowded = dependency_graph({n: {"deps": names[i + 1 : i + 7]} for i, n in enumerate(names)})
    assert len(crowded.arrows) > diagrams.MERMAID_MAX_EDGES
    text = mermaid(crowded)
    assert mermaid_problems(text, _FLOW_LINE) == []
    drawn = len(re.findall(r"^    \S+ (?:-->|-\.->) ", text, re.M))
    assert drawn <= diagrams.MERMAID_MAX_EDGES
    labels = declared_labels(text)
    assert labels.pop("omitted").startswith(
        f"… {100 - len(labels)} more tasks and {len(crowded.arrows) - drawn} more arrows not drawn"
    )
    chain = [f"t{i:03d}" for i in range(diagrams.MERMAID_MAX_EDGES + 1)]
    whole = mermaid(
        dependency_graph({n: {"deps": chain[i + 1 : i + 2]} for i, n in enumerate(chain)})
    )
    assert "omitted" not in whole, "exactly the limit is drawn whole"
