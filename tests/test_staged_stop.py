"""The staged stop: a dependency outlives everything ordered after it, within one deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import audit
from lifecycle.collection import Tasks
from lifecycle.errors import IllegalTransition, RegistrationClosed, StopTimeout
from lifecycle.graph import dependents
from lifecycle.service import Service
from lifecycle.spec import CollectionState, ServiceState, TaskState
from lifecycle.stopping import StopOrder, stop_layers
from lifecycle.task import SkipTask, Task
from tests.fakes import WAIT

C = CollectionState
T = TaskState


def stop_and_join(tasks: Tasks) -> list[Task]:
    tasks.stop()
    return tasks.join(WAIT)


def records(tasks: Tasks | Service, trigger: str) -> list[str]:
    return [
        r.subject
        for r in tasks.journal.records
        if r.ok and r.kind == "task" and r.trigger == trigger
    ]


def seq_of(tasks: Tasks | Service, subject: str, trigger: str) -> int:
    (seq,) = [
        r.seq
        for r in tasks.journal.records
        if r.ok and r.subject == subject and r.trigger == trigger
    ]
    return seq


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test: frees the workers a test abandoned past a deadline."""
    event = threading.Event()
    yield event
    event.set()


# -- the example -----------------------------------------------------------------------


def test_a_dependency_is_closed_only_after_its_dependent_finished_its_work() -> None:
    log: list[str] = []

    class Db(Task):
        LOOPLESS = True

        def on_stop(self) -> None:
            log.append("db closed")

    class Writer(Task):
        DEPS = (Db,)

        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)
            time.sleep(0.2)  # finishes in-flight work that still uses Db
            log.append("writer done")

    tasks = Tasks([Writer])
    tasks.create()
    tasks.init()
    tasks.start()
    assert stop_and_join(tasks) == []
    assert log == ["writer done", "db closed"]
    assert tasks.state == C.STOPPED
    assert audit.check(tasks.journal) == []


def test_a_chain_stops_each_on_stop_after_every_dependent_worker_exited() -> None:
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def note(what: str, name: str) -> None:
        with lock:
            events.append((what, name))

    class Slow(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)
            time.sleep(0.1)
            note("worker exited", self.name)

        def on_stop(self) -> None:
            note("on_stop", self.name)

    a = type("A", (Slow,), {})
    b = type("B", (Slow,), {"DEPS": (a,)})
    c = type("C", (Slow,), {"DEPS": (b,)})
    tasks = Tasks([c])
    tasks.create()
    tasks.init()
    tasks.start()
    assert stop_and_join(tasks) == []
    position = {event: i for i, event in enumerate(events)}
    for dependency, dependent in (("A", "B"), ("B", "C"), ("A", "C")):
        assert position[("worker exited", dependent)] < position[("on_stop", dependency)]
    assert records(tasks, "stop") == ["C", "B", "A"]
    assert audit.check(tasks.journal) == []


def test_one_hundred_independent_tasks_stop_together_in_one_layer() -> None:
    class Blocked(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)

    classes = [type(f"B{i}", (Blocked,), {}) for i in range(100)]
    tasks = Tasks(classes)
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    # Every stop began in the call itself, on the caller's thread, before any task ended.
    stops = [r for r in tasks.journal.records if r.ok and r.trigger == "stop" and r.kind == "task"]
    assert len(stops) == 100
    assert {r.thread for r in stops} == {threading.current_thread().name}
    assert tasks.join(WAIT) == []
    assert tasks.state == C.STOPPED


def test_a_stop_waits_for_what_is_ordered_after_it_through_a_crashed_task(
    release: threading.Event,
) -> None:
    # C requires B requires A; B crashes while C still works: A must wait for C all the same.
    release_c = release
    crashed = threading.Event()

    class A(Task):
        LOOPLESS = True

    class B(Task):
        DEPS = (A,)

        def run_loop(self) -> None:
            crashed.set()
            raise RuntimeError("B broke")

    class Cw(Task):
        DEPS = (B,)

        def run_loop(self) -> None:
            release_c.wait(WAIT)  # ignores stop until released

    tasks = Tasks([Cw])
    tasks.create()
    tasks.init()
    tasks.start()
    assert crashed.wait(WAIT)
    assert tasks.B.join(WAIT)
    tasks.stop()
    assert tasks.join(0.05) == [tasks.A, tasks.Cw]
    assert tasks.stragglers() == ["Cw"]
    assert tasks.state_of(A) == T.RUNNING  # still held back by C, through the failed B
    release_c.set()
    assert tasks.join(WAIT) == []
    assert seq_of(tasks, "Cw", "finish") < seq_of(tasks, "A", "stop")
    assert tasks.state == C.FAILED
    assert str(tasks.failure) == "B broke"
    assert audit.check(tasks.journal) == []


# -- the deadline --------------------------------------------------------------------------------


