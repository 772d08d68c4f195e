"""The ``lifecycle`` command. The only module that prints.

Exit codes: 0 success, 1 failure (a failed run, violations found), 2 usage or unreadable input.

Text taken from a journal (names, causes, a file's content quoted in a message) is untrusted:
`_say` prints it with every control, format or unpaired surrogate character written as its
Python escape (``\\x1b``, ``\\ud800``), so that no journal can drive the terminal or break
the output, and ``--json`` output is ASCII JSON whose strings hold no unpaired surrogate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

import attrs

from lifecycle import diagrams
from lifecycle import plan as planning
from lifecycle import timeline as timelines
from lifecycle.audit import FILE_SUBJECTS, AuditInputError, AuditReport, audit, pinned_specs
from lifecycle.demo import DemoService
from lifecycle.errors import (
    BadReference,
    HelpRequested,
    LifecycleError,
    OptionError,
    UnknownTask,
    UsageError,
)
from lifecycle.journal import (
    Journal,
    JournalFormatError,
    JournalWriteError,
    Notice,
    cause_line,
    describe_cause,
)
from lifecycle.loading import load
from lifecycle.options import bound_options
from lifecycle.outcome import (
    FAILED,
    KINDS,
    SUCCEEDED,
    UNFINISHED,
    Outcome,
    SubjectSummary,
    outcome,
    timeline,
)
from lifecycle.probes import HealthAddressError, ProbeServer, parse_address
from lifecycle.seal import DEFAULT_EPOCH_LENGTH, SealKeyError, keygen, load_verify_key
from lifecycle.service import BLOCKING_THRESHOLD, Service
from lifecycle.spec import SPEC_SCHEMA_VERSION, SPECS, TASK, MachineSpec
from lifecycle.specfile import resolve_spec, to_toml
from lifecycle.systemd import SystemdNotify
from lifecycle.task import task_name
from lifecycle.tasks import QueueTask

__all__ = ["main", "run_service_class", "service_main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def _say(text: str, file: TextIO | None = None) -> None:
    """Print one line that may hold untrusted text: non-printable characters (and newlines)
    as escapes, and characters the stream cannot encode as backslash escapes."""
    stream = sys.stdout if file is None else file
    shown = diagrams.printable(text).replace("\n", "\\n")
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(shown.encode(encoding, "backslashreplace").decode(encoding), file=stream)


def _json_safe(value: Any) -> Any:
    """``value`` with every string's unpaired surrogates written as escapes: JSON that any
    strict parser accepts. Other characters are kept (JSON escapes control characters)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _print_table(spec: MachineSpec) -> None:
    terminal = ", ".join(sorted(spec.terminal)) or "none"
    print(f"{spec.name} (initial: {spec.initial}; terminal: {terminal})")
    rows = [(e.trigger, ", ".join(e.sources), e.dest, e.when) for e in spec.transitions]
    widths = [max(len(r[i]) for r in [("trigger", "from", "to", ""), *rows]) for i in range(3)]
    print(f"  {'trigger':<{widths[0]}}  {'from':<{widths[1]}}  {'to':<{widths[2]}}  when")
    for trigger, sources, dest, when in rows:
        print(f"  {trigger:<{widths[0]}}  {sources:<{widths[1]}}  {dest:<{widths[2]}}  {when}")


def _resolve_specs(references: Sequence[str] | None, prog: str) -> list[MachineSpec] | None:
    """The machines ``--spec`` flags name; None (having said why) when one cannot be loaded."""
    specs = []
    for reference in references or ():
        try:
            specs.append(resolve_spec(reference))
        except BadReference as exc:
            _say(f"{prog}: --spec {exc}", sys.stderr)
            return None
    return specs


