"""`lifecycle.audit.check` and `lifecycle audit`: every rule, clean engine runs, tampering."""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from lifecycle.audit import RULES, AuditInputError, Violation, check
from lifecycle.cli import main
from lifecycle.collection import Tasks
from lifecycle.errors import IllegalTransition, InitError, StopError
from lifecycle.journal import Journal, JournalFormatError, Transition, canonical, chain_hash
from lifecycle.task import SkipTask, Task

# -- building journals -------------------------------------------------------------------------


@attrs.frozen
class Fault:
    """What one generated task does: its dependencies (indices of earlier tasks) and faults."""

    deps: frozenset[int] = attrs.field(default=frozenset(), converter=frozenset)
    wants: frozenset[int] = attrs.field(default=frozenset(), converter=frozenset)
    construct: str = "ok"  # ok | raise
    init: str = "ok"  # ok | skip | raise
    stop: str = "ok"  # ok | raise
    loopless: bool = True
    worker: str = "wait"  # wait | return | crash
    workers: int = 1


@attrs.frozen
class Scenario:
    faults: tuple[Fault, ...]
    stop_at: str = "start"  # create | init | start: the last driver call before stop
    misuse: bool = False  # also make illegal driver calls (refused records)


def make_classes(faults: Sequence[Fault], tag: str = "T") -> list[type[Task]]:
    """One Task subclass per fault, named ``<tag><index>``."""
    classes: list[type[Task]] = []
    for index, fault in enumerate(faults):

        def __init__(self: Task, service: Any = None, _f: Fault = fault) -> None:
            if _f.construct == "raise":
                raise RuntimeError("constructor fault")
            Task.__init__(self, service)

        def init_task(self: Task, _f: Fault = fault) -> None:
            if _f.init == "skip":
                raise SkipTask("skipped by fault")
            if _f.init == "raise":
                raise ValueError("init fault")

        def on_stop(self: Task, _f: Fault = fault) -> None:
            if _f.stop == "raise":
                raise OSError("on_stop fault")

        def run_loop(self: Task, _f: Fault = fault) -> None:
            if _f.worker == "crash":
                raise RuntimeError("worker fault")
            if _f.worker == "wait":
                self.stop_event.wait(30)

        namespace = {
            "__init__": __init__,
            "init_task": init_task,
            "on_stop": on_stop,
            "run_loop": run_loop,
            "DEPS": [classes[d] for d in sorted(fault.deps)],
            "WANTS": [classes[w] for w in sorted(fault.wants)],
            "LOOPLESS": fault.loopless,
            "workers": fault.workers,
            "__module__": __name__,
        }
        classes.append(type(f"{tag}{index}", (Task,), namespace))
    return classes


def drive(scenario: Scenario, journal: Journal) -> Tasks:
    """Run a collection of the scenario's tasks as a service would, tolerating its faults."""
    tasks = Tasks(make_classes(scenario.faults), journal=journal)
    try:
        tasks.create()
        if scenario.misuse:
            with pytest.raises(IllegalTransition):
                tasks.start()
        if scenario.stop_at in ("init", "start"):
            tasks.init()
        if scenario.stop_at == "start":
            tasks.start()
            if scenario.misuse:
                with pytest.raises(IllegalTransition):
                    tasks.init()
    except InitError:
        pass  # the collection failed; every task has ended
    else:
        tasks.stop()
    try:
        left = tasks.join(timeout=30)
    except StopError:
        left = []
    if left:
        raise AssertionError(f"tasks still running after join: {left}")
    if scenario.misuse:
        with pytest.raises(IllegalTransition):
            tasks.start()
    return tasks


