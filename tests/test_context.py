"""`ExecuteContext`: ordering by item, the future's outcome, and the timer."""

from __future__ import annotations

import heapq
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle.context
from lifecycle.context import ExecuteContext

items = st.one_of(st.integers(), st.text(max_size=5))


class FakeClock:
    """Stands in for the `time` module inside `lifecycle.context`."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(lifecycle.context, "time", fake)
    return fake


def test_a_new_context_is_the_first_attempt_not_started() -> None:
    ctx = ExecuteContext("job")
    assert (ctx.item, ctx.attempt, ctx.future, ctx.started) == ("job", 1, None, None)
    assert ctx.elapsed == 0.0


@given(st.lists(st.integers(), max_size=20), st.data())
def test_contexts_sort_by_item_alone(values: list[int], data: st.DataObject) -> None:
    contexts = [
        ExecuteContext(v, attempt=data.draw(st.integers(1, 5)), future=Future()) for v in values
    ]
    assert [c.item for c in sorted(contexts)] == sorted(values)
    heap: list[ExecuteContext] = []
    for ctx in contexts:
        heapq.heappush(heap, ctx)
    assert [heapq.heappop(heap).item for _ in contexts] == sorted(values)


@given(items, items, st.integers(1, 5), st.integers(1, 5))
def test_comparisons_are_those_of_the_items(a: Any, b: Any, n: int, m: int) -> None:
    left, right = ExecuteContext(a, attempt=n), ExecuteContext(b, attempt=m, future=Future())
    assert (left == right) == (a == b)
    assert (left != right) == (a != b)
    if type(a) is type(b):
        assert (left < right) == (a < b)
        assert (left <= right) == (a <= b)
        assert (left > right) == (a > b)
        assert (left >= right) == (a >= b)
    else:
        with pytest.raises(TypeError):
            _ = left < right


def test_a_context_does_not_equal_or_order_against_other_objects() -> None:
    ctx = ExecuteContext(1)
    assert ctx != 1
    for compare in (
        lambda: ctx < 1,
        lambda: ctx <= 1,
        lambda: ctx > 1,
        lambda: ctx >= 1,
    ):
        with pytest.raises(TypeError):
            compare()


def test_contexts_are_unhashable_because_they_compare_by_a_mutable_item() -> None:
    with pytest.raises(TypeError):
        hash(ExecuteContext(1))


def test_start_marks_the_future_running_and_is_safe_to_repeat() -> None:
    future: Future[Any] = Future()
    ctx = ExecuteContext("x", future=future)
    ctx.start()
    assert future.running()
    ctx.start()  # a retry starts the timer again
    assert future.running()


def test_set_result_resolves_the_future_once() -> None:
    future: Future[Any] = Future()
    ctx = ExecuteContext("x", future=future)
    ctx.start()
    ctx.set_result(42)
    ctx.set_result(43)  # already done: ignored rather than InvalidStateError
    assert future.result(timeout=0) == 42
    ExecuteContext("no future").set_result(1)  # nothing to resolve


def test_set_exception_fails_the_future_and_says_whether_it_was_handled() -> None:
    error = ValueError("bad item")
    future: Future[Any] = Future()
    ctx = ExecuteContext("x", future=future)
    assert ctx.set_exception(error) is True
    assert future.exception(timeout=0) is error
    assert ctx.set_exception(KeyError("later")) is True  # observable, first outcome kept
    assert future.exception(timeout=0) is error
    assert ExecuteContext("no future").set_exception(error) is False


def test_a_cancelled_future_is_left_cancelled() -> None:
    future: Future[Any] = Future()
    future.cancel()
    ctx = ExecuteContext("x", future=future)
    ctx.start()
    ctx.set_result(1)
    assert future.cancelled()
    assert ctx.set_exception(ValueError("late")) is True
    assert future.cancelled()


def test_elapsed_counts_from_the_latest_start(clock: FakeClock) -> None:
    ctx = ExecuteContext("x")
    clock.now = 105.0
    assert ctx.elapsed == 0.0
    ctx.start()
    clock.now = 107.5
    assert ctx.elapsed == 2.5
    ctx.start()  # a retry restarts the timer
    assert ctx.elapsed == 0.0
    clock.now = 108.0
    assert ctx.elapsed == 0.5
