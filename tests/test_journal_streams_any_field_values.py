"""A streamed record is the canonical JSON of its fields whatever their values: the direct
encoding of the usual record (strings, a float time, a bool) and the general one agree, and a
record whose fields are not the usual types (a subject given as a number, say) is still
streamed, chained, as `canonical` writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lifecycle.journal import Journal, canonical, chain_hash

#: Values a caller may pass for a record's text fields: `record` does not check them.
field_values = st.one_of(
    st.text(max_size=8),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.booleans(),
    st.none(),
)

FIELDS = ("kind", "subject", "trigger", "source", "dest")


def streamed_objects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


@given(
    values=st.fixed_dictionaries({name: field_values for name in FIELDS}),
    ok=st.booleans(),
    cause=st.one_of(st.none(), st.text(max_size=8)),
)
def test_each_streamed_line_is_the_canonical_json_of_its_record_chained(
    tmp_path_factory: Any, values: dict[str, Any], ok: bool, cause: str | None
) -> None:
    path = tmp_path_factory.mktemp("j") / "j.jsonl"
    with Journal(path) as journal:
        journal.record("task", "A", "create", "registered", "created", True)
        journal.record(
            values["kind"],
            values["subject"],
            values["trigger"],
            values["source"],
            values["dest"],
            ok,
            cause,
        )
    lines = path.read_text(encoding="ascii").splitlines()
    assert len(lines) == 3  # the header and both records
    previous = json.loads(lines[1])["hash"]
    last = json.loads(lines[2])
    body = {key: value for key, value in last.items() if key != "hash"}
    assert body == journal.records[1].to_dict()
    for name in ("kind", "subject", "trigger"):  # kept as given (states are kept as text)
        assert body[name] == values[name] and type(body[name]) is type(values[name])
    assert last["hash"] == chain_hash(previous, canonical(body))
    assert lines[2] == canonical(last)


def test_a_record_whose_subject_is_a_number_is_streamed_and_the_stream_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.record("task", 7, "create", "registered", "created", True)  # type: ignore[arg-type]
        journal.record("task", "B", "create", "registered", "created", True)
    assert journal.stream_error is None
    objs = streamed_objects(path)
    assert [obj.get("subject") for obj in objs[1:]] == [7, "B"]
    assert objs[2]["hash"] == chain_hash(
        objs[1]["hash"], canonical({k: v for k, v in objs[2].items() if k != "hash"})
    )
