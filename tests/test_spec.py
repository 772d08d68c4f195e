"""The tables as data: lookups, validation of malformed tables, and the JSON description."""

from __future__ import annotations

import enum
import itertools
import json
import pickle
from collections import deque

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from lifecycle.errors import IllegalTransition, InvalidSpec
from lifecycle.spec import (
    COLLECTION,
    SERVICE,
    SPEC_SCHEMA_VERSION,
    SPECS,
    TASK,
    Edge,
    MachineSpec,
)
from tests.strategies import edge_set, paths_to_states

ALL_SPECS = [TASK, COLLECTION, SERVICE]
spec_params = pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.name)


def every_pair(spec: MachineSpec) -> list[tuple[str, str]]:
    return [(s.value, t) for s in spec.states for t in spec.triggers]


class Light(enum.StrEnum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


def light(
    *edges: Edge, terminal: tuple[str, ...] = ("broken",), initial: str = "off"
) -> MachineSpec:
    return MachineSpec(
        name="light", states=Light, initial=initial, terminal=terminal, transitions=edges
    )


GOOD_LIGHT = (
    Edge("switch_on", ("off",), "on"),
    Edge("switch_off", ("on",), "off"),
    Edge("smash", ("off", "on"), "broken"),
)


# -- the three tables ----------------------------------------------------------------------


def test_specs_maps_each_name_to_its_table() -> None:
    assert dict(SPECS) == {"task": TASK, "collection": COLLECTION, "service": SERVICE}


@spec_params
def test_table_is_the_edges_of_the_declaration(spec: MachineSpec) -> None:
    assert dict(spec.table) == edge_set(spec)


@spec_params
def test_next_is_legal_exactly_for_the_pairs_in_the_table(spec: MachineSpec) -> None:
    table = edge_set(spec)
    for state, trigger in every_pair(spec):
        if (state, trigger) in table:
            assert spec.next(state, trigger) == table[(state, trigger)]
        else:
            with pytest.raises(IllegalTransition) as info:
                spec.next(state, trigger, subject="who")
            err = info.value
            assert (err.subject, err.kind, err.state, err.trigger) == (
                "who",
                spec.name,
                state,
                trigger,
            )
            assert err.allowed == spec.allowed(state)


@spec_params
def test_allowed_lists_the_triggers_of_a_state_in_declaration_order(spec: MachineSpec) -> None:
    for state in spec.states:
        expected = [t for t in spec.triggers if (state.value, t) in edge_set(spec)]
        assert list(spec.allowed(state)) == expected


@spec_params
def test_terminal_states_accept_nothing_and_every_other_state_has_an_exit(
    spec: MachineSpec,
) -> None:
    for state in spec.states:
        assert (spec.allowed(state) == ()) == spec.is_terminal(state)


@spec_params
def test_every_state_is_reachable_from_the_initial_state(spec: MachineSpec) -> None:
    assert set(paths_to_states(spec)) == {s.value for s in spec.states}


@spec_params
def test_every_state_can_reach_a_terminal_state(spec: MachineSpec) -> None:
    # The validator's "no trap" rule, checked globally: nothing can loop forever without an
    # exit to a terminal state.
    reverse: dict[str, set[str]] = {}
    for source, _, dest in spec.edges():
        reverse.setdefault(dest, set()).add(source)
    seen = set(spec.terminal)
    queue = deque(spec.terminal)
    while queue:
        for source in reverse.get(queue.popleft(), ()):
            if source not in seen:
                seen.add(source)
                queue.append(source)
    assert seen == {s.value for s in spec.states}


@spec_params
def test_triggers_are_listed_once_in_declaration_order(spec: MachineSpec) -> None:
    declared = [e.trigger for e in spec.transitions]
    assert list(spec.triggers) == list(dict.fromkeys(declared))


@spec_params
def test_state_turns_a_value_into_the_enum_member_or_raises_invalid_spec(
    spec: MachineSpec,
) -> None:
    for member in spec.states:
        assert spec.state(member.value) is member
    with pytest.raises(InvalidSpec, match="'nonsense' is not a state"):
        spec.state("nonsense")


@spec_params
def test_unknown_state_or_trigger_is_illegal_not_a_crash(spec: MachineSpec) -> None:
    with pytest.raises(IllegalTransition) as info:
        spec.next("nonsense", spec.triggers[0])
    assert info.value.allowed == ()
    with pytest.raises(IllegalTransition):
        spec.next(spec.initial, "to_" + spec.initial)


@spec_params
def test_to_dict_is_json_with_the_documented_schema(spec: MachineSpec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    assert set(data) == {"name", "states", "initial", "terminal", "transitions"}
    assert data["states"] == [s.value for s in spec.states]
    assert data["initial"] == spec.initial
    assert set(data["terminal"]) == set(spec.terminal)
    for row in data["transitions"]:
        assert set(row) == {"trigger", "sources", "dest", "when"}
        assert row["when"]
    assert SPEC_SCHEMA_VERSION == 1


@spec_params
def test_to_dict_describes_the_same_machine(spec: MachineSpec) -> None:
    data = spec.to_dict()
    rebuilt = MachineSpec(
        name=data["name"],
        states=spec.states,
        initial=data["initial"],
        terminal=data["terminal"],
        transitions=[
            Edge(r["trigger"], r["sources"], r["dest"], r["when"]) for r in data["transitions"]
        ],
    )
    assert rebuilt == spec
    assert dict(rebuilt.table) == dict(spec.table)


@spec_params
def test_specs_are_hashable_and_picklable(spec: MachineSpec) -> None:
    assert hash(spec) == hash(spec)
    assert pickle.loads(pickle.dumps(spec)) == spec


# -- validation ----------------------------------------------------------------------------


def test_a_well_formed_custom_table_is_accepted() -> None:
    spec = light(*GOOD_LIGHT)
    assert spec.next("off", "switch_on") == "on"
    assert spec.allowed("on") == ("switch_off", "smash")


def test_invalid_spec_for_an_unknown_destination_state() -> None:
    with pytest.raises(InvalidSpec) as info:
        light(*GOOD_LIGHT, Edge("melt", ("on",), "molten"))
    assert info.value.spec == "light"
    assert "'molten'" in info.value.problem and "unknown state" in info.value.problem


def test_invalid_spec_for_an_unknown_source_state() -> None:
    with pytest.raises(InvalidSpec, match="unknown state 'dimmed'"):
        light(*GOOD_LIGHT, Edge("switch_on", ("dimmed",), "on"))


def test_invalid_spec_for_an_unknown_initial_or_terminal_state() -> None:
    with pytest.raises(InvalidSpec, match="initial state 'dark' is not a state"):
        light(*GOOD_LIGHT, initial="dark")
    with pytest.raises(InvalidSpec, match="terminal state 'gone' is not a state"):
        light(*GOOD_LIGHT, terminal=("broken", "gone"))


def test_invalid_spec_for_two_destinations_of_one_state_and_trigger() -> None:
    with pytest.raises(InvalidSpec) as info:
        light(*GOOD_LIGHT, Edge("switch_on", ("off",), "broken"))
    assert "two destinations" in info.value.problem
    assert "'on'" in info.value.problem and "'broken'" in info.value.problem


def test_repeating_an_edge_with_the_same_destination_is_not_ambiguous() -> None:
    spec = light(*GOOD_LIGHT, Edge("switch_on", ("off",), "on"))
    assert spec.next("off", "switch_on") == "on"


def test_invalid_spec_for_an_unreachable_state() -> None:
    with pytest.raises(InvalidSpec, match="'broken' is unreachable from 'off'"):
        light(Edge("switch_on", ("off",), "on"), Edge("switch_off", ("on",), "off"))


def test_invalid_spec_for_a_trap_state() -> None:
    # "on" is reachable and not terminal, but nothing leaves it.
    with pytest.raises(InvalidSpec, match="'on' is a trap"):
        light(Edge("switch_on", ("off",), "on"), Edge("smash", ("off",), "broken"))


def test_invalid_spec_for_a_terminal_state_with_an_exit() -> None:
    with pytest.raises(InvalidSpec, match="terminal state 'broken' has an exit"):
        light(*GOOD_LIGHT, Edge("repair", ("broken",), "off"))


def test_invalid_spec_for_a_trigger_that_is_not_an_identifier_or_has_no_source() -> None:
    with pytest.raises(InvalidSpec, match="not an identifier"):
        light(*GOOD_LIGHT, Edge("switch on", ("off",), "on"))
    with pytest.raises(InvalidSpec, match="has no source state"):
        light(*GOOD_LIGHT, Edge("smash", (), "broken"))


def test_invalid_spec_for_a_machine_without_states() -> None:
    class Nothing(enum.StrEnum):
        pass

    with pytest.raises(InvalidSpec, match="no states"):
        MachineSpec(name="empty", states=Nothing, initial="x", terminal=(), transitions=())


def test_invalid_spec_is_a_value_error_naming_the_spec() -> None:
    with pytest.raises(ValueError, match="invalid light spec"):
        light(*GOOD_LIGHT, Edge("repair", ("broken",), "off"))


class Five(enum.StrEnum):
    A = "a"
    B = "b"
    C = "c"
    D = "d"
    E = "e"


FIVE = [s.value for s in Five]
TRIGGERS = ["go", "back", "end", "retry"]
Rows = list[tuple[str, list[str], str]]


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, set[str], Rows]:
    """A table over `Five`: random rows, or a well-formed table that may get one defect."""
    if draw(st.booleans()):
        initial = draw(st.sampled_from(FIVE))
        terminal = draw(st.sets(st.sampled_from(FIVE), max_size=3))
        anything = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(TRIGGERS),
                    st.lists(st.sampled_from(FIVE), min_size=1, max_size=3, unique=True),
                    st.sampled_from(FIVE),
                ),
                max_size=10,
            )
        )
        return initial, terminal, anything
    # Well-formed: a random spanning tree from the initial state, every non-terminal state
    # given an exit, each (state, trigger) used once.
    order = draw(st.permutations(FIVE))
    ends = draw(st.integers(min_value=1, max_value=3))
    terminal = set(order[-ends:])
    rows: Rows = []
    used: dict[str, list[str]] = {s: [] for s in FIVE}

    def add(source: str, dest: str) -> None:
        free = [t for t in TRIGGERS if t not in used[source]]
        trigger = draw(st.sampled_from(free))
        used[source].append(trigger)
        rows.append((trigger, [source], dest))

    for index, state in enumerate(order[1:], start=1):
        parents = [s for s in order[:index] if s not in terminal]
        add(draw(st.sampled_from(parents)), state)
    for state in order:
        if state not in terminal and not used[state]:
            add(state, draw(st.sampled_from(order)))
    defect = draw(st.sampled_from(["none", "conflict", "exit", "trap", "drop", "extra", "none"]))
    if defect == "conflict":
        trigger, (source,), dest = draw(st.sampled_from(rows))
        rows.append((trigger, [source], draw(st.sampled_from([s for s in FIVE if s != dest]))))
    elif defect == "exit":
        rows.append(("retry", [draw(st.sampled_from(sorted(terminal)))], order[0]))
    elif defect == "trap":
        # A terminal state that is no longer declared terminal: reachable, and no exit.
        terminal.discard(draw(st.sampled_from(sorted(terminal))))
    elif defect == "drop":
        rows.pop(draw(st.integers(min_value=0, max_value=len(rows) - 1)))
    elif defect == "extra":
        rows.append(
            (
                draw(st.sampled_from(TRIGGERS)),
                [draw(st.sampled_from(FIVE))],
                draw(st.sampled_from(FIVE)),
            )
        )
    return order[0], terminal, rows