def _cmd_spec(args: argparse.Namespace) -> int:
    machines: Sequence[MachineSpec] = list(SPECS.values())
    if args.spec is not None:
        found = _resolve_specs([args.spec], "lifecycle spec")
        if found is None:
            return EXIT_USAGE
        machines = found
    if args.toml:
        if args.spec is None or args.json:
            _say("lifecycle spec: --toml prints one machine: give --spec, not --json", sys.stderr)
            return EXIT_USAGE
        sys.stdout.write(to_toml(machines[0]))
        return EXIT_OK
    if args.json:
        doc = {
            "schema": SPEC_SCHEMA_VERSION,
            "machines": [spec.to_dict() for spec in machines],
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    for index, spec in enumerate(machines):
        if index:
            print()
        _print_table(spec)
    return EXIT_OK


def _add_spec(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "spec",
        help="print the task, collection and service state tables, or a machine of yours",
        description=(
            "Print the built-in machines' tables, or the machine --spec names: a machine file "
            "(PATH.toml, PATH.json) or MODULE:NAME naming a lifecycle.MachineSpec. What --json "
            "and --toml print is a machine file that loads back as it is."
        ),
    )
    p.add_argument("--json", action="store_true", help="print them as JSON (stable schema)")
    p.add_argument(
        "--spec", metavar="PATH_OR_MODULE:NAME", help="print this machine instead of the built-in"
    )
    p.add_argument("--toml", action="store_true", help="print the --spec machine as a TOML file")
    p.set_defaults(command=_cmd_spec)


def _diagram_fail(message: str, code: int = EXIT_USAGE) -> int:
    _say(f"lifecycle diagram: {message}", sys.stderr)
    return code


def _cmd_diagram(args: argparse.Namespace) -> int:
    if args.all is not None:
        if (
            args.machine
            or args.spec
            or args.deps
            or args.journal
            or args.out
            or args.format
            or args.highlight
        ):
            return _diagram_fail(
                "--all DIR takes no machine, --spec, --deps, --journal, --format or --out"
            )
        try:
            written = diagrams.write_all(args.all, svgs=diagrams.has_graphviz())
        except LifecycleError as exc:
            return _diagram_fail(str(exc), EXIT_FAILED)
        for path in written:
            print(path)
        if not diagrams.has_graphviz():
            return _diagram_fail(f"{diagrams.GraphvizNotFound('dot')}; wrote no SVG", EXIT_FAILED)
        return EXIT_OK

    fmt = args.format
    if fmt is None:
        suffixes = {suffix: name for name, suffix in diagrams.FORMATS.items()}
        fmt = suffixes.get(args.out.suffix if args.out else "", "mermaid")
    if fmt not in diagrams.FORMATS:
        known = ", ".join(diagrams.FORMATS)
        return _diagram_fail(f"unknown format {fmt!r}; expected one of {known}")
    if args.machine is not None and args.machine not in SPECS:
        return _diagram_fail(
            f"unknown machine {args.machine!r}; expected one of {', '.join(SPECS)} (draw a "
            "machine of yours with --spec)"
        )
    if args.machine is not None and args.spec is not None:
        return _diagram_fail("give a machine or --spec, not both")
    machine: MachineSpec | None = None
    if args.spec is not None:
        found = _resolve_specs([args.spec], "lifecycle diagram")
        if found is None:
            return EXIT_USAGE
        machine = found[0]
    elif args.machine is not None:
        machine = SPECS[args.machine]
    if machine is not None and args.deps:
        return _diagram_fail("give a machine (or --spec) or --deps, not both")
    if args.highlight and (machine is None or args.journal):
        return _diagram_fail("--highlight needs a machine and no --journal")
    if args.deps and args.journal:
        return _diagram_fail("--deps draws a live graph, --journal an observed one: give one")
    try:
        if machine is not None and args.journal:
            diagram: diagrams.Diagram = diagrams.journal_machine_diagram(machine, args.journal)
        elif machine is not None:
            diagram = diagrams.machine_diagram(machine, args.highlight)
        elif args.deps:
            diagram = diagrams.dependency_diagram(_load_target(args.deps))
        elif args.journal:
            diagram = diagrams.journal_dependency_diagram(args.journal)
        else:
            return _diagram_fail(
                "nothing to draw: give a machine (task, collection, service), --spec "
                "PATH_OR_MODULE:NAME, --deps MODULE:CLASS, --journal FILE or --all DIR"
            )
    except LifecycleError as exc:
        return _diagram_fail(str(exc))
    try:
        content = diagrams.render(diagram, fmt)
    except LifecycleError as exc:
        return _diagram_fail(str(exc), EXIT_FAILED)
    data = content.encode("utf-8") if isinstance(content, str) else content
    if args.out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    try:
        args.out.write_bytes(data)
    except OSError as exc:
        return _diagram_fail(f"cannot write {str(args.out)!r}: {exc.strerror or exc}", EXIT_FAILED)
    return EXIT_OK


def _add_diagram(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "diagram",
        help="draw a machine or a dependency graph as Mermaid, Graphviz DOT or SVG",
        description=(
            "Draw a machine (a built-in one, or yours with --spec; optionally annotated from a "
            "journal), the dependency graph of a "
            "service or collection (live, with --deps) or as a journal observed it (--journal "
            "alone), or every checked-in diagram (--all DIR)."
        ),
    )
    p.add_argument("machine", nargs="?", help="task, collection or service")
    p.add_argument(
        "--spec",
        metavar="PATH_OR_MODULE:NAME",
        help="draw this machine: a machine file (.toml, .json) or a MachineSpec's MODULE:NAME",
    )
    p.add_argument("--deps", metavar="MODULE:CLASS", help="a service, collection or task class")
    p.add_argument("--journal", metavar="FILE", help="a journal file written by a run")
    p.add_argument("--format", help="mermaid (default), dot or svg; else taken from --out")
    p.add_argument("--out", type=Path, metavar="PATH", help="write here instead of stdout")
    p.add_argument("--highlight", metavar="STATE", help="highlight this state of the machine")
    p.add_argument("--all", type=Path, metavar="DIR", help="write every machine diagram to DIR")
    p.set_defaults(command=_cmd_diagram)


#: The version of ``lifecycle audit --json``'s layout (documented in the README): raised when a
#: key changes meaning or goes away, not when one is added.
AUDIT_SCHEMA_VERSION = 1

#: What a clean audit of an unsealed journal proves, said plainly.
UNSEALED = "unsealed: detects accidental edits, not a forger"


@attrs.frozen
class _Selection:
    """The subjects ``--kind`` and ``--subject`` select (None: not restricted)."""

    kinds: frozenset[str] | None
    names: frozenset[str] | None

    def __call__(self, kind: str, name: str) -> bool:
        return (self.kinds is None or kind in self.kinds) and (
            self.names is None or name in self.names
        )

    @property
    def default(self) -> bool:
        return self.kinds is None and self.names is None


def _select(
    args: argparse.Namespace, known: Iterable[tuple[str, str]], prog: str
) -> _Selection | None:
    """The selection of ``--kind`` and ``--subject`` among the ``known`` (kind, name) pairs of
    a journal; None, having said why on stderr, when a name given selects nothing."""
    selection = _Selection(
        None if not args.kind else frozenset(args.kind),
        None if not args.subject else frozenset(args.subject),
    )
    found = {name for kind, name in known if selection(kind, name)}
    for name in args.subject or ():
        if name not in found:
            of = f" of kind {' or '.join(sorted(selection.kinds))}" if selection.kinds else ""
            _say(f"{prog}: {args.file}: no subject {name!r}{of} in the journal", sys.stderr)
            return None
    return selection


def _rows(result: Outcome, selection: _Selection) -> list[SubjectSummary]:
    """The table rows a selection shows: the tasks by default, else every subject selected."""
    if selection.default:
        return list(result.tasks)
    return [s for s in result.subjects if selection(s.kind, s.name)]


def _cell(text: str) -> str:
    return diagrams.printable(text).replace("\n", "\\n")


def _print_summary_table(
    rows: Sequence[SubjectSummary], *, queues: Collection[str] | None, stop_times: bool = False
) -> None:
    """The per-task table every run ends with: each row's final state, time to running (and
    to stop, with ``stop_times``), items dropped at stop, and cause; journal text escaped.

    ``queues``: the names of the queue tasks, which a live run knows (the dropped column shows
    when there are any, "-" for one that did not end stopped); None for a journal file, whose
    header names no kinds of task (the column shows when a task dropped anything).
    """
    mixed = any(row.kind != TASK.name for row in rows)
    dropping = bool(queues) if queues is not None else any(row.dropped for row in rows)
    head = [
        "subject" if mixed else "task",
        "final state",
        "time to running",
        *(["time to stop"] if stop_times else []),
        *(["dropped"] if dropping else []),
        "cause",
    ]

    def ms(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000:.1f} ms"

    table = []
    for row in rows:
        name = f"{row.kind} {row.name}" if mixed else row.name
        cells = [name, row.state, ms(row.time_to_running)]
        if stop_times:
            cells.append(ms(row.time_to_stop))
        if dropping:
            count = "-" if row.dropped is None else str(row.dropped)
            cells.append(count if queues is None or row.name in queues else "")
        table.append([_cell(cell) for cell in [*cells, row.cause or ""]])
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head) - 1)]
    for row_cells in [head, *table]:
        cells = [f"{cell:<{width}}" for cell, width in zip(row_cells, widths, strict=False)]
        _say("  ".join([*cells, row_cells[-1]]).rstrip())
    total = sum(row.dropped or 0 for row in rows)
    if total:
        print(f"{total} queued item(s) dropped at stop, never run")


