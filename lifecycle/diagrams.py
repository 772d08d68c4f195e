"""Diagrams of the lifecycle machines and of task dependency graphs: Mermaid, Graphviz DOT, SVG.

Three kinds of picture, each first built as a small immutable model and then rendered:

* `machine_diagram(spec, current=None)`: a `MachineSpec` as a state diagram, optionally
  highlighting a current state;
* `journal_machine_diagram(spec, journal)`: the same machine annotated with what a journal
  shows happened: each edge's count, each state's visits, total and longest time, and the
  refused triggers listed apart (with any recorded move that is not an edge of the spec);
* `dependency_diagram(source)` (live, from a `Tasks` collection, a service holding one in
  ``.tasks``, a service class with ``TASKS`` or a task class) and
  `journal_dependency_diagram(journal)` (as observed in a journal): the tasks coloured by state
  (`STATE_COLOURS`, one colour per `TaskState`), DEPS solid and WANTS dashed, each arrow going
  from a task to the task it needs.

`mermaid`, `dot` and `svg` (or `render` by format name) turn a model into text or bytes.
Machines become Mermaid ``stateDiagram-v2``; dependency graphs become Mermaid ``flowchart``,
the Mermaid diagram that can draw dashed arrows.

Why render from the spec directly rather than through ``transitions.extensions.diagrams``: that
extension needs ``pygraphviz`` or the ``graphviz`` package (runtime dependencies we do not
take), it draws the machine of a live model rather than a table, it has no Mermaid output, no
place for counts, timings or refused triggers, and its node and attribute order follows
internal dicts, so its output is not a contract we could pin byte for byte. Reading
`lifecycle.spec` keeps one source of truth and gives byte-stable text with no extra dependency;
only SVG needs Graphviz's ``dot`` program, run as a subprocess with a timeout.

Output contract: the same input gives the same bytes (states in declaration order, tasks and
arrows sorted by name, no addresses, no wall-clock times), and every name is escaped so that
the result is text its format accepts whatever the name holds (quotes, ``-->``, braces,
newlines, any Unicode). Names are first made printable: control, format and separator
characters other than a newline are shown as Python escapes (``\\x00``, ``\\u202e``). Mermaid
text is ASCII, every other character written as a Mermaid entity code (``#35;``), and a newline
shown as a space in a state diagram (a line break, ``<br/>``, in a flowchart); identifiers are
generated (``s_<state>``, ``t_<name>`` or ``t<index>``), never taken raw. Mermaid text also
stays within what Mermaid draws with its default configuration (`MERMAID_MAX_TEXT_SIZE`,
`MERMAID_MAX_EDGES`): long labels are shortened visibly and stay distinct (`shorten`), and a
diagram too large even so degrades visibly (see `mermaid`). DOT text is UTF-8,
every identifier and label a quoted, escaped string (non-ASCII characters are written as
themselves: Graphviz 2.43 mis-decodes numeric entities above U+FFFF); it has no size limit.

Building and rendering to text are pure and thread-safe; nothing here prints or touches global
state. `svg` raises `GraphvizNotFound` when ``dot`` is not installed and `DiagramError` when it
fails or times out; `write_all` writes files.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs

from lifecycle.collection import Tasks
from lifecycle.errors import LifecycleError
from lifecycle.journal import (
    Journal,
    JournalFormatError,
    JournalRecords,
    Transition,
    read_journal,
)
from lifecycle.loading import load
from lifecycle.spec import SPECS, TASK, MachineSpec, TaskState
from lifecycle.task import Task, task_name

__all__ = [
    "FORMATS",
    "STATE_COLOURS",
    "DependencyDiagram",
    "Diagram",
    "DiagramError",
    "GraphvizNotFound",
    "MachineDiagram",
    "dependency_diagram",
    "dependency_graph",
    "dot",
    "has_graphviz",
    "journal_dependency_diagram",
    "journal_machine_diagram",
    "machine_diagram",
    "mermaid",
    "mermaid_text",
    "printable",
    "render",
    "shorten",
    "svg",
    "write_all",
]

#: The output formats, and the file suffix `write_all` gives each.
FORMATS: Mapping[str, str] = {"mermaid": ".mmd", "dot": ".dot", "svg": ".svg"}

#: The fill colour of a task in each state (dependency graphs); the one place colours are set.
STATE_COLOURS: Mapping[TaskState, str] = {
    TaskState.REGISTERED: "#eeeeee",
    TaskState.CREATED: "#cfe2f3",
    TaskState.INITIALIZED: "#9fc5e8",
    TaskState.RUNNING: "#b6d7a8",
    TaskState.STOPPING: "#ffe599",
    TaskState.SUSPENDING: "#f6d7a7",
    TaskState.BACKOFF: "#d5a6bd",
    TaskState.STOPPED: "#d9d9d9",
    TaskState.SKIPPED: "#f9cb9c",
    TaskState.FAILED: "#ea9999",
}
#: The fill of a task whose state is not a `TaskState` (a hand-edited journal) or unknown.
UNKNOWN_COLOUR = "#ffffff"
#: The fill of the highlighted current state of a machine diagram.
CURRENT_COLOUR = "#ffe599"

#: Where `write_all` finds the demo service, when `lifecycle.demo` exists.
DEMO_SERVICE = "lifecycle.demo:DemoService"

#: Seconds `svg` lets ``dot`` run before giving up.
DOT_TIMEOUT = 30.0

#: The longest Mermaid text that Mermaid draws with its default configuration: its
#: ``maxTextSize`` setting (50,000 characters), which ``mermaid.render`` checks before drawing
#: and, past it, draws "Maximum text size in diagram exceeded" instead of the diagram.
#: `mermaid` never returns a longer text.
MERMAID_MAX_TEXT_SIZE = 50_000
#: The most arrows Mermaid accepts in a flowchart with its default configuration: its
#: ``maxEdges`` setting (500); its parser refuses a flowchart with more ("Edge limit exceeded").
#: State diagrams have no such limit.
MERMAID_MAX_EDGES = 500
#: Labels longer than this (in characters as shown, see `printable`) are shortened in Mermaid
#: text: cut, with an ellipsis and the start of their SHA-256 after it (`shorten`).
MERMAID_LABEL_LIMIT = 60
#: How short labels get when a diagram does not fit `MERMAID_MAX_TEXT_SIZE` with the usual ones.
MERMAID_MIN_LABEL_LIMIT = 20
#: Marks a shortened label: the text before it is the start of the full one.
ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"


class DiagramError(LifecycleError, ValueError):
    """A diagram could not be made: a bad source, an unknown format, ``dot`` failed, or a
    machine too large for Mermaid's limits."""