@st.composite
def scenarios(draw: st.DrawFn, max_tasks: int = 5) -> Scenario:
    count = draw(st.integers(1, max_tasks))
    faults = []
    for index in range(count):
        earlier = st.sets(st.integers(0, index - 1), max_size=2) if index else st.just(set())
        faults.append(
            Fault(
                deps=frozenset(draw(earlier)),
                wants=frozenset(draw(earlier)),
                construct=draw(st.sampled_from(["ok"] * 9 + ["raise"])),
                init=draw(st.sampled_from(["ok", "ok", "ok", "skip", "raise"])),
                stop=draw(st.sampled_from(["ok", "ok", "raise"])),
                loopless=draw(st.booleans()),
                worker=draw(st.sampled_from(["wait", "wait", "return", "crash"])),
                workers=draw(st.integers(1, 2)),
            )
        )
    return Scenario(
        tuple(faults),
        stop_at=draw(st.sampled_from(["start", "start", "init", "create"])),
        misuse=draw(st.booleans()),
    )


@functools.cache
def journal_bytes(scenario: Scenario) -> bytes:
    """The journal file of one run of ``scenario`` (cached: runs start threads)."""
    journal = Journal()
    drive(scenario, journal)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "run.jsonl")
        journal.write(path)
        return path.read_bytes()


#: Runs whose journals the mutation properties tamper with: a clean threaded run, an init
#: failure, stop errors with a crashed worker, and a stop before start.
BASE_RUNS = (
    Scenario((Fault(loopless=False), Fault(deps=frozenset({0})), Fault(deps=frozenset({1})))),
    Scenario((Fault(), Fault(deps=frozenset({0}), init="raise"), Fault(init="skip"))),
    Scenario(
        (Fault(loopless=False, worker="crash"), Fault(stop="raise"), Fault(deps={1}, wants={0}))
    ),
    Scenario((Fault(), Fault(deps=frozenset({0}))), stop_at="init"),
)


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.jsonl"
    path.write_bytes(journal_bytes(BASE_RUNS[0]))
    return path


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def rules(violations: Sequence[Violation]) -> set[str]:
    return {v.rule for v in violations}


def rec(
    seq: int,
    subject: str,
    trigger: str,
    source: str,
    dest: str | None,
    ok: bool = True,
    kind: str = "task",
) -> Transition:
    return Transition(seq, 0.0, seq, kind, subject, trigger, source, dest, ok, None, "main")


def renumber(records: Sequence[Transition]) -> list[Transition]:
    """``records`` with sequence numbers 1, 2, ... in list order."""
    return [attrs.evolve(r, seq=i, mono=i) for i, r in enumerate(records, start=1)]


def task_run(subject: str, first_seq: int = 1) -> list[Transition]:
    """A complete, legal run of one task: create, init, start, stop, finish."""
    steps = [
        ("create", "registered", "created"),
        ("init", "created", "initialized"),
        ("start", "initialized", "running"),
        ("stop", "running", "stopping"),
        ("finish", "stopping", "stopped"),
    ]
    return [rec(first_seq + i, subject, *step) for i, step in enumerate(steps)]


# -- clean runs --------------------------------------------------------------------------------


def test_clean_run_audits_clean_as_file_journal_and_records(tmp_path: Path) -> None:
    journal = Journal()
    drive(BASE_RUNS[0], journal)
    journal.write(tmp_path / "run.jsonl")
    assert check(tmp_path / "run.jsonl") == []
    assert check(str(tmp_path / "run.jsonl")) == []
    assert check(journal) == []
    assert check(journal.records, tasks=journal.tasks) == []


@given(scenario=scenarios(), streaming=st.booleans())
def test_every_journal_the_engine_writes_under_faults_audits_clean(
    scenario: Scenario, streaming: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "run.jsonl")
        if streaming:
            with Journal(path) as journal:
                drive(scenario, journal)
        else:
            journal = Journal()
            drive(scenario, journal)
            journal.write(path)
        assert check(path) == []
        assert check(path, partial=True) == []
    assert check(journal) == []


# -- the file: format, header, hash chain ------------------------------------------------------


def test_hand_edited_line_is_reported_with_its_line_number(journal_file: Path) -> None:
    lines = lines_of(journal_file)
    lines[4] = lines[4].replace('"thread":"MainThread"', '"thread":"elsewhere"')
    journal_file.write_text("".join(lines))
    [violation] = check(journal_file)
    assert (violation.line, violation.rule) == (5, "hash-chain")