def _verdict_line(result: Outcome) -> str:
    """The run's verdict in one line: how the service (else the collection) ended, and why."""
    verdict = _VERDICTS[result.verdict]
    top = result.top
    if top is None:
        return f"the run {verdict}: no service or collection records"
    why = f": {top.cause}" if top.cause else ""
    return f"the run {verdict}: {top.kind} {top.name!r} {top.state}{why}"


#: How the verdict line says each `Outcome.verdict`.
_VERDICTS = {SUCCEEDED: "succeeded", FAILED: "failed", UNFINISHED: "did not finish"}


def _print_outcome(result: Outcome, selection: _Selection) -> None:
    _say(f"outcome: {_verdict_line(result)}")
    if result.stop_reason:
        _say(f"stop requested: {result.stop_reason}")
    if result.first_failure is not None:
        _say(f"first failure: task {result.first_failure!r}")
    if result.stop_order_kept is None:
        print("stop order: not judged (the journal describes no task order)")
    elif result.stop_order_kept:
        print("stop order: kept")
    else:
        for breach in result.breaches:
            waiting = ", ".join(repr(name) for name in breach.waiting_for)
            _say(
                f"stop order: not kept: {breach.task!r} was asked to stop (seq {breach.seq}) "
                f"before {waiting} ended"
            )
    rows = _rows(result, selection)
    if rows:
        print()
        _print_summary_table(rows, queues=None, stop_times=True)


def _outcome_doc(result: Outcome, selection: _Selection) -> dict[str, Any]:
    doc = result.to_dict()
    shown = {row.name for row in _rows(result, selection) if row.kind == TASK.name}
    doc["tasks"] = {name: value for name, value in doc["tasks"].items() if name in shown}
    return doc


def _integrity(report: AuditReport, verified: bool) -> str:
    """What the audit proves about the file, in one phrase: sealed and verified, or not."""
    if report.sealed:
        return "sealed: every line's MAC verified with the verification key"
    if report.complete is not None and not verified:
        return "sealed, but not verified: give --verify-key to check its MACs"
    if report.complete is not None:
        return "sealed, but its seal does not verify"
    return UNSEALED


def _cmd_audit(args: argparse.Namespace) -> int:
    prog = "lifecycle audit"
    if args.expect_head is not None and not _is_hex_hash(args.expect_head):
        _say(f"{prog}: error: --expect-head takes a SHA-256 in hex (64 digits)", sys.stderr)
        return EXIT_USAGE
    given = _resolve_specs(args.spec, prog)
    if given is None:
        return EXIT_USAGE
    try:
        pins = pinned_specs(given)
    except AuditInputError as exc:
        _say(f"{prog}: --spec: {exc}", sys.stderr)
        return EXIT_USAGE
    try:
        key = None if args.verify_key is None else load_verify_key(args.verify_key)
        report = audit(
            args.file,
            partial=args.partial,
            verify_key=key,
            expect_head=args.expect_head,
            run_id=args.run_id,
            specs=pins,
        )
        result = outcome(args.file)
    except SealKeyError as exc:
        _say(f"{prog}: {exc}", sys.stderr)
        return EXIT_USAGE

    except JournalFormatError as exc:
        _say(f"{prog}: cannot audit {args.file}: {exc}", sys.stderr)
        return EXIT_USAGE
    selection = _select(args, ((s.kind, s.name) for s in result.subjects), prog)
    if selection is None:
        return EXIT_USAGE
    violations = report.violations
    integrity = _integrity(report, key is not None)
    kinds: dict[str, set[str]] = {}
    for subject in result.subjects:
        kinds.setdefault(subject.name, set()).add(subject.kind)
    shown = [
        v
        for v in violations
        if v.subject in FILE_SUBJECTS  # the file itself: shown whatever the selection
        or any(selection(kind, v.subject) for kind in kinds.get(v.subject, {""}))
    ]
    if args.json:
        doc = {
            "schema": AUDIT_SCHEMA_VERSION,
            "file": args.file,
            "partial": args.partial,
            "clean": not violations,
            "sealed": report.sealed,
            "integrity": integrity,
            "run_id": report.run_id,
            "head": report.head,
            "records": report.records,
            "last_seq": report.last_seq,
            "complete": report.complete,
            "violations": [v.to_dict() for v in shown],
            "outcome": _outcome_doc(result, selection),
        }
        print(json.dumps(_json_safe(doc), indent=2))
    else:
        for violation in shown:
            _say(str(violation))
        if shown:
            print()
        _print_outcome(result, selection)
    count = len(violations)
    verdict = "clean" if not count else f"{count} violation{'s' if count != 1 else ''}"
    if len(shown) < count:
        verdict += f" ({count - len(shown)} not shown: another subject)"
    _say(f"{prog}: {args.file}: {verdict}; {integrity}; {_verdict_line(result)}", sys.stderr)
    if args.partial:
        last = "none" if report.last_seq is None else str(report.last_seq)
        ending = {True: "ends with its seal line", False: "has no seal line: cut short"}
        told = "" if report.complete is None else f"; it {ending[report.complete]}"
        _say(f"{prog}: verified {report.records} record(s), last seq {last}{told}", sys.stderr)
    if violations or (args.require_success and not result.succeeded):
        return EXIT_FAILED
    return EXIT_OK


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--subject",
        action="append",
        metavar="NAME",
        help="only the subject (task, collection or service) of this name; repeatable",
    )
    p.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        help="only subjects of this kind; repeatable",
    )