class GraphvizNotFound(DiagramError, FileNotFoundError):
    """Graphviz's program (``program``) is not installed, so SVG cannot be rendered."""

    def __init__(self, program: str) -> None:
        self.program = program
        super().__init__(
            f"cannot render SVG: Graphviz's {program!r} program is not installed "
            "(install graphviz, or use the mermaid or dot format)"
        )

    def __str__(self) -> str:
        # OSError's "[Errno None]" formatting does not apply; keep the plain message.
        return str(self.args[0])


# -- models ------------------------------------------------------------------------------------


@attrs.frozen
class Arrow:
    """One drawn arrow: ``source`` to ``dest`` (state values or task names)."""

    source: str
    dest: str
    label: str = ""
    #: Drawn faint: an edge of the spec that the journal never saw.
    faint: bool = False


@attrs.frozen
class MachineDiagram:
    """A state machine as drawn: the spec, what to highlight, and what to write on it.

    ``notes`` maps a state value to lines written in its box; ``aside`` holds the lines of the
    box drawn apart (refused triggers, moves off the spec); ``unvisited`` are states drawn faint.
    """

    spec: MachineSpec
    title: str
    arrows: tuple[Arrow, ...]
    current: str | None = None
    notes: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    aside_title: str = ""
    aside: tuple[str, ...] = ()
    unvisited: frozenset[str] = frozenset()


@attrs.frozen
class DependencyDiagram:
    """A dependency graph as drawn: ``states`` maps each task name to its state (sorted by
    name; None when no state is known), ``arrows`` go from a task to the task it needs, with
    label ``"deps"`` or ``"wants"``."""

    title: str
    states: tuple[tuple[str, str | None], ...]
    arrows: tuple[Arrow, ...]


Diagram = MachineDiagram | DependencyDiagram


# -- building: machines ------------------------------------------------------------------------


def machine_diagram(spec: MachineSpec, current: str | None = None) -> MachineDiagram:
    """The diagram of ``spec``, with ``current`` (a state value) highlighted if given.

    Triggers that share a source and a destination are drawn as one arrow (``"stop, finish"``).
    Raises `InvalidSpec` if ``current`` is not a state of ``spec``.
    """
    if current is not None:
        current = spec.state(current).value
    labels: dict[tuple[str, str], list[str]] = {}
    for source, trigger, dest in spec.edges():
        labels.setdefault((source, dest), []).append(trigger)
    arrows = tuple(
        Arrow(source, dest, ", ".join(triggers))
        for (source, dest), triggers in _in_state_order(spec, labels)
    )
    return MachineDiagram(spec=spec, title=f"{spec.name} machine", arrows=arrows, current=current)


def journal_machine_diagram(spec: MachineSpec, journal: JournalSource) -> MachineDiagram:
    """The diagram of ``spec`` annotated with the records of kind ``spec.name`` in ``journal``.

    Each arrow carries each trigger's count; each state its visits, the total and the longest
    time spent in it (per subject, from entering it to its next transition, by the records'
    monotonic clock; a state nobody left yet has no time). Refused triggers are counted per
    (state, trigger) in a box apart, with any ``ok`` record that is not an edge of ``spec``.
    ``journal`` is a `Journal`, a path to a journal file, or ``(header, records)``. Raises
    `JournalFormatError` for an unreadable file.
    """
    return _in_seq_order(journal, lambda _, records: _machine_diagram(spec, records))


