"""Every kind of Mermaid text this project writes is accepted by Mermaid's own parser.

The parser is the ``mermaid`` package under Node.js, driven by ``tests/mermaid/parse.mjs``: one
Node process for the whole test run answers batches of diagrams (see that script for the
protocol). ``npm ci --prefix tests/mermaid`` installs it; without Node or the packages these
tests are skipped locally and fail in CI (`tests.external`).

What Mermaid itself enforces, found by running it: ``mermaid.parse`` checks the grammar but not
the size (it accepts any length); ``mermaid.render`` checks the size against ``maxTextSize``
(50,000 characters by default) and draws "Maximum text size in diagram exceeded" instead of a
longer diagram. So sizes are checked by rendering, and every text here is also held to
`MERMAID_MAX_TEXT_SIZE` by length.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle import diagrams
from lifecycle.cli import main
from lifecycle.demo import DemoService
from lifecycle.diagrams import (
    MERMAID_MAX_TEXT_SIZE,
    Diagram,
    dependency_diagram,
    dependency_graph,
    journal_dependency_diagram,
    journal_machine_diagram,
    machine_diagram,
    mermaid,
)
from lifecycle.errors import IllegalTransition
from lifecycle.journal import Journal
from lifecycle.spec import SPECS, TASK, TaskState
from tests.external import unavailable
from tests.test_diagrams import FakeService, annotated, graphs, hostile_names, machines, record

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "tests" / "mermaid"
INSTALL = "npm ci --prefix tests/mermaid"
#: Seconds to wait for one answer from the checker: far more than a batch takes; only a hung or
#: dead checker reaches it.
ANSWER_TIMEOUT = 120.0

# -- the checker -------------------------------------------------------------------------------


class MermaidChecker:
    """A running ``parse.mjs``: `parse` sends a batch of texts and returns one result each."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self._process = process
        self._log = log
        self._pending = b""
        hello = self._answer()
        if hello.get("ready") is not True:
            raise RuntimeError(f"the Mermaid checker did not start: {hello!r}")
        self.version: str = hello["mermaid"]
        self.max_text_size: int = hello["maxTextSize"]

    def parse(self, texts: Sequence[str], *, render: bool = False) -> list[dict[str, Any]]:
        """Each text's result: ``{"ok": True, "type": ...}`` or ``{"ok": False, "error": ...}``,
        with ``"tooLarge"`` (render's verdict on the size) when ``render``."""
        request = json.dumps({"diagrams": list(texts), "render": render}) + "\n"
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(request.encode("utf-8"))
        stdin.flush()
        answer = self._answer()
        if "results" not in answer:
            raise RuntimeError(f"the Mermaid checker refused the request: {answer!r}")
        results: list[dict[str, Any]] = answer["results"]
        assert len(results) == len(texts)
        return results

    def _answer(self) -> dict[str, Any]:
        """The next line the checker writes, as JSON, within `ANSWER_TIMEOUT` seconds."""
        stdout = self._process.stdout
        assert stdout is not None
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            ready = select.select([stdout], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                raise RuntimeError(f"the Mermaid checker did not answer within {ANSWER_TIMEOUT}s")
            chunk = os.read(stdout.fileno(), 1 << 20)
            if not chunk:
                log = self._log.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"the Mermaid checker exited: {log}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


@pytest.fixture(scope="session")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MermaidChecker]:
    node = shutil.which("node")
    if node is None:
        unavailable("Node.js (node) is not installed, so Mermaid's parser cannot run")
    if not (CHECKER / "node_modules" / "mermaid" / "package.json").is_file():
        unavailable(f"Mermaid's parser is not installed: run `{INSTALL}`")
    log = tmp_path_factory.mktemp("mermaid") / "checker.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [node, str(CHECKER / "parse.mjs")],
            cwd=CHECKER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    running = MermaidChecker(process, log)
    yield running
    running.close()


def assert_accepted(
    checker: MermaidChecker, texts: Sequence[str], kind: str | Sequence[str]
) -> None:
    """Mermaid's parser accepts every text as a diagram of ``kind``, each within the limit."""
    kinds = [kind] * len(texts) if isinstance(kind, str) else list(kind)
    results = checker.parse(texts)
    for text, result, expected in zip(texts, results, kinds, strict=True):
        assert result == {"ok": True, "type": expected}, f"Mermaid rejects:\n{text}\n{result}"
        assert len(text) <= MERMAID_MAX_TEXT_SIZE


STATE = "stateDiagram"
FLOWCHART = "flowchart-v2"


def kind_of(diagram: Diagram) -> str:
    return STATE if isinstance(diagram, diagrams.MachineDiagram) else FLOWCHART


# -- the check can fail ------------------------------------------------------------------------