def _is_hex_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def _cmd_keygen(args: argparse.Namespace) -> int:
    try:
        ident = keygen(args.seal_file, args.verify_file)
    except SealKeyError as exc:
        _say(f"lifecycle keygen: {exc}", sys.stderr)
        return EXIT_FAILED
    _say(f"sealing key (for the writer): {args.seal_file}")
    _say(f"verification key (keep it off the writer's machine): {args.verify_file}")
    print(f"key id: {ident}")
    return EXIT_OK


def _add_keygen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keygen",
        help="create a sealing key and its verification key for sealed journals",
        description=(
            "Create SEAL_FILE, the key state a writer seals journals with (--seal), and "
            "VERIFY_FILE, the key an auditor checks them with (audit --verify-key). Both are "
            "mode 0600; neither is overwritten. Keep VERIFY_FILE away from the machine that "
            "writes the journals: it can forge any of them. Exit 0 made, 1 not made."
        ),
    )
    p.add_argument("seal_file", metavar="SEAL_FILE", help="the sealing key state to create")
    p.add_argument("verify_file", metavar="VERIFY_FILE", help="the verification key to create")
    p.set_defaults(command=_cmd_keygen)


def _add_audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="check that a journal file obeys the lifecycle, and say what the run did",
        description=(
            "Check a journal: its format and hash chain, that every transition is an edge of "
            "its machine, per-subject continuity, sequence and DEPS order, the staged stop "
            "order, and that the run ended with everything terminal: one line per violation "
            "(line, rule, subject, what was expected). Then the outcome: how the service "
            "ended and why, the stop order, and each task's final state, times and cause. "
            "Exit 0 clean, 1 violations (or, with --require-success, a run that did not "
            "succeed), 2 unreadable input. --subject and --kind narrow what is listed; the "
            "verdict and the exit code always judge the whole journal."
        ),
    )
    p.add_argument("file", metavar="FILE", help="a journal file (JSONL)")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.add_argument(
        "--partial",
        action="store_true",
        help="accept a run cut short: no stop records or seal line at the end, a last line cut "
        "mid-write; says how many records it verified and the last seq",
    )
    p.add_argument(
        "--require-success",
        action="store_true",
        help="also exit 1 when the run itself did not succeed (failed or unfinished)",
    )
    _add_selection(p)
    p.add_argument(
        "--verify-key",
        metavar="VERIFY_FILE",
        help="check every line's MAC with this verification key (a sealed journal)",
    )
    p.add_argument("--expect-head", metavar="HEX", help="the chain head the run printed on exit")
    p.add_argument("--run-id", metavar="ID", help="the run id the run printed on exit")
    p.add_argument(
        "--spec",
        action="append",
        metavar="PATH_OR_MODULE:NAME",
        help="trust this machine (a machine file or a MachineSpec's MODULE:NAME): its records "
        "are judged by it, and a journal declaring another machine of its name is a "
        "violation; repeatable",
    )
    p.set_defaults(command=_cmd_audit)


def _read_outcome(args: argparse.Namespace, prog: str) -> Outcome | None:
    try:
        result = outcome(args.file)
    except JournalFormatError as exc:
        _say(f"{prog}: cannot read {args.file}: {exc}", sys.stderr)
        return None
    if result.skipped:
        _say(
            f"{prog}: {args.file}: {result.skipped} line(s) are not records and were skipped "
            f"(`lifecycle audit {args.file}` says why)",
            sys.stderr,
        )
    return result


def _cmd_summary(args: argparse.Namespace) -> int:
    prog = "lifecycle summary"
    result = _read_outcome(args, prog)
    if result is None:
        return EXIT_USAGE
    selection = _select(args, ((s.kind, s.name) for s in result.subjects), prog)
    if selection is None:
        return EXIT_USAGE
    _print_summary_table(_rows(result, selection), queues=None)
    print()
    _say(_verdict_line(result))
    return EXIT_OK


def _add_summary(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "summary",
        help="print the per-task table of a run from its journal",
        description=(
            "Print the table a run ends with (each task's final state, time to running, items "
            "dropped at stop, cause) and the run's verdict, read from its journal. Exit 0, or "
            "2 for unreadable input or a --subject the journal does not have. Does not check "
            "the journal: see `lifecycle audit`."
        ),
    )
    p.add_argument("file", metavar="FILE", help="a journal file (JSONL)")
    _add_selection(p)
    p.set_defaults(command=_cmd_summary)


def _cmd_timeline(args: argparse.Namespace) -> int:
    prog = "lifecycle timeline"
    try:
        drawn = timeline(args.file)
    except JournalFormatError as exc:
        _say(f"{prog}: cannot read {args.file}: {exc}", sys.stderr)
        return EXIT_USAGE
    selection = _select(args, ((s.kind, s.name) for s in drawn.subjects), prog)
    if selection is None:
        return EXIT_USAGE
    drawn = attrs.evolve(
        drawn, subjects=tuple(s for s in drawn.subjects if selection(s.kind, s.name))
    )
    if args.format == "text":
        for line in timelines.text_lines(drawn):
            _say(line)
        return EXIT_OK
    content = timelines.render(drawn, args.format)
    data = content.encode("utf-8") if isinstance(content, str) else content
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return EXIT_OK


