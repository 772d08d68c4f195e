"""The journal: one `Transition` record for every fired or refused trigger.

A `Journal` keeps its records in memory, tells subscribers about each one as it is appended,
and can stream them to a JSONL file as they happen. The file format:

* line 1, the header: ``{"format": "lifecycle-journal", "version": 2, "run": {"id": ...,
  "host": ..., "pid": ..., "start": ..., "lifecycle": ...}, "specs": {...}, "tasks": {name:
  {"class": ..., "deps": [...], "wants": [...]}}, "hash": ...}``, plus ``"seal": {"key": ...,
  "epoch": ..., "every": ..., "kdf": ...}`` when sealed;
* then one record per line, the fields of `Transition` plus ``hash``;
* a machine described after the header was written (version 3) is declared by a line of its
  own, ``{"machine": {...}, "hash": ...}`` (the machine object of ``lifecycle spec --json``),
  chained and sealed as any line, before the first record of that machine;
* a sealed journal closed cleanly ends with ``{"seal": {"records": N, "head": ...}, "hash": ...}``
  (how many records, and the hash of the last one).

Every line is canonical JSON (sorted keys, no spaces). Its ``hash`` is the SHA-256 (hex) of the
previous line's hash followed by the line's canonical JSON without the ``hash`` and ``mac`` keys;
the header chains from the empty string. Editing, dropping, inserting or reordering a line breaks
the chain, which `lifecycle.audit` reports. The chain has no key: it detects accidental edits,
not a forger, who can recompute it. A sealed journal (``Journal(path, seal=SEAL_FILE)``) adds to
every line a ``mac`` under a key that evolves one way (see `lifecycle.seal`), which only the
holder of the verification key can check and no one can recompute for a line already written.
Each streamed line is flushed as it is written, so a process killed at any moment leaves a valid
prefix. Version 1 files (no ``run``, never sealed) and version 2 files (no machine lines, only
the built-in machines in the header) are still read.

Self-description: the header's ``specs`` lists every machine the journal knows when it is
written (the built-in three, and every machine given to `Journal.describe_machine` before),
and every machine described later gets its ``machine`` line, so that every record's machine is
described, under the chain, before the record. `lifecycle.engine.Lifecycle` describes its
machine when it is made.

Reading: `JournalReader` is the one reader of journal files, used by `read_journal`,
`lifecycle.audit` and `lifecycle.diagrams`. It opens only a regular file (a FIFO, a device, a
directory or a socket is refused before anything is read from it), reads at most
`MAX_LINE_BYTES` per line, and turns each line into its JSON object or the reason it is not one
(not UTF-8, not JSON, nested too deeply, an integer of more than `MAX_INT_DIGITS` digits, a
non-finite number), never an exception of the JSON parser.
"""

from __future__ import annotations

import array
import contextlib
import enum
import errno
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import re
import secrets
import socket
import stat
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, BinaryIO

import attrs

from lifecycle.errors import JournalWriteError, LifecycleError
from lifecycle.seal import DEFAULT_EPOCH_LENGTH, KDF, Sealer, SealKeyError
from lifecycle.spec import SPECS, MachineSpec

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "MAX_INT_DIGITS",
    "MAX_LINE_BYTES",
    "VETO_CAUSE_PREFIX",
    "InvalidJournalOption",
    "Journal",
    "JournalFormatError",
    "JournalIncomplete",
    "JournalLine",
    "JournalReader",
    "JournalRecords",
    "JournalWriteError",
    "MachineConflict",
    "Notice",
    "Transition",
    "canonical",
    "cause_line",
    "chain_hash",
    "describe_cause",
    "is_format_version",
    "is_machine_line",
    "is_seal_line",
    "is_veto_cause",
    "journal_or_new",
    "parse_line",
    "read_journal",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

FORMAT = "lifecycle-journal"
#: The version a journal is written in; `FORMAT_VERSIONS` are those read.
FORMAT_VERSION = 3
FORMAT_VERSIONS = (1, 2, 3)
#: The first version whose files may hold ``machine`` lines and user machines in the header.
MACHINE_LINES_SINCE = 3

#: The longest line a reader takes, in bytes, its newline not counted: far above any line the
#: engine writes (the header of 100,000 tasks is a few MB), and a bound on what one line of a
#: hostile file can make a reader hold in memory. A longer line is a format error.
MAX_LINE_BYTES = 64 * 2**20

#: The most digits an integer in a journal may have (the interpreter's default limit; seq and
#: mono need 20). A longer one is a format error, whatever ``sys.set_int_max_str_digits`` says.
MAX_INT_DIGITS = 4300

Listener = Callable[["Transition"], object]


@attrs.frozen(slots=True)
class Transition:
    """One fired (``ok``) or refused (not ``ok``, ``dest`` None) trigger.

    ``time`` is wall-clock seconds, ``mono`` monotonic nanoseconds; ``cause`` is the text of the
    exception behind a skip or failure (type, message and traceback where there is one).

    The clock is read once per record, the monotonic one: ``time`` is the wall clock read when
    the journal was made (the header's ``run.start``) plus the monotonic time elapsed since.
    So within a journal ``time`` never goes backwards and follows ``mono`` exactly; it agrees
    with `time.time` up to the wall clock's adjustments made during the run (a step by NTP or
    by hand is not seen by the records). ``thread`` is the thread's name when it recorded (a
    renamed thread's records show its new name): the name `threading` keeps for it, which is
    what ``Thread.name`` returns unless a subclass overrides that property (its records then
    show the name `threading` keeps, where notices show the override).
    """

    seq: int
    time: float
    mono: int
    kind: str
    subject: str
    trigger: str
    source: str
    dest: str | None
    ok: bool
    cause: str | None
    thread: str

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        """Build a record from its JSON form; raises `JournalFormatError` on a bad field."""
        fields = attrs.fields(cls)
        missing = [f.name for f in fields if f.name not in data]
        if missing:
            raise JournalFormatError(f"record lacks {', '.join(missing)}")
        values = {f.name: data[f.name] for f in fields}
        for name, kinds in _FIELD_TYPES.items():
            value = values[name]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise JournalFormatError(f"record field {name!r} has a bad value: {value!r}")
        if isinstance(values["time"], float) and not math.isfinite(values["time"]):
            raise JournalFormatError(
                f"record field 'time' has a bad value: {values['time']!r} (not a finite number)"
            )
        return cls(**values)


@attrs.frozen(slots=True)
class Notice:
    """An observation about a subject that is no transition of any machine: a task's or the
    service's readiness or liveness changed (``what``: ``"ready"`` or ``"live"``, ``value``
    the new value, ``reason`` why it is false).

    Notices go to the listeners of `Journal.subscribe_notices` and are never records: no
    sequence number, not kept, not streamed to the file, so the audit (which judges the
    machines' records) never sees them. ``time`` is wall-clock seconds, ``mono`` monotonic
    nanoseconds, as in `Transition`.
    """

    time: float
    mono: int
    kind: str
    subject: str
    what: str
    value: bool
    reason: str | None
    thread: str