def test_the_parser_rejects_broken_diagrams(checker: MermaidChecker) -> None:
    good = mermaid(dependency_graph({"a": {"deps": ["b"]}}))
    machine = mermaid(machine_diagram(TASK))
    broken = [
        good.replace('t_a["a', 't_a["a"b', 1),  # a raw quote ends the label early
        good.replace("t_a --> t_b", "t_a --> ", 1),  # an arrow to nothing
        machine.replace('state "created" as s_created', 'state "created as s_created', 1),
        machine.replace("stateDiagram-v2", "stateDiagram-v9", 1),  # no such diagram
        "",
    ]
    results = checker.parse([good, machine, *broken])
    assert results[:2] == [{"ok": True, "type": FLOWCHART}, {"ok": True, "type": STATE}]
    for text, result in zip(broken, results[2:], strict=True):
        assert result["ok"] is False, f"Mermaid accepts a broken diagram:\n{text}"
        assert result["error"]
    assert "Parse error" in results[2]["error"]


def test_mermaids_own_size_limit_is_the_one_the_diagrams_keep(checker: MermaidChecker) -> None:
    assert checker.max_text_size == MERMAID_MAX_TEXT_SIZE


def test_render_refuses_a_text_over_the_limit_that_parse_accepts(
    checker: MermaidChecker, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_a, long_b = "é" * 4999 + "a", "é" * 4999 + "b"
    graph = dependency_graph({long_a: {"deps": [long_b]}, long_b: {}})
    shortened = mermaid(graph)
    # The same graph with labels never shortened: the text Mermaid refused before they were.
    monkeypatch.setattr(diagrams, "MERMAID_LABEL_LIMIT", 10**6)
    monkeypatch.setattr(diagrams, "MERMAID_MAX_TEXT_SIZE", 10**7)
    whole = mermaid(graph)
    assert len(whole) > MERMAID_MAX_TEXT_SIZE >= len(shortened)
    # render measures the text without comments and front matter: pad with a label
    head, tail = 'flowchart TD\n    a["', '"]\n'
    at_limit = head + "x" * (MERMAID_MAX_TEXT_SIZE - len(head) - len(tail)) + tail
    over = at_limit.replace('"]', 'x"]')
    assert len(at_limit) == MERMAID_MAX_TEXT_SIZE
    results = checker.parse([whole, shortened, at_limit, over], render=True)
    assert [r["ok"] for r in results] == [True] * 4, "parse does not check the size"
    assert [r.get("tooLarge") for r in results] == [True, False, False, True], results


# -- every kind of output ----------------------------------------------------------------------


def test_the_machines_parse_with_and_without_a_current_state(checker: MermaidChecker) -> None:
    texts = []
    for spec in SPECS.values():
        texts.append(mermaid(machine_diagram(spec)))
        texts += [mermaid(machine_diagram(spec, current=s.value)) for s in spec.states]
    assert_accepted(checker, texts, STATE)


def test_dependency_graphs_parse(checker: MermaidChecker) -> None:
    demo = dependency_diagram(DemoService)
    with_wants = dependency_diagram(FakeService())
    assert any(a.label == "wants" for a in with_wants.arrows)
    unknown = dependency_graph(
        {"a": {"deps": ["b"], "wants": ["c"]}, "b": {}}, {"a": "running", "b": "teleported"}
    )
    texts = [mermaid(d) for d in (demo, with_wants, dependency_diagram(FakeService), unknown)]
    assert_accepted(checker, texts, FLOWCHART)


@pytest.fixture(scope="module")
def demo_journal() -> Journal:
    service = DemoService({"duration": 0.2})
    assert service.run() == 0
    return service.journal


def test_journal_diagrams_parse(checker: MermaidChecker, demo_journal: Journal) -> None:
    refused = [
        record(1, "a", "create", "registered", "created", 100),
        record(2, "a", "start", "created", None, 200),
        record(3, "a", "create", "created", "running", 300),  # not an edge of the spec
    ]
    drawn: list[Diagram] = [journal_machine_diagram(spec, demo_journal) for spec in SPECS.values()]
    drawn.append(journal_machine_diagram(TASK, ({}, refused)))
    drawn.append(journal_dependency_diagram(demo_journal))
    assert any(d.aside for d in drawn if isinstance(d, diagrams.MachineDiagram))
    assert_accepted(checker, [mermaid(d) for d in drawn], [kind_of(d) for d in drawn])


def test_the_command_lines_output_parses(
    checker: MermaidChecker,
    demo_journal: Journal,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    path = tmp_path / "run.jsonl"
    demo_journal.write(path)
    runs = [
        ["diagram", "task", "--highlight", "failed"],
        ["diagram", "--deps", "lifecycle.demo:DemoService"],
        ["diagram", "--deps", f"{FakeService.__module__}:FakeService"],
        ["diagram", "service", "--journal", str(path)],
        ["diagram", "--journal", str(path)],
    ]
    texts = []
    for argv in runs:
        assert main(argv) == 0, argv
        texts.append(capsysbinary.readouterr().out.decode("ascii"))
    assert_accepted(checker, texts, [STATE, FLOWCHART, FLOWCHART, STATE, FLOWCHART])


def test_the_checked_in_diagrams_parse(checker: MermaidChecker) -> None:
    files = sorted((ROOT / "diagrams").glob("*.mmd"))
    assert len(files) >= len(SPECS)
    texts = [f.read_text(encoding="utf-8") for f in files]
    kinds = [FLOWCHART if t.startswith("flowchart") else STATE for t in texts]
    assert_accepted(checker, texts, kinds)


def test_the_readmes_mermaid_blocks_parse(checker: MermaidChecker) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```mermaid\n(.*?)^```", readme, re.S | re.M)
    assert len(blocks) >= len(SPECS)
    kinds = [FLOWCHART if b.startswith("flowchart") else STATE for b in blocks]
    assert_accepted(checker, blocks, kinds)


# -- any names ---------------------------------------------------------------------------------

# Each example is a batch of diagrams and Mermaid takes tens of milliseconds to parse a state
# diagram under jsdom: a third of the profile's examples keeps the suite fast, still many
# diagrams per run (and a third of the deep profile's thousand when asked for).
batches = settings(max_examples=max(settings().max_examples // 3, 1))


@batches
@given(st.lists(graphs(), min_size=1, max_size=6), st.lists(machines(), min_size=1, max_size=3))
def test_diagrams_of_any_names_parse(
    checker: MermaidChecker, graph_batch: list[Any], machine_batch: list[Any]
) -> None:
    drawn: list[Diagram] = list(graph_batch)
    for spec in machine_batch:
        drawn += [machine_diagram(spec, current=spec.initial), annotated(spec, [("x", "y")])]
    assert_accepted(checker, [mermaid(d) for d in drawn], [kind_of(d) for d in drawn])


@batches
@given(st.lists(st.lists(hostile_names, min_size=1, max_size=5, unique=True), max_size=4))
def test_diagrams_of_hostile_long_names_parse(
    checker: MermaidChecker, batch: list[list[str]]
) -> None:
    drawn: list[Diagram] = []
    for names in batch:
        info = {n: {"deps": names[i + 1 : i + 2], "wants": names[:1]} for i, n in enumerate(names)}
        drawn.append(dependency_graph(info, dict.fromkeys(names, TaskState.FAILED.value)))
        refusals = [(n, "stop") for n in names] + [("running", n) for n in names]
        drawn.append(annotated(TASK, refusals))
    assert_accepted(checker, [mermaid(d) for d in drawn], [kind_of(d) for d in drawn])


def test_diagrams_cut_to_fit_the_limit_parse(checker: MermaidChecker) -> None:
    names = [f"task-{i:05d}-" + "é" * 40 for i in range(10_000)]
    crowded = dependency_graph(
        {n: {"deps": [names[i - 1]] if i else []} for i, n in enumerate(names)}
    )
    refusals = annotated(TASK, [("running", f"trigger-{i:05d}-" + "é" * 50) for i in range(5_000)])
    wide = [f"t{i:03d}" for i in range(100)]
    arrows = dependency_graph({n: {"deps": wide[i + 1 : i + 7]} for i, n in enumerate(wide)})
    edge = [f"t{i:03d}" for i in range(diagrams.MERMAID_MAX_EDGES + 1)]
    at_edge_limit = dependency_graph({n: {"deps": edge[i + 1 : i + 2]} for i, n in enumerate(edge)})
    texts = [mermaid(d) for d in (crowded, refusals, arrows, at_edge_limit)]
    assert "omitted" in texts[0] and "more refused triggers" in texts[1] and "omitted" in texts[2]
    assert texts[3].count(" --> ") == diagrams.MERMAID_MAX_EDGES
    assert_accepted(checker, texts, [FLOWCHART, STATE, FLOWCHART, FLOWCHART])


def test_the_parser_enforces_the_arrow_limit_the_diagrams_keep(checker: MermaidChecker) -> None:
    chain = [f"t{i:03d}" for i in range(diagrams.MERMAID_MAX_EDGES + 2)]
    drawn = mermaid(
        dependency_graph({n: {"deps": chain[i + 1 : i + 2]} for i, n in enumerate(chain)})
    )
    assert "omitted" in drawn
    # The whole chain, one arrow over the limit, as it would be drawn without the limit:
    whole = "flowchart TD\n" + "".join(f"    {a} --> {b}\n" for a, b in itertools.pairwise(chain))
    (result,) = checker.parse([whole])
    assert result["ok"] is False
    assert f"the limit is {diagrams.MERMAID_MAX_EDGES}" in result["error"]


# -- timelines: gantt charts -------------------------------------------------------------------

GANTT = "gantt"


def gantt_of(names: Sequence[str], spans: int = 3) -> str:
    """The gantt of a run in which each task of ``names`` passes through ``spans`` states, the
    last one named as the task is (a journal may name any state)."""
    from lifecycle.outcome import Span, SubjectTimeline, Timeline
    from lifecycle.timeline import mermaid as gantt

    states = ["created", "initialized", "running", "stopping", "stopped"]
    subjects = []
    for index, name in enumerate(names):
        at = [index * 1_000_000 + step * 2_500_000 for step in range(spans + 1)]
        drawn = tuple(
            Span(
                name if step == spans - 1 else states[step % len(states)],
                at[step],
                at[step + 1] if step < spans - 1 else None,
                step + 1,
                "start",
                name if step == spans - 1 else None,
            )
            for step in range(spans)
        )
        subjects.append(SubjectTimeline("task", name, drawn))
    return gantt(Timeline(0, (len(names) + spans) * 2_500_000, tuple(subjects), len(names)))


def test_the_timeline_of_a_real_run_parses_and_renders(
    checker: MermaidChecker,
    demo_journal: Journal,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    path = tmp_path / "run.jsonl"
    demo_journal.write(path)
    assert main(["timeline", str(path), "--format", "mermaid"]) == 0
    text = capsysbinary.readouterr().out.decode("ascii")
    assert text.startswith("gantt\n") and "section task " in text
    (result,) = checker.parse([text], render=True)
    assert result.get("ok") is True and result.get("type") == GANTT, result
    assert result.get("tooLarge") is False and "renderError" not in result, result


def test_gantt_statement_words_and_hostile_names_are_kept_as_text(checker: MermaidChecker) -> None:
    names = [
        "title x",
        "section y",
        "click me",
        "dateFormat YYYY",
        "Excludes weekends",
        "a:b;c#d%%e",
        "%% comment",
        "2024-01-01",
        "line\nbreak",
        "\x1b[2J\u202e\ud800",
        "é" * 300,
    ]
    texts = [gantt_of([name]) for name in names]
    texts.append(gantt_of(names))
    assert_accepted(checker, texts, GANTT)
    # The gantt lexer takes a line that starts with one of these words as that statement, not
    # as a bar: no bar's label may start with one, whatever the state is called.
    statements = re.compile(
        r"\s*(gantt|dateformat|inclusiveenddates|topaxis|axisformat|tickinterval|includes|"
        r"excludes|todaymarker|weekday|weekend|title|accdescr|acctitle|href|call|click|%)",
        re.IGNORECASE,
    )
    for text in texts:
        bars = [line for line in text.splitlines()[4:] if not line.startswith("    section ")]
        assert bars and not [bar for bar in bars if statements.match(bar)], text


@batches
@given(st.lists(hostile_names, min_size=1, max_size=6, unique=True))
def test_gantts_of_any_names_parse(checker: MermaidChecker, names: list[str]) -> None:
    assert_accepted(checker, [gantt_of(names)], GANTT)


def test_a_timeline_too_large_for_mermaid_is_cut_to_fit_and_parses(checker: MermaidChecker) -> None:
    text = gantt_of([f"task-{i:05d}-" + "é" * 40 for i in range(3_000)], spans=5)
    assert len(text) <= MERMAID_MAX_TEXT_SIZE
    assert "more subjects not drawn" in text
    (result,) = checker.parse([text], render=True)
    assert result.get("ok") is True and result.get("tooLarge") is False, result


# -- user machines -----------------------------------------------------------------------------


def test_a_machine_from_a_file_is_accepted_plain_and_overlaid(
    checker: MermaidChecker, tmp_path: Path
) -> None:
    from lifecycle.engine import Lifecycle
    from lifecycle.specfile import load_spec

    door = load_spec(ROOT / "tests" / "fixtures" / "door.toml")
    journal = Journal()
    lc = Lifecycle(door, "door-1", journal)
    for trigger in ("open", "close", "lock", "unlock"):
        lc.fire(trigger)
    with pytest.raises(IllegalTransition):
        lc.fire("unlock")
    texts = [mermaid(machine_diagram(door)), mermaid(journal_machine_diagram(door, journal))]
    assert_accepted(checker, texts, STATE)
    for text in texts:
        assert sum(" --> s_" in line and "[*]" not in line for line in text.splitlines()) == 4
