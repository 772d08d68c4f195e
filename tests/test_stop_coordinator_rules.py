"""`StopCoordinator` against a model collection: which stops it begins, when, in what order,
and what it reports, as tasks end, as news arrives in batches, and once it gives up."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from hypothesis import given
from hypothesis import strategies as st

from lifecycle.stopping import StopCoordinator
from tests.fakes import WAIT

Result = TypeVar("Result")
NAMES = ("oak", "ash", "yew", "elm", "fir", "bay", "box", "fig")


class Model:
    """The collection a coordinator drives: tasks end when the test says so, each end is
    posted to the news (as the collection does from the task's terminal record), and every
    stop begun is noted with its cause. Checks, at each begin, the rule the coordinator
    keeps until it gives up or is forced (``rule``): a task's stop begins only once every
    task ordered after it has ended. No stop begins twice."""

    def __init__(self, order: Sequence[str], before: Mapping[str, Sequence[str]]) -> None:
        self.after = {n: [u for u in order if n in before.get(u, ()) and u != n] for n in order}
        self.news: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.ended: set[str] = set()
        self.begun: list[str] = []
        self.causes: dict[str, str | None] = {}
        self.rule = True
        self.coordinator = StopCoordinator(
            order, before, is_ended=self.ended.__contains__, begin=self.begin, news=self.news
        )

    def later(self, name: str) -> set[str]:
        """Every task ordered after ``name``, directly or not."""
        found: set[str] = set()
        stack = list(self.after[name])
        while stack:
            n = stack.pop()
            if n not in found:
                found.add(n)
                stack.extend(self.after[n])
        return found

    def may_stop(self, name: str) -> bool:
        return self.later(name) <= self.ended

    def begin(self, name: str, cause: str | None) -> None:
        assert name not in self.causes, f"{name} begun twice"
        early = self.later(name) - self.ended
        assert not self.rule or not early, f"{name} begun before {sorted(early)} ended"
        self.begun.append(name)
        self.causes[name] = cause

    def end(self, name: str) -> None:
        self.ended.add(name)
        self.news.put(name)

    def begins_of(self, call: Callable[[], Result]) -> tuple[Result, list[str]]:
        """What ``call()`` returned, and the stops it began."""
        first = len(self.begun)
        result = call()
        return result, self.begun[first:]


def _past() -> float:
    """A deadline that has passed: `drive` acts on the news queued and returns at once."""
    return time.monotonic()


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    """Up to 8 tasks in a topological order whose names sort unlike it, each ordered after
    some of the tasks before it."""
    size = draw(st.integers(1, len(NAMES)))
    order = draw(st.permutations(NAMES))[:size]
    before = {
        name: draw(st.lists(st.sampled_from(order[:i]), max_size=3, unique=True))
        for i, name in enumerate(order)
        if i
    }
    return order, before


@given(graphs(), st.data())
def test_every_stop_begins_once_as_soon_as_the_news_frees_it_last_in_order_first(
    graph: tuple[list[str], dict[str, list[str]]], data: st.DataObject
) -> None:
    order, before = graph
    model = Model(order, before)
    position = order.index
    for name in data.draw(st.lists(st.sampled_from(order), unique=True), label="crashed first"):
        model.end(name)  # ended before the stop: a crash
    coordinator = model.coordinator

    def check(begun_now: list[str]) -> None:
        # Whatever the news made free began, in one go, last in order first.
        assert begun_now == sorted(begun_now, key=position, reverse=True)
        for name in order:
            if model.may_stop(name) and name not in model.ended:
                assert name in model.begun, name
        assert coordinator.pending() == [n for n in order if n not in model.ended]

    check(model.begins_of(coordinator.start)[1])
    while len(model.ended) < len(order):
        unended = [n for n in order if n not in model.ended]
        batch = data.draw(
            st.lists(st.sampled_from(unended), min_size=1, unique=True), label="these end"
        )
        for name in batch:
            if data.draw(st.booleans(), label="other news first"):
                model.news.put(data.draw(st.sampled_from([None, "elsewhere"]), label="news"))
            model.end(name)
        left, begun_now = model.begins_of(lambda: coordinator.drive(_past()))
        check(begun_now)
        assert left == [n for n in order if n not in model.ended]


def test_a_bare_wake_up_queued_before_an_end_does_not_hide_that_end() -> None:
    model = Model(["db", "web"], {"web": ["db"]})
    model.coordinator.start()
    assert model.begun == ["web"]
    model.news.put(None)
    model.end("web")
    assert model.coordinator.drive(_past()) == ["db"]
    assert model.begun == ["web", "db"]


def test_news_of_a_task_outside_the_order_is_ignored_and_what_follows_still_counts() -> None:
    # The news is shared: a task that is not part of this stop (outside a restart's chain)
    # may be named in it, before the end this stop waits for.
    model = Model(["db", "web"], {"web": ["db"]})
    model.coordinator.start()
    model.news.put("elsewhere")
    model.end("web")
    assert model.coordinator.drive(_past()) == ["db"]
    assert model.begun == ["web", "db"]


def test_ends_read_together_begin_everything_they_free() -> None:
    # Two chains, each ending in one read of the news: both of their dependencies stop.
    model = Model(["db", "queue", "web", "worker"], {"web": ["db"], "worker": ["queue"]})
    model.coordinator.start()
    assert model.begun == ["worker", "web"]
    model.end("web")
    model.end("worker")
    assert model.coordinator.drive(_past()) == ["db", "queue"]
    assert model.begun == ["worker", "web", "queue", "db"]


def test_pending_names_the_tasks_not_ended_in_order() -> None:
    model = Model(["c", "b", "a"], {})
    model.end("b")
    assert model.coordinator.pending() == ["c", "a"]
    model.coordinator.start()
    assert model.begun == ["a", "c"]
    assert model.coordinator.drive(_past()) == ["c", "a"]  # the deadline passed first


def test_force_begins_every_stop_not_begun_yet_last_in_order_first() -> None:
    model = Model(["db", "cache", "web"], {"cache": ["db"], "web": ["cache"]})
    model.coordinator.start()
    assert model.begun == ["web"]
    model.rule = False  # forcing breaks the rule on purpose (the deadline passed)
    model.coordinator.force()
    assert model.begun == ["web", "cache", "db"]
    model.coordinator.force()  # nothing left to begin
    assert model.begun == ["web", "cache", "db"]


def test_giving_up_begins_what_the_stragglers_held_back_last_in_order_first() -> None:
    model = Model(["db", "queue", "web", "worker"], {"web": ["db"], "worker": ["queue"]})
    coordinator = model.coordinator
    coordinator.start()
    assert model.begun == ["worker", "web"]
    model.rule = False  # giving up begins stops the stragglers still hold back
    assert coordinator.give_up("the deadline passed") == ["web", "worker"]
    assert coordinator.gave_up
    assert model.begun == ["worker", "web", "queue", "db"]
    cause = "stopped after the deadline passed; still running then: web, worker"
    assert model.causes == {"worker": None, "web": None, "queue": cause, "db": cause}


def test_giving_up_is_not_stopped_short_by_an_end_not_read_yet() -> None:
    # "cache" ended, but its news has not been read when the coordinator gives up on "web":
    # "cache" is free and begun already, and must not keep "db", which "web" held, waiting.
    model = Model(["db", "web", "cache"], {"web": ["db"]})
    coordinator = model.coordinator
    coordinator.start()
    assert model.begun == ["cache", "web"]
    model.end("cache")
    model.rule = False  # giving up begins stops the stragglers still hold back
    assert coordinator.give_up("the deadline passed") == ["web"]
    assert model.begun == ["cache", "web", "db"]
    assert model.causes["db"] == "stopped after the deadline passed; still running then: web"


def test_giving_up_with_no_straggler_says_none_was_running() -> None:
    # "web" ended, its news not read yet: nothing is running when the coordinator gives up.
    model = Model(["db", "web"], {"web": ["db"]})
    coordinator = model.coordinator
    coordinator.start()
    model.end("web")
    assert coordinator.give_up("the deadline passed") == []
    assert coordinator.drive(_past()) == ["db"]
    assert model.begun == ["web", "db"]
    assert model.causes["db"] == "stopped after the deadline passed; still running then: none"


def test_after_giving_up_drive_returns_once_the_others_ended_naming_the_stragglers() -> None:
    model = Model(["db", "web"], {"web": ["db"]})
    coordinator = model.coordinator
    coordinator.start()
    model.rule = False  # giving up begins stops the stragglers still hold back
    assert coordinator.give_up("the deadline passed") == ["web"]
    assert model.begun == ["web", "db"]
    model.end("db")
    # The end of "db" is all it waits for; "web" still runs, and is named.
    assert coordinator.drive(time.monotonic() + WAIT) == ["web"]
    assert coordinator.stragglers() == ["web"]