#: One record as the journal keeps it: `Transition`'s fields, in order.
_Row = tuple[int, float, int, str, str, str, str, str | None, bool, str | None, str]
_FIELDS = tuple(f.name for f in attrs.fields(Transition))


def _row_dict(row: _Row) -> dict[str, Any]:
    return dict(zip(_FIELDS, row, strict=True))


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "seq": (int,),
    "time": (int, float),
    "mono": (int,),
    "kind": (str,),
    "subject": (str,),
    "trigger": (str,),
    "source": (str,),
    "dest": (str, type(None)),
    "ok": (bool,),
    "cause": (str, type(None)),
    "thread": (str,),
}


@attrs.frozen(slots=True)
class _TaskInfo:
    """One task as the header describes it (kept compact: there is one per task)."""

    cls: str
    deps: tuple[str, ...]
    wants: tuple[str, ...]
    #: The restart policy (`lifecycle.restart.RestartPolicy.to_dict`); None: "never".
    restart: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, name: str, info: Mapping[str, Any]) -> _TaskInfo:
        """Task ``name``'s description ``info`` (as `Journal.describe_tasks` takes it), compact."""
        restart = info.get("restart")
        return cls(
            str(info.get("class", name)),
            tuple(str(d) for d in info.get("deps", ())),
            tuple(str(w) for w in info.get("wants", ())),
            None if restart is None else dict(restart),
        )

    def to_dict(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "class": self.cls,
            "deps": list(self.deps),
            "wants": list(self.wants),
        }
        if self.restart is not None:
            described["restart"] = dict(self.restart)
        return described


#: A task as `Journal.describe_tasks` takes it: its description, or a function that returns it
#: when called with the task's name (when the header is made).
TaskDescription = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]


def _task_dict(name: str, info: _TaskInfo | Callable[[str], Mapping[str, Any]]) -> dict[str, Any]:
    """The header's description of the task ``name`` (a deferred one is made now)."""
    return (_TaskInfo.of(name, info(name)) if callable(info) else info).to_dict()


class InvalidJournalOption(LifecycleError, ValueError):
    """A `Journal` was given an unusable option (``max_records`` not a positive int)."""


class MachineConflict(LifecycleError, ValueError):
    """`Journal.describe_machine` was given a machine whose name the journal already describes
    with another definition: its records could not be told apart.

    Attributes: ``name``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"the journal already describes a different machine named {name!r}: give each "
            "machine its own name"
        )


class JournalIncomplete(LifecycleError, ValueError):
    """A bounded journal (``max_records``) was asked for all its records after it dropped some.

    Attributes: ``dropped`` (records no longer held) and ``kept``.
    """

    def __init__(self, dropped: int, kept: int) -> None:
        self.dropped = dropped
        self.kept = kept
        super().__init__(
            f"the journal keeps only its last {kept} record(s) and has dropped {dropped}: it "
            "cannot be written whole (stream it to a file with Journal(path, ...) to keep "
            "every record)"
        )


class JournalFormatError(LifecycleError, ValueError):
    """A journal file could not be read. ``line`` is the 1-based line number, if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.reason = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


def _text(state: str) -> str:
    """A state as a plain string. An enum member's own value is shared; ``str()`` of a
    `StrEnum` member would copy it, for every record."""
    return state._value_ if isinstance(state, enum.Enum) else str(state)


#: A string as JSON with ``ensure_ascii``: what `canonical` writes for it.
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii

#: Built once: `json.dumps` with options builds an encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def _record_json(row: _Row) -> tuple[str, str, str] | None:
    """`canonical` of a record's fields, in three parts that its ``hash`` and ``mac`` go
    between (``{"cause":..,"dest":..,`` + ``"kind":..,`` + ``"mono":..}``): the same text,
    made without the encoder's walk of a dict, which dominated the cost of a streamed record.
    None for a row whose field types are not the usual ones (`canonical` then does it all).
    """
    seq, wall, mono, kind, subject, trigger, source, dest, ok, cause, thread = row
    if not (
        type(seq) is int
        and type(wall) is float
        and math.isfinite(wall)
        and type(mono) is int
        and type(ok) is bool
        and isinstance(kind, str)
        and isinstance(subject, str)
        and isinstance(trigger, str)
        and isinstance(source, str)
        and isinstance(thread, str)
        and (dest is None or isinstance(dest, str))
        and (cause is None or isinstance(cause, str))
    ):
        return None
    text = _json_string
    return (
        f'{{"cause":{"null" if cause is None else text(cause)},'
        f'"dest":{"null" if dest is None else text(dest)},',
        f'"kind":{text(kind)},',
        f'"mono":{mono!r},"ok":{"true" if ok else "false"},"seq":{seq!r},'
        f'"source":{text(source)},"subject":{text(subject)},"thread":{text(thread)},'
        f'"time":{float.__repr__(wall)},"trigger":{text(trigger)}}}',
    )


