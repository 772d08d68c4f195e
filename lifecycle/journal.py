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
import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import attrs

from lifecycle.errors import JournalWriteError, LifecycleError
from lifecycle.spec import SPECS

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Journal",
    "JournalFormatError",
    "JournalWriteError",
    "Transition",
    "canonical",
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


class Journal:
    """An append-only, thread-safe log of transitions.

    ``path``: when given, every record is also written to that file as it is appended (see the
    module docstring for the format). The header is written when a regular file is opened, so
    that a process killed before its first record still leaves a journal; the header carries
    the task table, which is filled by registrations made after the journal is opened, so when
    the first record (or `close`) finds the table changed, the file is replaced atomically by
    one with the current header (a temporary file in the same directory, then `os.replace`;
    in place if the directory is not writable) and the records streamed so far. A path that is
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
        # The task table's version, bumped on each change, and the version the file's header
        # shows (None: no header written yet): one int compare per streamed record.
        self._tasks_version = 0
        self._header_version: int | None = None
        self._seq = 0
        self._file: IO[str] | None = None
        self._rewritable = False
        self._streamed = 0  # records written to the file
        self._hash = ""
        self.stream_error: JournalWriteError | None = None
        self.path = os.fspath(path) if path is not None else None
        if self.path is not None:
            self._open(self.path)

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
                described = _TaskInfo(
                    str(info.get("class", name)),
                    tuple(str(d) for d in info.get("deps", ())),
                    tuple(str(w) for w in info.get("wants", ())),
                )
                if self._tasks.get(name) != described:
                    self._tasks[name] = described
                    self._tasks_version += 1

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
        """Write the whole journal to ``path`` in the JSONL format, replacing the file.

        Raises `JournalWriteError` if the file cannot be written.
        """
        with self._lock:
            header = self._header()
            rows = list(self._rows)
        try:
            with open(path, "w", encoding="ascii") as out:
                for line in _chained_lines([header, *(_row_dict(row) for row in rows)]):
                    out.write(line)
        except OSError as exc:
            raise JournalWriteError(os.fspath(path), exc) from exc

    def close(self) -> None:
        """Finish the streamed file: bring its header up to date and close it. Idempotent.

        Records appended after `close` are kept in memory (`records`, `write`) but no longer
        streamed. An error while finishing the file is kept in `stream_error`, like any other
        write error, and not raised.
        """
        with self._lock:
            if self._file is None:
                return
            try:
                self._sync_header()
                file, self._file = self._file, None
                file.close()
            except (OSError, ValueError) as exc:
                self._stop_streaming(exc, "at close")

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, path: str) -> None:
        try:
            self._file = open(path, "w", encoding="ascii")  # noqa: SIM115
            self._rewritable = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
            if self._rewritable:
                self._sync_header()
        except OSError as exc:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
            raise JournalWriteError(path, exc) from exc

    def _stream(self, row: _Row) -> None:
        try:
            if self._header_version != self._tasks_version:
                self._sync_header()
            self._write(self._line(_row_dict(row)))
            self._streamed += 1
        except (OSError, ValueError) as exc:
            self._stop_streaming(exc, f"at seq {row[0]}")

    def _stop_streaming(self, exc: OSError | ValueError, where: str) -> None:
        """Turn a failed write into `stream_error`; the lifecycle the journal records goes on.

        A full or failing disk must not break the lifecycle it records: the records stay in
        memory, streaming stops, and `stream_error` says why.
        """
        file, self._file = self._file, None
        if isinstance(exc, OSError):
            error = exc
        elif file is not None and file.closed:
            # Writing to a closed file object raises ValueError; say what the OS would.
            error = OSError(errno.EBADF, "I/O operation on closed file")
            error.__cause__ = exc
        else:
            raise exc  # not an I/O failure: a bug, not a disk to tolerate
        self.stream_error = JournalWriteError(self.path or "", error)
        logger.error("journal streaming stopped %s: %s", where, self.stream_error)
        if file is not None:
            with contextlib.suppress(OSError, ValueError):
                file.close()

    def _sync_header(self) -> None:
        """Make the file's header show the current task table (the lock is held)."""
        if self._header_version == self._tasks_version:
            return
        if self._header_version is None:
            self._write(self._line(self._header()))
        elif self._rewritable:
            self._rewrite()
        else:
            logger.warning(
                "journal %s: the task table changed after the header was written to a file "
                "that cannot be rewritten; the header lists the tasks known then",
                self.path,
            )
        self._header_version = self._tasks_version

    def _rewrite(self) -> None:
        """Replace the file by one with the current header and the records streamed so far.

        Atomic (a temporary file in the same directory, flushed, then `os.replace`), so that a
        process killed at any moment leaves either file whole. A symbolic link is followed, so
        the file it names is replaced, not the link; the new file takes the old one's mode.
        """
        if self._file is None or self.path is None:
            return
        self._hash = ""
        streamed = self._rows[: self._streamed]
        text = "".join([self._line(self._header()), *(self._line(_row_dict(r)) for r in streamed)])
        target = os.path.realpath(self.path)
        directory, name = os.path.split(target)
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        except OSError:
            # No temporary file beside it (a directory we may not write to): rewrite in place.
            # A kill during these few calls can cut the file; there is no other way to fix it.
            self._file.seek(0)
            self._file.truncate()
            self._write(text)
            return
        try:
            with contextlib.suppress(OSError):
                os.fchmod(fd, stat.S_IMODE(os.fstat(self._file.fileno()).st_mode))
            new = open(fd, "w", encoding="ascii")  # noqa: SIM115
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        try:
            new.write(text)
            new.flush()
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError, ValueError):
                new.close()
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        old, self._file = self._file, new
        with contextlib.suppress(OSError, ValueError):
            old.close()

    def _line(self, obj: dict[str, Any]) -> str:
        """The file line of ``obj``, chained to the previous line."""
        self._hash = chain_hash(self._hash, canonical(obj))
        return canonical({**obj, "hash": self._hash}) + "\n"

    def _write(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text)
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