def independent_problems(initial: str, terminal: set[str], rows: Rows) -> list[str]:
    """What is wrong with a table, judged without `lifecycle.spec`'s validator."""
    problems = []
    table: dict[tuple[str, str], set[str]] = {}
    for trigger, sources, dest in rows:
        for source in sources:
            table.setdefault((source, trigger), set()).add(dest)
            if source in terminal:
                problems.append("terminal exit")
    if any(len(d) > 1 for d in table.values()):
        problems.append("two destinations")
    reached = {initial}
    changed = True
    while changed:
        changed = False
        for (source, _), dests in table.items():
            if source in reached and not dests <= reached:
                reached |= dests
                changed = True
    if reached != set(FIVE):
        problems.append("unreachable")
    exits = {source for source, _ in table}
    if any(s not in terminal and s not in exits for s in FIVE):
        problems.append("trap")
    return problems


@given(tables())
def test_validator_accepts_exactly_the_well_formed_tables(
    table: tuple[str, set[str], Rows],
) -> None:
    initial, terminal, rows = table
    problems = independent_problems(initial, terminal, rows)
    event("valid" if not problems else "invalid: " + problems[0])
    edges = [Edge(t, tuple(s), d) for t, s, d in rows]
    if problems:
        with pytest.raises(InvalidSpec):
            MachineSpec("five", Five, initial, terminal, edges)
    else:
        spec = MachineSpec("five", Five, initial, terminal, edges)
        for state, trigger in itertools.product(FIVE, TRIGGERS):
            dests = {d for t, s, d in rows if t == trigger and state in s}
            if dests:
                assert spec.next(state, trigger) == dests.pop()
            else:
                with pytest.raises(IllegalTransition):
                    spec.next(state, trigger)