def _machine_diagram(spec: MachineSpec, records: Iterable[Transition]) -> MachineDiagram:
    mine = (r for r in records if r.kind == spec.name)
    counts: Counter[tuple[str, str, str]] = Counter()
    off_spec: Counter[tuple[str, str, str]] = Counter()
    refused: Counter[tuple[str, str]] = Counter()
    visits: Counter[str] = Counter()
    total: Counter[str] = Counter()
    longest: dict[str, int] = {}
    # per subject: the state it is in and the monotonic time it entered it (None: unknown)
    where: dict[str, tuple[str, int | None]] = {}
    for rec in mine:
        if rec.subject not in where:
            where[rec.subject] = (rec.source, None)
            visits[rec.source] += 1
        if not rec.ok or rec.dest is None:
            refused[(rec.source, rec.trigger)] += 1
            continue
        edge = (rec.source, rec.trigger, rec.dest)
        if spec.table.get((rec.source, rec.trigger)) == rec.dest:
            counts[edge] += 1
        else:
            off_spec[edge] += 1
        state, since = where[rec.subject]
        if since is not None and rec.mono >= since:
            spent = rec.mono - since
            total[state] += spent
            longest[state] = max(longest.get(state, 0), spent)
        where[rec.subject] = (rec.dest, rec.mono)
        visits[rec.dest] += 1

    grouped: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for source, trigger, dest in spec.edges():
        grouped.setdefault((source, dest), []).append((trigger, counts[(source, trigger, dest)]))
    arrows = tuple(
        Arrow(
            source,
            dest,
            ", ".join(f"{trigger} ({n})" for trigger, n in triggers),
            faint=not any(n for _, n in triggers),
        )
        for (source, dest), triggers in _in_state_order(spec, grouped)
    )
    notes: dict[str, tuple[str, ...]] = {}
    for state in spec.states:
        value = state.value
        if not visits[value]:
            continue
        lines = [f"{visits[value]} visit{'' if visits[value] == 1 else 's'}"]
        if value in longest:
            lines.append(f"total {_duration(total[value])}, longest {_duration(longest[value])}")
        notes[value] = tuple(lines)
    aside = [f"{state}: {trigger} ({n})" for (state, trigger), n in _in_state_order(spec, refused)]
    aside += [
        f"not in spec: {source} -{trigger}-> {dest} ({n})"
        for (source, trigger, dest), n in sorted(off_spec.items())
    ]
    n_ok = sum(counts.values()) + sum(off_spec.values())
    title = (
        f"{spec.name} machine: {len(where)} subject{'' if len(where) == 1 else 's'}, "
        f"{n_ok} transition{'' if n_ok == 1 else 's'}, {sum(refused.values())} refused"
    )
    return MachineDiagram(
        spec=spec,
        title=title,
        arrows=arrows,
        notes=notes,
        aside_title="refused triggers" if refused or off_spec else "",
        aside=tuple(aside),
        unvisited=frozenset(s.value for s in spec.states if not visits[s.value]),
    )


def _in_state_order(
    spec: MachineSpec, grouped: Mapping[tuple[str, str], Any]
) -> list[tuple[tuple[str, str], Any]]:
    key = _state_key(spec)
    return sorted(grouped.items(), key=lambda kv: key(kv[0]))


def _state_key(spec: MachineSpec) -> Callable[[tuple[str, str]], tuple[int, str, int, str]]:
    """The sort key of a (state, state-or-trigger) pair: declaration order, unknown values
    last. The order is looked up once, so sorting stays linearithmic for a large spec."""
    order = {s.value: i for i, s in enumerate(spec.states)}

    def key(pair: tuple[str, str]) -> tuple[int, str, int, str]:
        first, second = pair
        return (order.get(first, len(order)), first, order.get(second, len(order)), second)

    return key


def _duration(ns: int) -> str:
    """A duration, three significant digits, in ns, us, ms or s."""
    for unit, scale in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns} ns"


# -- building: dependency graphs ---------------------------------------------------------------


