"""A malformed table, or a value that is not one of its states, is refused with an
`InvalidSpec` that names the table and, in its problem, what is wrong: whichever rule is
broken, whatever the table is called."""

from __future__ import annotations

import enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.errors import InvalidSpec
from lifecycle.spec import Edge, MachineSpec


class Light(enum.StrEnum):
    OFF = "off"
    ON = "on"
    BROKEN = "broken"


class Nothing(enum.StrEnum):
    pass


GOOD = (
    Edge("switch_on", ("off",), "on"),
    Edge("switch_off", ("on",), "off"),
    Edge("smash", ("off", "on"), "broken"),
)

#: Each rule a table can break: the fields that break it, and what the problem must name.
DEFECTS: dict[str, tuple[dict[str, object], tuple[str, ...]]] = {
    "no states": ({"states": Nothing, "initial": "x", "terminal": (), "transitions": ()}, ()),
    "unknown initial state": ({"initial": "dark"}, ("'dark'",)),
    "unknown terminal state": ({"terminal": ("broken", "gone")}, ("'gone'",)),
    "trigger not an identifier": (
        {"transitions": (*GOOD, Edge("switch on", ("off",), "on"))},
        ("'switch on'",),
    ),
    "empty trigger": ({"transitions": (*GOOD, Edge("", ("off",), "on"))}, ("''",)),
    "no source state": ({"transitions": (*GOOD, Edge("smash", (), "broken"))}, ("'smash'",)),
    "unknown destination": (
        {"transitions": (*GOOD, Edge("melt", ("on",), "molten"))},
        ("'melt'", "'molten'"),
    ),
    "unknown source": (
        {"transitions": (*GOOD, Edge("switch_on", ("dimmed",), "on"))},
        ("'switch_on'", "'dimmed'"),
    ),
    "terminal state with an exit": (
        {"transitions": (*GOOD, Edge("repair", ("broken",), "off"))},
        ("'broken'", "'repair'"),
    ),
    "two destinations": (
        {"transitions": (*GOOD, Edge("switch_on", ("off",), "broken"))},
        ("'switch_on'", "'off'", "'on'", "'broken'"),
    ),
    "unreachable state": (
        {"transitions": GOOD[:2]},
        ("'broken'", "'off'"),
    ),
    "trap state": (
        {"transitions": (Edge("switch_on", ("off",), "on"), Edge("smash", ("off",), "broken"))},
        ("'on'",),
    ),
}


def build(name: str, **fields: object) -> MachineSpec:
    given_fields: dict[str, object] = {
        "states": Light,
        "initial": "off",
        "terminal": ("broken",),
        "transitions": GOOD,
    }
    given_fields.update(fields)
    return MachineSpec(name, **given_fields)  # type: ignore[arg-type]


def test_the_good_table_is_accepted() -> None:
    assert build("light").next("off", "switch_on") == "on"


@pytest.mark.parametrize("defect", sorted(DEFECTS))
@given(name=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12))
def test_each_malformed_table_is_refused_naming_the_table_and_what_is_wrong(
    defect: str, name: str
) -> None:
    fields, named = DEFECTS[defect]
    with pytest.raises(InvalidSpec) as info:
        build(name, **fields)
    error = info.value
    assert error.spec == name
    for part in named:
        assert part in error.problem, (defect, error.problem)
    assert str(error) == f"invalid {name} spec: {error.problem}"


@given(name=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12))
def test_a_value_that_is_not_a_state_is_refused_naming_the_table_and_the_value(
    name: str,
) -> None:
    spec = build(name)
    assert spec.state("on") is Light.ON
    with pytest.raises(InvalidSpec) as info:
        spec.state("dimmed")
    assert (info.value.spec, info.value.problem) == (name, "'dimmed' is not a state")
