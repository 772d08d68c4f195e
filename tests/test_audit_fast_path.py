"""The audit's fast path (record lines matched by a pattern, no JSON parsed) finds exactly
what the general path finds, for any line: the speed-up weakens no check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle.audit
from lifecycle.audit import AuditReport, audit
from lifecycle.journal import Journal
from lifecycle.seal import keygen, load_verify_key


def write_run(path: Path, seal: Path | None = None) -> None:
    with Journal(path, seal=seal, seal_epoch=3) as journal:
        journal.describe_tasks({"A": {"deps": []}, "B": {"deps": ["A"]}})
        for name in ("A", "B"):
            journal.record("task", name, "create", "registered", "created", True)
        journal.record("collection", "c", "create", "registering", "created", True)
        for trigger, source, dest in [
            ("init", "created", "initialized"),
            ("start", "initialized", "running"),
        ]:
            for name in ("A", "B"):
                journal.record("task", name, trigger, source, dest, True)
        journal.record("task", "B", "init", "running", None, False, "refused: it 'runs'")
        journal.record("task", "B", "fail", "running", "failed", True, ValueError("bad\nline"))
        journal.record("task", "A", "stop", "running", "stopping", True)
        journal.record("task", "A", "finish", "stopping", "stopped", True)


def both_ways(path: Path, **kwargs: object) -> AuditReport:
    fast = audit(path, **kwargs)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lifecycle.audit, "_RECORD_LINE", re.compile(r"(?!)"))
        general = audit(path, **kwargs)  # type: ignore[arg-type]
    assert fast == general
    return fast


#: Edits that keep a line a plausible record: the kind the fast path must judge right.
EDITS = [
    (b'"time":', b'"time":-'),
    (b'"time":', b'"time":1e400,"x":'),
    (b'"seq":', b'"seq":0'),
    (b'"mono":', b'"mono":-'),
    (b'"ok":true', b'"ok":false'),
    (b'"dest":null', b'"dest":"stopped"'),
    (b'"hash":"', b'"hash":"0'),
    (b'"thread":"', b'"thread":"\\u00e9'),
    (b'"thread":"', b'"thread":"\\/'),
    (b',"trigger"', b', "trigger"'),
    (b'"kind":"task"', b'"kind":"tas\\u006b"'),
    (b'"mac":"', b'"mac":"f'),
    (b"}", b',"mac":"' + b"0" * 64 + b'"}'),
    (b".", b".0"),
    (b".", b"0."),
]


@pytest.mark.parametrize("sealed", [False, True])
@given(data=st.data())
def test_the_fast_path_agrees_with_the_general_path_on_any_edit(
    tmp_path_factory: pytest.TempPathFactory,
    sealed: bool,
    data: st.DataObject,
) -> None:
    base = tmp_path_factory.mktemp("fast")
    seal, verify = base / "s.key", base / "v.key"
    keygen(seal, verify)
    path = base / "j.jsonl"
    write_run(path, seal if sealed else None)
    lines = path.read_bytes().splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        index = data.draw(st.integers(1, len(lines) - 1), label="line")
        old, new = data.draw(st.sampled_from(EDITS), label="edit")
        lines[index] = lines[index].replace(old, new, 1)
    path.write_bytes(b"".join(lines))
    key = load_verify_key(verify) if sealed else None
    for partial in (False, True):
        both_ways(path, verify_key=key, partial=partial)


def test_a_clean_run_takes_the_fast_path_and_agrees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j.jsonl"
    write_run(path)
    calls = []
    pattern = lifecycle.audit._RECORD_LINE

    class Counting:
        def fullmatch(self, text: str) -> re.Match[str] | None:
            calls.append(text)
            return pattern.fullmatch(text)

    with monkeypatch.context() as patch:
        patch.setattr(lifecycle.audit, "_RECORD_LINE", Counting())
        report = audit(path)
    assert len(calls) >= 10
    assert report == both_ways(path)
