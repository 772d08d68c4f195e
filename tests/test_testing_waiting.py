"""`lifecycle.testing.wait_for_state`: event-driven waits on any lifecycle, with typed errors."""

from __future__ import annotations

import asyncio
import math
import pickle
import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import Journal, Lifecycle, LifecycleError, Service, Task, Tasks
from lifecycle.aio import AsyncTask
from lifecycle.errors import InvalidSpec
from lifecycle.spec import SPECS, TASK, CollectionState, ServiceState, TaskState
from lifecycle.testing import StateTimeout, StateUnreachable, WaitOnLoopThread, wait_for_state
from tests.fakes import WAIT

T = TaskState


def spy_on_subscriptions(journal: Journal) -> threading.Event:
    """An event set once something subscribed to ``journal`` (a waiter is listening)."""
    subscribed = threading.Event()
    original = journal.subscribe

    def subscribe(listener: Callable[..., object]) -> Callable[[], None]:
        undo = original(listener)
        subscribed.set()
        return undo

    journal.subscribe = subscribe  # type: ignore[method-assign]
    return subscribed


def wait_elsewhere(subject: object, state: str) -> tuple[threading.Thread, list[object]]:
    """``wait_for_state(subject, state, WAIT)`` on a thread; its result or error lands in the
    list."""
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(wait_for_state(subject, state, WAIT))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait, name="waiter")
    thread.start()
    return thread, outcome


def test_returns_at_once_when_the_subject_is_already_in_the_state() -> None:
    tasks = Tasks()
    assert wait_for_state(tasks, CollectionState.REGISTERING, 0) == "registering"
    assert wait_for_state(tasks.lifecycle, "registering", 0) is CollectionState.REGISTERING


def test_wakes_on_the_transition_made_by_a_worker_thread() -> None:
    go = threading.Event()

    class Brief(Task):
        def run_loop(self) -> None:
            go.wait(WAIT)

    tasks = Tasks([Brief])
    tasks.create()
    tasks.init()
    tasks.start()
    go.set()  # the worker returns unasked: its task finishes on the worker's thread
    assert wait_for_state(tasks.Brief, T.STOPPED, WAIT) is T.STOPPED
    tasks.stop()
    assert tasks.join(WAIT) == []


def test_a_state_held_only_for_an_instant_is_still_seen() -> None:
    journal = Journal()
    lc = Lifecycle(TASK, "t", journal)
    for trigger in ("create", "init", "start"):
        lc.fire(trigger)
    subscribed = spy_on_subscriptions(journal)
    waiter, outcome = wait_elsewhere(lc, "stopping")
    assert subscribed.wait(WAIT)
    lc.fire("stop")
    lc.fire("finish")  # most likely before the waiter wakes: it must still see "stopping"
    waiter.join(WAIT)
    assert outcome == [T.STOPPING]


def test_fails_fast_once_the_subject_ends_in_another_terminal_state() -> None:
    journal = Journal()
    lc = Lifecycle(TASK, "poller", journal)
    lc.fire("create")
    subscribed = spy_on_subscriptions(journal)
    waiter, outcome = wait_elsewhere(lc, "running")
    assert subscribed.wait(WAIT)
    lc.fire("skip")
    waiter.join(WAIT)
    # Raised on the skip record, long before WAIT: not a StateTimeout.
    (error,) = outcome
    assert isinstance(error, StateUnreachable) and not isinstance(error, TimeoutError)
    assert (error.subject, error.kind, error.wanted, error.state, error.terminal) == (
        "poller", "task", "running", "skipped", True
    )
    assert str(error) == "task 'poller' ended skipped, from which running cannot be reached"


def test_a_state_already_passed_is_unreachable_at_once() -> None:
    lc = Lifecycle(TASK, "t", Journal())
    for trigger in ("create", "init", "start", "stop"):
        lc.fire(trigger)
    with pytest.raises(StateUnreachable, match="task 't' is stopping, from which running"):
        wait_for_state(lc, "running", WAIT)


