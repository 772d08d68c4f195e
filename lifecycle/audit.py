"""The offline checker of a journal: did a run obey the lifecycle?

`check` reads a journal file (or takes `Transition` records) and returns every `Violation` it
finds; it never raises for bad content, only for input that cannot be audited at all
(`AuditInputError`: an unreadable or empty file, anything but a regular file, a file that is
not a journal, records that are not `Transition` objects). Files are read with
`lifecycle.journal.JournalReader`, the reader every consumer of journal files shares. Each
violation names its line, a stable rule id, the subject and what was expected instead.

The rules, judged against the built-in machines of `lifecycle.spec` (never against the tables a
file carries):

``format``
    A line is not UTF-8 canonical JSON ending in a newline (see `lifecycle.journal.parse_line`:
    nesting too deep, an integer too long, ``NaN`` or a line longer than
    `lifecycle.journal.MAX_LINE_BYTES` are format errors too), a record lacks a field or has one
    of the wrong type (``seq`` and ``mono`` ints, never booleans; ``time`` a finite number), or
    the header's ``version`` is not the integer `lifecycle.journal.FORMAT_VERSION` (``true``
    and ``1.0`` are not 1).
``hash-chain``
    A line's ``hash`` is not the SHA-256 of the previous line's hash and its own canonical JSON:
    it was edited, or lines were dropped, inserted or reordered before it.
``header``
    The header's machines differ from the built-in ones, or its task table is malformed (for
    example it names a dependency it does not describe).
``illegal-edge``
    An ``ok`` record is not an edge of its machine (or names an unknown machine).
``refused-was-legal``
    A refused record names a trigger its machine accepts in the state it names.
``continuity``
    A subject's record does not start where its previous record ended (its first record must
    start at the machine's initial state).
``seq-order``
    Sequence numbers do not strictly increase, or a record's ``mono`` (monotonic ns) is below
    the previous record's: the journal takes both under one lock, so neither goes back.
``deps-order``
    A task was initialized or started before one of its DEPS was, or before one of its WANTS
    was (unless that one had ended already).
``stop-order``
    A task was asked to stop before every task ordered after it (through DEPS or WANTS,
    directly or not) had ended, and the journal does not show the collection giving up on
    its stop first (a ``fail`` of the collection while stopping: a passed stop deadline, a
    forced exit), after which the tasks left are still stopped, in order, without waiting.
``not-terminal``
    At the end of the run a collection or service is not in a terminal state, a collection that
    stopped left a task that is not, or a journal that describes tasks has no collection record.

With ``partial=True`` a run cut short is accepted: the end-of-run rules (``not-terminal``) are
skipped and a last line cut mid-write (a process killed while writing) is ignored. A journal's
task table (its header, or the ``tasks`` argument) is taken to describe the tasks of the
journal's collection.

Pure functions over their input; safe to call from any thread.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from lifecycle.errors import DependencyCycle
from lifecycle.graph import topological_order
from lifecycle.journal import (
    FORMAT,
    FORMAT_VERSION,
    Journal,
    JournalFormatError,
    JournalLine,
    JournalReader,
    Transition,
    is_format_version,
)
from lifecycle.journal import canonical as _canonical
from lifecycle.journal import chain_hash as _chain_hash
from lifecycle.spec import SPECS, TASK, CollectionState, MachineSpec, TaskState
from lifecycle.stopping import StopOrder

__all__ = [
    "FILE_SUBJECTS",
    "RULES",
    "AuditInputError",
    "StopOrderRule",
    "Violation",
    "check",
    "task_table",
]

#: Every rule id `check` reports, in the order the module docstring explains them.
RULES = (
    "format",
    "hash-chain",
    "header",
    "illegal-edge",
    "refused-was-legal",
    "continuity",
    "seq-order",
    "deps-order",
    "stop-order",
    "not-terminal",
)

_HEADER = "<header>"
_JOURNAL = "<journal>"
#: The subjects of violations about the file itself, not about a task, collection or service.
FILE_SUBJECTS = frozenset({_HEADER, _JOURNAL})

#: A task table as the audit uses it: name -> (its DEPS, its WANTS).
_Table = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]

# The task triggers whose order DEPS and WANTS constrain (names from the task table).
_INIT, _START, _STOP = "init", "start", "stop"
# The collection's trigger and source of giving up on a stop (a passed deadline).
_FAIL, _STOPPING = "fail", CollectionState.STOPPING.value


@attrs.frozen
class Violation:
    """One broken rule.

    ``line`` is the 1-based line of the journal file (None for records given directly, and for
    end-of-run findings about a subject without records); ``rule`` one of `RULES`; ``subject``
    the task, collection or service concerned (``<header>`` or ``<journal>`` for the file
    itself); ``message`` says what was expected; ``seq`` is the record's sequence number when
    there is one.
    """

    line: int | None
    rule: str
    subject: str
    message: str
    seq: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            where = f"line {self.line}"
        elif self.seq is not None:
            where = f"seq {self.seq}"
        else:
            where = "end"
        return f"{where}: {self.rule}: {self.subject}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class AuditInputError(JournalFormatError):
    """The input cannot be audited at all; ``reason`` says why in one line.

    Raised for a file that cannot be read, is empty, or is not a journal, and for records that
    are not `Transition` objects or a malformed ``tasks`` mapping. Bad content of a journal is
    never raised: it is reported as violations.
    """


def check(
    source: str | os.PathLike[str] | Journal | Iterable[Transition],
    *,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    partial: bool = False,
) -> list[Violation]:
    """Every violation in a journal, in line (or sequence) order; empty when the run is clean.

    ``source`` is a journal file's path (every rule, including the format version and the hash
    chain), a `Journal` (its records and task table), or an iterable of `Transition` records.
    ``tasks`` (records only) maps task names to ``{"deps": [...], ...}`` as in a journal header,
    enabling the ``deps-order`` and end-of-run task checks. ``partial``: accept a run cut short.

    Raises `AuditInputError` for input that cannot be audited (see its docstring).
    """
    if isinstance(source, (str, os.PathLike)):
        if tasks is not None:
            raise AuditInputError("tasks= is only for records: a journal file has its own header")
        return _check_file(source, partial)
    if isinstance(source, Journal):
        records: Iterable[object] = source.records
        if tasks is None:
            tasks = source.tasks
    elif isinstance(source, Iterable):
        records = source
    else:
        raise AuditInputError(
            f"cannot audit {type(source).__name__!r}: expected a journal path, a Journal, "
            "or an iterable of Transition records"
        )
    table: _Table = {}
    if tasks is not None:
        table, problems = _parse_tasks(tasks)
        if problems:
            raise AuditInputError(f"bad tasks mapping: {problems[0]}")
    run = _Run(table, described=bool(table))
    clock = _Clock()
    for index, rec in enumerate(records):
        if not isinstance(rec, Transition):
            raise AuditInputError(f"item {index} is a {type(rec).__name__}, not a Transition")
        try:
            # Transition does not validate its fields; its JSON form's reader does.
            rec = Transition.from_dict(rec.to_dict())
        except JournalFormatError as exc:
            run.violations.append(
                Violation(None, "format", str(rec.subject), f"expected a record: {exc.reason}")
            )
            continue
        run.violations.extend(clock.check(rec, None))
        run.feed(rec, None)
    if not partial:
        run.finish()
    return run.violations


# -- the records: legality, continuity, order, ends -------------------------------------------


class StopOrderRule:
    """The ``stop-order`` rule, judged over a run's records fed in order: the one home of the
    rule for the audit and for `lifecycle.outcome`.

    ``table``: the run's tasks as ``name -> (its DEPS, its WANTS)`` (`task_table` reads a
    journal header's); a table whose DEPS and WANTS have a cycle gives no
    order to judge by (`judged` is False, and no record breaks the rule).

    `feed` takes every ``ok`` record of the run, in order (refused ones and records of other
    tasks included): a task's ``stop`` breaks the rule when a task ordered after it (DEPS or
    WANTS, directly or not) has not ended, unless the collection gave up on its stop before
    (its ``fail`` while stopping: a passed deadline, a forced exit), after which the tasks left
    are stopped in order without waiting. Memory grows with the tasks, not the records.

    Not thread-safe: one owner feeds it.
    """

    def __init__(self, table: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> None:
        before = {name: (*deps, *wants) for name, (deps, wants) in table.items()}
        try:
            self._order: StopOrder | None = StopOrder(
                topological_order(list(table), before), before
            )
        except DependencyCycle:
            self._order = None  # reported as a header problem; no order to judge by
        self.gave_up = False  # the collection gave up on its stop (a passed deadline)

    @property
    def judged(self) -> bool:
        """Whether there is an order to judge by: a well-formed table without a cycle."""
        return self._order is not None and len(self._order) > 0

    def feed(self, rec: Transition) -> Sequence[str]:
        """Take the next record; the tasks it should have waited for when it is a task's stop
        request that breaks the rule (its blockers: the tasks ordered directly after it that
        have not ended, or hold back what they are ordered after), else an empty sequence."""
        if not rec.ok:
            return ()
        if rec.kind != TASK.name:
            if rec.kind == "collection" and rec.trigger == _FAIL and rec.source == _STOPPING:
                self.gave_up = True
            return ()
        order, name = self._order, rec.subject
        if order is None or name not in order:
            return ()
        blockers: Sequence[str] = ()
        if rec.trigger == _STOP and not self.gave_up and not order.may_stop(name):
            blockers = order.blockers(name)
        if rec.dest is not None and TASK.is_terminal(rec.dest):
            order.end(name)
        return blockers


class _Run:
    """The checker's state while it reads one journal's records in order."""

    def __init__(self, table: _Table, described: bool) -> None:
        self.deps = {name: deps for name, (deps, _) in table.items()}
        self.wants = {name: wants for name, (_, wants) in table.items()}
        self.described = described
        self.stop_rule = StopOrderRule(table)
        self.state: dict[tuple[str, str], str] = {}
        self.last_line: dict[tuple[str, str], int | None] = {}
        self.initialized: set[str] = set()
        self.started: set[str] = set()
        self.last_seq: int | None = None
        self.violations: list[Violation] = []

    def report(self, line: int | None, rule: str, subject: str, message: str, seq: int) -> None:
        self.violations.append(Violation(line, rule, subject, message, seq))

    def feed(self, rec: Transition, line: int | None) -> None:
        def report(rule: str, message: str) -> None:
            self.report(line, rule, rec.subject, message, rec.seq)

        if self.last_seq is not None and rec.seq <= self.last_seq:
            report("seq-order", f"expected a seq above {self.last_seq}, got {rec.seq}")
        self.last_seq = rec.seq
        spec = SPECS.get(rec.kind)
        if spec is None:
            known = ", ".join(SPECS)
            report("illegal-edge", f"expected a machine kind among {known}; got {rec.kind!r}")
            return
        key = (rec.kind, rec.subject)
        current = self.state.get(key, spec.initial)
        self.last_line[key] = line
        if rec.source != current:
            first = "" if key in self.state else " (its first record starts at the initial state)"
            report(
                "continuity",
                f"expected {rec.kind} {rec.subject!r} to leave {current!r}, where its previous "
                f"record left it{first}; the record leaves {rec.source!r}",
            )
        after = rec.source if _is_state(spec, rec.source) else current
        expected = spec.table.get((rec.source, rec.trigger))
        if rec.ok:
            if expected is None:
                report("illegal-edge", _no_edge(spec, rec.source, rec.trigger))
            elif rec.dest != expected:
                report(
                    "illegal-edge",
                    f"expected {rec.trigger!r} from {rec.source!r} to lead to {expected!r}, "
                    f"not {rec.dest!r}",
                )
            if rec.dest is not None and _is_state(spec, rec.dest):
                after = rec.dest
            elif expected is not None:
                after = expected
            if rec.kind == TASK.name:
                self._deps_order(rec, line)
            else:
                self.stop_rule.feed(rec)
        else:
            if rec.dest is not None:
                report("format", f"expected a refused record to have no dest, not {rec.dest!r}")
            if expected is not None:
                report(
                    "refused-was-legal",
                    f"expected a refused trigger to be illegal, but {rec.trigger!r} from "
                    f"{rec.source!r} is an edge of the {spec.name} machine (to {expected!r})",
                )
        self.state[key] = after

    def _deps_order(self, rec: Transition, line: int | None) -> None:
        name = rec.subject
        if rec.trigger in (_INIT, _START):
            done, verb = (
                (self.initialized, "initialized")
                if rec.trigger == _INIT
                else (self.started, "started")
            )
            for dep in self.deps.get(name, ()):
                if dep not in done:
                    self.report(
                        line,
                        "deps-order",
                        name,
                        f"expected its DEPS {dep!r} to be {verb} before it",
                        rec.seq,
                    )
            for wanted in self.wants.get(name, ()):
                state = self.state.get((TASK.name, wanted), TASK.initial)
                if wanted not in done and not TASK.is_terminal(state):
                    self.report(
                        line,
                        "deps-order",
                        name,
                        f"expected its WANTS {wanted!r} to be {verb} (or ended) before it; "
                        f"{wanted!r} is still {state}",
                        rec.seq,
                    )
            done.add(name)
        blockers = self.stop_rule.feed(rec)
        if blockers:
            self._stop_order(rec, line, blockers)

    def _stop_order(self, rec: Transition, line: int | None, blockers: Sequence[str]) -> None:
        name = rec.subject
        waiting = ", ".join(
            f"{user!r} ({self.state.get((TASK.name, user), TASK.initial)})" for user in blockers
        )
        self.report(
            line,
            "stop-order",
            name,
            "expected every task ordered after it (DEPS or WANTS) to have ended before it was "
            f"asked to stop; still waiting for {waiting}",
            rec.seq,
        )

    def finish(self) -> None:
        """The end-of-run rules (skipped for a partial run)."""
        kinds = {kind for kind, _ in self.state}
        if self.described and "collection" not in kinds:
            self.violations.append(
                Violation(
                    None,
                    "not-terminal",
                    _JOURNAL,
                    "expected the records of the collection that the header describes; the "
                    "run ends before it did anything (audit it as partial if it was cut short)",
                )
            )
        collection_stopped = False
        for (kind, subject), state in self.state.items():
            if kind == TASK.name:
                continue
            spec = SPECS[kind]
            if kind == "collection" and state == CollectionState.STOPPED:
                collection_stopped = True
            if not spec.is_terminal(state):
                ends = " or ".join(s.value for s in spec.states if spec.is_terminal(s.value))
                self._end(
                    (kind, subject),
                    f"expected the {kind} to end {ends}; it ended {state} "
                    "(audit it as partial if the run was cut short)",
                )
        if not collection_stopped:
            return
        names = dict.fromkeys([*self.deps, *(s for k, s in self.state if k == TASK.name)])
        for name in names:
            state = self.state.get((TASK.name, name), TASK.initial)
            if not TASK.is_terminal(state):
                ends = ", ".join(s.value for s in TaskState if TASK.is_terminal(s.value))
                self._end(
                    (TASK.name, name),
                    f"expected every task to have ended ({ends}) once the collection stopped; "
                    f"it is {state}",
                )

    def _end(self, key: tuple[str, str], message: str) -> None:
        self.violations.append(Violation(self.last_line.get(key), "not-terminal", key[1], message))


def _is_state(spec: MachineSpec, value: object) -> bool:
    return isinstance(value, str) and any(s.value == value for s in spec.states)


def _no_edge(spec: MachineSpec, source: str, trigger: str) -> str:
    if not _is_state(spec, source):
        states = ", ".join(s.value for s in spec.states)
        return f"expected a {spec.name} state ({states}); {source!r} is not one"
    allowed = spec.allowed(source)
    accepts = ", ".join(allowed) if allowed else "nothing (terminal state)"
    return (
        f"expected a trigger that {source!r} accepts ({accepts}); the {spec.name} machine has "
        f"no edge {trigger!r} from it"
    )


def task_table(obj: object) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]] | None:
    """A journal header's ``tasks`` as ``name -> (its DEPS, its WANTS)``, WANTS that name no
    described task left out; None when it is malformed (what the ``header`` rule reports:
    not a mapping, a dependency it does not describe, a cycle). Pure."""
    table, problems = _parse_tasks(obj)
    return None if problems else table


def _parse_tasks(obj: object) -> tuple[_Table, list[str]]:
    """A journal's task table as ``name -> (deps, wants)``, and its problems (empty when well
    formed)."""
    if not isinstance(obj, Mapping):
        return {}, ["expected 'tasks' to map task names to their class, deps and wants"]
    table: _Table = {}
    problems: list[str] = []
    for name, info in obj.items():
        if not isinstance(name, str) or not isinstance(info, Mapping):
            problems.append(f"expected task {name!r} to map to its class, deps and wants")
            continue
        lists: dict[str, tuple[str, ...]] = {"deps": (), "wants": ()}
        for field in lists:
            value = info.get(field, ())
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                problems.append(f"expected the {field} of task {name!r} to be a list of names")
            else:
                lists[field] = tuple(value)
        table[name] = (lists["deps"], lists["wants"])
    for name, (required, _) in table.items():
        for dep in required:
            if dep not in table:
                problems.append(
                    f"task {name!r} requires {dep!r}, which the table does not describe"
                )
    if not problems:
        # A wanted task may have been unregistered: WANTS name only what the table describes.
        table = {
            name: (deps, tuple(w for w in wants if w in table))
            for name, (deps, wants) in table.items()
        }
        try:
            topological_order(list(table), {n: (*d, *w) for n, (d, w) in table.items()})
        except DependencyCycle as exc:
            problems.append(f"expected the tasks' DEPS and WANTS to have no cycle: {exc}")
    return table, problems


# -- the file: lines, format, header, hash chain ----------------------------------------------

_Report = Callable[[int, str, str, str], None]


def _check_file(path: str | os.PathLike[str], partial: bool) -> list[Violation]:
    shown = os.fspath(path)
    try:
        reader = JournalReader(path)
    except JournalFormatError as exc:
        raise AuditInputError(exc.reason) from exc
    with reader:
        return _check_lines(shown, iter(reader), partial)


def _check_lines(shown: str, lines: Iterator[JournalLine], partial: bool) -> list[Violation]:
    first = next(lines, None)
    if first is None:
        raise AuditInputError(f"{shown!r} is empty: no journal header", line=1)

    violations: list[Violation] = []

    def report(line: int, rule: str, subject: str, message: str) -> None:
        violations.append(Violation(line, rule, subject, message))

    if not isinstance(first.value, dict):
        raise AuditInputError(
            f"{shown!r} is not a lifecycle journal: line 1 is {first.value}", line=1
        )
    header: dict[str, Any] | None = first.value
    if first.value.get("format") != FORMAT:
        if not {"seq", "kind", "subject"} <= first.value.keys():
            raise AuditInputError(
                f"{shown!r} is not a lifecycle journal: line 1 has format "
                f"{first.value.get('format')!r}, expected {FORMAT!r}",
                line=1,
            )
        report(1, "format", _HEADER, "expected the journal header first; line 1 is a record")
        header = None
    table: _Table = {}
    if header is not None:
        table = _check_header(header, report)
    run = _Run(table, described=bool(table))
    clock = _Clock()

    previous: str | None = ""
    for line in itertools.chain([first], lines):
        number, raw, ended, obj = line.number, line.raw, line.ended, line.value
        if not ended:
            if isinstance(obj, dict):
                if not partial:
                    report(number, "format", _JOURNAL, "expected a newline at the end of the file")
            else:
                if not partial:
                    report(
                        number,
                        "format",
                        _JOURNAL,
                        "expected a complete last line; it is cut short (the writer was "
                        "killed mid-line: audit it as partial to accept that)",
                    )
                break
        if not isinstance(obj, dict):
            report(number, "format", _JOURNAL, f"expected a JSON object; the line is {obj}")
            previous = None
            continue
        named = obj.get("subject")
        subject = named if isinstance(named, str) else _JOURNAL
        if obj.get("format") == FORMAT:
            subject = _HEADER
        stored = obj.get("hash")
        body = {k: v for k, v in obj.items() if k != "hash"}
        if raw.decode("utf-8") != _canonical(obj):
            report(number, "format", subject, "expected canonical JSON (sorted keys, no spaces)")
        if not isinstance(stored, str):
            report(number, "hash-chain", subject, "expected a 'hash' field chaining the line")
        elif previous is not None and stored != _chain_hash(previous, _canonical(body)):
            after = "the start of the chain" if number == 1 else f"line {number - 1}'s hash"
            report(
                number,
                "hash-chain",
                subject,
                f"expected the hash of {after} and this line; it differs: this line was "
                "edited, or lines were dropped, inserted or reordered before it",
            )
        previous = stored if isinstance(stored, str) else None
        if number == 1 and header is not None:
            continue
        if obj.get("format") == FORMAT:
            report(number, "format", _HEADER, "expected a record; found another journal header")
            continue
        try:
            rec = Transition.from_dict(body)
        except JournalFormatError as exc:
            report(number, "format", subject, f"expected a transition record: {exc.reason}")
            continue
        violations.extend(clock.check(rec, number))
        run.feed(rec, number)
    if not partial:
        run.finish()
    # File and record findings in line order; end-of-run findings without a line come last.
    return sorted([*violations, *run.violations], key=lambda v: (v.line is None, v.line or 0))


class _Clock:
    """The ``mono`` half of ``seq-order``: monotonic times never go back within a journal.

    The journal takes ``mono`` under the same lock that numbers the records, so in file order
    it never decreases; one that does was edited, or its line moved.
    """

    def __init__(self) -> None:
        self.last: int | None = None

    def check(self, rec: Transition, line: int | None) -> list[Violation]:
        last, self.last = self.last, rec.mono
        if last is None or rec.mono >= last:
            return []
        message = f"expected a mono time of at least {last} (the previous record's), got {rec.mono}"
        return [Violation(line, "seq-order", rec.subject, message, rec.seq)]


def _check_header(header: Mapping[str, Any], report: _Report) -> _Table:
    """Report what is wrong with the header; return its task table as ``name -> (deps,
    wants)``."""
    version = header.get("version")
    if not is_format_version(version):
        report(1, "format", _HEADER, f"expected journal version {FORMAT_VERSION}, got {version!r}")
    specs = header.get("specs")
    if not isinstance(specs, Mapping):
        report(1, "header", _HEADER, "expected 'specs': the machines the journal was written for")
    else:
        for name in sorted({*SPECS, *specs}):
            if name not in SPECS:
                report(1, "header", _HEADER, f"expected only the built-in machines; got {name!r}")
            elif specs.get(name) != SPECS[name].to_dict():
                how = "lacks it" if name not in specs else "differs"
                report(
                    1,
                    "header",
                    _HEADER,
                    f"expected the built-in {name} machine; the header's {how} (the journal "
                    "was written by another version of the lifecycle machines)",
                )
    if "tasks" not in header:
        report(1, "header", _HEADER, "expected 'tasks': the task table of the run")
        return {}
    table, problems = _parse_tasks(header["tasks"])
    for problem in problems:
        report(1, "header", _HEADER, problem)
    return {} if problems else table
