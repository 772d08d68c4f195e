"""The journal: one `Transition` record for every fired or refused trigger.

A `Journal` keeps its records in memory, tells subscribers about each one as it is appended,
and can stream them to a JSONL file as they happen. The file format:

* line 1, the header: ``{"format": "lifecycle-journal", "version": 1, "specs": {...},
  "tasks": {name: {"class": ..., "deps": [...], "wants": [...]}}, "hash": ...}``;
* then one record per line, the fields of `Transition` plus ``hash``.

Every line is canonical JSON (sorted keys, no spaces). Its ``hash`` is the SHA-256 (hex) of the
previous line's hash followed by the line's canonical JSON without the ``hash`` key; the header
chains from the empty string. Editing, dropping, inserting or reordering a line breaks the chain,
which `lifecycle.audit` reports. Each streamed line is flushed as it is written, so a process
killed at any moment leaves a valid prefix.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import attrs

from lifecycle.errors import LifecycleError
from lifecycle.spec import SPECS

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Journal",
    "JournalFormatError",
    "Transition",
    "canonical",
    "cause_line",
    "chain_hash",
    "describe_cause",
    "journal_or_new",
    "read_journal",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

FORMAT = "lifecycle-journal"
FORMAT_VERSION = 1

Listener = Callable[["Transition"], object]


@attrs.frozen(slots=True)
class Transition:
    """One fired (``ok``) or refused (not ``ok``, ``dest`` None) trigger.

    ``time`` is wall-clock seconds, ``mono`` monotonic nanoseconds; ``cause`` is the text of the
    exception behind a skip or failure (type, message and traceback where there is one).
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
        return cls(**values)


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

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "deps": list(self.deps), "wants": list(self.wants)}


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