@pytest.mark.parametrize(
    ("mutate", "line"),
    [
        pytest.param(lambda ls: ls[:3] + ls[4:], 4, id="dropped"),
        pytest.param(lambda ls: [*ls[:4], ls[2], *ls[4:]], 5, id="inserted"),
        pytest.param(lambda ls: [*ls[:3], ls[4], ls[3], *ls[5:]], 4, id="reordered"),
    ],
)
def test_dropped_inserted_or_reordered_line_breaks_the_chain_there(
    journal_file: Path, mutate: Callable[[list[str]], list[str]], line: int
) -> None:
    journal_file.write_text("".join(mutate(lines_of(journal_file))))
    chain = [v for v in check(journal_file) if v.rule == "hash-chain"]
    assert chain and chain[0].line == line


def test_a_line_with_a_recomputed_hash_breaks_the_next_link(journal_file: Path) -> None:
    lines = lines_of(journal_file)
    obj = json.loads(lines[3])
    previous = json.loads(lines[2])["hash"]
    obj["time"] += 1
    del obj["hash"]
    obj["hash"] = chain_hash(previous, canonical(obj))
    lines[3] = canonical(obj) + "\n"
    journal_file.write_text("".join(lines))
    assert [(v.line, v.rule) for v in check(journal_file)] == [(5, "hash-chain")]


def test_non_canonical_spacing_is_a_format_violation(journal_file: Path) -> None:
    lines = lines_of(journal_file)
    lines[2] = json.dumps(json.loads(lines[2])) + "\n"  # the default separators add spaces
    journal_file.write_text("".join(lines))
    assert [(v.line, v.rule) for v in check(journal_file)] == [(3, "format")]


def test_other_format_version_is_reported_on_line_one(journal_file: Path) -> None:
    lines = lines_of(journal_file)
    lines[0] = lines[0].replace('"version":3', '"version":4')
    journal_file.write_text("".join(lines))
    found = check(journal_file)
    assert (1, "format") in {(v.line, v.rule) for v in found}
    assert any("version 1, 2 or 3, got 4" in v.message for v in found)


def test_header_with_other_specs_is_a_violation(tmp_path: Path) -> None:
    journal = Journal()
    header = journal.header()
    header["specs"]["task"]["initial"] = "created"
    path = tmp_path / "j.jsonl"
    body = canonical(header)
    path.write_text(canonical({**header, "hash": chain_hash("", body)}) + "\n")
    found = check(path)
    assert [(v.line, v.rule, v.subject) for v in found] == [(1, "header", "<header>")]
    assert "task machine" in found[0].message


def test_header_naming_an_undescribed_dependency_is_a_violation(tmp_path: Path) -> None:
    journal = Journal()
    journal.describe_tasks({"A": {"deps": ["Ghost"]}})
    journal.write(tmp_path / "j.jsonl")
    found = check(tmp_path / "j.jsonl", partial=True)
    assert [(v.rule, v.line) for v in found] == [("header", 1)]
    assert "'Ghost'" in found[0].message


def test_missing_header_is_reported_not_raised(journal_file: Path) -> None:
    journal_file.write_text("".join(lines_of(journal_file)[1:]))
    found = check(journal_file, partial=True)
    assert (1, "format") in {(v.line, v.rule) for v in found}
    assert (1, "hash-chain") in {(v.line, v.rule) for v in found}


def test_cut_last_line_is_a_violation_unless_partial(journal_file: Path) -> None:
    data = journal_file.read_bytes()
    journal_file.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 10])
    last = data.count(b"\n")
    found = check(journal_file)
    assert (last, "format") in {(v.line, v.rule) for v in found}
    assert check(journal_file, partial=True) == []


def test_last_line_without_its_newline_is_a_violation_unless_partial(journal_file: Path) -> None:
    journal_file.write_bytes(journal_file.read_bytes()[:-1])
    assert rules(check(journal_file)) == {"format"}
    assert check(journal_file, partial=True) == []


