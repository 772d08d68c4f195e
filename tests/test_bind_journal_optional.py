"""``journal=None``: a `Lifecycle` (and a bound object, see test_bind.py) records nothing and is
exactly as strict."""

from __future__ import annotations

import pytest

from lifecycle.engine import Lifecycle
from lifecycle.errors import IllegalTransition
from lifecycle.spec import COLLECTION, SERVICE, TASK, MachineSpec


@pytest.mark.parametrize("spec", [TASK, COLLECTION, SERVICE], ids=lambda s: s.name)
def test_a_lifecycle_without_a_journal_fires_and_refuses_like_one_with(spec: MachineSpec) -> None:
    lc = Lifecycle(spec, "subject", None)
    assert lc.journal is None
    state = spec.state(spec.initial)
    for trigger in spec.allowed(state):
        if spec.table[(state, trigger)] not in spec.terminal:
            assert lc.fire(trigger) == spec.table[(state, trigger)]
            break
    before = lc.state
    with pytest.raises(IllegalTransition) as info:
        lc.fire("no_such_trigger")
    assert info.value.state == before
    assert lc.state == before


def test_a_lifecycle_without_a_journal_still_calls_on_terminal() -> None:
    seen: list[tuple[str, str]] = []
    lc = Lifecycle(SERVICE, "svc", None, on_terminal=lambda s, d: seen.append((s, d)))
    for trigger in ("start", "started", "stop", "finish"):
        lc.fire(trigger)
    assert seen == [("svc", "stopped")]
