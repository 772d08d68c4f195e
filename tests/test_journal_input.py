"""Untrusted journal files: one reader for every consumer, strict types, escaped output.

Every consumer of a journal file (`read_journal`, `lifecycle.audit.check`, the journal
diagrams, ``lifecycle audit`` and ``lifecycle diagram --journal``) reads it through
`lifecycle.journal.JournalReader`: anything but a regular file is refused before it is read,
lines are bounded, and every malformed line is the same format error everywhere. Text from a
journal is escaped before the command line prints it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import journal as journal_module
from lifecycle.audit import RULES, AuditInputError, check
from lifecycle.cli import main
from lifecycle.diagrams import journal_dependency_diagram, journal_machine_diagram
from lifecycle.journal import (
    Journal,
    JournalFormatError,
    JournalReader,
    Transition,
    canonical,
    chain_hash,
    parse_line,
    read_journal,
)
from lifecycle.outcome import outcome
from lifecycle.spec import TASK

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0

# -- journals to feed the readers ----------------------------------------------------------------


def write_journal(path: Path, *subjects: str) -> Path:
    """A clean, complete journal of one collection whose tasks are ``subjects``."""
    journal = Journal()
    journal.describe_tasks({name: {"class": f"m.{name}"} for name in subjects})
    journal.record("collection", "tasks", "create", "registering", "created", True)
    for name in subjects:
        journal.record("task", name, "create", "registered", "created", True)
        journal.record("task", name, "stop", "created", "stopped", True)
    journal.record("collection", "tasks", "stop", "created", "stopped", True)
    journal.write(path)
    return path


def rechain(lines: list[dict[str, Any]]) -> bytes:
    """The objects as journal lines with a valid hash chain (the objects hold no ``hash``)."""
    previous, out = "", []
    for obj in lines:
        previous = chain_hash(previous, canonical(obj))
        out.append(canonical({**obj, "hash": previous}) + "\n")
    return "".join(out).encode()


def objects_of(path: Path) -> list[dict[str, Any]]:
    objs = [json.loads(line) for line in path.read_text().splitlines()]
    for obj in objs:
        del obj["hash"]
    return objs


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_journal(tmp_path / "good.jsonl", "A", "B")


#: Every library reader of a journal file; each must raise JournalFormatError for a bad one.
READERS: dict[str, Callable[[Path], object]] = {
    "read_journal": read_journal,
    "check": check,
    "journal_dependency_diagram": journal_dependency_diagram,
    "journal_machine_diagram": lambda path: journal_machine_diagram(TASK, path),
}


# -- item 17: only regular files -------------------------------------------------------------


@pytest.fixture
def special(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """A path that is not a regular file, and the word the refusal must use for it."""
    kind: str = request.param
    if kind == "fifo":
        path = tmp_path / "fifo.jsonl"
        os.mkfifo(path)
        yield path, "a FIFO"
    elif kind == "directory":
        yield tmp_path, "a directory"
    elif kind == "device":
        if not os.path.exists("/dev/zero"):
            pytest.skip("needs /dev/zero")
        yield Path("/dev/zero"), "a character device"
    else:
        # AF_UNIX paths are short: bind in a fresh short-named directory.
        with tempfile.TemporaryDirectory(prefix="j") as short:
            path = Path(short, "s")
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(str(path))
                yield path, "a socket"


SPECIALS = ["fifo", "directory", "device", "socket"]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, devices and sockets")


@posix_only
@pytest.mark.parametrize("special", SPECIALS, indirect=True)
@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_anything_but_a_regular_file_without_reading_it(
    special: tuple[Path, str], reader: str
) -> None:
    path, kind = special
    with pytest.raises(JournalFormatError, match="not a regular file") as info:
        READERS[reader](path)
    assert kind in str(info.value) and "cannot read" in str(info.value)
    assert "\n" not in str(info.value)
    if reader == "check":
        assert isinstance(info.value, AuditInputError)


@posix_only
def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good: Path
) -> None:
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    regular = os.stat(good)
    real_stat = os.stat
    # The path was a regular file when checked, and is a FIFO when opened: the reader opens
    # without blocking and checks the open file again.
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if p == str(fifo) else real_stat(p))
    with pytest.raises(JournalFormatError, match="it is a FIFO, not a regular file"):
        JournalReader(fifo)


def test_a_line_longer_than_the_limit_is_a_format_error_and_is_not_kept(
    good: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = good.read_bytes().split(b"\n")[0]
    monkeypatch.setattr(journal_module, "MAX_LINE_BYTES", len(header) + 10)
    content = good.read_bytes().split(b"\n")
    content.insert(2, b'{"x":"' + b"y" * (len(header) * 3) + b'"}')
    good.write_bytes(b"\n".join(content))
    with JournalReader(good) as reader:
        lines = list(reader)
    long = lines[2]
    assert (long.number, long.raw, long.ended) == (3, b"", True)
    assert long.value == f"longer than {len(header) + 10} bytes"
    assert [line.number for line in lines] == list(range(1, len(content)))  # reading went on
    with pytest.raises(JournalFormatError, match=r"^line 3: longer than \d+ bytes$"):
        read_journal(good)
    found = check(good)
    assert (found[0].line, found[0].rule) == (3, "format")
    assert "longer than" in found[0].message
    # The outcome reads on past it, as the audit does, and counts it as no record.
    assert outcome(good).skipped == 1


# -- item 18: one set of format errors -------------------------------------------------------

BAD_LINES: dict[str, tuple[bytes, str]] = {
    "deep nesting": (b"[" * 1000 + b"]" * 1000, "not JSON (nested too deeply)"),
    "deeper nesting": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "not JSON (nested too deeply)"),
    "a 5000-digit integer": (
        b'{"seq":' + b"9" * 5000 + b"}",
        "not JSON (an integer of more than 4300 digits)",
    ),
    "bad UTF-8": (b'{"subject":"\xff"}', "not UTF-8"),
    "NaN": (b'{"time":NaN}', "not JSON (NaN is not a JSON value)"),
    "Infinity": (b'{"time":-Infinity}', "not JSON (-Infinity is not a JSON value)"),
    "a number out of range": (b'{"time":1e999}', "not JSON (the number 1e999 is out of range)"),
    "a list": (b"[1]", "JSON but not an object (list)"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_line_is_the_same_format_error_for_every_reader(good: Path, case: str) -> None:
    raw, reason = BAD_LINES[case]
    assert parse_line(raw) == reason
    lines = good.read_bytes().split(b"\n")
    lines.insert(2, raw)
    good.write_bytes(b"\n".join(lines))
    for name, reader in READERS.items():
        if name == "check":
            found = check(good)
            assert (found[0].line, found[0].rule) == (3, "format")
            assert found[0].message == f"expected a JSON object; the line is {reason}"
        else:
            with pytest.raises(JournalFormatError) as info:
                reader(good)
            assert (info.value.line, info.value.reason) == (3, reason), name


@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_line_is_an_object_or_one_reason_never_an_exception(raw: bytes) -> None:
    value = parse_line(raw.replace(b"\n", b" "))
    assert isinstance(value, dict) or (isinstance(value, str) and "\n" not in value)


@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_every_reader_raises_only_its_format_error_for_any_line(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_journal(Path(tmp, "j.jsonl"), "A")
        with path.open("ab") as f:
            f.write(raw)
        for name, reader in READERS.items():
            try:
                found = reader(path)
            except JournalFormatError as exc:
                assert "\n" not in str(exc), name
            else:
                if name == "check":
                    assert isinstance(found, list) and all(v.rule in RULES for v in found)


# -- item 20: strict header and record types -------------------------------------------------


@pytest.mark.parametrize("version", [True, 1.0, "1", 2.0, 3.0, None, 0, 4])
def test_a_header_version_that_is_not_a_known_integer_is_refused(
    good: Path, version: object
) -> None:
    objs = objects_of(good)
    objs[0]["version"] = version
    good.write_bytes(rechain(objs))
    with pytest.raises(JournalFormatError, match=r"^line 1: unsupported journal version"):
        read_journal(good)
    assert [(v.line, v.rule) for v in check(good)] == [(1, "format")]


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", True), ("seq", 2.0), ("mono", False), ("mono", 1.5), ("time", True), ("time", "0")],
)
def test_a_record_field_of_the_wrong_type_is_a_format_violation(
    good: Path, field: str, value: object
) -> None:
    objs = objects_of(good)
    objs[2][field] = value
    good.write_bytes(rechain(objs))
    with pytest.raises(JournalFormatError, match=f"^line 3: record field '{field}' has a bad"):
        read_journal(good)
    # The record is dropped: its subject's next record is also a continuity violation.
    found = check(good)
    assert (found[0].line, found[0].rule) == (3, "format")


@pytest.mark.parametrize("time", [float("inf"), float("-inf"), float("nan")])
def test_a_record_time_must_be_finite(time: float) -> None:
    record = Transition(1, time, 1, "task", "A", "create", "registered", "created", True, None, "m")
    with pytest.raises(JournalFormatError, match=r"'time' has a bad value.*not a finite number"):
        Transition.from_dict(record.to_dict())
    assert [v.rule for v in check([record])] == ["format"]


def test_mono_going_backwards_is_a_seq_order_violation(good: Path) -> None:
    objs = objects_of(good)
    objs[3]["mono"] = objs[2]["mono"] - 1
    good.write_bytes(rechain(objs))
    found = check(good)
    assert [(v.line, v.rule, v.seq) for v in found] == [(4, "seq-order", objs[3]["seq"])]
    assert f"got {objs[3]['mono']}" in found[0].message
    records = read_journal(good)[1]
    assert [v.rule for v in check(records)] == ["seq-order"]


def test_equal_mono_times_are_not_a_violation(good: Path) -> None:
    objs = objects_of(good)
    for obj in objs[1:]:
        obj["mono"] = 7
    good.write_bytes(rechain(objs))
    assert check(good) == []


# -- item 19: the command line escapes what it prints from a journal -------------------------

HOSTILE = "\ud800\x1b[2J\x1b]0;owned\x07\u202eé"
SHOWN = "\\ud800\\x1b[2J\\x1b]0;owned\\x07\\u202eé"
SHOWN_IN_ASCII = SHOWN.replace("é", "\\xe9")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A journal whose task name is a lone surrogate and terminal escapes, with a violation
    naming it: an ok record that is not an edge."""
    journal = Journal()
    journal.describe_tasks({HOSTILE: {"class": "m.X"}})
    journal.record("collection", "tasks", "create", "registering", "created", True)
    journal.record("task", HOSTILE, "start", "registered", "running", True, "é \x1b[31m")
    path = tmp_path / "hostile.jsonl"
    journal.write(path)
    return path