def canonical(obj: Mapping[str, Any]) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no spaces, ASCII only."""
    return _CANONICAL(obj)


def chain_hash(previous: str, line: str) -> str:
    """The hash of a line whose canonical JSON (without ``hash``) is ``line``."""
    return hashlib.sha256((previous + line).encode()).hexdigest()


#: How the cause of a vetoed trigger begins: a refused record of a legal edge, turned down by a
#: guard or a before hook of a bound class (`lifecycle.bind`), not by the table.
VETO_CAUSE_PREFIX = "vetoed by "


def is_veto_cause(cause: str | None) -> bool:
    """Whether a refused record's ``cause`` is a veto's (see `VETO_CAUSE_PREFIX`)."""
    return cause is not None and cause.startswith(VETO_CAUSE_PREFIX)


def describe_cause(exc: BaseException | str | None) -> str | None:
    """The journal text of a cause: type, message and traceback where there is one."""
    if exc is None or isinstance(exc, str):
        return exc
    return "".join(traceback.format_exception(exc)).rstrip("\n")


#: The lines `traceback.format_exception` puts between the exceptions of a chain.
_CHAIN_SEPARATORS = frozenset(
    {
        "The above exception was the direct cause of the following exception:",
        "During handling of the above exception, another exception occurred:",
    }
)
_TRACEBACK = "Traceback (most recent call last):"
#: An exception group's lines are drawn in a box: ``  + `` opens it, ``  | `` continues it.
_GROUP_BOX = ("  + ", "  | ")
_SUB_EXCEPTIONS = re.compile(r" \(\d+ sub-exceptions?\)\Z")
#: A qualified exception type opening a line: ``pkg.mod.Error: message`` (or no message). The
#: class name must be capitalized, so that a reason such as ``see example.org: ...`` is kept.
_QUALIFIED_TYPE = re.compile(r"(?:[A-Za-z_]\w*\.)+(?P<name>[A-Z]\w*)(?P<rest>:\s.*|)\Z")


def cause_line(text: str | None) -> str | None:
    """The one-line form of a journal ``cause`` (as `describe_cause` writes it): ``Type: message``.

    Works from the text alone, so that summaries of a journal file read back show the same
    line as a live run. For a traceback, the exception's own line (not the last line, which may
    be a note or the tail of a multi-line message); for a chain, the last exception's (the one
    that was raised); for an exception group, the group's message without its traceback box or
    the ``(N sub-exceptions)`` count: ``InitError: tasks failed to initialize: Database``. The
    type is shown without its module. A cause that is no traceback (a reason) gives its first
    non-empty line. None or empty text gives None. Pure.
    """
    if not text:
        return None
    lines = text.splitlines()
    start = 0
    for index, line in enumerate(lines):
        if line in _CHAIN_SEPARATORS:
            start = index + 1  # only the last exception of a chain is the cause itself
    block = [line for line in lines[start:] if line.strip()]
    if not block:
        return None
    found: str | None = None
    if block[0] == _TRACEBACK:
        # Frames are indented; the exception's line is the first one at column 0.
        found = next((line for line in block[1:] if not line[:1].isspace()), None)
    elif block[0].startswith(_GROUP_BOX):
        # The group's own line is the first in its box that is not an indented frame.
        for line in block:
            body = line[4:]
            if line.startswith(_GROUP_BOX[1]) and body and not body[:1].isspace():
                found = _SUB_EXCEPTIONS.sub("", body.rstrip())
                break
    else:
        found = block[0]
    if found is None:
        found = block[-1]
    found = found.strip()
    qualified = _QUALIFIED_TYPE.match(found)
    if qualified is not None:
        found = qualified["name"] + qualified["rest"]
    return found


#: Looked up once: `Journal.record` calls them for every record. (A `threading.local` caching
#: the thread object was measured slower than `current_thread` itself.)
_current_thread = threading.current_thread
_monotonic_ns = time.monotonic_ns
_get_ident = threading.get_ident


def _thread_table() -> Mapping[int, Any]:
    """The interpreter's table of live `threading.Thread` objects by ident, if it has one whose
    threads keep their name in ``_name`` (what the ``name`` property reads), else an empty one.

    Why a private table: `current_thread` is a Python call and ``name`` a property; reading
    ``_active[get_ident()]._name`` inline gives the same text (a renamed thread's new name
    included, as the table holds the thread object itself) in about half the time (95 -> 45 ns
    a record). A thread missing from the table (one not started by `threading`) falls back to
    `current_thread`, which registers it; an empty table makes every read fall back.
    """
    table = getattr(threading, "_active", None)
    current = threading.current_thread()
    if (
        isinstance(table, dict)
        and table.get(_get_ident()) is current
        and getattr(current, "_name", None) == current.name
    ):
        return table
    return {}


_threads = _thread_table()


class _Clock:
    """A journal's clock: one monotonic read per record, the wall time derived from it.

    The wall time of a record is the wall clock read when the journal was made
    (``wall_anchor``) plus the monotonic time elapsed since (``mono - mono_anchor``): within
    one journal it never goes backwards and agrees with `time.time` up to the clock's
    adjustments made during the run (a step of the wall clock, by NTP or by hand, is not seen
    by the records; the monotonic clock's own rate is what the records follow).
    """

    __slots__ = ("mono_anchor", "wall_anchor")

    def __init__(self) -> None:
        self.mono_anchor = _monotonic_ns()
        self.wall_anchor = time.time()

    def wall(self, mono: int) -> float:
        """The wall time, in seconds, of the monotonic instant ``mono`` (nanoseconds)."""
        return self.wall_anchor + (mono - self.mono_anchor) / 1e9


#: The largest ids a column keeps in 2 bytes (``H``, thread names; ``h``, edges, which are
#: signed: loose edges count down from -1); a larger one widens the column to 4 bytes.
_SHORT_MAX = 2**16 - 1
_SIGNED_SHORT_MAX = 2**15 - 1

#: An edge as records show it: ``(kind, trigger, source, dest, ok)``, the states as text.
_Edge = tuple[str, str, str, str | None, bool]


def _edge_text(key: tuple[str, str, Any, Any, bool]) -> _Edge:
    kind, trigger, source, dest, ok = key
    return (kind, trigger, _text(source), None if dest is None else _text(dest), ok)


class _Columns:
    """A journal's records, one typed array per field, not one object per record.

    A record is its monotonic time (``mono``, 8 bytes), its subject (a reference to the text
    given, 8 bytes: a subject has few records, so a table of subjects would cost more than it
    saves, and its lookup more time), and two small ints (2 bytes each, 4 once a table outgrows
    that): its thread's name, an index into ``strings`` (each name kept once), and its edge:
    the record's ``(kind, trigger, source, dest, ok)``, kept once for all its records, at index
    ``e`` of ``edges`` for a pinned edge (``e >= 0``, see `pin`), else at ``~e`` of ``loose``.
    Its seq is its position (after the ``base`` records trimmed away), its wall time derived
    from ``mono`` (`_Clock`), and its cause, which most records lack, kept aside by seq. Not
    thread-safe: the journal's lock guards it.

    Readers copy what they need under the lock (`rows`) and build the records after it: so the
    tables a reader may hold (``strings``, ``edges``, ``loose``, ``causes``) are only ever
    appended to, or replaced whole by `trim`, never changed in place.

    Pinned edges are those of a machine's table (`Journal.moves`): few, kept for the journal's
    life, their ids held by callers. Any other edge (a refused trigger's, a record given to
    `Journal.record` alone) is loose: a bounded journal's `trim` forgets those no record holds
    any more, so a stream of made-up trigger names cannot grow it without bound.
    """

    __slots__ = (
        "base",
        "causes",
        "edge",
        "edge_ids",
        "edges",
        "loose",
        "mono",
        "pinned",
        "string_ids",
        "strings",
        "subject",
        "thread",
    )

    def __init__(self) -> None:
        self.mono = array.array("q")
        self.subject: list[str] = []
        self.edge = array.array("h")
        self.thread = array.array("H")
        self.causes: dict[int, str] = {}
        self.strings: list[str] = []
        self.string_ids: dict[str, int] = {}
        self.edges: list[_Edge] = []
        self.loose: list[_Edge] = []
        # Keyed by the edge as given (enum members, which hash and compare as their text): every
        # edge's id, and the pinned ones' alone (what `trim` keeps).
        self.edge_ids: dict[tuple[str, str, Any, Any, bool], int] = {}
        self.pinned: dict[tuple[str, str, Any, Any, bool], int] = {}
        self.base = 0

    @property
    def count(self) -> int:
        """How many records were appended: the seq of the last."""
        return self.base + len(self.mono)

    def add_string(self, text: str) -> int:
        index = self.string_ids[text] = len(self.strings)
        self.strings.append(text)
        if index > _SHORT_MAX and self.thread.typecode == "H":
            self.thread = array.array("I", self.thread)  # the ids no longer fit in 2 bytes
        return index

    def add_edge(self, key: tuple[str, str, Any, Any, bool]) -> int:
        """The id of a new loose edge."""
        index = self.edge_ids[key] = ~len(self.loose)
        self.loose.append(_edge_text(key))
        self._fit_edge(index)
        return index

    def _fit_edge(self, index: int) -> None:
        if not -_SIGNED_SHORT_MAX - 1 <= index <= _SIGNED_SHORT_MAX and self.edge.typecode == "h":
            self.edge = array.array("i", self.edge)  # the ids no longer fit in 2 bytes

    def pin(self, key: tuple[str, str, Any, Any, bool]) -> int:
        """The id of a pinned edge, made if need be: it keeps that id for the journal's life."""
        index = self.pinned.get(key)
        if index is None:
            index = self.edge_ids[key] = self.pinned[key] = len(self.edges)
            self.edges.append(_edge_text(key))
            self._fit_edge(index)
        return index

    def rows(self, start: int, stop: int | None, clock: _Clock) -> Callable[[], list[_Row]]:
        """The records from index ``start`` to ``stop``, copied now, made into rows (the
        fields of `Transition`) when the returned function is called."""
        mono = self.mono[start:stop]
        subject = self.subject[start:stop]
        edge = self.edge[start:stop]
        thread = self.thread[start:stop]
        strings, edges, loose, causes = self.strings, self.edges, self.loose, self.causes
        first = self.base + start + 1

        def build() -> list[_Row]:
            wall = clock.wall
            built: list[_Row] = []
            append = built.append
            for seq, m, s, e, t in zip(itertools.count(first), mono, subject, edge, thread):
                kind, trigger, source, dest, ok = edges[e] if e >= 0 else loose[~e]
                append(
                    (
                        seq,
                        wall(m),
                        m,
                        kind,
                        s,
                        trigger,
                        source,
                        dest,
                        ok,
                        causes.get(seq),
                        strings[t],
                    )
                )
            return built

        return build

    def trim(self, keep: int) -> None:
        """Drop all but the last ``keep`` records once twice as many are held: a ring whose
        cost is spread over the records, and whose tables are rebuilt from what is left."""
        if len(self.mono) < 2 * keep:
            return
        cut = len(self.mono) - keep
        del self.subject[:cut]
        for column in (self.mono, self.edge, self.thread):
            del column[:cut]
        self.base += cut
        self.causes = {seq: text for seq, text in self.causes.items() if seq > self.base}
        strings: dict[str, int] = {}
        self.thread[:] = array.array(
            self.thread.typecode,
            [strings.setdefault(self.strings[i], len(strings)) for i in self.thread],
        )
        self.strings, self.string_ids = list(strings), strings
        loose: dict[_Edge, int] = {}
        self.edge[:] = array.array(
            self.edge.typecode,
            [e if e >= 0 else ~loose.setdefault(self.loose[~e], len(loose)) for e in self.edge],
        )
        self.loose = list(loose)
        self.edge_ids = {**{key: ~index for key, index in loose.items()}, **self.pinned}

    def edge_of(self, edge: int) -> _Edge:
        return self.edges[edge] if edge >= 0 else self.loose[~edge]


class Journal:
    """An append-only, thread-safe log of transitions.

    ``path``: when given, every record is also written to that file as it is appended (see the
    module docstring for the format). The header is written when a regular file is opened, so
    that a process killed before its first record still leaves a journal; the header carries
    the task table, which is filled by registrations made after the journal is opened, so when
    the first record (or `close`) finds the table changed, the file is replaced atomically by
    one with the current header (a temporary file in the same directory, then `os.replace`;
    in place through the open file if the directory is not writable or the file was moved)
    and the records streamed so far. A path that is
    not a regular file (a pipe, a device) cannot be rewritten: it gets the header with the
    first record instead. Call `close` when done.

    Raises `JournalWriteError` if the file cannot be opened or its header written. A later
    write error (any `OSError` while writing, flushing or closing, or a file closed under the
    journal) never reaches the code that fired the trigger: streaming stops, `stream_error`
    holds the `JournalWriteError`, and every record is still kept in memory (`records`,
    `write`).

    Listeners added with `subscribe` are called with each record, in sequence order, on the
    thread that fired the trigger, while the journal's lock is held: keep them quick, and never
    fire triggers from them. A listener that raises is logged and otherwise ignored.

    ``seal``: a sealing key state file (made by ``lifecycle keygen``): every line of the file
    gets a MAC under a key that evolves every ``seal_epoch`` lines (see `lifecycle.seal`), and
    `close` ends the file with a ``seal`` line. The header's task table is then brought up to
    date only while the first epoch's key is still held (its first ``seal_epoch`` lines); after
    that the header keeps the table it had, as for a file that cannot be rewritten. Raises
    `lifecycle.seal.SealKeyError` for a key file that cannot be used, `ValueError` for a seal
    without a path or a bad ``seal_epoch``. A key file that can no longer be rewritten while
    streaming is a write error (`stream_error`).

    ``run_id`` (random, in the header with the host name, pid, start time and package version)
    and ``head`` (the hash of the last line written) identify the file's run.

    ``max_records``: keep only the last ``max_records`` records in memory (a ring, for a
    long-lived process); `records` and ``len()`` then say what is kept and `dropped` how many
    went. A file streamed alongside still gets every record. `write` refuses, with
    `JournalIncomplete`, once a record has been dropped (a file of the tail alone would not
    audit: its subjects would start mid-way); and a task table changed after that is no longer
    brought into the streamed file's header (its records are gone from memory), as for a file
    that cannot be rewritten. Raises `InvalidJournalOption` unless it is a positive int (or
    None: keep everything).

    `describe_machine` makes the journal describe a machine (the built-in three always are):
    see the module docstring.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        seal: str | os.PathLike[str] | None = None,
        seal_epoch: int = DEFAULT_EPOCH_LENGTH,
        max_records: int | None = None,
    ) -> None:
        if max_records is not None and (type(max_records) is not int or max_records < 1):
            raise InvalidJournalOption(
                f"max_records must be a positive int (or None: keep every record), "
                f"not {max_records!r}"
            )
        self.max_records = max_records
        self._lock = threading.Lock()
        # The records, in columns (see `_Columns`): about 20 bytes a record where a tuple of
        # its fields in a list took over 200; `records` and the listeners get `Transition`s.
        self._columns = _Columns()
        # Per machine, its moves with their edge ids in this journal (see `moves`).
        self._moves: dict[MachineSpec, dict[tuple[Any, str], tuple[Any, int]]] = {}
        # One clock read per record: the wall time is derived from the monotonic clock and
        # this anchor (see `Transition`).
        self._clock = _Clock()
        # The machines described, by name, and the same specs as a set: `describe_machine`'s
        # repeat calls are one set lookup (a spec's hash is cached).
        self._machines: dict[str, MachineSpec] = dict(SPECS)
        self._machine_specs: set[MachineSpec] = set(SPECS.values())
        self._listeners: tuple[Listener, ...] = ()
        self._notice_listeners: tuple[Callable[[Notice], object], ...] = ()
        self._tasks: dict[str, _TaskInfo | Callable[[str], Mapping[str, Any]]] = {}
        # The task table's version, bumped on each change, and the version the file's header
        # shows (None: no header written yet): one int compare per streamed record.
        self._tasks_version = 0
        self._header_version: int | None = None
        self._file: IO[str] | None = None
        self._rewritable = False
        self._target: str | None = None  # the file opened, its symbolic links resolved
        self._streamed = 0  # records written to the file
        self._hash = ""
        self.stream_error: JournalWriteError | None = None
        self._on_stream_error: tuple[Callable[[JournalWriteError], object], ...] = ()
        self._eager = max_records is not None
        self.path = os.fspath(path) if path is not None else None
        self.run_id = secrets.token_hex(16)
        self._run = {
            "id": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "start": self._clock.wall_anchor,
            "lifecycle": _package_version(),
        }
        self._sealer: Sealer | None = None
        if seal is not None:
            if self.path is None:
                raise ValueError("a sealed journal needs a file: give a path with seal=")
            self._sealer = Sealer(seal, seal_epoch)
        if self.path is not None:
            try:
                self._open(self.path)
            except BaseException:
                if self._sealer is not None:
                    self._sealer.close()
                raise

    @property
    def head(self) -> str:
        """The hash of the last line written to the file (empty before any): the chain head."""
        with self._lock:
            return self._hash

    @property
    def sealed(self) -> bool:
        """Whether the file is sealed (``seal=`` was given)."""
        return self._sealer is not None

    # -- recording -------------------------------------------------------------------------

    def record(
        self,
        kind: str,
        subject: str,
        trigger: str,
        source: str,
        dest: str | None,
        ok: bool,
        cause: BaseException | str | None = None,
    ) -> None:
        """Append one record with the next sequence number. Thread-safe.

        ``kind`` names the record's machine: a built-in one, or one given to
        `describe_machine` before (a `Lifecycle` does that when made); the audit reports a
        record of any other machine. Not checked here, to keep this call cheap.
        """
        text = None if cause is None else describe_cause(cause)
        try:  # read each time: a thread may be renamed (see `_thread_table`)
            name: str = _threads[_get_ident()]._name
        except KeyError:
            name = _current_thread().name
        key = (kind, trigger, source, dest, ok)
        lock = self._lock
        lock.acquire()
        try:
            columns = self._columns
            edge = columns.edge_ids.get(key)
            if edge is None:
                edge = columns.add_edge(key)
            thread_id = columns.string_ids.get(name)
            if thread_id is None:
                thread_id = columns.add_string(name)
            mono = _monotonic_ns()
            columns.mono.append(mono)
            columns.subject.append(subject)
            columns.edge.append(edge)
            columns.thread.append(thread_id)
            if text is not None or self._eager:
                self._appended(columns, mono, subject, edge, text, name)
        finally:
            lock.release()

    def moves(self, spec: MachineSpec) -> Mapping[tuple[Any, str], tuple[Any, int]]:
        """``spec``'s dispatch table with, for each move, the id of its ``ok`` edge in this
        journal: ``(state, trigger) -> (dest, edge)``, for `record_move`. Made once per spec
        and journal (the same mapping again after); the ids hold for the journal's life.
        Describes ``spec`` first (`describe_machine`). Thread-safe.

        Raises what `describe_machine` raises.
        """
        table = self._moves.get(spec)  # made once, never changed: read without the lock
        if table is not None:
            return table
        self.describe_machine(spec)
        with self._lock:
            table = self._moves.get(spec)
            if table is None:
                pin = self._columns.pin
                table = {}
                for (source, trigger), dest in spec.table.items():
                    # The state as its enum member, as `lifecycle.engine.dispatch_table` has it.
                    state = spec.state(dest)
                    edge = pin((spec.name, trigger, source, state, True))
                    table[(source, trigger)] = (state, edge)
                self._moves[spec] = table  # published whole: it is read without the lock
            return table

    def record_move(
        self, edge: int, subject: str, cause: BaseException | str | None = None
    ) -> None:
        """Append the ``ok`` record of a move whose edge id `moves` gave: what
        ``record(kind, subject, trigger, source, dest, True, cause)`` appends, without finding
        the edge. Thread-safe. The fire paths of `lifecycle.engine` and `lifecycle.bind` use it.

        ``edge`` must be an id from this journal's `moves`: like ``kind`` in `record`, it is
        not checked, to keep this call cheap (an id from elsewhere would record another edge).
        """
        text = None if cause is None else describe_cause(cause)
        try:  # read each time: a thread may be renamed (see `_thread_table`)
            name: str = _threads[_get_ident()]._name
        except KeyError:
            name = _current_thread().name
        lock = self._lock
        lock.acquire()
        try:
            columns = self._columns
            thread_id = columns.string_ids.get(name)
            if thread_id is None:
                thread_id = columns.add_string(name)
            mono = _monotonic_ns()
            columns.mono.append(mono)
            columns.subject.append(subject)
            columns.edge.append(edge)
            columns.thread.append(thread_id)
            if text is not None or self._eager:
                self._appended(columns, mono, subject, edge, text, name)
        finally:
            lock.release()

    def _update_eager(self) -> None:
        """Whether every record needs `_appended` (a file, listeners, or a bound to keep):
        one flag for `record`'s check, set wherever one of those changes."""
        self._eager = (
            self._file is not None or bool(self._listeners) or self.max_records is not None
        )

    def _appended(
        self, columns: _Columns, mono: int, subject: str, edge: int, text: str | None, name: str
    ) -> None:
        """The rest of `record` for a record with a cause, a file, listeners or a bound (the
        lock is held)."""
        seq = columns.count
        if text is not None:
            columns.causes[seq] = text
        if self._file is not None or self._listeners:
            kind, trigger, source, dest, ok = columns.edge_of(edge)
            row: _Row = (
                seq,
                self._clock.wall(mono),
                mono,
                kind,
                subject,
                trigger,
                source,
                dest,
                ok,
                text,
                name,
            )
            if self._file is not None:
                self._stream(row)
            if self._listeners:
                rec = Transition(*row)
                for listener in self._listeners:
                    try:
                        listener(rec)
                    except Exception:
                        logger.exception("journal listener %r raised; ignored", listener)
        if self.max_records is not None:
            columns.trim(self.max_records)  # last: it renumbers the edges

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(record)`` for every later record; returns a function that undoes it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)
            self._update_eager()

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)
                self._update_eager()

        return unsubscribe

    def subscribe_notices(self, listener: Callable[[Notice], object]) -> Callable[[], None]:
        """Call ``listener(notice)`` for every later `Notice` (see `notice`); returns a
        function that undoes it. Same rules as `subscribe`: quick, never fire triggers."""
        with self._lock:
            self._notice_listeners = (*self._notice_listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._notice_listeners = tuple(
                    x for x in self._notice_listeners if x is not listener
                )

        return unsubscribe

    def notice(
        self, kind: str, subject: str, what: str, value: bool, reason: str | None = None
    ) -> None:
        """Tell the notice listeners that ``subject``'s ``what`` became ``value``. Thread-safe.

        Not a record: nothing is kept or written (see `Notice`). Told under the journal's lock,
        so listeners see notices and records in the order they happened.
        """
        with self._lock:
            listeners = self._notice_listeners
            if not listeners:
                return
            mono = _monotonic_ns()
            notice = Notice(
                self._clock.wall(mono),
                mono,
                kind,
                subject,
                what,
                value,
                reason,
                threading.current_thread().name,
            )
            for listener in listeners:
                try:
                    listener(notice)
                except Exception:
                    logger.exception("journal notice listener %r raised; ignored", listener)

    def on_stream_error(self, callback: Callable[[JournalWriteError], object]) -> None:
        """Call ``callback(error)`` once, when streaming stops on a write error (at once if it
        already has). It runs with the journal's lock held, on the thread that was recording:
        keep it quick and never fire triggers from it (a service only requests its shutdown).
        """
        with self._lock:
            error = self.stream_error
            if error is None:
                self._on_stream_error = (*self._on_stream_error, callback)
                return
        callback(error)

    def describe_tasks(self, tasks: Mapping[str, TaskDescription]) -> None:
        """Record the tasks (name → ``class``, ``deps``, ``wants`` and, for a task that may
        be restarted, ``restart``: its policy) for the header.

        A description may also be given as a function that returns it when called with the
        task's name: it is called when the header is made (written to the file, or read with
        `header` or `tasks`), under the journal's lock, so describing a task costs one store
        now. Such a function must be quick, must not raise and must not use the journal.
        Giving the same description (or an equal function) again changes nothing.
        Thread-safe.
        """
        with self._lock:
            known = self._tasks
            for name, info in tasks.items():
                described = info if callable(info) else _TaskInfo.of(name, info)
                if known.get(name) != described:
                    known[name] = described
                    self._tasks_version += 1

    def describe_machine(self, spec: MachineSpec) -> None:
        """Describe ``spec`` in this journal, so that its records can be audited against it.

        Idempotent: the same spec again costs one set lookup. The first time, a journal whose
        file already has its header writes a ``machine`` line declaring it (chained, and sealed
        if the journal is), before any record of it; else the header will list it. Call it
        before the machine's first record (`lifecycle.engine.Lifecycle` does, when made).
        Thread-safe.

        Raises `TypeError` for anything but a `MachineSpec`, and `MachineConflict` when the
        journal already describes another machine of the same name (the built-in ``task``,
        ``collection`` and ``service`` included). A spec equal in every field to one already
        described (the same file loaded twice) is the same machine.
        """
        if not isinstance(spec, MachineSpec):
            raise TypeError(f"describe_machine takes a lifecycle.MachineSpec, not {spec!r}")
        if spec in self._machine_specs:
            return
        with self._lock:
            known = self._machines.get(spec.name)
            if known is not None:
                if known.to_dict() != spec.to_dict():
                    raise MachineConflict(spec.name)
                self._machine_specs.add(spec)
                return
            self._machines[spec.name] = spec
            self._machine_specs.add(spec)
            if self._file is not None and self._header_version is not None:
                try:
                    self._write(self._line({"machine": spec.to_dict()}))
                except (OSError, ValueError) as exc:
                    self._stop_streaming(exc, f"declaring machine {spec.name!r}")

    @property
    def machines(self) -> dict[str, MachineSpec]:
        """The machines this journal describes, by name (a copy): the built-in three and every
        one given to `describe_machine`."""
        with self._lock:
            return dict(self._machines)

    @property
    def dropped(self) -> int:
        """How many records a bounded journal (``max_records``) no longer holds (0 if none)."""
        with self._lock:
            return self._columns.count - self._held()

    def _held_rows(self) -> Callable[[], list[_Row]]:
        """The held records, copied now (the lock is held), made into rows when called."""
        return self._columns.rows(len(self._columns.mono) - self._held(), None, self._clock)

    def _held(self) -> int:
        """How many records are held (the lock is held): the last ``max_records`` of the
        columns, which a bounded journal trims only now and then."""
        held = len(self._columns.mono)
        return held if self.max_records is None else min(held, self.max_records)

    def forget_task(self, name: str) -> None:
        """Drop a task description (its task was unregistered). No-op for an unknown name."""
        with self._lock:
            if self._tasks.pop(name, None) is not None:
                self._tasks_version += 1

    # -- reading ---------------------------------------------------------------------------

    @property
    def records(self) -> tuple[Transition, ...]:
        """A snapshot of every record so far, in sequence order (made anew on each call)."""
        with self._lock:
            rows = self._held_rows()
        return tuple(Transition(*row) for row in rows())

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """A copy of the task descriptions given to `describe_tasks`."""
        with self._lock:
            return {name: _task_dict(name, info) for name, info in self._tasks.items()}

    def __len__(self) -> int:
        """The number of records held (for a bounded journal, at most ``max_records``)."""
        return self._held()  # no lock, as before: a listener may ask (one read of a length)

    def header(self) -> dict[str, Any]:
        """The header of this journal's file form."""
        with self._lock:
            return self._header()

    def _header(self, sealed: bool = True) -> dict[str, Any]:
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "run": dict(self._run),
            "specs": {name: spec.to_dict() for name, spec in self._machines.items()},
            "tasks": {name: _task_dict(name, info) for name, info in self._tasks.items()},
        }
        if sealed and self._sealer is not None:
            sealer = self._sealer
            header["seal"] = {
                "key": sealer.key_id,
                "epoch": sealer.start,
                "every": sealer.every,
                "kdf": KDF,
            }
        return header

    # -- files -----------------------------------------------------------------------------

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the whole journal to ``path`` in the JSONL format, replacing the file.

        The copy is never sealed (its header names the run, not the seal); its header lists
        every machine described. Raises `JournalWriteError` if the file cannot be written, and
        `JournalIncomplete` if a bounded journal has dropped records (see ``max_records``).
        """
        with self._lock:
            held = self._held()
            if self._columns.count != held:
                raise JournalIncomplete(self._columns.count - held, held)
            header = self._header(sealed=False)
            rows = self._held_rows()
        try:
            with open(path, "w", encoding="ascii") as out:
                for line in _chained_lines([header, *(_row_dict(row) for row in rows())]):
                    out.write(line)
        except OSError as exc:
            raise JournalWriteError(os.fspath(path), exc) from exc

    def close(self) -> None:
        """Finish the streamed file: bring its header up to date and close it. Idempotent.

        A sealed file ends with its ``seal`` line (the record count and the last record's
        hash), and the key in use is forgotten. Records appended after `close` are kept in
        memory (`records`, `write`) but no longer streamed. An error while finishing the file
        is kept in `stream_error`, like any other write error, and not raised.
        """
        with self._lock:
            try:
                if self._file is None:
                    return
                try:
                    self._sync_header()
                    if self._sealer is not None:
                        end = {"seal": {"records": self._streamed, "head": self._hash}}
                        self._write(self._line(end))
                    file, self._file = self._file, None
                    self._update_eager()
                    file.close()
                except (OSError, ValueError) as exc:
                    self._stop_streaming(exc, "at close")
            finally:
                if self._sealer is not None:
                    self._sealer.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, path: str) -> None:
        try:
            self._target = os.path.realpath(path)
            self._file = open(path, "w", encoding="ascii")  # noqa: SIM115
            self._update_eager()
            self._rewritable = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
            if self._rewritable:
                self._sync_header()
        except OSError as exc:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
                self._update_eager()
            raise JournalWriteError(path, exc) from exc

    def _stream(self, row: _Row) -> None:
        try:
            if self._header_version != self._tasks_version:
                self._sync_header()
            self._write(self._record_line(row))
            self._streamed += 1
        except (OSError, ValueError) as exc:
            self._stop_streaming(exc, f"at seq {row[0]}")

    def _stop_streaming(self, exc: OSError | ValueError, where: str) -> None:
        """Turn a failed write into `stream_error`; the lifecycle the journal records goes on.

        A full or failing disk must not break the lifecycle it records: the records stay in
        memory, streaming stops, and `stream_error` says why. Any other `ValueError` (a
        record no JSON text exists for) is the caller's bug: it is raised, and the journal goes
        on streaming the records after it.
        """
        file = self._file
        if isinstance(exc, OSError):
            error = exc
        elif isinstance(exc, SealKeyError):
            # The key state could not move on: a record signed with a key left on disk would
            # lose forward security, so streaming stops as for a failed write.
            error = OSError(errno.EIO, str(exc))
            error.__cause__ = exc
        elif file is not None and file.closed:
            # Writing to a closed file object raises ValueError; say what the OS would.
            error = OSError(errno.EBADF, "I/O operation on closed file")
            error.__cause__ = exc
        else:
            raise exc  # not an I/O failure: a bug, not a disk to tolerate
        self._file = None
        self._update_eager()
        self.stream_error = JournalWriteError(self.path or "", error)
        logger.error("journal streaming stopped %s: %s", where, self.stream_error)
        for callback in self._on_stream_error:
            try:
                callback(self.stream_error)
            except Exception:
                logger.exception("journal stream-error callback %r raised; ignored", callback)
        if file is not None:
            with contextlib.suppress(OSError, ValueError):
                file.close()

    def _sync_header(self) -> None:
        """Make the file's header show the current task table (the lock is held)."""
        if self._header_version == self._tasks_version:
            return
        if self._header_version is None:
            self._write(self._line(self._header()))
        elif (
            self._rewritable
            and (self._sealer is None or self._sealer.in_first_epoch)
            and self._columns.count == self._held()  # every streamed record still held
        ):
            self._rewrite()
        else:
            logger.warning(
                "journal %s: the task table changed after the header was written to a file "
                "that cannot be rewritten (or whose first seal key is gone, or whose records "
                "a bounded journal dropped); the header lists the tasks known then",
                self.path,
            )
        self._header_version = self._tasks_version

    def _rewrite(self) -> None:
        """Replace the file's content by the current header and the records streamed so far.

        The new header lists every machine described, so the ``machine`` lines of the old file
        are not needed: the new one has none.

        Atomically where it can (see `_replace`); else in place, through the open file, where
        a kill during these few calls can cut the file: there is no other way to fix it.
        """
        if self._file is None:
            return
        self._hash = ""
        if self._sealer is not None:
            self._sealer.restart()
        streamed = self._columns.rows(0, self._streamed, self._clock)()
        text = "".join([self._line(self._header()), *(self._record_line(r) for r in streamed)])
        if not self._replace(text):
            self._file.seek(0)
            self._file.truncate()
            self._write(text)

    def _replace(self, text: str) -> bool:
        """Replace the journal's file by a new one holding ``text``: a temporary file in the
        same directory, flushed, then `os.replace`, so that a process killed at any moment
        leaves one whole file or the other. The new file takes the old one's mode.

        Returns False, having changed nothing, when the path opened (its symbolic links
        resolved when it was opened: a later ``chdir`` or link change does not matter) no
        longer names the journal's file (moved or deleted), or no temporary file can be made
        beside it (a directory we may not write to).
        """
        if self._file is None or self._target is None:
            return False
        try:
            opened = os.fstat(self._file.fileno())
            if not os.path.samestat(os.stat(self._target), opened):
                return False
            fd, temp = tempfile.mkstemp(
                prefix=f".{os.path.basename(self._target)}.",
                suffix=".tmp",
                dir=os.path.dirname(self._target),
            )
        except OSError:
            return False
        try:
            with contextlib.suppress(OSError):
                os.fchmod(fd, stat.S_IMODE(opened.st_mode))
            new = open(fd, "w", encoding="ascii")  # noqa: SIM115
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        try:
            new.write(text)
            new.flush()
            os.replace(temp, self._target)
        except BaseException:
            with contextlib.suppress(OSError, ValueError):
                new.close()
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        old, self._file = self._file, new
        with contextlib.suppress(OSError, ValueError):
            old.close()
        return True

    def _line(self, obj: dict[str, Any]) -> str:
        """The file line of ``obj``, chained to the previous line (and sealed, if it is)."""
        self._hash = chain_hash(self._hash, canonical(obj))
        if self._sealer is None:
            return canonical({**obj, "hash": self._hash}) + "\n"
        return canonical({**obj, "hash": self._hash, "mac": self._sealer.sign(self._hash)}) + "\n"

    def _record_line(self, row: _Row) -> str:
        """The file line of a record: `_line` of its fields, its JSON written directly."""
        parts = _record_json(row)
        if parts is None:
            return self._line(_row_dict(row))
        head, kind, rest = parts
        self._hash = chain_hash(self._hash, head + kind + rest)
        if self._sealer is None:
            return f'{head}"hash":"{self._hash}",{kind}{rest}\n'
        mac = self._sealer.sign(self._hash)
        return f'{head}"hash":"{self._hash}",{kind}"mac":"{mac}",{rest}\n'

    def _write(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text)
            self._file.flush()