def canonical(obj: Mapping[str, Any]) -> str:
    """The canonical JSON text of ``obj``: sorted keys, no spaces, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def chain_hash(previous: str, line: str) -> str:
    """The hash of a line whose canonical JSON (without ``hash``) is ``line``."""
    return hashlib.sha256((previous + line).encode()).hexdigest()


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


class Journal:
    """An append-only, thread-safe log of transitions.

    ``path``: when given, every record is also written to that file as it is appended (see the
    module docstring for the format); the header is written with the first record, so that it
    includes the tasks registered before anything happened. Call `close` when done.

    Listeners added with `subscribe` are called with each record, in sequence order, on the
    thread that fired the trigger, while the journal's lock is held: keep them quick, and never
    fire triggers from them. A listener that raises is logged and otherwise ignored.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        # Plain tuples, not `Transition`s: CPython's collector stops tracking a tuple of atomic
        # values, so a journal of millions of records adds nothing to every full collection
        # (with records as objects, per-task cost grew with the journal), and a tuple is
        # cheaper to build. `records` makes the `Transition`s when asked.
        self._rows: list[_Row] = []
        self._listeners: tuple[Listener, ...] = ()
        self._tasks: dict[str, _TaskInfo] = {}
        self._seq = 0
        self._file: IO[str] | None = None
        self._hash = ""
        self._header_written = False
        self.stream_error: OSError | None = None
        self.path = os.fspath(path) if path is not None else None
        if self.path is not None:
            self._file = open(self.path, "w", encoding="ascii")  # noqa: SIM115

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
        """Append one record with the next sequence number. Thread-safe."""
        text = describe_cause(cause)
        thread = threading.current_thread().name
        with self._lock:
            self._seq += 1
            row: _Row = (
                self._seq,
                time.time(),
                time.monotonic_ns(),
                kind,
                subject,
                trigger,
                _text(source),
                None if dest is None else _text(dest),
                ok,
                text,
                thread,
            )
            self._rows.append(row)
            if self._file is not None:
                self._stream(row)
            if self._listeners:
                rec = Transition(*row)
                for listener in self._listeners:
                    try:
                        listener(rec)
                    except Exception:
                        logger.exception("journal listener %r raised; ignored", listener)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(record)`` for every later record; returns a function that undoes it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def describe_tasks(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """Record the tasks (name → ``class``, ``deps``, ``wants``) for the header."""
        with self._lock:
            for name, info in tasks.items():
                self._tasks[name] = _TaskInfo(
                    str(info.get("class", name)),
                    tuple(str(d) for d in info.get("deps", ())),
                    tuple(str(w) for w in info.get("wants", ())),
                )

    def forget_task(self, name: str) -> None:
        """Drop a task description (its task was unregistered). No-op for an unknown name."""
        with self._lock:
            self._tasks.pop(name, None)

    # -- reading ---------------------------------------------------------------------------

    @property
    def records(self) -> tuple[Transition, ...]:
        """A snapshot of every record so far, in sequence order (made anew on each call)."""
        with self._lock:
            rows = list(self._rows)
        return tuple(Transition(*row) for row in rows)

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """A copy of the task descriptions given to `describe_tasks`."""
        with self._lock:
            return {name: info.to_dict() for name, info in self._tasks.items()}

    def __len__(self) -> int:
        return len(self._rows)

    def header(self) -> dict[str, Any]:
        """The header of this journal's file form."""
        with self._lock:
            return self._header()

    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "specs": {name: spec.to_dict() for name, spec in SPECS.items()},
            "tasks": {name: info.to_dict() for name, info in self._tasks.items()},
        }

    # -- files -----------------------------------------------------------------------------

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the whole journal to ``path`` in the JSONL format, replacing the file."""
        with self._lock:
            header = self._header()
            rows = list(self._rows)
        with open(path, "w", encoding="ascii") as out:
            for line in _chained_lines([header, *(_row_dict(row) for row in rows)]):
                out.write(line)

    def close(self) -> None:
        """Finish the streamed file (writing the header if nothing was recorded). Idempotent.

        Records appended after `close` are kept in memory (`records`, `write`) but no longer
        streamed.
        """
        with self._lock:
            if self._file is None:
                return
            if not self._header_written:
                self._write_line(self._header())
                self._header_written = True
            self._file.close()
            self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stream(self, row: _Row) -> None:
        try:
            if not self._header_written:
                self._write_line(self._header())
                self._header_written = True
            self._write_line(_row_dict(row))
        except OSError as exc:
            # A full or failing disk must not break the lifecycle it records: the records stay
            # in memory, streaming stops, and `stream_error` says why.
            logger.error("journal %s: streaming stopped at seq %d: %s", self.path, row[0], exc)
            self.stream_error = exc
            file, self._file = self._file, None
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()

    def _write_line(self, obj: dict[str, Any]) -> None:
        if self._file is None:
            return
        body = canonical(obj)
        self._hash = chain_hash(self._hash, body)
        self._file.write(canonical({**obj, "hash": self._hash}) + "\n")
        self._file.flush()


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


def read_journal(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Transition]]:
    """Read a journal file: its header and records. Does not check the hash chain.

    Raises `JournalFormatError` (with the line number) for a file that is not a journal:
    unreadable, bad JSON, wrong format or version, or a record with missing or bad fields.
    `lifecycle.audit` is the checker that reports tampering rather than raising.
    """
    try:
        with open(path, encoding="utf-8") as f:
            # Only "\n" ends a line: splitlines() would also split inside a JSON string.
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalFormatError(f"cannot read {os.fspath(path)!r}: {exc}") from exc
    if not lines:
        raise JournalFormatError("empty file: no journal header", line=1)
    header = _parse_line(lines[0], 1)
    if header.get("format") != FORMAT:
        raise JournalFormatError(f"not a lifecycle journal (format {header.get('format')!r})", 1)
    if header.get("version") != FORMAT_VERSION:
        raise JournalFormatError(
            f"unsupported journal version {header.get('version')!r} (expected {FORMAT_VERSION})",
            1,
        )
    records = []
    for number, line in enumerate(lines[1:], start=2):
        data = _parse_line(line, number)
        data.pop("hash", None)
        try:
            records.append(Transition.from_dict(data))
        except JournalFormatError as exc:
            raise JournalFormatError(exc.reason, number) from None
    return header, records


def _parse_line(line: str, number: int) -> dict[str, Any]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise JournalFormatError(f"not JSON: {exc.msg}", number) from None
    if not isinstance(data, dict):
        raise JournalFormatError("not a JSON object", number)
    return data
