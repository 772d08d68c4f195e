"""`cause_line` on every shape of cause text a journal may hold (live, or read back from a file
whose lines were cut or reflowed), and `describe_cause` keeping a message exactly."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from lifecycle.journal import cause_line, describe_cause

TRACEBACK = "Traceback (most recent call last):"
DIRECT_CAUSE = "The above exception was the direct cause of the following exception:"
DURING_HANDLING = "During handling of the above exception, another exception occurred:"

#: One line of a reason: no line break, and something to show.
reason_lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1
).filter(
    lambda line: (
        line.strip() and line == line.strip() and line not in (DIRECT_CAUSE, DURING_HANDLING)
    )
)


@given(first=reason_lines, rest=st.lists(reason_lines, min_size=1, max_size=4))
def test_a_reason_of_several_lines_gives_its_first_line(first: str, rest: list[str]) -> None:
    assume(first != TRACEBACK)  # that would be a traceback, not a reason
    text = "\n".join([first, *rest])
    expected = cause_line(first)
    assert cause_line(text) == expected
    assert cause_line(text + "\n\n") == expected


def test_a_traceback_cut_before_its_exception_line_gives_its_last_line() -> None:
    text = f'{TRACEBACK}\n  File "a.py", line 1, in f\n  File "b.py", line 2, in g'
    assert cause_line(text) == 'File "b.py", line 2, in g'


def test_a_traceback_cut_after_its_first_frame_gives_that_frame() -> None:
    assert cause_line(f'{TRACEBACK}\n  File "a.py", line 1, in f') == 'File "a.py", line 1, in f'


def test_a_traceback_whose_frames_were_cut_gives_its_exception_line() -> None:
    assert cause_line(f"{TRACEBACK}\nValueError: bad\nnote: more") == "ValueError: bad"


def test_frames_indented_by_one_space_or_a_tab_are_frames() -> None:
    for indent in (" ", "\t"):
        text = f"{TRACEBACK}\n{indent}File a.py, line 1\n{indent}raise X\nKeyError: 'k'"
        assert cause_line(text) == "KeyError: 'k'"


def test_the_line_right_after_a_chain_separator_is_the_raised_exception() -> None:
    # A chain whose blank lines were dropped (by a log shipper, say).
    text = f"{TRACEBACK}\nOSError: disk\n{DIRECT_CAUSE}\nRuntimeError: could not save"
    assert cause_line(text) == "RuntimeError: could not save"


def test_a_group_box_with_no_message_line_gives_its_last_line() -> None:
    text = "  + Exception Group Traceback (most recent call last):\n  |   File a.py, line 1"
    assert cause_line(text) == "|   File a.py, line 1"


def test_a_group_line_indented_by_one_space_in_its_box_is_a_frame() -> None:
    text = (
        "  + Exception Group Traceback (most recent call last):\n"
        "  |  File a.py, line 1\n"
        "  | InitError: tasks failed (2 sub-exceptions)"
    )
    assert cause_line(text) == "InitError: tasks failed"


def test_trailing_spaces_on_a_group_line_do_not_keep_the_sub_exception_count() -> None:
    text = (
        "  + Exception Group Traceback (most recent call last):\n"
        "  |   File a.py, line 1\n"
        "  | InitError: tasks failed to initialize: Db (1 sub-exception)  \t"
    )
    assert cause_line(text) == "InitError: tasks failed to initialize: Db"


@given(message=st.text(alphabet=" \tab.", max_size=12))
def test_describe_cause_keeps_the_message_exactly_trailing_blanks_included(message: str) -> None:
    text = describe_cause(ValueError(message))
    assert text is not None
    assert text.endswith(f"ValueError: {message}" if message else "ValueError")