def test_the_timeout_error_names_the_subject_the_state_wanted_and_the_current_one() -> None:
    lc = Lifecycle(TASK, "poller", Journal())
    lc.fire("create")
    with pytest.raises(StateTimeout) as info:
        wait_for_state(lc, T.RUNNING, 0.01)
    error = info.value
    assert isinstance(error, LifecycleError) and isinstance(error, TimeoutError)
    assert (error.subject, error.kind, error.wanted, error.state, error.timeout) == (
        "poller", "task", "running", "created", 0.01
    )
    assert str(error) == "task 'poller' did not reach running within 0.01 s; it is created"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (StateTimeout, str(error))


def test_accepts_a_service_and_any_object_with_a_lifecycle() -> None:
    class Idle(Task):
        LOOPLESS = True

    class Svc(Service):
        TASKS = (Idle,)

    service = Svc()

    class Holder:
        lifecycle = service.tasks.lifecycle

    assert wait_for_state(service, ServiceState.NEW, 0) is ServiceState.NEW
    assert wait_for_state(Holder(), "registering", 0) is CollectionState.REGISTERING


@pytest.mark.parametrize(
    ("subject", "state", "timeout", "error", "match"),
    [
        (Tasks(), "asleep", 1.0, InvalidSpec, "'asleep' is not a state"),
        (object(), "running", 1.0, TypeError, "cannot wait on object"),
        (Tasks(), "registering", -1, ValueError, "finite seconds >= 0"),
        (Tasks(), "registering", math.nan, ValueError, "finite seconds >= 0"),
        (Tasks(), "registering", math.inf, ValueError, "finite seconds >= 0"),
        (Tasks(), "registering", True, TypeError, "timeout must be seconds"),
        (Tasks(), "registering", "1", TypeError, "timeout must be seconds"),
    ],
    ids=["unknown-state", "no-lifecycle", "negative", "nan", "inf", "bool", "str"],
)
def test_bad_arguments_raise_typed_errors(
    subject: object, state: str, timeout: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        wait_for_state(subject, state, timeout)  # type: ignore[arg-type]


def test_a_task_no_collection_created_says_so() -> None:
    class Loose(Task):
        LOOPLESS = True

    with pytest.raises(LifecycleError, match="was not created by a collection"):
        wait_for_state(Loose(), "running", 1.0)


def test_a_lifecycle_without_a_journal_is_refused_with_a_clear_error() -> None:
    lc = Lifecycle(TASK, "t", None)  # type: ignore[arg-type]
    with pytest.raises(LifecycleError, match="has no journal to watch"):
        wait_for_state(lc, "running", 1.0)


@st.composite
def walks(draw: st.DrawFn) -> tuple[object, list[str], str]:
    """A machine, a walk of legal triggers from its initial state, and any of its states."""
    spec = draw(st.sampled_from(list(SPECS.values())))
    state, walk = spec.initial, []
    for _ in range(draw(st.integers(0, 6))):
        allowed = spec.allowed(state)
        if not allowed:
            break
        trigger = draw(st.sampled_from(allowed))
        walk.append(trigger)
        state = spec.next(state, trigger)
    return spec, walk, draw(st.sampled_from([s.value for s in spec.states]))


def closure(table: object, state: str) -> set[str]:
    """The states reachable from ``state``, by iterating the table to a fixed point."""
    found = {state}
    while True:
        more = {dest for (source, _), dest in table.items() if source in found}  # type: ignore[attr-defined]
        if more <= found:
            return found
        found |= {str(d) for d in more}


@given(walks())
def test_with_no_time_left_the_answer_follows_the_table(
    walk: tuple[object, list[str], str],
) -> None:
    spec, triggers, wanted = walk
    lc = Lifecycle(spec, "subject", Journal())  # type: ignore[arg-type]
    for trigger in triggers:
        lc.fire(trigger)
    current = str(lc.state)
    if current == wanted:
        assert wait_for_state(lc, wanted, 0) == wanted
    elif wanted in closure(lc.spec.table, current):
        with pytest.raises(StateTimeout):
            wait_for_state(lc, wanted, 0)
    else:
        with pytest.raises(StateUnreachable):
            wait_for_state(lc, wanted, 0)
    assert str(lc.state) == current  # waiting changes nothing


# -- async tasks ---------------------------------------------------------------------------------


class _Beat(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class _Ping(AsyncTask):
    DEPS = (_Beat,)

    async def run_loop(self) -> None:
        await self.stop_event.wait()


class _Served(Service):
    TASKS = (_Ping,)


class _Serving:
    """A `_Served` service under `serve` on a loop of a thread of its own."""

    def __init__(self) -> None:
        self.service = _Served({"stop_timeout": 5.0})
        self.loop = asyncio.new_event_loop()
        self.codes: list[int] = []
        self.thread = threading.Thread(target=self._run, name="loop")

    def _run(self) -> None:
        try:
            self.codes.append(self.loop.run_until_complete(self.service.serve()))
        finally:
            self.loop.close()

    def on_loop(self, call: Callable[[], object]) -> object:
        """``call()`` on the loop's thread (inside a coroutine); its result or error."""

        async def probe() -> object:
            try:
                return call()
            except Exception as exc:
                return exc

        return asyncio.run_coroutine_threadsafe(probe(), self.loop).result(WAIT)

    def __enter__(self) -> _Serving:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.shutdown("the test is over")
        self.thread.join(WAIT)


def test_waits_on_an_async_task_and_its_served_service_from_another_thread() -> None:
    with _Serving() as serving:
        service = serving.service
        assert wait_for_state(service, ServiceState.RUNNING, WAIT) == ServiceState.RUNNING
        ping = service.tasks.get(_Ping)
        assert wait_for_state(ping, "running", WAIT) == T.RUNNING
        subscribed = spy_on_subscriptions(service.journal)
        thread, outcome = wait_elsewhere(ping, "stopped")
        assert subscribed.wait(WAIT)
        service.shutdown("done")
        thread.join(WAIT)
        assert outcome == [T.STOPPED]
    assert serving.codes == [0]


def test_on_the_loop_thread_of_its_subject_it_refuses_to_block_with_a_typed_error() -> None:
    with _Serving() as serving:
        service = serving.service
        wait_for_state(service, ServiceState.RUNNING, WAIT)
        ping, beat = service.tasks.get(_Ping), service.tasks.get(_Beat)
        for subject in (ping, beat, service, service.tasks):
            error = serving.on_loop(lambda s=subject: wait_for_state(s, "stopped", WAIT))
            assert isinstance(error, WaitOnLoopThread) and isinstance(error, LifecycleError)
            assert "was called on the thread of the event loop its code runs on" in str(error)
            assert error.wanted == "stopped"
        # Nothing to wait for: the answer comes without blocking, as anywhere.
        assert serving.on_loop(lambda: wait_for_state(ping, "running", WAIT)) == T.RUNNING
        assert isinstance(serving.on_loop(lambda: wait_for_state(ping, "stopped", 0)),
                          StateTimeout)
        assert isinstance(serving.on_loop(lambda: wait_for_state(ping, "registered", WAIT)),
                          StateUnreachable)
        # Still running: the refusal changed nothing.
        assert ping.running and service.state == ServiceState.RUNNING
    assert serving.codes == [0]


def test_wait_on_loop_thread_pickles_with_its_attributes() -> None:
    error = pickle.loads(pickle.dumps(WaitOnLoopThread("Ping", "task", "stopped")))
    assert (error.subject, error.kind, error.wanted) == ("Ping", "task", "stopped")
    assert str(error).startswith("wait_for_state(task 'Ping', stopped) was called on the thread")