def is_clean_text(text: str) -> bool:
    """No control character but newline, no unpaired surrogate."""
    return all(ch == "\n" or (ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF) for ch in text)


def test_audit_text_output_shows_journal_strings_escaped(
    hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(hostile), "--partial"]) == 1
    out, err = capsys.readouterr()
    assert SHOWN in out
    assert is_clean_text(out) and is_clean_text(err)


def test_audit_json_output_is_strict_json_whatever_the_content(
    hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--json", "--partial", str(hostile)]) == 1
    out = capsys.readouterr().out
    assert out.isascii()
    doc = json.loads(out)
    subjects = {v["subject"] for v in doc["violations"]}
    assert "\\ud800\x1b[2J\x1b]0;owned\x07\u202eé" in subjects  # exact but for the surrogate
    # Strict: the decoded document encodes as UTF-8, which an unpaired surrogate cannot.
    json.dumps(doc, ensure_ascii=False).encode("utf-8")


def test_diagram_of_a_hostile_journal_is_escaped(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.dot"
    assert main(["diagram", "--journal", str(hostile), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "\\\\ud800\\\\x1b[2J" in text and is_clean_text(text)


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lifecycle", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=TIMEOUT,
    )


def assert_no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
@posix_only
@pytest.mark.parametrize("special", SPECIALS, indirect=True)
@pytest.mark.parametrize(
    "command",
    [["audit"], ["audit", "--json"], ["diagram", "--journal"], ["summary"], ["timeline"]],
)
def test_cli_exits_2_for_anything_but_a_regular_file(
    special: tuple[Path, str], command: list[str]
) -> None:
    path, kind = special
    done = run_cli(*command, str(path))  # a FIFO would hang it; TIMEOUT guards the test
    assert (done.returncode, done.stdout) == (2, "")
    assert kind in done.stderr and len(done.stderr.splitlines()) == 1
    assert_no_traceback(done)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["deep nesting", "a 5000-digit integer", "bad UTF-8", "NaN"])
def test_cli_reads_a_malformed_line_without_a_traceback(good: Path, case: str) -> None:
    raw, reason = BAD_LINES[case]
    lines = good.read_bytes().split(b"\n")
    lines.insert(2, raw)
    good.write_bytes(b"\n".join(lines))
    for command in (["diagram", "--journal"], ["diagram", "task", "--journal"]):
        done = run_cli(*command, str(good))
        assert (done.returncode, done.stdout) == (2, ""), command
        assert f"line 3: {reason}" in done.stderr and len(done.stderr.splitlines()) == 1
        assert_no_traceback(done)
    done = run_cli("audit", str(good))
    assert done.returncode == 1 and "line 3: format: <journal>: expected a JSON" in done.stdout
    assert_no_traceback(done)


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_cli_audit_prints_a_hostile_journal_escaped_in_any_encoding(
    hostile: Path, encoding: str
) -> None:
    done = run_cli("audit", "--partial", str(hostile), env={"PYTHONIOENCODING": encoding})
    assert done.returncode == 1, done.stderr
    assert (SHOWN if encoding == "utf-8" else SHOWN_IN_ASCII) in done.stdout
    assert is_clean_text(done.stdout) and is_clean_text(done.stderr)
    assert_no_traceback(done)
    done = run_cli("audit", "--json", str(hostile), env={"PYTHONIOENCODING": encoding})
    assert done.returncode == 1 and json.loads(done.stdout)["clean"] is False
    assert_no_traceback(done)


@pytest.mark.slow
def test_cli_exits_0_for_a_clean_journal_with_hostile_names(tmp_path: Path) -> None:
    path = write_journal(tmp_path / "clean.jsonl", HOSTILE, "plain")
    assert check(path) == []
    done = run_cli("audit", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("outcome: ") and SHOWN in done.stdout
    assert is_clean_text(done.stdout)
    assert "clean" in done.stderr and is_clean_text(done.stderr)
    for fmt in ("mermaid", "dot"):
        for machine in ([], ["task"]):
            done = run_cli("diagram", *machine, "--journal", str(path), "--format", fmt)
            assert done.returncode == 0, done.stderr
            assert is_clean_text(done.stdout) and done.stderr == ""
