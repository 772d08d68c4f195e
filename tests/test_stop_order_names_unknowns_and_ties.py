"""`StopOrder` whatever the tasks are called: an unknown name is a `KeyError` carrying that
name, and the tasks one end frees come last in the order first, never by their names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.stopping import StopOrder

NAMES = ("oak", "ash", "yew", "elm", "fir", "bay", "box", "fig")


def test_an_unknown_name_is_a_key_error_that_carries_the_name() -> None:
    stops = StopOrder(["a", "b"], {"b": ["a"]})
    for call in (stops.end, stops.blockers, stops.position, stops.may_stop):
        with pytest.raises(KeyError) as info:
            call("nope")
        assert info.value.args == ("nope",), call


def test_the_tasks_one_end_frees_come_last_in_order_first_not_by_name() -> None:
    # "zinc" and "yarn" both serve "top"; their names sort the other way round from the order.
    stops = StopOrder(["zinc", "yarn", "top"], {"top": ["zinc", "yarn"]})
    assert list(stops.end("top")) == ["yarn", "zinc"]


@given(st.permutations(NAMES), st.data())
def test_one_end_frees_its_tasks_last_in_order_first_whatever_their_names(
    names: list[str], data: st.DataObject
) -> None:
    # A star: the last task is ordered after all the others, which have nothing between them,
    # so its end frees every other task at once.
    size = data.draw(st.integers(3, len(names)), label="size")
    order = names[:size]
    *firsts, last = order
    stops = StopOrder(order, {last: data.draw(st.permutations(firsts), label="listed as")})
    assert stops.free() == [last]
    assert list(stops.end(last)) == list(reversed(firsts))