def test_a_dependent_stuck_past_the_deadline_is_named_and_its_dependencies_still_stop(
    release: threading.Event,
) -> None:
    closed: list[str] = []

    class Db(Task):
        LOOPLESS = True

        def on_stop(self) -> None:
            closed.append("db")

    class Stuck(Task):
        DEPS = (Db,)

        def run_loop(self) -> None:
            release.wait(WAIT)  # ignores stop_event

    class Svc(Service):
        TASKS = (Stuck,)

    service = Svc({"stop_timeout": 0.2})
    service.start()
    service.shutdown("test")
    assert service.wait(WAIT)
    assert service.state == ServiceState.FAILED and service.exit_code == 1
    assert isinstance(service.failure, StopTimeout)
    assert service.failure.tasks == ("Stuck",)
    assert closed == ["db"]
    (db_stop,) = [r for r in service.journal.records if r.subject == "Db" and r.trigger == "stop"]
    assert db_stop.cause is not None
    assert "StopTimeout" in db_stop.cause and "still running then: Stuck" in db_stop.cause
    assert service.tasks.state_of("Db") == T.STOPPED
    assert service.tasks.state_of("Stuck") == T.STOPPING
    assert audit.check(service.journal) == []


def test_after_giving_up_the_tasks_left_still_stop_in_order(release: threading.Event) -> None:
    order: list[str] = []

    class Bottom(Task):
        LOOPLESS = True

        def on_stop(self) -> None:
            order.append("Bottom")

    class Middle(Task):
        LOOPLESS = True
        DEPS = (Bottom,)

        def on_stop(self) -> None:
            time.sleep(0.05)
            order.append("Middle")

    class Stuck(Task):
        DEPS = (Middle,)

        def run_loop(self) -> None:
            release.wait(WAIT)

    tasks = Tasks([Stuck])
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    assert tasks.join(0.05) == [tasks.Bottom, tasks.Middle, tasks.Stuck]
    assert tasks.stragglers() == ["Stuck"]
    tasks.fail(StopTimeout(["Stuck"], 0.05))
    assert tasks.state == C.FAILED
    assert tasks.join(WAIT) == [tasks.Stuck]
    assert order == ["Middle", "Bottom"]
    assert seq_of(tasks, "Middle", "finish") < seq_of(tasks, "Bottom", "stop")
    assert audit.check(tasks.journal) == []


# -- registration and lookups --------------------------------------------------------------------


def test_wants_pulls_in_a_task_whose_skip_does_not_skip_its_wanter() -> None:
    class Soft(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            raise SkipTask("not configured")

    class User(Task):
        LOOPLESS = True
        WANTS = (Soft,)

    tasks = Tasks([User])
    assert tasks.task_classes == (Soft, User)
    tasks.create()
    tasks.init()
    assert tasks.state_of(Soft) == T.SKIPPED
    assert tasks.state_of(User) == T.INITIALIZED
    tasks.stop()


def test_registering_after_create_is_an_illegal_transition() -> None:
    class X(Task):
        LOOPLESS = True

    tasks = Tasks()
    tasks.create()
    for trigger, call in (("register", tasks.register), ("unregister", tasks.unregister)):
        with pytest.raises(IllegalTransition) as info:
            call(X)
        error = info.value
        assert isinstance(error, RegistrationClosed)
        assert (error.kind, error.subject, error.state, error.trigger, error.allowed) == (
            "collection",
            "tasks",
            "created",
            trigger,
            (),
        )


# -- the rule, for all graphs --------------------------------------------------------------------


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    """A random DAG: names in topological order, each with edges to earlier names."""
    count = draw(st.integers(min_value=1, max_value=8))
    names = [f"N{i}" for i in range(count)]
    before = {
        name: draw(st.lists(st.sampled_from(names[:i]), max_size=3, unique=True)) if i else []
        for i, name in enumerate(names)
    }
    return names, before


@given(graph=graphs(), data=st.data())
def test_a_task_may_stop_exactly_when_everything_ordered_after_it_ended(
    graph: tuple[list[str], dict[str, list[str]]], data: st.DataObject
) -> None:
    names, before = graph
    order = StopOrder(names, before)
    ended: set[str] = set()
    freed_so_far = set(order.free())
    for name in data.draw(st.permutations(names), label="end order"):
        freed_so_far |= set(order.end(name))
        ended.add(name)
        for candidate in names:
            after = dependents(candidate, before)
            assert order.may_stop(candidate) == (after <= ended), candidate
        # Whatever may stop and has not ended was reported free, at once.
        assert {n for n in names if order.may_stop(n) and n not in ended} <= freed_so_far


@given(graph=graphs())
def test_stop_layers_put_whatever_is_ordered_after_a_task_in_an_earlier_layer(
    graph: tuple[list[str], dict[str, list[str]]],
) -> None:
    names, before = graph
    layer = {n: i for i, group in enumerate(stop_layers(names, before)) for n in group}
    assert sorted(layer) == sorted(names)
    for name, firsts in before.items():
        for first in firsts:
            assert layer[name] < layer[first]


def test_giving_up_is_not_held_up_by_a_thread_waiting_in_join(release: threading.Event) -> None:
    class Stuck(Task):
        def run_loop(self) -> None:
            release.wait(WAIT)

    tasks = Tasks([Stuck])
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    joined: list[list[Task]] = []
    waiter = threading.Thread(target=lambda: joined.append(tasks.join()))
    waiter.start()
    try:
        assert tasks.stragglers() == ["Stuck"]
        tasks.fail(StopTimeout(["Stuck"], 0))  # returns although the waiter blocks in join
        assert tasks.state == C.FAILED
        # Nothing but the straggler given up on is left: the waiter returns it, running.
        waiter.join(WAIT)
        assert joined == [[tasks.Stuck]]
    finally:
        release.set()
    assert tasks.Stuck.join(WAIT)
    assert tasks.join(0) == []
