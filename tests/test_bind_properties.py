"""A hypothesis state machine for `lifecycle.bind`: hooks and guards that fail at random points.

Whatever fails where, the journal tells the truth: replaying it gives the live state, and its
refused records are exactly the illegal triggers and the vetoes, told apart by their cause.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lifecycle import IllegalTransition, Journal, TransitionVetoed, bind
from lifecycle.bind import binding_of, is_veto_cause
from lifecycle.testing.machines import replay
from tests.test_bind import DOOR

TRIGGERS = DOOR.triggers
STATES = [s.value for s in DOOR.states]
HOOKS = [
    *(f"guard_{t}" for t in TRIGGERS),
    *(f"before_{t}" for t in TRIGGERS),
    *(f"after_{t}" for t in TRIGGERS),
    *(f"on_exit_{s}" for s in STATES),
    *(f"on_enter_{s}" for s in STATES),
]
#: What a hook does: nothing, raise an Exception, raise a BaseException, or (guards) say no.
ACTIONS = ["ok", "raise", "interrupt", "refuse"]


class Interrupted(BaseException):
    """A BaseException that is not an Exception, like KeyboardInterrupt."""


def _hook(name: str) -> Any:
    def hook(self: Any) -> bool:
        action = self.plan.get(name, "ok")
        self.calls.append(name)
        if action == "raise":
            raise RuntimeError(name)
        if action == "interrupt":
            raise Interrupted(name)
        return action != "refuse"

    hook.__name__ = name
    return hook


def hooked_class(journal: Journal) -> type:
    namespace = {name: _hook(name) for name in HOOKS}
    return bind(DOOR, journal=journal, cond={t: f"guard_{t}" for t in TRIGGERS})(
        type("Haunted", (), namespace)
    )


class HauntedDoor(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.journal = Journal()
        self.door: Any = hooked_class(self.journal)()
        self.door.plan = {}
        self.door.calls = []
        self.expected = DOOR.initial
        self.vetoes = 0
        self.illegal = 0

    @rule(hook=st.sampled_from(HOOKS), action=st.sampled_from(ACTIONS))
    def plan(self, hook: str, action: str) -> None:
        self.door.plan[hook] = action

    @rule(trigger=st.sampled_from([*TRIGGERS, "slam"]))
    def fire(self, trigger: str) -> None:
        source = self.expected
        dest = DOOR.table.get((source, trigger))
        plan = self.door.plan
        if dest is None:
            with pytest.raises(IllegalTransition):
                self.door.fire(trigger)
            self.illegal += 1
            return
        veto_phase = [f"guard_{trigger}", f"before_{trigger}", f"on_exit_{source}"]
        after_phase = [f"on_enter_{dest}", f"after_{trigger}"]
        vetoed_by = next(
            (h for h in veto_phase if plan.get(h, "ok") != "ok" and
             (h.startswith("guard_") or plan[h] != "refuse")),
            None,
        )
        failing_after = next(
            (h for h in after_phase if plan.get(h, "ok") in ("raise", "interrupt")), None
        )
        if vetoed_by is not None:
            expected_error: type[BaseException] = (
                Interrupted if plan[vetoed_by] == "interrupt" else TransitionVetoed
            )
            with pytest.raises(expected_error):
                self.door.fire(trigger)
            self.vetoes += 1
            assert self.door.state == source
            return
        if failing_after is not None:
            expected_error = Interrupted if plan[failing_after] == "interrupt" else RuntimeError
            with pytest.raises(expected_error):
                self.door.fire(trigger)
        else:
            assert self.door.fire(trigger) == dest
        self.expected = dest
        assert self.door.state == dest

    @invariant()
    def the_journal_tells_the_truth(self) -> None:
        records = self.journal.records
        states, problems = replay(records, DOOR)
        assert problems == []
        name = binding_of(self.door).subject_of(self.door)
        assert states.get(name, DOOR.initial) == self.door.state == self.expected
        refused = [r for r in records if not r.ok]
        assert sum(is_veto_cause(r.cause) for r in refused) == self.vetoes
        assert sum(not is_veto_cause(r.cause) for r in refused) == self.illegal


TestHauntedDoor = HauntedDoor.TestCase
