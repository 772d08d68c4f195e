"""The journal reader's line rules: a line is kept whole up to `MAX_LINE_BYTES` and refused
one byte past it, ``ended`` says whether a newline ended it, `JournalReader.rows` parses
unless told not to, and a refused line is skipped in bounded memory. The bound is lowered
here so that the rules are checked at their edge without writing 64 MiB lines."""

from __future__ import annotations

import stat
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import lifecycle.journal
from lifecycle.journal import JournalFormatError, JournalReader, _kind_of, parse_line

LIMIT = 8

#: A line's content (no newline), around the lowered bound.
contents = st.binary(max_size=LIMIT + 3).map(lambda raw: raw.replace(b"\n", b"x"))


def _lines(path: Path, *, parse: bool | None = None) -> list[tuple[object, ...]]:
    with mock.patch.object(lifecycle.journal, "MAX_LINE_BYTES", LIMIT), JournalReader(path) as r:
        rows: Iterator[tuple[object, ...]] = r.rows() if parse is None else r.rows(parse=parse)
        return list(rows)


@given(st.lists(contents, min_size=1, max_size=5), st.booleans())
@example([b"x" * (LIMIT + 1)], False)  # one byte over, then its newline
@example([b"x" * LIMIT], True)  # exactly the bound, the file cut short after it
@example([b"x" * (LIMIT + 1)], True)  # over the bound, the file cut short in it
@example([b"{}", b"x" * LIMIT], True)
def test_each_line_is_kept_up_to_the_bound_and_ended_says_whether_a_newline_ended_it(
    lines: list[bytes], cut_short: bool
) -> None:
    data = b"\n".join(lines) + (b"" if cut_short else b"\n")
    if cut_short and lines[-1] == b"":  # nothing after the last newline: no line there
        lines, cut_short = lines[:-1], False
    if not lines:
        return  # an empty file has no line
    expected = []
    for number, raw in enumerate(lines, start=1):
        ended = number < len(lines) or not cut_short
        if len(raw) > LIMIT:
            expected.append((number, b"", ended, f"longer than {LIMIT} bytes"))
        else:
            expected.append((number, raw, ended, parse_line(raw)))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.jsonl"
        path.write_bytes(data)
        assert _lines(path) == expected
        assert _lines(path, parse=True) == expected
        # parse=False leaves the parsing to the caller, but still says a line was too long.
        assert _lines(path, parse=False) == [
            (n, raw, ended, value if len(lines[n - 1]) > LIMIT else None)
            for n, raw, ended, value in expected
        ]


def test_rows_parses_each_line_unless_told_not_to(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"a":1}\n[1]\n')
    with JournalReader(path) as reader:
        assert list(reader.rows()) == [
            (1, b'{"a":1}', True, {"a": 1}),
            (2, b"[1]", True, "JSON but not an object (list)"),
        ]
    with JournalReader(path) as reader:
        assert [value for *_, value in reader.rows(parse=False)] == [None, None]
    with JournalReader(path) as reader:
        assert [line.value for line in reader] == [{"a": 1}, "JSON but not an object (list)"]


def test_a_line_over_the_bound_is_skipped_without_holding_it_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    long = 48 * 2**20
    with path.open("wb") as file:
        file.write(b"{}\n")
        file.seek(long, 1)  # a hole: a 48 MiB line of NUL bytes that takes no disk space
        file.write(b'\n{"a":2}\n')
    tracemalloc.start()
    try:
        rows = _lines(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(n, raw, ended, value) for n, raw, ended, value in rows] == [
        (1, b"{}", True, {}),
        (2, b"", True, f"longer than {LIMIT} bytes"),
        (3, b'{"a":2}', True, {"a": 2}),
    ]
    # A bounded part of the line at a time (a few MiB at most), never the line itself.
    assert peak < long // 4


# -- what is not a journal line, nor a journal file ----------------------------------------

DIGITS = lifecycle.journal.MAX_INT_DIGITS


@pytest.mark.parametrize("sign", ["", "-"])
def test_an_integer_of_max_int_digits_is_read_and_one_digit_more_is_refused(sign: str) -> None:
    at_bound = f'{{"n":{sign}{"7" * DIGITS}}}'.encode()
    assert parse_line(at_bound) == {"n": int(sign + "7" * DIGITS)}
    over = f'{{"n":{sign}{"7" * (DIGITS + 1)}}}'.encode()
    assert parse_line(over) == f"not JSON (an integer of more than {DIGITS} digits)"


@given(st.integers(min_value=0, max_value=0o177777))
def test_every_mode_but_a_regular_file_is_named_and_refused(mode: int) -> None:
    kind = _kind_of(mode)
    if stat.S_ISREG(mode):
        assert kind is None
    else:
        assert isinstance(kind, str) and kind.startswith("a ")


def test_a_file_of_no_known_kind_is_a_special_file() -> None:
    # Whiteouts (BSD) and doors (Solaris) are none of the kinds named on every system.
    assert _kind_of(0o160000 | 0o644) == "a special file"


def test_a_file_that_cannot_be_read_is_an_error_that_names_no_line(tmp_path: Path) -> None:
    with pytest.raises(JournalFormatError) as info:
        JournalReader(tmp_path)
    assert info.value.line is None
    assert str(info.value) == info.value.reason
    assert (
        str(info.value) == f"cannot read {str(tmp_path)!r}: it is a directory, not a regular file"
    )