def dependency_graph(
    tasks: Mapping[str, Mapping[str, Any]],
    states: Mapping[str, str] | None = None,
    title: str = "task dependencies",
) -> DependencyDiagram:
    """The dependency graph of ``tasks`` (name -> ``{"deps": [...], "wants": [...]}``, the
    journal header's layout), each task in ``states[name]`` (None when absent).

    A dependency that is not itself in ``tasks`` is drawn with no state. Raises `DiagramError`
    if an entry is not of that layout.
    """
    states = states or {}
    known: dict[str, str | None] = {}
    arrows: set[Arrow] = set()
    for name, info in tasks.items():
        if not isinstance(name, str) or not isinstance(info, Mapping):
            raise DiagramError(f"task entry {name!r} is not a name with a mapping of deps/wants")
        known[name] = states.get(name)
        for kind in ("deps", "wants"):
            needed = info.get(kind, ())
            if not isinstance(needed, (list, tuple)) or not all(isinstance(d, str) for d in needed):
                raise DiagramError(f"task {name!r}: {kind} is not a list of names: {needed!r}")
            arrows.update(Arrow(name, dep, kind) for dep in needed)
    for arrow in arrows:
        known.setdefault(arrow.dest, states.get(arrow.dest))
    return DependencyDiagram(
        title=title,
        states=tuple(sorted(known.items())),
        arrows=tuple(sorted(arrows, key=lambda a: (a.source, a.dest, a.label))),
    )


def dependency_diagram(source: object) -> DependencyDiagram:
    """The live dependency graph of ``source``, each task in its current state.

    ``source``: a `Tasks` collection; a service, i.e. anything whose ``tasks`` attribute is a
    `Tasks`; a service class with a ``TASKS`` sequence of task classes; or a `Task` subclass.
    For the two classes, the tasks are registered in a fresh collection (nothing is created or
    run) and drawn registered. Raises `DiagramError` for anything else, and the registration
    errors (`DependencyCycle`, `DuplicateTask`, `InvalidTask`) of a bad class.
    """
    title = None
    if isinstance(source, Tasks):
        collection = source
    elif isinstance(getattr(source, "tasks", None), Tasks):
        collection = source.tasks  # type: ignore[attr-defined]
        title = getattr(source, "name", None)
    elif isinstance(source, type) and issubclass(source, Task):
        collection = Tasks([source], name=task_name(source))
    elif isinstance(source, type) and isinstance(getattr(source, "TASKS", None), (list, tuple)):
        name = getattr(source, "name", None)
        collection = Tasks(
            getattr(source, "TASKS"),  # noqa: B009 (mypy cannot see a class attribute we probed)
            name=name if isinstance(name, str) and name else source.__name__,
        )
    else:
        raise DiagramError(
            f"{source!r} has no dependency graph: expected a Tasks collection, an object whose "
            "`tasks` is one, a service class with TASKS, or a Task subclass"
        )
    described = {
        task_name(cls): {
            "deps": [task_name(d) for d in cls.DEPS],
            "wants": [task_name(w) for w in cls.WANTS if task_name(w) in collection],
        }
        for cls in collection.task_classes
    }
    states = {name: collection.state_of(name).value for name in described}
    owner = title if isinstance(title, str) and title else collection.name
    return dependency_graph(described, states, title=f"dependencies of {owner}")


def journal_dependency_diagram(journal: JournalSource) -> DependencyDiagram:
    """The dependency graph of the tasks in ``journal``'s header, as observed: each task in the
    destination of its last fired task transition (registered if it has none).

    ``journal`` is a `Journal`, a path to a journal file, or ``(header, records)``. Raises
    `JournalFormatError` for an unreadable file or a header whose ``tasks`` is malformed.
    """
    return _in_seq_order(journal, _dependency_diagram)


def _dependency_diagram(
    header: Mapping[str, Any], records: Iterable[Transition]
) -> DependencyDiagram:
    tasks = header.get("tasks", {})
    if not isinstance(tasks, Mapping):
        raise JournalFormatError("header field 'tasks' is not an object", line=1)
    final: dict[str, str] = {}
    for rec in records:
        if rec.kind == TASK.name and rec.ok and rec.dest is not None:
            final[rec.subject] = rec.dest
    states = {name: final.get(name, TASK.initial) for name in tasks}
    try:
        return dependency_graph(tasks, states, title="task dependencies as observed")
    except DiagramError as exc:
        raise JournalFormatError(f"header field 'tasks': {exc}", line=1) from None


JournalSource = Journal | str | os.PathLike[str] | tuple[Mapping[str, Any], Sequence[Transition]]


_Drawn = TypeVar("_Drawn")


class _OutOfOrder(Exception):
    """A journal file's records are not in sequence order (it was edited): sort them."""


def _in_seq_order(
    journal: JournalSource,
    draw: Callable[[Mapping[str, Any], Iterable[Transition]], _Drawn],
) -> _Drawn:
    """``draw(header, records)`` with the records in sequence order.

    A file is streamed (memory bounded by a line, not by its length): its records are in
    order unless it was edited, and then it is read again whole and sorted, as records given
    in memory are (a stable sort: records of equal ``seq`` keep their order).
    """
    if isinstance(journal, (str, os.PathLike)):
        with JournalRecords(journal) as opened:
            try:
                return draw(opened.header, _checked_order(opened))
            except _OutOfOrder:
                pass
        header: Mapping[str, Any]
        header, records = read_journal(journal)
    elif isinstance(journal, Journal):
        header, records = journal.header(), list(journal.records)
    else:
        header, records = journal[0], list(journal[1])
    return draw(header, sorted(records, key=lambda r: r.seq))