@functools.cache
def _package_version() -> str:
    """The installed package's version, for the header ("unknown" if not installed)."""
    from importlib import metadata

    try:
        return metadata.version("lifecycle-engine")
    except metadata.PackageNotFoundError:
        return "unknown"


def journal_or_new(journal: object) -> Journal:
    """``journal`` if it is a `Journal`, a new one if None; raises `TypeError` otherwise."""
    if journal is None:
        return Journal()
    if not isinstance(journal, Journal):
        raise TypeError(
            f"journal must be a lifecycle.Journal (or None for a new one), not {journal!r}"
        )
    return journal


def _chained_lines(objs: Iterable[dict[str, Any]]) -> Iterable[str]:
    previous = ""
    for obj in objs:
        previous = chain_hash(previous, canonical(obj))
        yield canonical({**obj, "hash": previous}) + "\n"


def is_format_version(value: object) -> bool:
    """Whether ``value`` is one of `FORMAT_VERSIONS` itself: the int, not ``true`` or ``1.0``."""
    return type(value) is int and value in FORMAT_VERSIONS


def is_machine_line(obj: Mapping[str, Any]) -> bool:
    """Whether a journal line's object is a ``machine`` line (version 3) declaring a machine."""
    return "machine" in obj and "seq" not in obj and "format" not in obj


