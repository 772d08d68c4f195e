"""The journal's task table: how a task described without some field is described, and how
the streamed file's header follows every change of the table (and only a change)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from lifecycle.journal import Journal, read_journal

names = st.sampled_from(["a", "b", "c"])
name_lists = st.lists(st.sampled_from(["a", "b", "c", "x.Y"]), max_size=3)


@st.composite
def descriptions(draw: st.DrawFn) -> dict[str, Any]:
    """A task description as `Journal.describe_tasks` takes it, any field left out."""
    described: dict[str, Any] = {}
    for field, values in (
        ("class", st.sampled_from(["m.A", "m.B"])),
        ("deps", name_lists),
        ("wants", name_lists),
    ):
        if draw(st.booleans()):
            described[field] = draw(values)
    return described


def _expected(name: str, described: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "class": described.get("class", name),
        "deps": list(described.get("deps", [])),
        "wants": list(described.get("wants", [])),
    }


@given(st.dictionaries(names, descriptions()), st.booleans())
def test_a_task_is_described_by_its_fields_and_named_after_itself_without_a_class(
    tasks: dict[str, dict[str, Any]], deferred: bool
) -> None:
    journal = Journal()
    if deferred:  # a description made only when the header is
        journal.describe_tasks({name: _deferred(info) for name, info in tasks.items()})
    else:
        journal.describe_tasks(tasks)
    expected = {name: _expected(name, info) for name, info in tasks.items()}
    assert journal.tasks == expected
    assert journal.header()["tasks"] == expected


def _deferred(info: dict[str, Any]) -> Callable[[str], Mapping[str, Any]]:
    return lambda name: info


def test_a_deferred_description_without_a_class_is_named_after_its_task() -> None:
    journal = Journal()
    journal.describe_tasks({"db": lambda name: {"deps": []}, "web": {"wants": ["db"]}})
    assert journal.tasks == {
        "db": {"class": "db", "deps": [], "wants": []},
        "web": {"class": "web", "deps": [], "wants": ["db"]},
    }


# -- the streamed header follows the table -------------------------------------------------

#: One step on a journal streamed to a file: describe a task, forget one, or record.
Step = tuple[str, str, str]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("describe"), names, st.sampled_from(["m.A", "m.B"])),
        st.tuples(st.just("forget"), names, st.just("")),
        st.just(("record", "", "")),
    ),
    max_size=12,
)


def _run(path: Path, plan: Sequence[Step]) -> Journal:
    journal = Journal(path)
    for what, name, cls in plan:
        if what == "describe":
            journal.describe_tasks({name: {"class": cls}})
        elif what == "forget":
            journal.forget_task(name)
        else:
            journal.record("task", "t", "create", "registered", "created", True)
    journal.close()
    return journal


@given(steps)
# A table that comes back, after a record, to as many changes as the header showed: the
# header must still be brought up to date.
@example(
    [("describe", "a", "m.A"), ("record", "", ""), ("forget", "a", ""), ("describe", "b", "m.B")]
)
@example(
    [("describe", "a", "m.A"), ("record", "", ""), ("describe", "b", "m.B"), ("forget", "a", "")]
)
@example([("describe", "a", "m.A"), ("record", "", ""), ("forget", "a", "")])
def test_the_closed_file_header_lists_exactly_the_tasks_described_then(
    plan: list[Step],
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "journal.jsonl"
        journal = _run(path, plan)
        header, records = read_journal(path)
    assert header["tasks"] == journal.tasks
    assert records == list(journal.records)


def test_describing_the_same_tasks_again_leaves_the_streamed_file_in_place(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    tasks = {"db": {"class": "app.Db"}, "web": {"class": "app.Web", "deps": ["db"]}}
    with Journal(path) as journal:
        journal.describe_tasks(tasks)
        journal.record("task", "db", "create", "registered", "created", True)
        # A reader following the file from here on must see every later record: the file it
        # opened is not replaced by one with the same header.
        with path.open("rb") as follower:
            follower.read()
            journal.describe_tasks(tasks)
            journal.describe_tasks({"db": {"class": "app.Db"}})
            journal.record("task", "db", "init", "created", "initialized", True)
            later = follower.read().splitlines()
    assert len(later) == 1 and b'"trigger":"init"' in later[0]
