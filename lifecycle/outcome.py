"""What a run did, read from its journal: the verdict, each subject's summary, its timeline.

`lifecycle.audit` answers "did the run obey the rules" (integrity); this module answers "what
did the run do" (the outcome), from the same records:

* `outcome` -> `Outcome`: the service's final state and root cause (one line and the full
  text), why its stop was asked for, every task's `SubjectSummary` (final state, cause, time
  to running, time to stop, items dropped at stop), whether the staged stop order was kept
  (the audit's own ``stop-order`` rule, `lifecycle.audit.StopOrderRule`), and a `verdict`;
* `timeline` -> `Timeline`: each subject's states over time (`Span`);
* `summarize`: the `TaskSummary` of named tasks from records (what `Service.summary` returns).

A source is a journal file's path (read with `lifecycle.journal.JournalReader`, the one reader
of journal files: anything but a regular file is refused, lines are bounded), a `Journal`, or
an iterable of `Transition` records (with ``tasks``, the header's task table, when known).
Records are read once, in order, and never kept: memory grows with the number of subjects, not
of records. Lines of a file that are not records (bad JSON, a missing field, a line cut short)
are skipped and counted (`Outcome.skipped`): judging them is the audit's job. Refused triggers
change no state. Records of a user machine (one the journal describes: its header, a
``machine`` line) are followed too: in `timeline`, and by `OutcomeBuilder.summary`; the
verdict is the built-in machines' alone.

Times are seconds by the records' monotonic clock (``mono``), counted from the service's
``start`` record (else from the first record).

Pure functions over their input; safe to call from any thread.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs

from lifecycle.audit import StopOrderRule, fast_record, task_table
from lifecycle.errors import DependencyCycle, LifecycleError
from lifecycle.graph import topological_order
from lifecycle.journal import (
    FORMAT,
    Journal,
    JournalFormatError,
    JournalReader,
    Transition,
    cause_line,
    is_machine_line,
    is_seal_line,
    parse_line,
)
from lifecycle.spec import COLLECTION, SERVICE, SPECS, TASK, MachineSpec, TaskState
from lifecycle.specfile import spec_from_dict
from lifecycle.tasks.queue import dropped_in_cause

__all__ = [
    "FAILED",
    "KINDS",
    "MAX_SPANS",
    "SUCCEEDED",
    "UNFINISHED",
    "Outcome",
    "OutcomeBuilder",
    "OutcomeInputError",
    "Span",
    "StopOrderBreach",
    "SubjectSummary",
    "SubjectTimeline",
    "TaskSummary",
    "Timeline",
    "outcome",
    "summarize",
    "timeline",
]

#: The kinds of subject, in the order outputs list them.
KINDS = (SERVICE.name, COLLECTION.name, TASK.name)

#: The most spans a `SubjectTimeline` keeps: far above any legal run (every machine is acyclic:
#: a task passes through at most 6 states), and a bound on what a hostile journal that moves
#: one subject back and forth a million times can make a reader hold.
MAX_SPANS = 64

#: The verdicts of `Outcome.verdict`.
SUCCEEDED, FAILED, UNFINISHED = "succeeded", "failed", "unfinished"

_SUCCESS = "stopped"  # the terminal state of a service, collection or task that ended well
_FAILURE = TaskState.FAILED.value
_SKIPPED = TaskState.SKIPPED.value
_RUNNING = TaskState.RUNNING.value


class OutcomeInputError(JournalFormatError):
    """The input has no outcome to read: a file that cannot be read, is empty or is not a
    journal, a source of the wrong type, an item that is not a `Transition`, or a kind that is
    none of `KINDS`. Bad lines of a journal are not raised: they are skipped and counted."""


@attrs.frozen
class SubjectSummary:
    """How one subject (a task, the collection, the service) ended.

    ``state``: its final state (the initial one when no record moved it); ``time_to_running``:
    seconds from the run's start to its first ``running`` (None if it never ran);
    ``time_to_stop``: seconds from its stop request (its ``stop`` record) to its terminal record
    (None without both); ``cause``: the one-line reason it was skipped or failed (None
    otherwise), ``cause_text`` the full text (a traceback, where there is one); ``dropped``: the
    queued items its ``finish`` record says it dropped at stop (0 for a task that ended
    ``stopped`` saying none, None when it did not end so: failed, skipped, never ended).
    """

    name: str
    state: str
    time_to_running: float | None
    cause: str | None
    cause_text: str | None = None
    time_to_stop: float | None = None
    dropped: int | None = None
    kind: str = TASK.name

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: every field but ``name`` and ``kind`` (the keys of their tables)."""
        return {
            "state": self.state,
            "cause": self.cause,
            "cause_text": self.cause_text,
            "time_to_running": self.time_to_running,
            "time_to_stop": self.time_to_stop,
            "dropped": self.dropped,
        }