def is_seal_line(obj: Mapping[str, Any]) -> bool:
    """Whether a journal line's object is the final ``seal`` line of a sealed journal."""
    return "seal" in obj and "seq" not in obj and "format" not in obj


@attrs.frozen(slots=True)
class JournalLine:
    """One line of a journal file, as `JournalReader` found it.

    ``number`` is 1-based; ``raw`` the line's bytes without its newline (empty for a line
    longer than `MAX_LINE_BYTES`, which is not kept); ``ended`` whether a newline ends it (only
    the last line of a file cut short lacks one); ``value`` the JSON object on the line, or a
    short description of what the line is instead (see `parse_line`).
    """

    number: int
    raw: bytes
    ended: bool
    value: dict[str, Any] | str


class JournalReader:
    """The lines of a journal file; the one way `lifecycle` reads one.

    Opens ``path`` only if it is a regular file: anything else (a FIFO, whose opening would
    block; a device such as ``/dev/zero``, which never ends; a directory; a socket) raises
    `JournalFormatError` naming what it is, before anything is read. The check is made before
    opening and again on the open file (opened non-blocking), so a file swapped in between is
    caught too. Iterating yields one `JournalLine` per line, reading at most `MAX_LINE_BYTES`
    of a line (the rest of a longer one is skipped unread into memory). Use as a context
    manager, or call `close`. Not thread-safe: one reader per thread.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file = _open_regular_file(self.path)

    def __iter__(self) -> Iterator[JournalLine]:
        for number, raw, ended, value in self.rows():
            yield JournalLine(number, raw, ended, parse_line(raw) if value is None else value)

    def rows(
        self, *, parse: bool = True
    ) -> Iterator[tuple[int, bytes, bool, dict[str, Any] | str | None]]:
        """The lines as plain tuples, the fields of `JournalLine` in order: for readers of
        millions of lines, which need not build an object per line. ``parse=False``: the
        value is None (the reader parses the line itself, with `parse_line`), except for a
        line too long to keep, whose value still says so."""
        limit = MAX_LINE_BYTES
        number = 0
        readline = self._file.readline
        parser = parse_line if parse else _no_parse
        while chunk := readline(limit + 1):
            number += 1
            if chunk[-1:] == b"\n":
                yield number, chunk[:-1], True, parser(chunk[:-1])
            elif len(chunk) > limit:
                yield number, b"", self._skip_line(), f"longer than {limit} bytes"
            else:
                yield number, chunk, False, parser(chunk)

    def _skip_line(self) -> bool:
        """Read past the rest of the current line; whether a newline ended it."""
        while chunk := self._file.readline(2**20):
            if chunk.endswith(b"\n"):
                return True
        return False

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_regular_file(path: str) -> BinaryIO:
    """``path`` opened for reading in binary; raises `JournalFormatError` unless it is a
    regular file that can be opened."""
    try:
        kind = _kind_of(os.stat(path).st_mode)
        if kind is None:
            # O_NONBLOCK: were a FIFO swapped in since the stat, opening it must not block.
            flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
            fd = os.open(path, flags)
            try:
                kind = _kind_of(os.fstat(fd).st_mode)
                if kind is None:
                    return open(fd, "rb")
            finally:
                if kind is not None:
                    os.close(fd)
    except OSError as exc:
        raise JournalFormatError(f"cannot read {path!r}: {exc.strerror or exc}") from exc
    raise JournalFormatError(f"cannot read {path!r}: it is {kind}, not a regular file")


def _kind_of(mode: int) -> str | None:
    """What a file of this mode is, if not a regular file (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def _no_parse(raw: bytes) -> None:
    return None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(
    parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant
)


def parse_line(raw: bytes) -> dict[str, Any] | str:
    """The JSON object on one journal line, or a short description of what it is instead:
    ``not UTF-8``, ``not JSON (<why>)`` (bad syntax, nested too deeply, an integer of more than
    `MAX_INT_DIGITS` digits, ``NaN``, ``Infinity`` or a number out of range), or
    ``JSON but not an object (<type>)``. Never raises for any bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg})"
    except RecursionError:
        return "not JSON (nested too deeply)"
    except ValueError as exc:  # raised by the number hooks, or the interpreter's digit limit
        return f"not JSON ({exc})"
    if not isinstance(obj, dict):
        return f"JSON but not an object ({type(obj).__name__})"
    return obj


def read_journal(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Transition]]:
    """Read a journal file: its header and records. Does not check the hash chain or the seal.

    Raises `JournalFormatError` (with the line number) for a file that is not a journal:
    unreadable or not a regular file, a bad line (see `parse_line`), wrong format or version,
    or a record with missing or bad fields. `lifecycle.audit` is the checker that reports
    tampering rather than raising. Holds every record in memory: `JournalRecords` streams them.
    """
    with JournalRecords(path) as journal:
        return journal.header, list(journal)


class JournalRecords:
    """A journal file's header, read at once, and its records, read as they are iterated: in
    memory bounded by one line, whatever the file's length. Iterate once.

    Raises `JournalFormatError` as `read_journal` does: the header's problems when made, a
    record's when iteration reaches it. A final ``seal`` line is skipped; a ``machine`` line is
    not a record: its machine object is added to ``header["specs"]`` as it is read (so once
    iterated, the header lists every machine the file describes). Use as a context manager, or
    call `close`. Not thread-safe.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._reader = JournalReader(path)
        try:
            self._lines = iter(self._reader)
            first = next(self._lines, None)
            if first is None:
                raise JournalFormatError("empty file: no journal header", line=1)
            header = _object_of(first)
            if header.get("format") != FORMAT:
                raise JournalFormatError(
                    f"not a lifecycle journal (format {header.get('format')!r})", 1
                )
            if not is_format_version(header.get("version")):
                raise JournalFormatError(
                    f"unsupported journal version {header.get('version')!r} "
                    f"(expected one of {', '.join(map(str, FORMAT_VERSIONS))})",
                    1,
                )
        except BaseException:
            self._reader.close()
            raise
        self.header: dict[str, Any] = header

    def __iter__(self) -> Iterator[Transition]:
        for line in self._lines:
            data = _object_of(line)
            if is_seal_line(data):
                continue
            if is_machine_line(data):
                specs = self.header.get("specs")
                if isinstance(specs, dict) and isinstance(data["machine"], Mapping):
                    name = data["machine"].get("name")
                    if isinstance(name, str):
                        specs.setdefault(name, data["machine"])
                continue
            data.pop("hash", None)
            data.pop("mac", None)
            try:
                yield Transition.from_dict(data)
            except JournalFormatError as exc:
                raise JournalFormatError(exc.reason, line.number) from None

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> JournalRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _object_of(line: JournalLine) -> dict[str, Any]:
    if isinstance(line.value, str):
        raise JournalFormatError(line.value, line.number)
    return line.value
