"""`StopOrder` and `stop_layers` against a direct model of the rule they keep: a task may
stop exactly when every task ordered after it, directly or not, has ended."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.stopping import StopOrder, stop_layers


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    """A topological order of up to 8 tasks and, for each, some of the tasks before it (and
    now and then a self-reference or an unknown name, which the order ignores)."""
    size = draw(st.integers(1, 8))
    order = [f"t{i}" for i in range(size)]
    before: dict[str, list[str]] = {}
    for i, name in enumerate(order):
        firsts: list[str] = draw(st.lists(st.sampled_from(order[:i]), unique=True)) if i else []
        odd: bool = draw(st.booleans())
        if odd:
            firsts.append(draw(st.sampled_from([name, "elsewhere"])))
        empty: bool = draw(st.booleans())
        if firsts or empty:
            before[name] = firsts
    return order, before


def _after(order: list[str], before: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """name -> the tasks ordered directly after it, in order."""
    return {
        name: [u for u in order if name in before.get(u, ()) and u != name] for name in order
    }


def _later(name: str, after: Mapping[str, list[str]]) -> set[str]:
    found: set[str] = set()
    stack = list(after[name])
    while stack:
        n = stack.pop()
        if n not in found:
            found.add(n)
            stack.extend(after[n])
    return found


@given(graphs(), st.data())
def test_a_task_may_stop_exactly_once_everything_ordered_after_it_ended(
    graph: tuple[list[str], dict[str, list[str]]], data: st.DataObject
) -> None:
    order, before = graph
    after = _after(order, before)
    stops = StopOrder(order, before)
    assert stops.names == tuple(order) and len(stops) == len(order)
    assert all(name in stops for name in order) and "elsewhere" not in stops
    assert [stops.position(name) for name in order] == list(range(len(order)))
    ended: set[str] = set()

    def may(name: str) -> bool:
        return _later(name, after) <= ended

    def released(name: str) -> bool:
        return name in ended and all(released(u) for u in after[name])

    def check() -> None:
        assert stops.unended == len(order) - len(ended)
        for name in order:
            assert stops.may_stop(name) is may(name), name
            assert stops.blockers(name) == [u for u in after[name] if not released(u)], name
        assert stops.free() == [n for n in reversed(order) if may(n) and n not in ended]

    check()
    for name in data.draw(st.permutations(order)):
        free_before = {n for n in order if may(n) and n not in ended}
        freed = stops.end(name)
        ended.add(name)
        free_now = {n for n in order if may(n) and n not in ended}
        assert list(freed) == sorted(free_now - free_before, key=order.index, reverse=True)
        assert list(stops.end(name)) == []  # ending twice changes nothing
        check()


def test_an_unknown_name_is_a_key_error_everywhere() -> None:
    stops = StopOrder(["a", "b"], {"b": ["a"]})
    for call in (stops.end, stops.blockers, stops.position, stops.may_stop):
        with pytest.raises(KeyError):
            call("nope")


def test_a_task_that_ended_early_holds_back_what_it_is_ordered_after() -> None:
    stops = StopOrder(["db", "cache", "web"], {"cache": ["db"], "web": ["cache"]})
    assert stops.end("cache") == ()  # crashed first: web still runs and uses it
    assert not stops.may_stop("db")
    assert stops.blockers("db") == ["cache"]
    assert list(stops.end("web")) == ["db"]  # web ended: cache released, so db may stop
    assert stops.blockers("db") == []


@given(graphs())
def test_stop_layers_put_each_task_one_layer_past_the_latest_task_ordered_after_it(
    graph: tuple[list[str], dict[str, list[str]]],
) -> None:
    order, before = graph
    after = _after(order, before)
    layers = stop_layers(order, before)
    assert sorted(n for layer in layers for n in layer) == sorted(order)
    assert all(layers)
    depth = {name: i for i, layer in enumerate(layers) for name in layer}
    for name in order:
        expected = 1 + max((depth[u] for u in after[name]), default=-1)
        assert depth[name] == expected, name
    for layer in layers:
        assert layer == sorted(layer, key=order.index, reverse=True)