def _add_timeline(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "timeline",
        help="print each subject's states over time, from a journal",
        description=(
            "Print each subject's states over time, read from a journal: as text (when each "
            "state was entered, for how long, by which trigger, and why), a Mermaid gantt, or "
            "an SVG. Exit 0, or 2 for unreadable input or a --subject the journal does not have."
        ),
    )
    p.add_argument("file", metavar="FILE", help="a journal file (JSONL)")
    p.add_argument(
        "--format", choices=timelines.FORMATS, default="text", help="text (default), mermaid or svg"
    )
    _add_selection(p)
    p.set_defaults(command=_cmd_timeline)


def _cmd_plan(args: argparse.Namespace) -> int:
    prog = "lifecycle plan"
    names = None if args.tasks is None else _task_names(args.tasks)
    if names == []:
        print(f"{prog}: error: --tasks needs at least one task name", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = _load_target(args.target)
        service_class = target if isinstance(target, type) and issubclass(target, Service) else None
        if names is not None:
            if not (isinstance(target, type) and issubclass(target, Service)):
                print(
                    f"{prog}: --tasks selects among the tasks of a Service subclass; "
                    f"{args.target} is {target!r}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            target = target.selected_task_classes(names)
        planning.task_classes_of(target)
        result = planning.plan(target)
    except (BadReference, planning.PlanTargetError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnknownTask as exc:
        print(
            f"{prog}: {args.target}: unknown task {exc.name!r}; available: {', '.join(exc.known)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except BaseException as exc:  # a bad definition, whatever it raises, is reported, not raised
        print(f"{prog}: {args.target}: {_definition_problem(exc)}", file=sys.stderr)
        return EXIT_USAGE
    grace = None
    if args.grace_period is not None:
        try:
            grace = _grace_check(args, target, service_class)
        except OptionError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    # As `systemd-analyze verify` does: a stop that does not fit is printed and exits 1.
    code = EXIT_OK if grace is None or grace.fits else EXIT_FAILED
    if args.json:
        document = {"target": args.target, **result.to_dict()}
        if grace is not None:
            document["grace_period"] = grace.to_dict()
        print(json.dumps(document, indent=2))
        if grace is not None and not grace.fits:
            print(f"{prog}: {grace.message}", file=sys.stderr)
        return code
    count = len(result.tasks)
    selected = "" if names is None else f" --tasks {','.join(names)}"
    print(
        f"plan of {args.target}{selected}: {count} task{'s' if count != 1 else ''} "
        "(nothing started)"
    )
    print("start layers (each layer's tasks can start together):")
    for index, layer in enumerate(result.layers, start=1):
        print(f"  {index}: {', '.join(layer)}")
    print(f"start order: {', '.join(result.start_order) or '(none)'}")
    print("stop layers (each task stops once the tasks it waits for have ended):")
    by_name = {task.name: task for task in result.tasks}
    for index, layer in enumerate(result.stop_layers, start=1):
        described = []
        for name in layer:
            after = by_name[name].stops_after
            described.append(f"{name} (after {', '.join(after)})" if after else name)
        print(f"  {index}: {', '.join(described)}")
    print(f"stop order: {', '.join(result.stop_order) or '(none)'}")
    print("if skipped or failed, also skips:")
    for task in result.tasks:
        print(f"  {task.name}: {', '.join(task.skips) or '(nothing)'}")
    print("restart policies (a restart takes down what requires the task, then brings it back):")
    for task in result.tasks:
        print(f"  {task.name}: {_restart_line(task)}")
    if grace is not None:
        if grace.fits:
            print(f"grace period: {grace.message}")
        else:
            print(f"{prog}: {grace.message}", file=sys.stderr)
    return code


def _grace_check(
    args: argparse.Namespace, target: object, service_class: type[Service] | None
) -> planning.GraceCheck:
    """The plan's `--grace-period` check: the service's stop bound (its class's, else that of
    a service of the planned tasks) against the grace period. Raises `OptionError`."""
    if service_class is None or args.tasks is not None:
        classes = tuple(planning.task_classes_of(target))
        base = service_class if service_class is not None else Service
        service_class = type(base.__name__, (base,), {"TASKS": classes})
    timeout = args.stop_timeout
    if timeout is None:
        timeout = service_class.stop_timeout.default_for(service_class)
    return planning.check_grace_period(
        args.grace_period, timeout, service_class.stop_bound(timeout)
    )


def _restart_line(task: planning.TaskPlan) -> str:
    policy = task.restart
    if policy.mode == "never":
        return "never"
    burst, seconds = policy.limit
    line = (
        f"{policy.mode}, backoff {policy.delay:g}-{policy.delay_max:g} s, "
        f"at most {burst} in {seconds:g} s"
    )
    if task.restart_takes_down:
        line += (
            f"; takes down {', '.join(task.restart_takes_down)}, "
            f"brings back {', '.join(task.restart_brings_back)}"
        )
    return line


def _add_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="dry run: start layers, stop order and skip impact of a set of tasks",
        description=(
            "Show, without starting anything, the start layers (DEPS and WANTS), the stop "
            "order, and what each task's skip or failure would skip (DEPS). Exit 2, with one "
            "line saying why, for a bad MODULE:CLASS, a bad definition (a cycle, a duplicate "
            "name, an invalid dependency) or an unknown task name. With --grace-period, exit "
            "1 (the plan printed, a warning on stderr) when the stop may outlast it."
        ),
    )
    p.add_argument(
        "target",
        metavar="MODULE:CLASS",
        help="a Task subclass, a Tasks collection, or a class with TASKS (a service)",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--tasks",
        nargs="+",
        metavar="NAME",
        help="plan only these tasks of a service (and what they require), as `run --tasks` "
        "runs them; names separated by spaces or commas",
    )
    p.add_argument(
        "--grace-period",
        type=_seconds,
        metavar="SECONDS",
        help="check that the stop fits in this many seconds (Kubernetes' "
        "terminationGracePeriodSeconds, systemd's TimeoutStopSec): exit 1 with a warning if not",
    )
    p.add_argument(
        "--stop-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="the --stop-timeout the service will run with (default: its own default)",
    )
    p.set_defaults(command=_cmd_plan)


def _task_names(given: Sequence[str]) -> list[str]:
    """Task names from ``--tasks`` values: each may hold several, separated by commas."""
    return [name.strip() for value in given for name in value.split(",") if name.strip()]


def _print_transition(origin: list[int], rec: Any) -> None:
    """Print one journal record as it happens (a journal listener: quick, never fires)."""
    if not origin:
        origin.append(rec.mono)
    elapsed = (rec.mono - origin[0]) / 1e9
    dest = rec.dest if rec.ok else f"REFUSED (still {rec.source})"
    line = f"{elapsed:8.3f}s  {rec.kind:<10} {rec.subject:<18} {rec.source} -> {dest}"
    if rec.cause and rec.dest in ("skipped", "failed", "stopping", "stopped"):
        line += f"  ({cause_line(rec.cause)})"
    _say(line)
    sys.stdout.flush()


def _print_notice(origin: list[int], notice: Notice) -> None:
    """Print a readiness or liveness change (a notice listener: quick, never fires)."""
    if not origin:
        origin.append(notice.mono)
    elapsed = (notice.mono - origin[0]) / 1e9
    was, now = (f"not {notice.what}", notice.what)
    if not notice.value:
        was, now = now, was
    line = f"{elapsed:8.3f}s  {'health':<10} {notice.subject:<18} {was} -> {now}"
    if notice.reason:
        line += f"  ({cause_line(notice.reason)})"
    _say(line)
    sys.stdout.flush()


@contextlib.contextmanager
def _health(service: Service, address: tuple[str, int] | None, prog: str) -> Iterator[None]:
    """While inside: the service's health monitor, its probe server at ``address`` (if any;
    the bound address is said on stderr), and sd_notify when ``$NOTIFY_SOCKET`` is set.
    Raises `OSError` (nothing left running) when ``address`` cannot be bound."""
    with contextlib.ExitStack() as stack:
        if address is not None:
            server = stack.enter_context(ProbeServer(service, address))
            _say(
                f"{prog}: health endpoints at {server.url} (/livez /readyz /startupz /status)",
                sys.stderr,
            )
        service.health.ensure_started()  # for the notices, even with no WATCHDOG
        stack.callback(service.health.close)
        notify = SystemdNotify.from_environ(
            service, on_failure=lambda message: _say(f"{prog}: {message}", sys.stderr)
        )
        if notify is not None:
            stack.enter_context(notify)
        yield


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of any exception, safely (a failing ``__str__`` cannot break it)."""
    return cause_line(describe_cause(exc)) or type(exc).__name__


def _definition_problem(exc: BaseException) -> str:
    """What reading a service's definition raised, in one line (our errors say it all)."""
    if isinstance(exc, LifecycleError):
        with contextlib.suppress(Exception):
            return str(exc)
    return f"its definition raised {_one_line(exc)}"


def _print_failure(service: Service, failure: BaseException | None, prog: str, quiet: bool) -> None:
    """Say on stderr why the run failed: one line, then (unless ``quiet``) the first failure's
    traceback and the other errors, one line each."""
    cause = _one_line(failure) if failure is not None else "no cause recorded"
    print(f"{prog}: service {service.name!r} {service.state}: {cause}", file=sys.stderr)
    if quiet:
        return
    if failure is not None and failure.__traceback__ is not None:
        print(describe_cause(failure), file=sys.stderr)
    for error in service.errors:
        if error is not failure:
            print(f"{prog}: also: {_one_line(error)}", file=sys.stderr)


def _print_summary(service: Service) -> None:
    """The table every run ends with: each task's final state, time to running and cause;
    with queue tasks, the items each dropped at stop, never run (as the journal says)."""
    queues = {task_name(cls) for cls in service.tasks.task_classes if issubclass(cls, QueueTask)}
    print()
    _print_summary_table(service.summary(), queues=queues)


def _run_service(
    service: Service,
    journal: Journal,
    quiet: bool,
    prog: str,
    health_address: tuple[str, int] | None = None,
) -> int:
    """Run ``service``: print its transitions, then (on failure) why, then the summary table.

    ``quiet``: no transitions and no summary, and a failure in one line. ``health_address``:
    where to serve the health endpoints. Under ``$NOTIFY_SOCKET``, tell systemd. Returns the
    exit code (2 when the health address cannot be bound: nothing ran).
    """
    origin: list[int] = []
    unsubscribe = (
        []
        if quiet
        else [
            journal.subscribe(lambda r: _print_transition(origin, r)),
            journal.subscribe_notices(lambda n: _print_notice(origin, n)),
        ]
    )
    raised: BaseException | None = None
    service.blocking_threshold = BLOCKING_THRESHOLD  # on in `lifecycle run`, off in the library
    code: int = EXIT_USAGE
    ran = False
    try:
        with _health(service, health_address, prog):
            ran = True
            try:
                code = service.run()
            except BaseException as exc:  # the engine's own error: still a failed run
                raised = exc
                code = EXIT_FAILED
    except OSError as exc:  # the health address could not be bound: nothing ran
        if ran:
            raise
        _say(f"{prog}: cannot serve the health endpoints at {health_address}: {exc}", sys.stderr)
        return EXIT_USAGE
    finally:
        for undo in unsubscribe:
            undo()
        journal.close()
    if code != EXIT_OK:
        _print_failure(service, service.failure or raised, prog, quiet)
    lost = journal.stream_error
    told = [service.failure, *service.errors]
    if lost is not None and not any(e is lost or e.__cause__ is lost for e in told if e):
        # The journal file stopped short of the run (a full disk, a closed file), or its last
        # flush failed after the service ended: the run lost its record, so it failed.
        _say(f"{prog}: {type(lost).__name__}: {lost}", sys.stderr)
        code = code if code != EXIT_OK else EXIT_FAILED
    if not quiet:
        _print_summary(service)
    if journal.path is not None and lost is None:
        # What `lifecycle audit --run-id ID --expect-head HEX` checks: a journal swapped for
        # another run's, or rewritten, then fails.
        sealed = "sealed, " if journal.sealed else ""
        _say(
            f"{prog}: journal {journal.path}: {sealed}run id {journal.run_id}, "
            f"chain head {journal.head}",
            sys.stderr,
        )
    return code


def _open_journal(
    path: str | None,
    prog: str,
    seal: str | None = None,
    seal_epoch: int = DEFAULT_EPOCH_LENGTH,
) -> Journal | None:
    if seal is not None and path is None:
        print(f"{prog}: error: --seal needs --journal FILE", file=sys.stderr)
        return None
    try:
        return Journal(path, seal=seal, seal_epoch=seal_epoch)
    except JournalWriteError as exc:
        _say(f"{prog}: cannot write the journal {exc.path!r}: {exc.error}", sys.stderr)
    except SealKeyError as exc:
        _say(f"{prog}: cannot seal the journal: {exc}", sys.stderr)
    return None


def run_service_class(
    cls: type[Service],
    argv: Sequence[str],
    *,
    prog: str,
    label: str,
    usage_prog: str | None = None,
    journal: str | None = None,
    quiet: bool = False,
    seal: str | None = None,
    seal_epoch: int = DEFAULT_EPOCH_LENGTH,
    help_before: Callable[[], str] | None = None,
    help_after: Callable[[], str] | None = None,
    health_address: tuple[str, int] | None = None,
) -> int:
    """Run the Service subclass ``cls`` configured from ``argv``, as a command; the exit code.

    What `lifecycle run` and `Service.main` do. ``prog`` starts every message, ``label`` names
    the service in them, ``usage_prog`` is the program name in the service's help. ``journal``:
    a file to stream the journal to; ``quiet``: print no transitions nor summary, and a
    failure in one line; ``seal``: a sealing key state file to seal the journal with, its key
    evolving every ``seal_epoch`` lines; ``health_address``: serve the health endpoints there
    (see `lifecycle.probes`). Under ``$NOTIFY_SOCKET``, systemd is told (`lifecycle.systemd`).
    With a journal file, the run ends by printing its
    run id and chain head on stderr. For ``--help``, ``help_before`` and ``help_after`` give
    the text to print around the service's help.

    Exit codes: 0 help shown or stopped cleanly; 1 the run failed (the failure, its traceback
    unless ``quiet``, then the summary table); 2 a bad command line or a bad service
    definition (a dependency cycle, a duplicate task name, something in TASKS that is not a
    task class, conflicting options, a constructor that raises anything): one line on stderr.
    """
    try:
        clash = sorted(
            bound.flag
            for bound in bound_options([cls, *cls.available_tasks()])
            if bound.flag in _RUN_FLAGS
        )
        cls.argument_parser(usage_prog)  # option declarations: conflicts, self-refuting defaults
    except BaseException as exc:  # a bad definition, whatever it raises, is reported, not raised
        print(f"{prog}: {label}: {_definition_problem(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if clash:
        print(
            f"{prog}: {label} declares {', '.join(clash)}, which {prog} takes for itself; "
            "rename the option",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        probe = cls.from_argv(argv, prog=usage_prog)
    except HelpRequested as exc:
        asked = "-h" in argv or "--help" in argv  # else --tasks alone: the listing only
        if asked and help_before is not None:
            print(help_before(), end="")
        print(exc.text, end="" if exc.text.endswith("\n") else "\n")
        if asked and help_after is not None:
            print(help_after(), end="")
        return EXIT_OK
    except UsageError as exc:
        print(f"{prog}: error: {exc.message} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except BaseException as exc:  # the service's constructor raised
        print(f"{prog}: {label}: creating the service raised {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    opened = _open_journal(journal, prog, seal, seal_epoch)
    if opened is None:
        return EXIT_USAGE
    # The probe validated the command line; the service that runs owns the chosen journal.
    try:
        service = type(probe)(probe.options, journal=opened)
    except BaseException as exc:
        opened.close()
        print(f"{prog}: {label}: creating the service raised {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return _run_service(service, opened, quiet, prog, health_address)


def service_main(cls: type[Service], argv: Sequence[str] | None = None) -> int:
    """`Service.main`: run ``cls`` as a program with ``argv`` (default ``sys.argv[1:]``).

    Takes ``--journal FILE``, ``--quiet``, ``--seal SEAL_FILE``, ``--seal-epoch N`` and
    ``--health-address HOST:PORT`` as
    `lifecycle run` does, and everything else as the service's own command line (``--help``,
    ``--tasks``, options). Returns the exit code (see `run_service_class`); never raises for a
    bad command line or definition.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else cls.name
    flags = _RunFlagsParser(prog=prog, add_help=False, allow_abbrev=False)
    _add_run_flags(flags)
    try:
        known, rest = flags.parse_known_args(args)
        return run_service_class(
            cls,
            rest,
            prog=prog,
            label=cls.__qualname__,
            usage_prog=prog,
            journal=known.journal,
            quiet=known.quiet,
            seal=known.seal,
            seal_epoch=known.seal_epoch,
            help_after=_run_flags_help,
            health_address=known.health_address,
        )
    except UsageError as exc:
        print(f"{prog}: error: {exc.message} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


class _RunFlagsParser(argparse.ArgumentParser):
    """Parses the run flags out of a command line; raises `UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


#: The flags `lifecycle run` and `Service.main` parse themselves, wherever they stand: no
#: service option may use them.
_RUN_FLAGS = ("--journal", "--quiet", "--seal", "--seal-epoch", "--health-address")


def _add_run_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    journal_flag, quiet_flag, seal_flag, epoch_flag, health_flag = _RUN_FLAGS
    parser.add_argument(
        journal_flag, metavar="FILE", help="stream the journal to FILE as it happens"
    )
    parser.add_argument(
        health_flag,
        metavar="HOST:PORT",
        type=_health_address,
        help="serve GET /livez /readyz /startupz /status over HTTP there (port 0: a free port, "
        "said on stderr)",
    )
    parser.add_argument(
        quiet_flag,
        action="store_true",
        help="print no transitions and no summary, and a failure in one line",
    )
    _add_seal_flags(parser, seal_flag, epoch_flag)


def _add_seal_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    seal_flag: str = "--seal",
    epoch_flag: str = "--seal-epoch",
) -> None:
    parser.add_argument(
        seal_flag,
        metavar="SEAL_FILE",
        help="seal the journal with this key state (made by `lifecycle keygen`)",
    )
    parser.add_argument(
        epoch_flag,
        metavar="N",
        type=_positive_int,
        default=DEFAULT_EPOCH_LENGTH,
        help=f"evolve the sealing key every N lines ({DEFAULT_EPOCH_LENGTH})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, not {text!r}")
    return value


def _health_address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except HealthAddressError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _run_flags_help() -> str:
    parser = argparse.ArgumentParser(usage=argparse.SUPPRESS, add_help=False)
    _add_run_flags(parser.add_argument_group("run options"))
    return "\n" + parser.format_help()


def _cmd_run(args: argparse.Namespace) -> int:
    prog = "lifecycle run"
    if args.target is None:
        if args.help:
            print(args.parser.format_help(), end="")
            return EXIT_OK
        print(args.parser.format_usage(), end="", file=sys.stderr)
        print(f"{prog}: error: MODULE:CLASS is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = _load_target(args.target)
    except BadReference as exc:
        print(f"{prog}: {args.target}: {exc.problem}", file=sys.stderr)
        return EXIT_USAGE
    if not (isinstance(target, type) and issubclass(target, Service)):
        print(f"{prog}: {args.target} is {target!r}, not a Service subclass", file=sys.stderr)
        return EXIT_USAGE
    return run_service_class(
        target,
        [*(["--help"] if args.help else []), *args.extra],
        prog=prog,
        label=args.target,
        usage_prog=f"{prog} {args.target}",
        journal=args.journal,
        quiet=args.quiet,
        seal=args.seal,
        seal_epoch=args.seal_epoch,
        help_before=lambda: args.parser.format_help() + "\n",
        health_address=args.health_address,
    )


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run a service until SIGINT or SIGTERM",
        add_help=False,
        allow_abbrev=False,
        usage=(
            "lifecycle run [-h] [--journal FILE] [--quiet] [--seal SEAL_FILE] [--seal-epoch N] "
            "[--health-address HOST:PORT] MODULE:CLASS [service options]"
        ),
        description=(
            "Run the Service subclass CLASS of MODULE, printing each transition, until SIGINT "
            "or SIGTERM (a second one while stopping forces the exit), then a summary table; "
            "a failure is shown with its traceback. The options after MODULE:CLASS are the "
            "service's and its tasks': see `lifecycle run MODULE:CLASS --help`; `--tasks` "
            "alone lists the tasks. Exit codes: 0 stopped cleanly, 1 failed, 2 usage or a "
            "bad service definition."
        ),
    )
    p.add_argument("-h", "--help", action="store_true", help="show this help (and the service's)")
    p.add_argument("target", nargs="?", metavar="MODULE:CLASS", help="the Service subclass to run")
    _add_run_flags(p)
    p.set_defaults(command=_cmd_run, accepts_extra=True, parser=p)


def _cmd_demo(args: argparse.Namespace) -> int:
    prog = "lifecycle demo"
    journal = _open_journal(args.journal, prog, args.seal, args.seal_epoch)
    if journal is None:
        return EXIT_USAGE
    try:
        service = DemoService({"duration": args.duration}, journal=journal)
    except OptionError as exc:
        journal.close()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"running the demo service for {args.duration:g}s (Ctrl-C stops it sooner)")
    code = _run_service(service, journal, False, prog)
    print()
    print(", ".join(f"{name}: {count}" for name, count in service.counts().items()))
    if args.journal:
        how = f" --verify-key VERIFY_FILE --run-id {journal.run_id}" if args.seal else ""
        print(f"journal: {args.journal} (check it with `lifecycle audit {args.journal}{how}`)")
    print(f"demo {service.state}; exit code {code}")
    return code


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the bundled example service and show its lifecycle",
        description=(
            "Run a small example service (a periodic task, a queue task with retries, a task "
            "that skips for want of configuration and its dependent skipped with it, a task "
            "with dependencies), print each transition as it happens, stop gracefully after "
            "--duration seconds, and end with a summary table. Exit codes: 0 clean, 1 failed, "
            "2 usage."
        ),
    )
    p.add_argument(
        "--duration", type=float, default=3.0, metavar="SECONDS", help="how long to run (3)"
    )
    p.add_argument("--journal", metavar="FILE", help="write the journal to FILE (JSONL)")
    _add_seal_flags(p)
    p.set_defaults(command=_cmd_demo)


def _load_target(reference: str) -> object:
    """`lifecycle.loading.load`, with the current directory importable, as under `python -m`."""

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return load(reference)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecycle",
        description="A strict, state-machine lifecycle engine for background tasks.",
    )
    sub = parser.add_subparsers(metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_spec,
    _add_diagram,
    _add_audit,
    _add_summary,
    _add_timeline,
    _add_keygen,
    _add_plan,
    _add_run,
    _add_demo,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lifecycle`` command with ``argv`` (default: ``sys.argv[1:]``); returns the code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    command: Command = args.command
    try:
        return command(args)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