def test_garbage_line_in_the_middle_is_reported(journal_file: Path) -> None:
    lines = lines_of(journal_file)
    lines[3] = "\xff not json\n"
    journal_file.write_text("".join(lines), encoding="latin-1")
    found = check(journal_file, partial=True)
    assert (4, "format") in {(v.line, v.rule) for v in found}


def test_record_missing_a_field_is_a_format_violation(journal_file: Path) -> None:
    lines = lines_of(journal_file)
    obj = json.loads(lines[2])
    del obj["thread"]
    lines[2] = canonical(obj) + "\n"
    journal_file.write_text("".join(lines))
    found = [v for v in check(journal_file) if v.rule == "format"]
    assert [v.line for v in found] == [3] and "thread" in found[0].message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"[1, 2]\n", "not an object"),
        (b'{"format": "something-else"}\n', "not a lifecycle journal"),
        (b"\x00\xff\xfe", "not UTF-8"),
        (b'{"format": "lifecycle-jou', "not JSON"),
    ],
)
def test_input_that_is_not_a_journal_raises_one_typed_error(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(AuditInputError) as info:
        check(path)
    assert reason in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, JournalFormatError)


def test_missing_file_and_directory_raise_audit_input_error(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.jsonl", tmp_path):
        with pytest.raises(AuditInputError, match="cannot read"):
            check(path)


def test_records_that_are_not_transitions_raise() -> None:
    with pytest.raises(AuditInputError, match="item 1 is a dict"):
        check([rec(1, "A", "create", "registered", "created"), {"seq": 2}])
    with pytest.raises(AuditInputError, match="expected a journal path"):
        check(42)  # type: ignore[arg-type]
    with pytest.raises(AuditInputError, match="tasks= is only for records"):
        check("x.jsonl", tasks={})


def test_malformed_tasks_mapping_raises() -> None:
    with pytest.raises(AuditInputError, match="'Ghost'"):
        check([], tasks={"A": {"deps": ["Ghost"]}})


@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_yield_violations_or_one_typed_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "x.jsonl")
        path.write_bytes(journal_bytes(BASE_RUNS[3])[:200] + content)
        try:
            found = check(path)
        except AuditInputError as exc:
            assert "\n" not in str(exc)
        else:
            assert all(v.rule in RULES for v in found)


# -- the records: legality, continuity, order, ends --------------------------------------------


def test_ok_record_that_is_not_an_edge_is_illegal() -> None:
    records = [
        rec(1, "A", "create", "registered", "created"),
        rec(2, "A", "start", "created", "running"),
    ]
    [found] = check(records, partial=True)
    assert (found.rule, found.subject, found.seq) == ("illegal-edge", "A", 2)
    assert "init" in found.message  # what created accepts


def test_ok_record_with_the_wrong_dest_is_illegal() -> None:
    records = [rec(1, "A", "create", "registered", "running")]
    [found] = check(records, partial=True)
    assert found.rule == "illegal-edge" and "'created'" in found.message


def test_unknown_machine_kind_is_illegal() -> None:
    [found] = check([rec(1, "A", "create", "registered", "created", kind="rocket")])
    assert found.rule == "illegal-edge" and "rocket" in found.message


def test_refused_record_that_was_legal_is_reported() -> None:
    records = [
        rec(1, "A", "create", "registered", "created"),
        rec(2, "A", "init", "created", None, ok=False),
    ]
    assert rules(check(records, partial=True)) == {"refused-was-legal"}


def test_refused_record_that_really_was_illegal_is_clean() -> None:
    records = [
        rec(1, "A", "create", "registered", "created"),
        rec(2, "A", "finish", "created", None, ok=False),
    ]
    assert check(records, partial=True) == []


def test_each_source_must_be_the_previous_dest() -> None:
    records = [
        rec(1, "A", "create", "registered", "created"),
        rec(2, "A", "start", "initialized", "running"),
    ]
    [found] = check(records, partial=True)
    assert (found.rule, found.seq) == ("continuity", 2)
    assert "'created'" in found.message


def test_first_record_of_a_subject_starts_at_the_initial_state() -> None:
    [found] = check([rec(1, "A", "init", "created", "initialized")], partial=True)
    assert found.rule == "continuity" and "'registered'" in found.message


