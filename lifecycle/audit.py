"""The offline checker of a journal: did a run obey the lifecycle?

`check` reads a journal file (or takes `Transition` records) and returns every `Violation` it
finds; it never raises for bad content, only for input that cannot be audited at all
(`AuditInputError`: an unreadable or empty file, anything but a regular file, a file that is
not a journal, records that are not `Transition` objects). Files are read with
`lifecycle.journal.JournalReader`, the reader every consumer of journal files shares. Each
violation names its line, a stable rule id, the subject and what was expected instead.

The machines records are judged against: the built-in machines of `lifecycle.spec` (never the
tables a file carries for them); a machine pinned by the caller (``specs=``, ``lifecycle audit
--spec``), whose definition is the trusted one; else the journal's own description of a user
machine (its header's ``specs``, or a ``machine`` line declaring it before its first record).
A header is written by whoever wrote the file: pin the machines you mean to trust.

The rules:

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
    The header's machines differ from the built-in ones, a machine the header or a ``machine``
    line declares is not a valid machine, is declared twice with two definitions, or differs
    from the one pinned under its name (the violation names the machine), or the task table is
    malformed (for example it names a dependency it does not describe).
``illegal-edge``
    An ``ok`` record is not an edge of its machine (or names a machine neither built in, nor
    pinned, nor described before the record).
``refused-was-legal``
    A refused record names a trigger its machine accepts in the state it names (unless it is
    a user machine's veto: a guard or a before hook of a bound class refused a legal edge, and
    its cause says so, see `lifecycle.journal.VETO_CAUSE_PREFIX`).
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
``restart``
    A task's restarts broke its restart policy (the header's ``restart`` for the task; none
    means ``"never"``): a ``crash`` of a task that may not restart, more than ``burst``
    crashes within ``seconds`` (``RESTART_LIMIT``), a ``restart`` less than ``RESTART_DELAY``
    after the crash (by the records' monotonic clock), a ``restart`` while a task that
    requires it (DEPS, directly or not) was still running or stopping, or a task started
    while one of its DEPS was restarting (crashed or suspended, and not running again).
``not-terminal``
    At the end of the run a collection or service is not in a terminal state, a collection that
    stopped left a task that is not, or a journal that describes tasks has no collection record.
    (A user machine promises no end: its subjects may end in any state.)
``seal``
    A sealed journal (see `lifecycle.seal`): a line's ``mac`` is missing or is not the MAC of
    the line under its epoch's key (checked only with a verification key), the key is not the
    one that sealed the journal, the header's ``seal`` is malformed, the final ``seal`` line
    does not count the records or name the last record's hash, lines follow it, or it is
    missing (the journal is incomplete: cut short, or its writer killed). Also: a verification
    key given for a journal that is not sealed.
``run``
    The journal is not the run expected: its header's run id differs from ``run_id``, its
    chain head (the last line's hash) from ``expect_head``, or a version 2 header lacks a
    well-formed ``run`` (id, host, pid, start time, package version).

With ``partial=True`` a run cut short is accepted: the end-of-run rules (``not-terminal``, and
a missing ``seal`` line) are skipped and a last line cut mid-write (a process killed while
writing) is ignored. A journal's task table (its header, or the ``tasks`` argument) is taken to
describe the tasks of the journal's collection.

What a clean audit proves: of an unsealed journal, that it was not edited by accident (anyone
can recompute its hash chain); of a sealed journal audited with its verification key, that no
line was changed, added, dropped or moved by anyone without a key of its epoch (`AuditReport`
``sealed``). Files are read line by line: memory does not grow with the file's size.

Pure functions over their input; safe to call from any thread.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

import attrs

from lifecycle.errors import DependencyCycle, InvalidSpec
from lifecycle.graph import dependents, topological_order
from lifecycle.journal import (
    FORMAT,
    FORMAT_VERSIONS,
    MACHINE_LINES_SINCE,
    MAX_INT_DIGITS,
    Journal,
    JournalFormatError,
    JournalReader,
    Transition,
    is_format_version,
    is_machine_line,
    is_seal_line,
    is_veto_cause,
    parse_line,
)
from lifecycle.journal import canonical as _canonical
from lifecycle.restart import RestartPolicy, seconds_ns
from lifecycle.seal import KDF, MAX_EPOCH, EpochKeys, VerifyKey
from lifecycle.spec import COLLECTION, SERVICE, SPECS, TASK, CollectionState, MachineSpec, TaskState
from lifecycle.specfile import spec_from_dict
from lifecycle.stopping import StopOrder

__all__ = [
    "FILE_SUBJECTS",
    "RULES",
    "AuditInputError",
    "AuditReport",
    "StopOrderRule",
    "Violation",
    "audit",
    "check",
    "fast_record",
    "pinned_specs",
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
    "restart",
    "not-terminal",
    "seal",
    "run",
)

_HEADER = "<header>"
_JOURNAL = "<journal>"
#: The subjects of violations about the file itself, not about a task, collection or service.
FILE_SUBJECTS = frozenset({_HEADER, _JOURNAL})

#: A task table as the audit uses it: name -> (its DEPS, its WANTS).
_Table = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
#: The restart policies of a task table: name -> policy (tasks that never restart left out).
_Policies = dict[str, RestartPolicy]
# The task triggers and states of restarts.
_CRASH, _SUSPEND, _RESTART = "crash", "suspend", "restart"
_LIVE_STATES = frozenset(
    {TaskState.RUNNING.value, TaskState.STOPPING.value, TaskState.SUSPENDING.value}
)

# The task triggers whose order DEPS and WANTS constrain (names from the task table).
_INIT, _START, _STOP = "init", "start", "stop"
# The collection's trigger and source of giving up on a stop (a passed deadline).
_FAIL, _STOPPING = "fail", CollectionState.STOPPING.value
#: The machines whose subjects must end (the end-of-run rule): the runtime's own.
_ENDING_KINDS = frozenset({COLLECTION.name, SERVICE.name})
_TASK_KIND = TASK.name
_TASK_TERMINAL = frozenset(s.value for s in TaskState if TASK.is_terminal(s.value))


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


@attrs.frozen
class AuditReport:
    """What `audit` found in a journal file.

    ``violations`` as `check` returns them; ``sealed`` is True when the journal is sealed and
    every line read verified with the verification key given: its MAC, its hash and its form
    (a journal without its final seal line is reported apart, as incomplete);
    ``records`` counts the transition records read and ``last_seq`` is the last one's
    ``seq`` (None if none); ``complete`` whether a sealed journal ends with its ``seal`` line
    (None for an unsealed one); ``run_id`` the header's run id (None for a version 1 file);
    ``head`` the chain head, the last line's hash (None if it has none).
    """

    violations: list[Violation]
    sealed: bool
    records: int
    last_seq: int | None
    complete: bool | None
    run_id: str | None
    head: str | None

    @property
    def clean(self) -> bool:
        return not self.violations


def check(
    source: str | os.PathLike[str] | Journal | Iterable[Transition],
    *,
    tasks: Mapping[str, Mapping[str, Any]] | None = None,
    partial: bool = False,
    verify_key: VerifyKey | None = None,
    expect_head: str | None = None,
    run_id: str | None = None,
    specs: Iterable[MachineSpec] | Mapping[str, MachineSpec] | None = None,
) -> list[Violation]:
    """Every violation in a journal, in line (or sequence) order; empty when the run is clean.

    ``source`` is a journal file's path (every rule, including the format version, the hash
    chain and the seal), a `Journal` (its records and task table), or an iterable of
    `Transition` records. ``tasks`` (records only) maps task names to ``{"deps": [...], ...}``
    as in a journal header, enabling the ``deps-order`` and end-of-run task checks.
    ``partial``: accept a run cut short. ``verify_key``, ``expect_head`` and ``run_id`` (files
    only): see `audit`. ``specs``: the machines to trust (see `audit`); a `Journal`'s own
    described machines are compared with them.

    Raises `AuditInputError` for input that cannot be audited (see its docstring), and for a
    bounded `Journal` (``max_records``) that has dropped records.
    """
    pins = pinned_specs(specs)
    if isinstance(source, (str, os.PathLike)):
        if tasks is not None:
            raise AuditInputError("tasks= is only for records: a journal file has its own header")
        return audit(
            source,
            partial=partial,
            verify_key=verify_key,
            expect_head=expect_head,
            run_id=run_id,
            specs=pins,
        ).violations
    if verify_key is not None or expect_head is not None or run_id is not None:
        raise AuditInputError(
            "verify_key=, expect_head= and run_id= are only for journal files: records carry "
            "no seal, run id or hashes"
        )
    described: Mapping[str, MachineSpec] = {}
    if isinstance(source, Journal):
        if source.dropped:
            # Its subjects would seem to start mid-way: every one a continuity violation.
            raise AuditInputError(
                f"the journal kept only its last {len(source)} record(s) (max_records) and "
                f"dropped {source.dropped}: audit the file it streamed to instead"
            )
        records: Iterable[object] = source.records
        described = source.machines
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
    policies: _Policies = {}
    if tasks is not None:
        table, problems = _parse_tasks(tasks)
        policies, more = _restart_policies(tasks)
        problems += more
        if problems:
            raise AuditInputError(f"bad tasks mapping: {problems[0]}")
    run = _Run(table, described=bool(table), pins=pins, policies=policies)
    for spec in described.values():
        if spec.name not in SPECS:
            run.declare(spec.to_dict(), None, "the journal", spec)
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
        run.violations.extend(clock.check(rec.mono, rec.subject, rec.seq, None))
        run.feed(
            rec.seq,
            rec.kind,
            rec.subject,
            rec.trigger,
            rec.source,
            rec.dest,
            rec.ok,
            None,
            is_veto_cause(rec.cause),
            rec.mono,
        )
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
        return self.judge(rec.kind, rec.subject, rec.trigger, rec.source, rec.dest)

    def judge(
        self, kind: str, subject: str, trigger: str, source: str, dest: str | None
    ) -> Sequence[str]:
        """`feed` for an ``ok`` record given by its fields (a reader that builds no
        `Transition` per line)."""
        if kind != _TASK_KIND:
            if kind == "collection" and trigger == _FAIL and source == _STOPPING:
                self.gave_up = True
            return ()
        order = self._order
        if order is None or subject not in order:
            return ()
        blockers: Sequence[str] = ()
        if trigger == _STOP and not self.gave_up and not order.may_stop(subject):
            blockers = order.blockers(subject)
        if dest is not None and dest in _TASK_TERMINAL:
            order.end(subject)
        return blockers


class _Run:
    """The checker's state while it reads one journal's records in order."""

    def __init__(
        self,
        table: _Table,
        described: bool,
        pins: Mapping[str, MachineSpec] | None = None,
        policies: _Policies | None = None,
    ) -> None:
        # The machines records are judged by: the built-in ones, then the pinned ones, then
        # those the journal declares (`declare`); and each one's state names.
        self.machines: dict[str, MachineSpec] = {**SPECS, **(pins or {})}
        self.pinned = frozenset(pins or ())
        self.declared: dict[str, dict[str, Any]] = {}
        self.states = {
            name: frozenset(s.value for s in spec.states) for name, spec in self.machines.items()
        }
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
        # The ``restart`` rule: each task's policy, the monotonic times of its recent crashes,
        # how and when it entered backoff, and the tasks restarting (not running again yet).
        self.policies: _Policies = policies or {}
        self.crashes: dict[str, list[int]] = {}
        self.backoff: dict[str, tuple[str, int | None]] = {}
        self.restarting: set[str] = set()
        self._users: dict[str, list[str]] = {}

    def report(self, line: int | None, rule: str, subject: str, message: str, seq: int) -> None:
        self.violations.append(Violation(line, rule, subject, message, seq))

    def declare(
        self, obj: object, line: int | None, where: str, spec: MachineSpec | None = None
    ) -> None:
        """Take a machine the journal declares (``where``: the header, a machine line); report
        a ``header`` violation when it is not a valid machine, differs from the built-in or
        pinned machine of its name, or from an earlier declaration of it."""
        name = obj.get("name") if isinstance(obj, Mapping) else None
        shown = name if isinstance(name, str) else "?"
        if spec is None:
            try:
                spec = spec_from_dict(obj, source=f"machine {shown!r}")
            except InvalidSpec as exc:
                self.header_problem(line, f"expected a valid machine in {where}: {exc.problem}")
                return
        doc = spec.to_dict()
        name = spec.name
        if name in SPECS:
            if doc != SPECS[name].to_dict():
                self.header_problem(
                    line,
                    f"expected the built-in {name} machine; {where} declares another one "
                    "under its name",
                )
            return
        if name in self.pinned:
            if doc != self.machines[name].to_dict():
                self.header_problem(
                    line,
                    f"expected the {name} machine as pinned (--spec); {where} declares a "
                    f"different {name} machine: its records are judged by the pinned one",
                )
            return
        earlier = self.declared.get(name)
        if earlier is not None:
            if earlier != doc:
                self.header_problem(
                    line,
                    f"expected one definition of the {name} machine; {where} declares it "
                    "again, differently (its records are judged by the first)",
                )
            return
        self.declared[name] = doc
        self.machines[name] = spec
        self.states[name] = frozenset(s.value for s in spec.states)

    def header_problem(self, line: int | None, message: str) -> None:
        self.violations.append(Violation(line, "header", _HEADER, message))

    def feed(
        self,
        seq: int,
        kind: str,
        subject: str,
        trigger: str,
        source: str,
        dest: str | None,
        ok: bool,
        line: int | None,
        vetoed: bool = False,
        mono: int | None = None,
    ) -> None:
        """Judge one record, given by its fields (no `Transition` is built per line).

        ``vetoed``: the record's cause is a veto's (`is_veto_cause`), which makes a refused
        legal edge of a user machine lawful (its guards may refuse; the built-in ones have none).
        ``mono``: the record's monotonic time (ns), which the ``restart`` rule's timing reads.
        """
        last_seq = self.last_seq
        if last_seq is not None and seq <= last_seq:
            self.report(
                line, "seq-order", subject, f"expected a seq above {last_seq}, got {seq}", seq
            )
        self.last_seq = seq
        spec = self.machines.get(kind)
        if spec is None:
            known = ", ".join(self.machines)
            self.report(
                line,
                "illegal-edge",
                subject,
                f"expected a machine kind among {known} (a user machine must be described "
                f"before its first record); got {kind!r}",
                seq,
            )
            return
        key = (kind, subject)
        state = self.state
        current = state.get(key, spec.initial)
        self.last_line[key] = line
        if source != current:
            first = "" if key in state else " (its first record starts at the initial state)"
            self.report(
                line,
                "continuity",
                subject,
                f"expected {kind} {subject!r} to leave {current!r}, where its previous "
                f"record left it{first}; the record leaves {source!r}",
                seq,
            )
        states = self.states[kind]
        after = source if source in states else current
        expected = spec.table.get((source, trigger))
        if ok:
            if expected is None:
                self.report(line, "illegal-edge", subject, _no_edge(spec, source, trigger), seq)
            elif dest != expected:
                self.report(
                    line,
                    "illegal-edge",
                    subject,
                    f"expected {trigger!r} from {source!r} to lead to {expected!r}, not {dest!r}",
                    seq,
                )
            if dest is not None and dest in states:
                after = dest
            elif expected is not None:
                after = expected
            if kind == _TASK_KIND:
                self._deps_order(seq, subject, trigger, line)
                self._restarts(seq, subject, trigger, after, mono, line)
            blockers = self.stop_rule.judge(kind, subject, trigger, source, dest)
            if blockers:
                self._stop_order(seq, subject, line, blockers)
        else:
            if dest is not None:
                self.report(
                    line,
                    "format",
                    subject,
                    f"expected a refused record to have no dest, not {dest!r}",
                    seq,
                )
            if expected is not None and not (vetoed and kind not in SPECS):
                self.report(
                    line,
                    "refused-was-legal",
                    subject,
                    f"expected a refused trigger to be illegal, but {trigger!r} from "
                    f"{source!r} is an edge of the {spec.name} machine (to {expected!r})",
                    seq,
                )
        state[key] = after

    def _deps_order(self, seq: int, name: str, trigger: str, line: int | None) -> None:
        if trigger in (_INIT, _START):
            done, verb = (
                (self.initialized, "initialized") if trigger == _INIT else (self.started, "started")
            )
            for dep in self.deps.get(name, ()):
                if dep not in done:
                    self.report(
                        line,
                        "deps-order",
                        name,
                        f"expected its DEPS {dep!r} to be {verb} before it",
                        seq,
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
                        seq,
                    )
            done.add(name)

    def _restarts(
        self, seq: int, name: str, trigger: str, dest: str, mono: int | None, line: int | None
    ) -> None:
        """The ``restart`` rule, for a task's ``ok`` record (``dest``: where it leads)."""
        if trigger == _CRASH:
            self._crash(seq, name, mono, line)
            self.backoff[name] = (_CRASH, mono)
            self.restarting.add(name)
        elif trigger == _SUSPEND:
            self.backoff[name] = (_SUSPEND, mono)
            self.restarting.add(name)
        elif trigger == _RESTART:
            how, since = self.backoff.pop(name, ("", None))
            policy = self.policies.get(name)
            if (
                how == _CRASH
                and policy is not None
                and mono is not None
                and since is not None
                and mono - since < seconds_ns(policy.delay)
            ):
                self.report(
                    line,
                    "restart",
                    name,
                    f"expected its restart at least RESTART_DELAY ({policy.delay:g}s) after "
                    f"its crash; it came {(mono - since) / 1e9:.6f}s after",
                    seq,
                )
            for user in self._users_of(name):
                state = self.state.get((_TASK_KIND, user), TASK.initial)
                if state in _LIVE_STATES:
                    self.report(
                        line,
                        "restart",
                        name,
                        f"expected every task that requires it (DEPS) to be stopped before it "
                        f"restarted; {user!r} is {state}",
                        seq,
                    )
        elif trigger == _START:
            for dep in self.deps.get(name, ()):
                if dep in self.restarting:
                    state = self.state.get((_TASK_KIND, dep), TASK.initial)
                    self.report(
                        line,
                        "restart",
                        name,
                        f"expected its DEPS {dep!r} to run again before it started; {dep!r} is "
                        f"restarting ({state})",
                        seq,
                    )
            self.restarting.discard(name)
        elif dest in _TASK_TERMINAL:
            self.restarting.discard(name)

    def _crash(self, seq: int, name: str, mono: int | None, line: int | None) -> None:
        policy = self.policies.get(name)
        if policy is None:
            self.report(
                line,
                "restart",
                name,
                "expected no restart: its restart policy is 'never' (the task table gives it "
                "no other)",
                seq,
            )
            return
        if mono is None:
            return
        window = seconds_ns(policy.window)
        recent = [t for t in self.crashes.get(name, ()) if t > mono - window]
        if len(recent) >= policy.burst:
            self.report(
                line,
                "restart",
                name,
                f"expected at most {policy.burst} restart(s) within {policy.window:g}s "
                f"(RESTART_LIMIT); this is restart {len(recent) + 1} within that window",
                seq,
            )
        recent.append(mono)
        self.crashes[name] = recent

    def _users_of(self, name: str) -> list[str]:
        """The tasks that require ``name`` (DEPS), directly or not."""
        users = self._users.get(name)
        if users is None:
            users = self._users[name] = sorted(dependents(name, self.deps))
        return users

    def _stop_order(self, seq: int, name: str, line: int | None, blockers: Sequence[str]) -> None:
        waiting = ", ".join(
            f"{user!r} ({self.state.get((TASK.name, user), TASK.initial)})" for user in blockers
        )
        self.report(
            line,
            "stop-order",
            name,
            "expected every task ordered after it (DEPS or WANTS) to have ended before it was "
            f"asked to stop; still waiting for {waiting}",
            seq,
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
            if kind not in _ENDING_KINDS:
                continue  # a task is judged below; a user machine promises no end
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


def pinned_specs(
    specs: Iterable[MachineSpec] | Mapping[str, MachineSpec] | None,
) -> dict[str, MachineSpec]:
    """The machines a caller pins, by name: ``specs`` as `MachineSpec` objects (an iterable,
    or a mapping whose values are taken). Raises `AuditInputError` for anything but specs, for
    two different machines of one name, and for a machine named as a built-in one that
    differs from it (the built-in machines are always trusted as they are)."""
    if specs is None:
        return {}
    given = specs.values() if isinstance(specs, Mapping) else specs
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise AuditInputError(f"specs= takes MachineSpec objects, not {type(specs).__name__}")
    pins: dict[str, MachineSpec] = {}
    for spec in given:
        if not isinstance(spec, MachineSpec):
            raise AuditInputError(
                f"specs= takes lifecycle.MachineSpec objects, not {type(spec).__name__}"
            )
        builtin = SPECS.get(spec.name)
        if builtin is not None and builtin.to_dict() != spec.to_dict():
            raise AuditInputError(
                f"cannot pin a machine named {spec.name!r}: the built-in {spec.name} machine "
                "is always the one trusted"
            )
        known = pins.get(spec.name)
        if known is not None and known.to_dict() != spec.to_dict():
            raise AuditInputError(f"two different machines named {spec.name!r} are pinned")
        if builtin is None:
            pins[spec.name] = spec
    return pins


def _no_edge(spec: MachineSpec, source: str, trigger: str) -> str:
    if source not in {s.value for s in spec.states}:
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


def _restart_policies(obj: object) -> tuple[_Policies, list[str]]:
    """The restart policies a task table carries (``restart`` of a task's entry; none means
    "never"), and its problems (empty when well formed)."""
    policies: _Policies = {}
    problems: list[str] = []
    if not isinstance(obj, Mapping):
        return policies, problems  # `_parse_tasks` reports it
    for name, info in obj.items():
        if not isinstance(info, Mapping) or info.get("restart") is None:
            continue
        try:
            policies[str(name)] = RestartPolicy.from_dict(info["restart"])
        except ValueError as exc:
            problems.append(f"expected a well-formed restart policy for task {name!r}: {exc}")
    return policies, problems


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


# -- the file: lines, format, header, hash chain, seal ----------------------------------------

_Report = Callable[[int, str, str, str], None]

#: Keys a version 2 line carries outside what its hash covers.
_UNHASHED_V1 = frozenset({"hash"})
_UNHASHED_V2 = frozenset({"hash", "mac"})
#: The rules whose absence a sealed journal's verdict needs: its MACs, hashes and form.
_SEAL_RULES = frozenset({"seal", "hash-chain", "format"})


def audit(
    path: str | os.PathLike[str],
    *,
    partial: bool = False,
    verify_key: VerifyKey | None = None,
    expect_head: str | None = None,
    run_id: str | None = None,
    specs: Iterable[MachineSpec] | Mapping[str, MachineSpec] | None = None,
) -> AuditReport:
    """Audit a journal file: every rule of `check`, and what the file says about itself.

    ``verify_key``: check every line's MAC (a sealed journal; an unsealed one is then a
    ``seal`` violation). ``expect_head``: the chain head the run printed on exit (hex);
    ``run_id``: the run id it printed. ``specs``: machines to trust (`MachineSpec` objects, or
    a mapping of them): the records of each are judged by it, and a declaration of a machine
    of its name that differs from it (in the header or a ``machine`` line) is a ``header``
    violation naming the machine. Reads the file line by line, in memory bounded by the
    longest line and the number of subjects, not by the number of records.

    Raises `AuditInputError` for a file that cannot be audited (see its docstring), and for
    ``specs`` that cannot be pinned (see `pinned_specs`).
    """
    pins = pinned_specs(specs)
    shown = os.fspath(path)
    try:
        reader = JournalReader(path)
    except JournalFormatError as exc:
        raise AuditInputError(exc.reason) from exc
    with reader:
        return _FileAudit(shown, partial, verify_key, pins).run(
            reader.rows(parse=False), expect_head, run_id
        )


class _FileAudit:
    """The state of one file's audit while its lines stream by."""

    def __init__(
        self,
        shown: str,
        partial: bool,
        verify_key: VerifyKey | None,
        pins: Mapping[str, MachineSpec] | None = None,
    ) -> None:
        self.pins = pins or {}
        self.shown = shown
        self.partial = partial
        self.verify_key = verify_key
        self.violations: list[Violation] = []
        self.sealing = False  # the header says the journal is sealed
        self.keys: EpochKeys | None = None  # set when the MACs can be checked
        self.start = 0
        self.every = 1
        self.run_id: str | None = None
        self.version: object = None

    def report(self, line: int | None, rule: str, subject: str, message: str) -> None:
        self.violations.append(Violation(line, rule, subject, message))

    def run(
        self,
        lines: Iterator[tuple[int, bytes, bool, dict[str, Any] | str | None]],
        expect_head: str | None,
        run_id: str | None,
    ) -> AuditReport:
        """Audit ``lines`` (`JournalReader.rows` without parsing: the fast path parses only
        the lines it must)."""
        row = next(lines, None)
        if row is None:
            raise AuditInputError(f"{self.shown!r} is empty: no journal header", line=1)
        number, raw, ended, parsed = row
        first = (number, raw, ended, parse_line(raw) if parsed is None else parsed)
        shown = self.shown
        report = self.report
        value = first[3]
        if not isinstance(value, dict):
            raise AuditInputError(
                f"{shown!r} is not a lifecycle journal: line 1 is {value}", line=1
            )
        header: dict[str, Any] | None = value
        if value.get("format") != FORMAT:
            if not {"seq", "kind", "subject"} <= value.keys():
                raise AuditInputError(
                    f"{shown!r} is not a lifecycle journal: line 1 has format "
                    f"{value.get('format')!r}, expected {FORMAT!r}",
                    line=1,
                )
            report(1, "format", _HEADER, "expected the journal header first; line 1 is a record")
            header = None
        table: _Table = {}
        policies: _Policies = {}
        if header is not None:
            table = _check_header(header, report)
            policies, problems = _restart_policies(header.get("tasks"))
            for problem in problems:
                report(1, "header", _HEADER, problem)
            self.version = header.get("version")
            self._check_run(header)
            self._open_seal(header)
        elif self.verify_key is not None:
            self._unsealed()
        run = _Run(table, described=bool(table), pins=self.pins, policies=policies)
        if header is not None:
            specs = header.get("specs")
            if isinstance(specs, Mapping):
                for key in sorted(k for k in specs if k not in SPECS):
                    obj = specs[key]
                    if isinstance(obj, Mapping) and obj.get("name") != key:
                        run.header_problem(
                            1,
                            f"expected the header's machine {key!r} to be named so; it is "
                            f"named {obj.get('name')!r}",
                        )
                        continue
                    run.declare(obj, 1, "the header")
        records, last_seq, head, sealed_at = self._lines(first, lines, header is not None, run)
        # Every line read verified under its key (an incomplete journal is reported apart).
        sealed = self.keys is not None and not any(v.rule in _SEAL_RULES for v in self.violations)
        if not self.partial:
            run.finish()
            if self.sealing and sealed_at is None:
                after = "" if last_seq is None else f", the last of seq {last_seq}"
                report(
                    None,
                    "seal",
                    _JOURNAL,
                    f"expected the final seal line; the journal ends without it after {records} "
                    f"record(s){after}: it is incomplete, cut short or its writer killed "
                    "(audit it as partial to accept that)",
                )
        if run_id is not None and run_id != self.run_id:
            report(
                1,
                "run",
                _HEADER,
                f"expected run id {run_id!r}; the journal's is {self.run_id!r}: another run's "
                "journal",
            )
        if expect_head is not None and expect_head.lower() != head:
            report(
                None,
                "run",
                _JOURNAL,
                f"expected the chain head {expect_head!r}; the journal's is {head!r}: another "
                "run's journal, or one rewritten or cut short",
            )
        # File and record findings in line order; end-of-run findings without a line come last.
        found = sorted(
            [*self.violations, *run.violations], key=lambda v: (v.line is None, v.line or 0)
        )
        return AuditReport(
            violations=found,
            sealed=sealed,
            records=records,
            last_seq=last_seq,
            complete=(sealed_at is not None) if self.sealing else None,
            run_id=self.run_id,
            head=head,
        )

    def _lines(
        self,
        first: tuple[int, bytes, bool, dict[str, Any] | str],
        lines: Iterator[tuple[int, bytes, bool, dict[str, Any] | str | None]],
        has_header: bool,
        run: _Run,
    ) -> tuple[int, int | None, str | None, int | None]:
        """Check every line; returns the record count, the last seq, the chain head and the
        seal line's number (None if there is none). The hot loop: locals, no object per line."""
        report = self.report
        partial = self.partial
        unhashed = _UNHASHED_V1 if self.version == 1 else _UNHASHED_V2
        v2 = self.version != 1
        sealing, keys, start, every = self.sealing, self.keys, self.start, self.every
        epoch, key = start, (keys.key(start) if keys is not None else b"")
        previous: str | None = ""  # the hash chain so far (None: broken by a bad line)
        mac_before: str | None = ""  # the MAC chain so far
        head: str | None = None
        records, last_seq, last_mono = 0, None, None
        sealed_at: int | None = None
        canonical, sha256, digest = _canonical, hashlib.sha256, hmac.digest
        feed = run.feed
        number = 0
        fast = v2 and _RECORD_LINE.fullmatch
        for number, raw, ended, obj in _chain_one(first, lines):
            if obj is None:
                # The fast path: a record line that the pattern proves canonical, whose
                # fields it gives without parsing or serializing JSON. Anything else (an
                # escape, a non-ASCII byte, an odd float, a missing or extra key) goes the
                # general way below, which finds the same verdict for these lines.
                match = (
                    fast(raw.decode("latin-1"))
                    if fast
                    and ended
                    and sealed_at is None
                    and len(raw) <= _FAST_LINE
                    and b"\\" not in raw
                    else None
                )
                if match is not None:
                    (cause, dest, stored, kind, mac, mono_text, ok_text, seq_text, source) = (
                        match.group(1, 2, 3, 4, 5, 6, 7, 8, 9)
                    )
                    subject, time_text, trigger = match.group(10, 12, 13)
                    if (mac is not None) == sealing and (
                        time_text.isdigit() or _FLOAT_REPR(float(time_text)) == time_text
                    ):
                        text = match.string
                        hash_at, hash_end = match.span(3)
                        if mac is None:
                            body = text[: hash_at - 9] + text[hash_end + 1 :]
                        else:
                            mac_at, mac_end = match.span(5)
                            body = (
                                text[: hash_at - 9]
                                + text[hash_end + 1 : mac_at - 8]
                                + text[mac_end + 1 :]
                            )
                        if previous is not None and (
                            stored != sha256((previous + body).encode()).hexdigest()
                        ):
                            report(number, "hash-chain", subject, _hash_differs(number))
                        previous = head = stored
                        if mac is not None:
                            if keys is not None and mac_before is not None:
                                now = start + (number - 1) // every
                                if now != epoch:
                                    epoch, key = now, keys.key(now)
                                signed = digest(key, (mac_before + stored).encode(), "sha256")
                                if not hmac.compare_digest(signed.hex(), mac):
                                    report(number, "seal", subject, _mac_differs(epoch))
                            mac_before = mac
                        seq, mono = int(seq_text), int(mono_text)
                        records += 1
                        last_seq = seq
                        if last_mono is not None and mono < last_mono:
                            run.violations.append(
                                _Clock.violation(last_mono, mono, subject, seq, number)
                            )
                        last_mono = mono
                        ok = ok_text == "true"
                        # The pattern admits no escape: the group is the cause's text as it is.
                        vetoed = not ok and is_veto_cause(cause)
                        feed(seq, kind, subject, trigger, source, dest, ok, number, vetoed, mono)
                        continue
                obj = parse_line(raw)
            if not ended:
                if isinstance(obj, dict):
                    if not partial:
                        report(
                            number, "format", _JOURNAL, "expected a newline at the end of the file"
                        )
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
                previous = mac_before = head = None
                continue
            named = obj.get("subject")
            subject = named if type(named) is str else _JOURNAL
            is_header = obj.get("format") == FORMAT
            if is_header:
                subject = _HEADER
            if sealed_at is not None:
                report(
                    number,
                    "seal",
                    subject,
                    f"expected nothing after the seal line (line {sealed_at}); lines were "
                    "appended to a closed journal",
                )
            stored = obj.get("hash")
            text = canonical(obj)
            is_canonical = text.encode("ascii") == raw
            if not is_canonical:
                report(
                    number, "format", subject, "expected canonical JSON (sorted keys, no spaces)"
                )
            before = previous
            if type(stored) is not str:
                report(number, "hash-chain", subject, "expected a 'hash' field chaining the line")
                previous = None
            else:
                if previous is not None:
                    cut = _body_text(text, obj, unhashed) if is_canonical else None
                    if cut is None:
                        cut = canonical({k: v for k, v in obj.items() if k not in unhashed})
                    if stored != sha256((previous + cut).encode()).hexdigest():
                        report(number, "hash-chain", subject, _hash_differs(number))
                previous = stored
            head = previous
            if sealing:
                mac = obj.get("mac")
                if type(mac) is not str:
                    report(number, "seal", subject, "expected a 'mac' field sealing the line")
                    mac_before = None
                else:
                    if keys is not None and mac_before is not None and type(stored) is str:
                        now = start + (number - 1) // every
                        if now != epoch:
                            epoch, key = now, keys.key(now)
                        expected = digest(key, (mac_before + stored).encode(), "sha256").hex()
                        if not hmac.compare_digest(expected, mac):
                            report(number, "seal", subject, _mac_differs(epoch))
                    mac_before = mac
            elif v2 and "mac" in obj:
                report(number, "format", subject, "expected no 'mac' in an unsealed journal")
            if number == 1 and has_header:
                continue
            if is_header:
                report(number, "format", _HEADER, "expected a record; found another journal header")
                continue
            if v2 and is_seal_line(obj):
                self._seal_line(number, obj, records, before)
                sealed_at = number
                continue
            if is_machine_line(obj):
                self._machine_line(number, obj, run)
                continue
            fields = _record_fields(obj)
            if fields is None:
                try:
                    rec = Transition.from_dict({k: v for k, v in obj.items() if k not in unhashed})
                except JournalFormatError as exc:
                    report(number, "format", subject, f"expected a transition record: {exc.reason}")
                    continue
                fields = (
                    rec.seq,
                    rec.mono,
                    rec.kind,
                    rec.subject,
                    rec.trigger,
                    rec.source,
                    rec.dest,
                    rec.ok,
                )
            seq, mono, kind, subject, trigger, source, dest, ok = fields
            cause = obj.get("cause")
            vetoed = not ok and isinstance(cause, str) and is_veto_cause(cause)
            records += 1
            last_seq = seq
            if last_mono is not None and mono < last_mono:
                run.violations.append(_Clock.violation(last_mono, mono, subject, seq, number))
            last_mono = mono
            feed(seq, kind, subject, trigger, source, dest, ok, number, vetoed, mono)
        return records, last_seq, head, sealed_at

    def _machine_line(self, number: int, obj: dict[str, Any], run: _Run) -> None:
        version = self.version
        if not (type(version) is int and version >= MACHINE_LINES_SINCE):
            self.report(
                number,
                "format",
                _JOURNAL,
                f"expected a record; found a machine line in a version {version!r} journal "
                f"(machine lines exist since version {MACHINE_LINES_SINCE})",
            )
            return
        extra = sorted(set(obj) - {"machine", "hash", "mac"})
        if extra:
            self.report(
                number,
                "format",
                _JOURNAL,
                f"expected a machine line to hold only 'machine' (and its hash); it has {extra}",
            )
        run.declare(obj["machine"], number, f"the machine line {number}")

    def _seal_line(
        self, number: int, obj: dict[str, Any], records: int, before: str | None
    ) -> None:
        if not self.sealing:
            self.report(
                number,
                "format",
                _JOURNAL,
                "expected a record; found a seal line in an unsealed journal",
            )
            return
        expected = {"records": records, "head": before}
        if obj["seal"] != expected or type(obj["seal"].get("records")) is not int:
            self.report(
                number,
                "seal",
                _JOURNAL,
                f"expected the seal line to count {records} record(s) ending at hash {before!r}; "
                f"it says {obj['seal']!r}: records were dropped or added",
            )

    def _check_run(self, header: Mapping[str, Any]) -> None:
        if header.get("version") == 1:
            return
        run = header.get("run")
        fields = {"id": str, "host": str, "pid": int, "start": (int, float), "lifecycle": str}
        good = isinstance(run, Mapping) and all(
            type(run.get(name)) in (kinds if isinstance(kinds, tuple) else (kinds,))
            for name, kinds in fields.items()
        )
        if not good or not run or not math.isfinite(run["start"]):
            self.report(
                1,
                "run",
                _HEADER,
                "expected 'run': the run's id, host, pid, start time and package version",
            )
            return
        self.run_id = run["id"]

    def _open_seal(self, header: Mapping[str, Any]) -> None:
        seal = header.get("seal")
        if seal is None or header.get("version") == 1:
            if seal is not None:
                self.report(1, "seal", _HEADER, "expected no seal in a version 1 journal")
            if self.verify_key is not None:
                self._unsealed()
            return
        self.sealing = True
        good = (
            isinstance(seal, Mapping)
            and type(seal.get("key")) is str
            and type(seal.get("epoch")) is int
            and 0 <= seal["epoch"] <= MAX_EPOCH
            and type(seal.get("every")) is int
            and seal["every"] >= 1
            and seal.get("kdf") == KDF
        )
        if not good:
            self.report(
                1,
                "seal",
                _HEADER,
                f"expected 'seal' to name the key id, the first epoch (0 to {MAX_EPOCH}), the "
                f"epoch length (at least 1) and the key derivation {KDF!r}; got {seal!r}",
            )
            return
        self.start, self.every = seal["epoch"], seal["every"]
        key = self.verify_key
        if key is None:
            return
        if key.id != seal["key"]:
            self.report(
                1,
                "seal",
                _HEADER,
                f"expected the journal to be sealed with key {key.id}; it names key "
                f"{seal['key']!r}: another key's journal, or a forged header",
            )
            return
        self.keys = EpochKeys(key, self.start)

    def _unsealed(self) -> None:
        self.report(
            1,
            "seal",
            _HEADER,
            "expected a sealed journal (a verification key was given); this one is not sealed, "
            "so anyone who can write the file can rewrite it undetected",
        )


def _hash_differs(number: int) -> str:
    after = "the start of the chain" if number == 1 else f"line {number - 1}'s hash"
    return (
        f"expected the hash of {after} and this line; it differs: this line was edited, or "
        "lines were dropped, inserted or reordered before it"
    )


def _mac_differs(epoch: int) -> str:
    return (
        f"expected the MAC of this line under the key of epoch {epoch}; it differs: the line "
        "was forged or altered, or lines were dropped, inserted or reordered before it"
    )


# A record line exactly as the writer makes it (canonical JSON: sorted keys, no spaces), its
# strings free of escapes (a line holding a backslash never takes this path): what the pattern
# matches, `canonical` of the parsed line would give again, byte for byte, provided ``time``,
# when not an integer, is written as `float.__repr__` writes it (checked apart).
_STR = r'"([\x20\x21\x23-\x5b\x5d-\x7e]*)"'
_NULL_OR_STR = r'(?:null|"([\x20\x21\x23-\x5b\x5d-\x7e]*)")'
_INT = r"(0|-?[1-9][0-9]*)"
_HEX = r'"([0-9a-f]{64})"'
_RECORD_LINE = re.compile(
    r'\{"cause":' + _NULL_OR_STR
    + r',"dest":' + _NULL_OR_STR
    + r',"hash":' + _HEX
    + r',"kind":' + _STR
    + r'(?:,"mac":' + _HEX + r")?"
    + r',"mono":' + _INT
    + r',"ok":(true|false)'
    + r',"seq":' + _INT
    + r',"source":' + _STR
    + r',"subject":' + _STR
    + r',"thread":' + _STR
    + r',"time":(0|-?[1-9][0-9]*|-?(?:0|[1-9][0-9]*)\.[0-9]+(?:e[+-][0-9]+)?|-?[1-9]e[+-][0-9]+)'
    + r',"trigger":' + _STR
    + r"\}"
)  # fmt: skip
_FLOAT_REPR = float.__repr__
#: The longest line the fast path takes: no integer on it can pass the parser's digit limit.
_FAST_LINE = MAX_INT_DIGITS


def fast_record(raw: bytes) -> Transition | None:
    """The record on a journal line the audit's pattern proves canonical (no JSON parsed), or
    None when the line needs the general reader (an escape, non-ASCII text, an odd float, a
    missing or extra key, a seal line). For readers of millions of lines that trust the
    format checks to the audit: the values are typed by the pattern, not validated further.
    """
    if len(raw) > _FAST_LINE or b"\\" in raw:
        return None
    match = _RECORD_LINE.fullmatch(raw.decode("latin-1"))
    if match is None:
        return None
    cause, dest, _, kind, _, mono, ok, seq, source, subject, thread, time_text, trigger = (
        match.groups()
    )
    return Transition(
        int(seq),
        float(time_text),
        int(mono),
        kind,
        subject,
        trigger,
        source,
        dest,
        ok == "true",
        cause,
        thread,
    )


def _chain_one(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _body_text(text: str, obj: Mapping[str, Any], unhashed: frozenset[str]) -> str | None:
    """The canonical JSON of ``obj`` without its unhashed keys, cut from ``text`` (the
    canonical JSON of ``obj``) instead of serialized again; None when that cannot be done
    safely (a value not a string, or a needle found twice), for the caller to serialize."""
    for name in unhashed:
        if name not in obj:
            continue
        value = obj[name]
        if type(value) is not str:
            return None
        # Inside a canonical string every '"' is escaped, so '"name":"value"' can only be a
        # key and its value; it must occur once, to be this object's own key.
        needle = f'"{name}":{encode_basestring_ascii(value)}'
        at = text.find(needle)
        if at < 0 or text.find(needle, at + 1) >= 0:
            return None
        end = at + len(needle)
        if text[at - 1] == ",":
            text = text[: at - 1] + text[end:]
        elif text[end] == ",":
            text = text[:at] + text[end + 1 :]
        else:
            text = text[:at] + text[end:]
    return text


def _record_fields(
    obj: Mapping[str, Any],
) -> tuple[int, int, str, str, str, str, str | None, bool] | None:
    """A record's checked fields (seq, mono, kind, subject, trigger, source, dest, ok), or None
    when one is missing or has a bad type (`Transition.from_dict` then says which)."""
    try:
        seq, time, mono, ok = obj["seq"], obj["time"], obj["mono"], obj["ok"]
        kind, subject, trigger, source = obj["kind"], obj["subject"], obj["trigger"], obj["source"]
        dest, cause, thread = obj["dest"], obj["cause"], obj["thread"]
    except KeyError:
        return None
    if (
        type(seq) is int
        and type(mono) is int
        and type(ok) is bool
        and type(kind) is str
        and type(subject) is str
        and type(trigger) is str
        and type(source) is str
        and type(thread) is str
        and (dest is None or type(dest) is str)
        and (cause is None or type(cause) is str)
        and (type(time) is int or (type(time) is float and math.isfinite(time)))
    ):
        return seq, mono, kind, subject, trigger, source, dest, ok
    return None


class _Clock:
    """The ``mono`` half of ``seq-order``: monotonic times never go back within a journal.

    The journal takes ``mono`` under the same lock that numbers the records, so in file order
    it never decreases; one that does was edited, or its line moved.
    """

    def __init__(self) -> None:
        self.last: int | None = None

    def check(self, mono: int, subject: str, seq: int, line: int | None) -> list[Violation]:
        last, self.last = self.last, mono
        if last is None or mono >= last:
            return []
        return [self.violation(last, mono, subject, seq, line)]

    @staticmethod
    def violation(last: int, mono: int, subject: str, seq: int, line: int | None) -> Violation:
        message = f"expected a mono time of at least {last} (the previous record's), got {mono}"
        return Violation(line, "seq-order", subject, message, seq)


def _check_header(header: Mapping[str, Any], report: _Report) -> _Table:
    """Report what is wrong with the header; return its task table as ``name -> (deps,
    wants)``."""
    version = header.get("version")
    if not is_format_version(version):
        *first, last = map(str, FORMAT_VERSIONS)
        known = f"{', '.join(first)} or {last}"
        report(1, "format", _HEADER, f"expected journal version {known}, got {version!r}")
    specs = header.get("specs")
    if not isinstance(specs, Mapping):
        report(1, "header", _HEADER, "expected 'specs': the machines the journal was written for")
    else:
        # User machines are judged by `_Run.declare`; the built-in ones must be as they are.
        for name in SPECS:
            if specs.get(name) != SPECS[name].to_dict():
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