def _checked_order(records: Iterable[Transition]) -> Iterator[Transition]:
    last: int | None = None
    for rec in records:
        if last is not None and rec.seq < last:
            raise _OutOfOrder
        last = rec.seq
        yield rec


# -- text --------------------------------------------------------------------------------------

_SHOWN_AS_ESCAPE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` as diagrams show it: newlines kept, every other control, format, private,
    unassigned or line/paragraph separator character written as its Python escape."""
    return "".join(
        ch if ch == "\n" or unicodedata.category(ch) not in _SHOWN_AS_ESCAPE else ascii(ch)[1:-1]
        for ch in text
    )


# Characters written as themselves in Mermaid text; everything else becomes an entity code.
_MERMAID_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,()/+=?!@*'"
)
_SAFE_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


def mermaid_text(text: str, newline: str) -> str:
    """``text`` as Mermaid label text: `printable`, every character but ASCII letters, digits
    and ``_.,()/+=?!@*'`` and space written as an entity code (``#35;``), newlines as
    ``newline``. Pure."""
    return "".join(
        ch if ch in _MERMAID_PLAIN else newline if ch == "\n" else f"#{ord(ch)};"
        for ch in printable(text)
    )


def _ids(values: Iterable[str], prefix: str) -> dict[str, str]:
    """Safe, unique identifiers for ``values``: ``<prefix>_<value>`` when the value is a short
    ASCII word, else ``<prefix><index>``; the two forms cannot collide."""
    return {
        value: f"{prefix}_{value}" if _SAFE_ID.fullmatch(value) else f"{prefix}{index}"
        for index, value in enumerate(values)
    }


# How many hex digits of a text's SHA-256 follow the ellipsis of its shortened label: the first
# count, then more for texts whose labels would still be alike (the whole digest at most).
_DIGEST_DIGITS = (8, 16, 64)


def _digest(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:digits]


def _cut(text: str, limit: int, digits: int | None = None) -> str:
    """``text`` as shown (`printable`), shortened to ``limit`` characters if it is longer: its
    start, `ELLIPSIS` and the first ``digits`` (default 8) hex digits of the SHA-256 of the
    full ``text``. With ``digits`` given, a short text is marked so too (to tell it apart)."""
    shown = printable(text)
    if digits is None:
        if len(shown) <= limit:
            return shown
        digits = _DIGEST_DIGITS[0]
    keep = max(limit - len(ELLIPSIS) - digits, 1)
    return shown[:keep] + ELLIPSIS + _digest(text, digits)


def shorten(texts: Iterable[str], limit: int = MERMAID_LABEL_LIMIT) -> dict[str, str]:
    """Each of ``texts`` -> its label: as shown (`printable`) if at most ``limit`` characters
    long, else cut to ``limit`` characters: its start, `ELLIPSIS` and the first 8 hex digits of
    the SHA-256 of the full text (``"aaaa…3f1c9b2e"``), so that the cut shows.

    Distinct texts get distinct labels: texts whose labels would be alike (long texts with a
    common start and digest prefix, or texts shown alike, such as a NUL character and the four
    characters backslash, x, 0, 0) are all marked with longer digests, up to the whole SHA-256
    (such a label may be longer than ``limit``), so two labels are alike only if SHA-256
    collides. Pure and deterministic: a text's label depends on its neighbours only when they
    would be alike."""
    labels = {text: _cut(text, limit) for text in texts}
    for digits in _DIGEST_DIGITS:
        groups: dict[str, list[str]] = {}
        for text, label in labels.items():
            groups.setdefault(label, []).append(text)
        alike = [text for group in groups.values() if len(group) > 1 for text in group]
        if not alike:
            break
        for text in alike:
            labels[text] = _cut(text, limit, digits)
    return labels


def _dot_string(text: str) -> str:
    """``text`` as a quoted DOT string whose label shows exactly ``printable(text)``."""
    out = []
    for ch in printable(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "&":
            # Graphviz decodes HTML entities in labels; a literal ampersand must not start one.
            out.append("&amp;")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _dot_lines(lines: Sequence[str]) -> str:
    """Lines as one quoted DOT label, each left-justified."""
    return '"' + "".join(_dot_string(line)[1:-1] + "\\l" for line in lines) + '"'


# -- rendering: Mermaid ------------------------------------------------------------------------


def mermaid(diagram: Diagram) -> str:
    """The Mermaid text of ``diagram`` (ASCII, ends with a newline), within what Mermaid draws
    with its default configuration whatever the names: never longer than
    `MERMAID_MAX_TEXT_SIZE`, and a flowchart has at most `MERMAID_MAX_EDGES` arrows.

    A label longer than `MERMAID_LABEL_LIMIT` characters is shortened visibly, and distinct
    names keep distinct labels (see `shorten`). A diagram too large even so is drawn with labels
    of `MERMAID_MIN_LABEL_LIMIT` characters and, if that is not enough, degrades visibly rather
    than failing in the browser: a dependency graph draws the first tasks by name that fit,
    with every arrow between them, and a box saying how many tasks and arrows are not drawn; a
    machine diagram lists as many refused triggers as fit and says how many more there were.
    A machine is the contract and is drawn whole or not at all: raises `DiagramError` when its
    states and edges alone do not fit (the dot and svg formats have no such limits).
    """
    if isinstance(diagram, MachineDiagram):
        text = _fit(lambda limit: _state_diagram(diagram, limit), len(diagram.aside))
        if text is None:
            raise DiagramError(
                f"the {diagram.spec.name} machine ({len(diagram.spec.states)} states, "
                f"{len(diagram.arrows)} arrows) does not fit Mermaid's limit of "
                f"{MERMAID_MAX_TEXT_SIZE:,} characters even with labels shortened to "
                f"{MERMAID_MIN_LABEL_LIMIT} characters; use the dot or svg format"
            )
        return text
    text = _fit(lambda limit: _flowchart(diagram, limit), len(diagram.states))
    if text is None:  # pragma: no cover - a flowchart of no task always fits
        raise DiagramError("a dependency graph of no task does not fit Mermaid's limit")
    return text


def _fit(draw: Callable[[int], Callable[[int], tuple[str, int]]], items: int) -> str | None:
    """The largest drawing by ``draw`` within Mermaid's limits, or None if none is.

    ``draw(limit)`` shortens labels to ``limit`` characters and returns a function that draws
    the first ``n`` of the diagram's ``items`` droppable items (tasks, refused triggers) with a
    note saying how many were left out (no note when ``n == items``), and returns the text and
    its count of flowchart arrows. Tries every item with the usual, then with the shortest
    labels, then the most items that fit with the shortest labels (text and arrows grow with
    ``n``, so a binary search finds it).
    """
    for limit in (MERMAID_LABEL_LIMIT, MERMAID_MIN_LABEL_LIMIT):
        drawing = draw(limit)
        if _within_limits(whole := drawing(items)):
            return whole[0]
    if items == 0 or not _within_limits(drawing(0)):
        return None
    fits, too_many = 0, items
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if _within_limits(drawing(middle)):
            fits = middle
        else:
            too_many = middle
    return drawing(fits)[0]


def _within_limits(drawn: tuple[str, int]) -> bool:
    text, arrows = drawn
    return len(text) <= MERMAID_MAX_TEXT_SIZE and arrows <= MERMAID_MAX_EDGES


def _not_drawn(count: int, what: str) -> str:
    return f"{count:,} more {what}{'' if count == 1 else 's'}"


# What the note of a diagram cut to fit says after the counts of what is missing.
_TOO_LARGE_TEXT = (
    f"not drawn: Mermaid draws at most {MERMAID_MAX_TEXT_SIZE:,} characters; "
    "the dot and svg formats show everything"
)
_TOO_LARGE_FLOWCHART = (
    f"not drawn: Mermaid draws at most {MERMAID_MAX_TEXT_SIZE:,} characters "
    f"and {MERMAID_MAX_EDGES} arrows; the dot and svg formats show everything"
)


def _state_diagram(d: MachineDiagram, limit: int) -> Callable[[int], tuple[str, int]]:
    spec = d.spec
    ids = _ids((s.value for s in spec.states), "s")
    states = shorten((s.value for s in spec.states), limit)
    asides = shorten(d.aside, limit)
    head = ["stateDiagram-v2"]
    head.append("    classDef terminal stroke-width:3px")
    head.append(f"    classDef current fill:{CURRENT_COLOUR},stroke-width:3px,font-weight:bold")
    head.append("    classDef unvisited fill:#f3f3f3,color:#999999,stroke:#bbbbbb")
    for state in spec.states:
        head.append(f'    state "{mermaid_text(states[state.value], " ")}" as {ids[state.value]}')
    head.append(f"    [*] --> {ids[spec.initial]}")
    for arrow in d.arrows:
        label = f" : {mermaid_text(_cut(arrow.label, limit), ' ')}" if arrow.label else ""
        head.append(f"    {ids[arrow.source]} --> {ids[arrow.dest]}{label}")
    for state in spec.states:
        if state.value in spec.terminal:
            head.append(f"    {ids[state.value]} --> [*]")
    for state in spec.states:
        for line in d.notes.get(state.value, ()):
            head.append(f"    {ids[state.value]} : {mermaid_text(_cut(line, limit), ' ')}")
    if d.aside:
        head.append(f'    state "{mermaid_text(d.aside_title, " ")}" as aside')
    tail = []
    classes = {
        "terminal": [s.value for s in spec.states if s.value in spec.terminal],
        "unvisited": [s.value for s in spec.states if s.value in d.unvisited],
        "current": [d.current] if d.current is not None else [],
    }
    for name, members in classes.items():
        if members:
            tail.append(f"    class {','.join(ids[m] for m in members)} {name}")
    lines = [f"    aside : {mermaid_text(asides[line], ' ')}" for line in d.aside]

    def drawing(n: int) -> tuple[str, int]:
        out = head + lines[:n]
        if n < len(lines):
            note = f"{ELLIPSIS} {_not_drawn(len(lines) - n, 'refused trigger')} {_TOO_LARGE_TEXT}"
            out.append(f"    aside : {mermaid_text(note, ' ')}")
        return "\n".join(out + tail) + "\n", 0  # Mermaid limits no state diagram's arrows

    return drawing


def _flowchart(d: DependencyDiagram, limit: int) -> Callable[[int], tuple[str, int]]:
    ids = _ids((name for name, _ in d.states), "t")
    names = shorten((name for name, _ in d.states), limit)
    head = ["flowchart TD"]
    for member in TaskState:
        head.append(f"    classDef {member.value} fill:{STATE_COLOURS[member]},stroke:#666666")
    head.append(f"    classDef unknown fill:{UNKNOWN_COLOUR},stroke:#666666,stroke-dasharray:3 3")
    boxes = []
    for name, state in d.states:
        shown = _cut(state if state is not None else "(not registered)", limit)
        label = mermaid_text(names[name], "<br/>") + "<br/>" + mermaid_text(shown, "<br/>")
        boxes.append(f'    {ids[name]}["{label}"]')

    def drawing(n: int) -> tuple[str, int]:
        drawn = d.states[:n]
        shown = {name for name, _ in drawn}
        out = head + boxes[:n]
        members: dict[str, list[str]] = {}
        for name, state in drawn:
            members.setdefault(_colour_class(state), []).append(ids[name])
        arrows = [a for a in d.arrows if a.source in shown and a.dest in shown]
        for arrow in arrows:
            link = "-.->" if arrow.label == "wants" else "-->"
            out.append(f"    {ids[arrow.source]} {link} {ids[arrow.dest]}")
        if n < len(d.states):
            note = (
                f"{ELLIPSIS} {_not_drawn(len(d.states) - n, 'task')} and "
                f"{_not_drawn(len(d.arrows) - len(arrows), 'arrow')} {_TOO_LARGE_FLOWCHART}"
            )
            out.append(f'    omitted["{mermaid_text(note, "<br/>")}"]')
            members.setdefault("unknown", []).append("omitted")
        for name in [*(s.value for s in TaskState), "unknown"]:
            if name in members:
                out.append(f"    class {','.join(members[name])} {name}")
        return "\n".join(out) + "\n", len(arrows)

    return drawing


def _colour_class(state: str | None) -> str:
    return state if state is not None and _fill(state) else "unknown"


def _fill(state: str | None) -> str | None:
    """The colour of a task in ``state``, or None if it is not a `TaskState`."""
    if state is None:
        return None
    try:
        return STATE_COLOURS[TaskState(state)]
    except ValueError:
        return None


# -- rendering: DOT ----------------------------------------------------------------------------


def dot(diagram: Diagram) -> str:
    """The Graphviz DOT text of ``diagram`` (ends with a newline)."""
    if isinstance(diagram, MachineDiagram):
        return _dot_machine(diagram)
    return _dot_dependencies(diagram)


_DOT_HEAD = (
    '    graph [labelloc=t, fontname="Helvetica", fontsize=14];',
    '    node [shape=box, style=rounded, fontname="Helvetica", fontsize=12];',
    '    edge [fontname="Helvetica", fontsize=10];',
)


def _dot_machine(d: MachineDiagram) -> str:
    spec = d.spec
    ids = _ids((s.value for s in spec.states), "s")
    out = [f"digraph {_dot_string(spec.name)} {{", *_DOT_HEAD]
    out.append(f"    graph [label={_dot_string(d.title)}];")
    out.append('    "__initial" [shape=point, width=0.15, label=""];')
    for state in spec.states:
        value = state.value
        attrs_ = [f"label={_dot_string(value)}"]
        if d.notes.get(value):
            attrs_ = [f"label={_dot_string(chr(10).join((value, *d.notes[value])))}"]
        if value in spec.terminal:
            attrs_.append("peripheries=2")
        if value == d.current:
            attrs_.append(f'style="rounded,filled,bold", fillcolor="{CURRENT_COLOUR}", penwidth=2')
        elif value in d.unvisited:
            attrs_.append('color="#bbbbbb", fontcolor="#999999"')
        out.append(f"    {_dot_string(ids[value])} [{', '.join(attrs_)}];")
    out.append(f'    "__initial" -> {_dot_string(ids[spec.initial])};')
    for arrow in d.arrows:
        attrs_ = [f"label={_dot_string(arrow.label)}"]
        if arrow.faint:
            attrs_.append('style=dashed, color="#bbbbbb", fontcolor="#999999"')
        out.append(
            f"    {_dot_string(ids[arrow.source])} -> {_dot_string(ids[arrow.dest])}"
            f" [{', '.join(attrs_)}];"
        )
    if d.aside:
        out.append('    subgraph "cluster_aside" {')
        out.append(f"        graph [label={_dot_string(d.aside_title)}, style=dashed];")
        out.append(f'        "aside" [shape=note, style="", label={_dot_lines(d.aside)}];')
        out.append("    }")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_dependencies(d: DependencyDiagram) -> str:
    ids = _ids((name for name, _ in d.states), "t")
    out = [f"digraph {_dot_string('dependencies')} {{", *_DOT_HEAD]
    legend = "an arrow points to what a task needs: solid DEPS, dashed WANTS"
    out.append(f"    graph [label={_dot_string(d.title + chr(10) + legend)}];")
    for name, state in d.states:
        shown = state if state is not None else "(not registered)"
        colour = _fill(state)
        style = '"rounded,filled"' if colour else '"rounded,filled,dashed"'
        out.append(
            f"    {_dot_string(ids[name])} [label={_dot_string(name + chr(10) + shown)}, "
            f'style={style}, fillcolor="{colour or UNKNOWN_COLOUR}"];'
        )
    for arrow in d.arrows:
        style = "dashed" if arrow.label == "wants" else "solid"
        out.append(
            f"    {_dot_string(ids[arrow.source])} -> {_dot_string(ids[arrow.dest])}"
            f" [style={style}];"
        )
    out.append("}")
    return "\n".join(out) + "\n"


# -- rendering: SVG ----------------------------------------------------------------------------


def has_graphviz(program: str = "dot") -> bool:
    """Whether Graphviz's ``program`` is installed (on PATH), so that `svg` can work."""
    return shutil.which(program) is not None


def svg(diagram: Diagram, *, program: str = "dot", timeout: float = DOT_TIMEOUT) -> bytes:
    """The SVG of ``diagram``, laid out by Graphviz's ``program`` (found on PATH).

    Raises `GraphvizNotFound` if ``program`` is not installed, `DiagramError` if it fails or
    runs longer than ``timeout`` seconds (it is then killed).
    """
    found = shutil.which(program)
    if found is None:
        raise GraphvizNotFound(program)
    try:
        done = subprocess.run(
            [found, "-Tsvg"],
            input=dot(diagram).encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DiagramError(f"{program!r} did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise DiagramError(f"cannot run {program!r}: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DiagramError(
            f"{program!r} failed (exit {done.returncode}): {reason[0] if reason else 'no message'}"
        )
    return done.stdout


def render(diagram: Diagram, format: str) -> str | bytes:
    """``diagram`` in ``format`` (one of `FORMATS`): text for mermaid and dot, bytes for svg.

    Raises `DiagramError` for an unknown format, and what `svg` raises.
    """
    if format == "mermaid":
        return mermaid(diagram)
    if format == "dot":
        return dot(diagram)
    if format == "svg":
        return svg(diagram)
    raise DiagramError(f"unknown diagram format {format!r}; expected one of {', '.join(FORMATS)}")


# -- sources and files -------------------------------------------------------------------------


def _demo_diagram() -> DependencyDiagram | None:
    """The demo service's dependency graph, or None while `lifecycle.demo` does not exist."""
    module_name = DEMO_SERVICE.partition(":")[0]
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    return dependency_diagram(load(DEMO_SERVICE))


def write_all(directory: str | os.PathLike[str], *, svgs: bool = True) -> list[Path]:
    """Write every machine (and the demo service's dependency graph, when `lifecycle.demo`
    exists) to ``directory`` as ``<name>.mmd``, ``<name>.dot`` and, if ``svgs``,
    ``<name>.svg``; returns the paths written, sorted. Creates ``directory`` if needed.

    Raises `GraphvizNotFound` (before writing anything) when ``svgs`` and ``dot`` is missing,
    `DiagramError` if ``directory`` cannot be written.
    """
    if svgs and not has_graphviz():
        raise GraphvizNotFound("dot")
    diagrams: dict[str, Diagram] = {name: machine_diagram(spec) for name, spec in SPECS.items()}
    demo = _demo_diagram()
    if demo is not None:
        diagrams["demo-dependencies"] = demo
    target = Path(directory)
    written: list[Path] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name, diagram in sorted(diagrams.items()):
            for fmt, suffix in FORMATS.items():
                if fmt == "svg" and not svgs:
                    continue
                path = target / f"{name}{suffix}"
                content = render(diagram, fmt)
                if isinstance(content, str):
                    path.write_text(content, encoding="utf-8", newline="\n")
                else:
                    path.write_bytes(content)
                written.append(path)
    except OSError as exc:
        raise DiagramError(f"cannot write diagrams to {os.fspath(target)!r}: {exc}") from exc
    return sorted(written)