def test_subjects_of_different_machines_are_kept_apart() -> None:
    records = [
        rec(1, "x", "create", "registered", "created"),
        rec(2, "x", "create", "registering", "created", kind="collection"),
    ]
    assert check(records, partial=True) == []


def test_seq_must_strictly_increase() -> None:
    records = [
        rec(2, "A", "create", "registered", "created"),
        rec(2, "B", "create", "registered", "created"),
    ]
    [found] = check(records, partial=True)
    assert found.rule == "seq-order" and "above 2" in found.message


DEPS = {"A": {"deps": []}, "B": {"deps": ["A"]}}


def test_task_initialized_before_its_deps_is_reported() -> None:
    records = [
        rec(1, "A", "create", "registered", "created"),
        rec(2, "B", "create", "registered", "created"),
        rec(3, "B", "init", "created", "initialized"),
        rec(4, "A", "init", "created", "initialized"),
    ]
    [found] = check(records, tasks=DEPS, partial=True)
    assert (found.rule, found.subject, found.seq) == ("deps-order", "B", 3)
    assert "'A'" in found.message and "initialized" in found.message


def test_task_started_before_its_deps_is_reported() -> None:
    a, b = task_run("A"), task_run("B", first_seq=10)
    records = renumber([*a[:2], *b[:2], b[2], a[2]])
    [found] = check(records, tasks=DEPS, partial=True)
    assert (found.rule, found.subject) == ("deps-order", "B")
    assert "started" in found.message


def test_deps_stopped_before_their_dependent_is_reported() -> None:
    a, b = task_run("A"), task_run("B", first_seq=10)
    records = renumber([*a[:3], *b[:3], a[3], b[3], a[4], b[4]])
    [found] = check(records, tasks=DEPS, partial=True)
    assert (found.rule, found.subject) == ("stop-order", "A")
    assert "'B' (running)" in found.message


def test_a_dependency_asked_to_stop_before_its_dependent_ended_is_reported() -> None:
    # B was asked to stop, but A's stop must wait for B's terminal record, not its request.
    a, b = task_run("A"), task_run("B", first_seq=10)
    records = renumber([*a[:3], *b[:3], b[3], a[3], b[4], a[4]])
    [found] = check(records, tasks=DEPS, partial=True)
    assert (found.rule, found.subject) == ("stop-order", "A")
    assert "'B' (stopping)" in found.message


def test_stop_order_is_transitive_through_a_task_that_ended_early() -> None:
    # C requires B requires A; B crashed while C still ran: A must still wait for C.
    table = {"A": {"deps": []}, "B": {"deps": ["A"]}, "C": {"deps": ["B"]}}
    a, b, c = task_run("A"), task_run("B", first_seq=10), task_run("C", first_seq=20)
    b_failed = rec(0, "B", "fail", "running", "failed")
    records = renumber([*a[:3], *b[:3], *c[:3], b_failed, a[3], c[3], c[4], a[4]])
    [found] = check(records, tasks=table, partial=True)
    assert (found.rule, found.subject) == ("stop-order", "A")
    assert "'B' (failed)" in found.message


def test_wants_orders_the_stop_too() -> None:
    table = {"A": {"deps": []}, "B": {"deps": [], "wants": ["A"]}}
    a, b = task_run("A"), task_run("B", first_seq=10)
    records = renumber([*a[:3], *b[:3], a[3], a[4], b[3], b[4]])
    [found] = check(records, tasks=table, partial=True)
    assert (found.rule, found.subject) == ("stop-order", "A")


def test_stops_after_the_collection_gave_up_are_not_held_to_the_order() -> None:
    a, b = task_run("A"), task_run("B", first_seq=10)
    coll = collection_run(100, end=4)
    gave_up = rec(0, "tasks", "fail", "stopping", "failed", kind="collection")
    records = renumber([*coll[:3], *a[:3], *b[:3], coll[3], b[3], gave_up, a[3], a[4]])
    assert [v.rule for v in check(records, tasks=DEPS, partial=True)] == []


