"""A refused legal trigger is lawful only for a user machine, and only when a veto refused it.

A user machine's guards and before hooks may refuse an edge of its table: the journal records
that refusal with a veto's cause (`lifecycle.journal.VETO_CAUSE_PREFIX`), and the audit accepts
it. The built-in machines have no guards: a refused legal edge of theirs is ``refused-was-legal``
whatever its cause says, and so is a user machine's refused legal edge without a veto's cause.
Causes here are plain, or hold a quote or a non-ASCII letter (written escaped), so that the
audit reads them both by its fast path and by its general one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle import load_spec
from lifecycle.audit import audit
from lifecycle.journal import VETO_CAUSE_PREFIX, Journal

DOOR_FILE = Path(__file__).resolve().parent / "fixtures" / "door.toml"

#: Veto causes as a journal writes them: plain, with a quote, with a non-ASCII letter.
VETOES = [
    VETO_CAUSE_PREFIX + "the guard",
    VETO_CAUSE_PREFIX + 'the "locked" guard',
    VETO_CAUSE_PREFIX + "la clé",
]


def _refused_open(tmp_path: Path, cause: str | None) -> tuple[Path, int]:
    """A journal of door-1's refused (legal) ``open`` from its initial state, and its line."""
    journal = Journal()
    journal.describe_machine(load_spec(DOOR_FILE))
    journal.record("door", "door-1", "open", "closed", None, False, cause)
    path = tmp_path / "door.jsonl"
    journal.write(path)
    return path, len(path.read_text().splitlines())


@pytest.mark.parametrize("cause", VETOES)
def test_a_user_machines_legal_edge_refused_by_a_veto_is_lawful(tmp_path: Path, cause: str) -> None:
    path, _ = _refused_open(tmp_path, cause)
    assert audit(path).violations == []


@pytest.mark.parametrize("cause", [None, "no reason", 'refused by the "locked" guard'])
def test_a_user_machines_legal_edge_refused_without_a_veto_is_refused_was_legal(
    tmp_path: Path, cause: str | None
) -> None:
    path, line = _refused_open(tmp_path, cause)
    found = [(v.line, v.rule, v.subject, v.seq) for v in audit(path).violations]
    assert found == [(line, "refused-was-legal", "door-1", 1)]


@pytest.mark.parametrize("cause", VETOES)
def test_a_veto_does_not_excuse_a_refused_legal_edge_of_a_built_in_machine(
    tmp_path: Path, cause: str
) -> None:
    journal = Journal()
    journal.record("task", "A", "create", "registered", None, False, cause)
    path = tmp_path / "run.jsonl"
    journal.write(path)
    found = [(v.line, v.rule, v.subject, v.seq) for v in audit(path).violations]
    assert found == [(2, "refused-was-legal", "A", 1)]