#: A task's summary: what `summarize` and `Service.summary` return (the name it has had since
#: before the service and collection got summaries too).
TaskSummary = SubjectSummary


@attrs.frozen
class StopOrderBreach:
    """A task asked to stop before the tasks ordered after it had ended (the audit's
    ``stop-order`` violation): its ``task``, the record's ``seq``, and ``waiting_for``, the
    tasks it should have waited for."""

    task: str
    seq: int
    waiting_for: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "seq": self.seq, "waiting_for": list(self.waiting_for)}


@attrs.frozen
class Outcome:
    """What a run did. See `outcome`.

    ``service``: the service's summary (None for a journal without service records: a
    collection driven by hand); ``collection`` likewise; ``tasks``: every task's summary, in the
    order of their first records (the collection's dependency order), then the described tasks
    without records;
    ``stop_reason``: the one-line reason the service's stop was asked for; ``first_failure``:
    the task that failed first, if any; ``stop_order_kept``: whether every task's stop waited
    for the tasks ordered after it (None when the journal gives no order to judge by);
    ``breaches``: the stops that did not; ``records``: the records read; ``skipped``: the lines
    of a file that were not records.
    """

    service: SubjectSummary | None
    collection: SubjectSummary | None
    tasks: tuple[SubjectSummary, ...]
    stop_reason: str | None
    first_failure: str | None
    stop_order_kept: bool | None
    breaches: tuple[StopOrderBreach, ...]
    records: int
    skipped: int = 0

    @property
    def subjects(self) -> tuple[SubjectSummary, ...]:
        """Every subject's summary: the service, the collection, then the tasks."""
        return (*(s for s in (self.service, self.collection) if s is not None), *self.tasks)

    @property
    def top(self) -> SubjectSummary | None:
        """The subject whose end is the run's end: the service, else the collection."""
        return self.service if self.service is not None else self.collection

    @property
    def verdict(self) -> str:
        """``"succeeded"``: the service (else the collection) ended stopped and no task failed;
        ``"failed"``: it ended failed, or a task failed; ``"unfinished"``: it has not ended (a
        run cut short, or no service or collection records at all)."""
        top = self.top
        if any(t.state == _FAILURE for t in self.tasks) or (
            top is not None and top.state == _FAILURE
        ):
            return FAILED
        if top is None or not SPECS[top.kind].is_terminal(top.state):
            return UNFINISHED
        return SUCCEEDED

    @property
    def succeeded(self) -> bool:
        return self.verdict == SUCCEEDED

    @property
    def cause(self) -> str | None:
        """The run's root cause in one line: the service's (else the collection's) cause."""
        top = self.top
        return top.cause if top is not None else None

    @property
    def dropped(self) -> int:
        """The queued items every task dropped at stop, never run, as the records say."""
        return sum(t.dropped or 0 for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the ``outcome`` object of ``lifecycle audit --json`` (its layout is
        documented in the README, and versioned by that document's ``schema``)."""
        service, collection = self.service, self.collection
        return {
            "verdict": self.verdict,
            "service": service.state if service is not None else None,
            "service_name": service.name if service is not None else None,
            "cause": self.cause,
            "cause_text": self.top.cause_text if self.top is not None else None,
            "stop_reason": self.stop_reason,
            "first_failure": self.first_failure,
            "collection": (
                {"name": collection.name, **collection.to_dict()} if collection else None
            ),
            "stop_order_kept": self.stop_order_kept,
            "stop_order_breaches": [b.to_dict() for b in self.breaches],
            "dropped": self.dropped,
            "records": self.records,
            "skipped": self.skipped,
            "tasks": {t.name: t.to_dict() for t in self.tasks},
        }


@attrs.frozen
class Span:
    """One state a subject was in: ``state``, entered at ``start`` (monotonic ns) by the record
    ``seq`` (its ``trigger`` and one-line ``cause``), until ``end`` (None: it never left)."""

    state: str
    start: int
    end: int | None
    seq: int
    trigger: str
    cause: str | None


@attrs.frozen
class SubjectTimeline:
    """A subject's states over time, in order; ``dropped``: spans beyond `MAX_SPANS`, not
    kept (only a journal that breaks the rules has any)."""

    kind: str
    name: str
    spans: tuple[Span, ...]
    dropped: int = 0


@attrs.frozen
class Timeline:
    """Every selected subject's states over time (`timeline`): ``origin`` and ``end`` are the
    monotonic times (ns) of the run's start and of its last record; ``subjects`` are listed
    service first, then the collection, then the tasks in dependency order."""

    origin: int
    end: int
    subjects: tuple[SubjectTimeline, ...]
    records: int
    skipped: int = 0

    def seconds(self, mono: int) -> float:
        """``mono`` as seconds since the run's start."""
        return (mono - self.origin) / 1e9


# -- reading -----------------------------------------------------------------------------------

Source = str | os.PathLike[str] | Journal | Iterable[Transition]


def outcome(source: Source, *, tasks: Mapping[str, Mapping[str, Any]] | None = None) -> Outcome:
    """What the run of ``source`` did: see `Outcome`.

    ``source``: a journal file's path, a `Journal`, or an iterable of `Transition` records;
    ``tasks`` (records only): the run's task table as a journal header holds it (name ->
    ``{"deps": [...], "wants": [...]}``), which orders the tasks and the stop-order judgement.

    Raises `OutcomeInputError` for input that has no outcome to read (see its docstring).
    """
    fold = OutcomeBuilder(spans=False)
    _read(source, tasks, fold)
    return fold.outcome()


def timeline(
    source: Source,
    *,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    kinds: Collection[str] | None = None,
    subjects: Collection[str] | None = None,
) -> Timeline:
    """Each subject's states over time in ``source`` (as for `outcome`), keeping only the
    subjects of ``kinds`` (`KINDS`) and named in ``subjects`` when given (None: all).

    Raises `OutcomeInputError` as `outcome` does, and for an unknown kind.
    """
    if kinds is not None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise OutcomeInputError(
                f"unknown kind {unknown[0]!r}; expected one of {', '.join(KINDS)}"
            )
    fold = OutcomeBuilder(spans=True, kinds=kinds, subjects=subjects)
    _read(source, tasks, fold)
    return fold.timeline()


def summarize(
    records: Iterable[Transition], tasks: Iterable[str], *, service: str | None = None
) -> list[TaskSummary]:
    """A `TaskSummary` for each of ``tasks`` (names, in the order given) from a run's
    ``records``. Times count from the ``start`` record of the service named ``service`` (else
    of the first service), else from the first record. A name without records is summarized
    in the task machine's initial state.

    Raises `OutcomeInputError` for an item that is not a `Transition`.
    """
    fold = OutcomeBuilder(spans=False, service=service)
    _read(records, None, fold)
    return [fold.summary(TASK.name, name) for name in tasks]


def _read(
    source: object, tasks: Mapping[str, Mapping[str, Any]] | None, fold: OutcomeBuilder
) -> None:
    if isinstance(source, (str, os.PathLike)):
        if tasks is not None:
            raise OutcomeInputError("tasks= is only for records: a journal file has its own header")
        _read_file(os.fspath(source), fold)
        return
    if isinstance(source, Journal):
        fold.describe(source.tasks if tasks is None else tasks)
        for spec in source.machines.values():
            fold.machine(spec)
        records: Iterable[object] = source.records
    elif isinstance(source, Iterable):
        if tasks is not None:
            fold.describe(tasks)
        records = source
    else:
        raise OutcomeInputError(
            f"cannot read the outcome of {type(source).__name__!r}: expected a journal path, a "
            "Journal, or an iterable of Transition records"
        )
    for index, rec in enumerate(records):
        if not isinstance(rec, Transition):
            raise OutcomeInputError(f"item {index} is a {type(rec).__name__}, not a Transition")
        fold.feed(rec)


def _read_file(path: str, fold: OutcomeBuilder) -> None:
    try:
        reader = JournalReader(path)
    except JournalFormatError as exc:
        raise OutcomeInputError(exc.reason) from exc
    with reader:
        rows = reader.rows(parse=False)
        first = next(rows, None)
        if first is None:
            raise OutcomeInputError(f"{path!r} is empty: no journal header", line=1)
        header = parse_line(first[1]) if first[3] is None else first[3]
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise OutcomeInputError(f"{path!r} is not a lifecycle journal: line 1 is no header", 1)
        fold.describe(header.get("tasks"))
        specs = header.get("specs")
        if isinstance(specs, Mapping):
            for declared in specs.values():
                fold.machine(declared)
        feed = fold.feed
        for _, raw, ended, value in rows:
            if not ended:
                fold.skip()
                continue
            # Most lines are canonical records: read by the audit's pattern, no JSON parsed.
            rec = fast_record(raw) if value is None else None
            if rec is None:
                obj = parse_line(raw) if value is None else value
                if isinstance(obj, dict) and is_seal_line(obj):
                    continue  # a sealed journal's last line: the seal, not a record to skip
                if isinstance(obj, dict) and is_machine_line(obj):
                    fold.machine(obj["machine"])  # a machine declared, not a record to skip
                    continue
                try:
                    rec = Transition.from_dict(obj) if isinstance(obj, dict) else None
                except JournalFormatError:
                    rec = None
            if rec is None:
                fold.skip()
            else:
                feed(rec)


# -- folding -----------------------------------------------------------------------------------


class _Subject:
    """What the fold keeps of one subject (slots: there is one per task)."""

    __slots__ = ("cause", "dropped", "ended", "lost", "running_at", "spans", "state", "stop_at")

    def __init__(self, initial: str, spans: bool) -> None:
        self.state = initial
        self.cause: str | None = None
        self.running_at: int | None = None
        self.stop_at: int | None = None
        self.ended: int | None = None
        self.dropped: int | None = None
        self.spans: list[Span] | None = [] if spans else None
        self.lost = 0


class OutcomeBuilder:
    """The outcome of one run, built as its records are read in order: what `outcome`,
    `timeline` and `summarize` use, for a reader that already goes through a journal's lines
    (an audit) to build an outcome in the same pass.

    ``spans``: also keep each subject's states over time (for `timeline`), only for the
    subjects of ``kinds`` named in ``subjects`` (None: all); ``service``: the service whose
    ``start`` record times count from (default: the first one). Call `describe` with the
    header's ``tasks`` first, then `feed` each record and `skip` each line that is not one;
    `outcome`, `timeline` and `summary` may be called at any point. Memory grows with the
    subjects, not the records. Not thread-safe: one reader feeds it.
    """

    def __init__(
        self,
        *,
        spans: bool = False,
        service: str | None = None,
        kinds: Collection[str] | None = None,
        subjects: Collection[str] | None = None,
    ) -> None:
        self.keep_spans = spans
        self.kinds = None if kinds is None else frozenset(kinds)
        self.names = None if subjects is None else frozenset(subjects)
        self.wanted_service = service
        self.table: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.rule = StopOrderRule({})
        self.judged = False
        self.subjects: dict[tuple[str, str], _Subject] = {}
        self.starts: dict[str, int] = {}  # service name -> the mono of its start record
        self.first_mono: int | None = None
        self.last_mono: int | None = None
        self.stop_reason: dict[str, str | None] = {}
        self.first_failure: str | None = None
        self.breaches: dict[str, StopOrderBreach] = {}  # the first breach of each task
        self.records = 0
        self.skipped = 0
        # The machines whose records are followed: the built-in ones, and those `machine`
        # declares (a built-in one is never replaced: the audit judges such a declaration).
        self.machines: dict[str, MachineSpec] = dict(SPECS)

    def describe(self, tasks: object) -> None:
        """Take the run's task table (a header's ``tasks``); a malformed one orders nothing."""
        self.table = task_table(tasks if tasks is not None else {}) or {}
        self.rule = StopOrderRule(self.table)
        self.judged = self.rule.judged

    def machine(self, declared: object) -> None:
        """Follow the records of a machine the journal declares (a `MachineSpec`, or its
        object as a header or a ``machine`` line holds it). A malformed one, a second one of a
        name, or one named as a built-in machine is ignored (the audit reports them)."""
        if isinstance(declared, MachineSpec):
            spec = declared
        else:
            try:
                spec = spec_from_dict(declared)
            except LifecycleError:
                return
        self.machines.setdefault(spec.name, spec)

    def skip(self) -> None:
        """Count a line of the journal that is not a record."""
        self.skipped += 1

    def feed(self, rec: Transition) -> None:
        """Take the run's next record."""
        self.records += 1
        if self.first_mono is None:
            self.first_mono = rec.mono
        self.last_mono = rec.mono
        spec = self.machines.get(rec.kind)
        if spec is None:
            return
        key = (rec.kind, rec.subject)
        subject = self.subjects.get(key)
        if subject is None:
            subject = self.subjects[key] = _Subject(spec.initial, self._keeps(key))
        if not rec.ok or rec.dest is None:
            return  # a refused trigger changes nothing
        blockers = self.rule.feed(rec)
        if blockers and rec.subject not in self.breaches:
            self.breaches[rec.subject] = StopOrderBreach(rec.subject, rec.seq, tuple(blockers))
        dest = rec.dest
        if subject.spans is not None:
            self._span(subject, rec)
        subject.state = dest
        if dest == _RUNNING and subject.running_at is None:
            subject.running_at = rec.mono
        if rec.trigger == "stop":
            if subject.stop_at is None:
                subject.stop_at = rec.mono
            if rec.kind == SERVICE.name:
                self.stop_reason.setdefault(rec.subject, rec.cause)
        if rec.kind == SERVICE.name and rec.trigger == "start":
            self.starts.setdefault(rec.subject, rec.mono)
        if spec.is_terminal(dest):
            subject.ended = rec.mono
            subject.cause = rec.cause if dest in (_FAILURE, _SKIPPED) else None
            # A queue task's finish record says what it dropped; any other stop dropped nothing.
            if rec.kind == TASK.name:
                subject.dropped = (dropped_in_cause(rec.cause) or 0) if dest == _SUCCESS else None
            if dest == _FAILURE and rec.kind == TASK.name and self.first_failure is None:
                self.first_failure = rec.subject

    def _keeps(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return (
            self.keep_spans
            and (self.kinds is None or kind in self.kinds)
            and (self.names is None or name in self.names)
        )

    @staticmethod
    def _span(subject: _Subject, rec: Transition) -> None:
        spans = subject.spans
        if spans is None:
            return
        if spans and spans[-1].end is None:
            spans[-1] = attrs.evolve(spans[-1], end=rec.mono)
        if len(spans) >= MAX_SPANS:
            subject.lost += 1
            return
        cause = cause_line(rec.cause)
        spans.append(Span(rec.dest or "", rec.mono, None, rec.seq, rec.trigger, cause))

    # -- results -------------------------------------------------------------------------------

    def origin(self) -> int:
        """The monotonic time (ns) times count from: the service's start, else the first
        record."""
        if self.wanted_service is not None and self.wanted_service in self.starts:
            return self.starts[self.wanted_service]
        if self.starts:
            return next(iter(self.starts.values()))
        return self.first_mono if self.first_mono is not None else 0

    def summary(self, kind: str, name: str) -> SubjectSummary:
        """The summary of one subject (in its machine's initial state if it has no record)."""
        subject = self.subjects.get((kind, name))
        if subject is None:
            spec = self.machines.get(kind)
            initial = spec.initial if spec is not None else "?"  # "?": a machine not described
            return SubjectSummary(name, initial, None, None, kind=kind)
        origin = self.origin()
        to_stop = None
        if subject.stop_at is not None and subject.ended is not None:
            to_stop = max(subject.ended - subject.stop_at, 0) / 1e9
        return SubjectSummary(
            name,
            subject.state,
            None if subject.running_at is None else (subject.running_at - origin) / 1e9,
            cause_line(subject.cause),
            subject.cause,
            to_stop,
            subject.dropped,
            kind,
        )

    def names_of(self, kind: str) -> list[str]:
        """The subjects of ``kind`` in the order of their first records; for tasks, then the
        described tasks without records, in dependency order (by name among equals: a file's
        header has its keys sorted). A collection creates its tasks in its dependency order,
        so a run's tasks come in the order its own summary lists them."""
        seen = [name for k, name in self.subjects if k == kind]
        if kind != TASK.name:
            return seen
        try:
            ordered = topological_order(
                sorted(self.table), {n: (*d, *w) for n, (d, w) in self.table.items()}
            )
        except DependencyCycle:  # pragma: no cover - a table with a cycle is refused by describe
            ordered = list(self.table)
        return list(dict.fromkeys(itertools.chain(seen, ordered)))

    def outcome(self) -> Outcome:
        """The outcome of the records fed so far."""
        services = self.names_of(SERVICE.name)
        collections = self.names_of(COLLECTION.name)
        service = self.wanted_service or (services[0] if services else None)
        kept: bool | None = (not self.breaches) if self.judged else None
        return Outcome(
            service=self.summary(SERVICE.name, service) if service in services else None,
            collection=self.summary(COLLECTION.name, collections[0]) if collections else None,
            tasks=tuple(self.summary(TASK.name, name) for name in self.names_of(TASK.name)),
            stop_reason=cause_line(self.stop_reason.get(service or "")),
            first_failure=self.first_failure,
            stop_order_kept=kept,
            breaches=tuple(sorted(self.breaches.values(), key=lambda b: b.seq)),
            records=self.records,
            skipped=self.skipped,
        )

    def timeline(self) -> Timeline:
        """The states over time of the records fed so far (empty unless built with spans)."""
        origin = self.origin()
        drawn = []
        others = dict.fromkeys(kind for kind, _ in self.subjects if kind not in KINDS)
        for kind in (*KINDS, *others):
            for name in self.names_of(kind):
                subject = self.subjects.get((kind, name))
                if subject is None or subject.spans is None:
                    continue
                drawn.append(SubjectTimeline(kind, name, tuple(subject.spans), subject.lost))
        end = self.last_mono if self.last_mono is not None else origin
        return Timeline(origin, max(end, origin), tuple(drawn), self.records, self.skipped)