def test_deps_order_obeyed_is_clean() -> None:
    a, b = task_run("A"), task_run("B", first_seq=10)
    records = renumber([*a[:3], *b[:3], b[3], b[4], a[3], a[4]])
    assert check(records, tasks=DEPS, partial=True) == []


def collection_run(first_seq: int, end: int = 5) -> list[Transition]:
    steps = [
        ("create", "registering", "created"),
        ("init", "created", "initialized"),
        ("start", "initialized", "running"),
        ("stop", "running", "stopping"),
        ("finish", "stopping", "stopped"),
    ][:end]
    return [rec(first_seq + i, "tasks", *s, kind="collection") for i, s in enumerate(steps)]


def test_stopped_collection_with_a_running_task_is_not_terminal() -> None:
    records = [*task_run("A")[:3], *collection_run(10)]
    [found] = check(records, tasks={"A": {"deps": []}})
    assert (found.rule, found.subject) == ("not-terminal", "A")
    assert "running" in found.message
    assert check(records, tasks={"A": {"deps": []}}, partial=True) == []


def test_run_that_ends_without_stop_records_needs_partial() -> None:
    records = [*task_run("A")[:3], *collection_run(10, end=3)]
    [found] = check(records)
    assert (found.rule, found.subject) == ("not-terminal", "tasks")
    assert "stopped or failed" in found.message
    assert check(records, partial=True) == []


def test_described_tasks_without_collection_records_is_not_terminal() -> None:
    [found] = check([], tasks={"A": {"deps": []}})
    assert (found.rule, found.subject) == ("not-terminal", "<journal>")
    assert check([], tasks={"A": {"deps": []}}, partial=True) == []


def test_failed_collection_may_leave_tasks_running() -> None:
    # A stop deadline that passed: the collection fails while a task is still stopping.
    records = [
        *task_run("A")[:4],
        *collection_run(10, end=4),
        rec(20, "tasks", "fail", "stopping", "failed", kind="collection"),
    ]
    assert check(records, tasks={"A": {"deps": []}}) == []


def test_violation_renders_as_one_line_naming_line_rule_and_subject() -> None:
    v = Violation(7, "continuity", "A", "expected x")
    assert str(v) == "line 7: continuity: A: expected x"
    assert str(Violation(None, "seq-order", "A", "m", seq=3)) == "seq 3: seq-order: A: m"
    assert v.to_dict() == {
        "line": 7,
        "rule": "continuity",
        "subject": "A",
        "message": "expected x",
        "seq": None,
    }


# -- every single mutation is detected ---------------------------------------------------------


@attrs.frozen
class Mutation:
    kind: str  # edit | drop | duplicate | swap | truncate
    content: bytes
    touches_header: bool = False  # line 1 was changed, moved or cut
    prefix: bool = False  # the result is a prefix of the original (a run cut short)


@st.composite
def mutations(draw: st.DrawFn) -> Mutation:
    """One tampering of a base run's journal file."""
    data = journal_bytes(draw(st.sampled_from(BASE_RUNS)))
    lines = data.splitlines(keepends=True)
    kind = draw(st.sampled_from(["edit", "drop", "duplicate", "swap", "truncate"]))
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "edit":
        obj = json.loads(lines[i])
        key = draw(st.sampled_from(sorted(obj)))
        value = draw(
            st.none()
            | st.booleans()
            | st.integers(-3, 10**6)
            | st.floats(allow_nan=False)
            | st.text(max_size=8)
        )
        assume(canonical({"v": value}) != canonical({"v": obj[key]}))
        lines[i] = (canonical({**obj, key: value}) + "\n").encode()
        return Mutation(kind, b"".join(lines), touches_header=i == 0)
    if kind == "drop":
        del lines[i]
        content = b"".join(lines)
        return Mutation(kind, content, touches_header=i == 0, prefix=data.startswith(content))
    if kind == "duplicate":
        lines.insert(i, lines[i])
        return Mutation(kind, b"".join(lines))
    if kind == "swap":
        j = draw(st.integers(0, len(lines) - 1).filter(lambda j: j != i))
        lines[i], lines[j] = lines[j], lines[i]
        return Mutation(kind, b"".join(lines), touches_header=0 in (i, j))
    cut = draw(st.integers(1, len(data) - 1))
    return Mutation(kind, data[:cut], touches_header=cut < data.index(b"\n"), prefix=True)


def audit_bytes(content: bytes, partial: bool) -> list[Violation]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "run.jsonl")
        path.write_bytes(content)
        return check(path, partial=partial)


@given(mutation=mutations())
def test_every_single_mutation_of_a_journal_is_detected(mutation: Mutation) -> None:
    try:
        found = audit_bytes(mutation.content, partial=False)
    except AuditInputError:
        assert mutation.touches_header, "only a mangled header may make the file unreadable"
    else:
        assert found, f"{mutation.kind} went unnoticed"


@given(mutation=mutations())
def test_with_partial_only_a_cut_is_accepted(mutation: Mutation) -> None:
    try:
        found = audit_bytes(mutation.content, partial=True)
    except AuditInputError:
        assert mutation.touches_header, "only a mangled header may make the file unreadable"
        return
    if mutation.prefix:
        assert found == [], "a run cut short audits clean as partial"
    else:
        assert found, f"{mutation.kind} went unnoticed"


# -- the command -------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exits_0_for_a_clean_journal(
    capsys: pytest.CaptureFixture[str], journal_file: Path
) -> None:
    code, out, err = run_cli(capsys, str(journal_file))
    assert code == 0
    assert out.startswith("outcome: ")  # no violation lines before the outcome
    assert "clean" in err


def test_cli_exits_1_naming_each_violation_on_one_line(
    capsys: pytest.CaptureFixture[str], journal_file: Path
) -> None:
    lines = lines_of(journal_file)
    lines[5] = lines[5].replace('"ok":true', '"ok":false')
    journal_file.write_text("".join(lines))
    code, out, _ = run_cli(capsys, str(journal_file))
    assert code == 1
    integrity, _, outcome_section = out.partition("\n\noutcome: ")
    printed = integrity.splitlines()
    assert outcome_section
    assert printed and all(line.startswith("line ") for line in printed)
    assert printed[0].startswith("line 6: hash-chain: ")
    assert len(printed) == len(check(journal_file))


def test_cli_json_lists_the_violations(
    capsys: pytest.CaptureFixture[str], journal_file: Path
) -> None:
    journal_file.write_text("".join(lines_of(journal_file)[:-1]))
    code, out, _ = run_cli(capsys, "--json", str(journal_file))
    doc = json.loads(out)
    assert code == 1 and doc["clean"] is False
    assert {v["rule"] for v in doc["violations"]} == {"not-terminal"}
    code, out, _ = run_cli(capsys, "--json", "--partial", str(journal_file))
    assert code == 0 and json.loads(out)["violations"] == []


def test_cli_exits_2_with_a_one_line_reason_for_unreadable_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    for path in (tmp_path / "absent.jsonl", tmp_path / "empty.jsonl", tmp_path):
        code, out, err = run_cli(capsys, str(path))
        assert (code, out) == (2, "")
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_two_stops_swapped_in_a_real_journal_are_reported_with_the_line(tmp_path: Path) -> None:
    class Base(Task):
        LOOPLESS = True

    class User(Task):
        LOOPLESS = True
        DEPS = (Base,)

    tasks = Tasks([User])
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    assert tasks.join(10) == []
    path = tmp_path / "run.jsonl"
    tasks.journal.write(path)
    assert check(path) == []
    lines = lines_of(path)
    stops = [
        i for i, line in enumerate(lines) if '"kind":"task"' in line and '"trigger":"stop"' in line
    ]
    user_stop, base_stop = stops  # User stops first: it is ordered after Base
    lines[user_stop], lines[base_stop] = lines[base_stop], lines[user_stop]
    path.write_text("".join(lines))
    found = [v for v in check(path) if v.rule == "stop-order"]
    assert [(v.line, v.subject) for v in found] == [(user_stop + 1, "Base")]
    assert "'User' (running)" in found[0].message
