"""`Tasks`: registration, ordering, skips, init and stop errors, workers, lookups."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle.collection import REGISTERED, Tasks
from lifecycle.errors import (
    DependencyCycle,
    DuplicateTask,
    IllegalTransition,
    InitError,
    InvalidTask,
    LifecycleError,
    RegistrationClosed,
    StopError,
    UnknownTask,
)
from lifecycle.journal import Journal, Transition, read_journal
from lifecycle.spec import CollectionState, TaskState
from lifecycle.task import SkipTask, Task
from lifecycle.testing import wait_for_state
from tests.strategies import replay, sequence_problems

C = CollectionState
T = TaskState

#: How long a worker waits for stop_event before it gives up on its own.
WORKER_DEADLINE = 5.0


class FakeService:
    """Records shutdown requests from crashing workers."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.asked = threading.Event()

    def shutdown(self, reason: str) -> None:
        self.reasons.append(reason)
        self.asked.set()


class Idle(Task):
    """A threaded task that works until stop is requested (with a deadline)."""

    def run_loop(self) -> None:
        self.stop_event.wait(WORKER_DEADLINE)


class Static(Task):
    LOOPLESS = True


def ok_records(tasks: Tasks, trigger: str, kind: str = "task") -> list[str]:
    return [
        r.subject for r in tasks.journal.records if r.ok and r.kind == kind and r.trigger == trigger
    ]


def record_of(tasks: Tasks, subject: str, trigger: str) -> Transition:
    (rec,) = [
        r for r in tasks.journal.records if r.ok and r.subject == subject and r.trigger == trigger
    ]
    return rec


def journal_agrees(tasks: Tasks) -> None:
    states, problems = replay(tasks.journal.records)
    assert problems == []
    assert sequence_problems(tasks.journal.records) == []
    assert states.get(("collection", tasks.name), "registering") == tasks.state
    for cls in tasks.task_classes:
        name = cls.__name__
        assert states.get(("task", name), "registered") == tasks.state_of(name)


@pytest.fixture
def stopper() -> Iterator[list[Tasks]]:
    """Collections to stop and join at the end of a test, whatever happened in it."""
    made: list[Tasks] = []
    yield made
    for tasks in made:
        if tasks.lifecycle.can("stop"):
            tasks.stop()
        with contextlib.suppress(StopError):
            tasks.join(WORKER_DEADLINE)


# -- registration --------------------------------------------------------------------------


def test_registering_a_class_registers_its_deps_first() -> None:
    class Db(Static):
        pass

    class Cache(Static):
        DEPS = (Db,)

    class Web(Static):
        DEPS = (Cache, Db)

    tasks = Tasks([Web])
    assert tasks.task_classes == (Db, Cache, Web)
    assert tasks.journal.tasks["Web"]["deps"] == ["Cache", "Db"]


def test_registering_the_same_class_twice_is_a_no_op() -> None:
    class A(Static):
        pass

    class B(Static):
        DEPS = (A,)

    tasks = Tasks([B])
    assert tasks.register(A) is A
    tasks.register_all([B, A, B])
    assert tasks.task_classes == (A, B)
    assert len(tasks.journal.records) == 0


def make_named(name: str, **attrs: object) -> type[Task]:
    return type(name, (Static,), dict(attrs))


def test_two_classes_with_one_name_raise_duplicate_task_and_register_nothing() -> None:
    first = make_named("Worker")
    second = make_named("Worker")
    second.__qualname__ = "elsewhere.Worker"
    needs_second = make_named("Needs", DEPS=(second,))
    tasks = Tasks([first])
    with pytest.raises(DuplicateTask) as info:
        tasks.register(needs_second)
    err = info.value
    assert err.name == "Worker"
    assert err.existing == f"{__name__}.Worker" and err.new == f"{__name__}.elsewhere.Worker"
    assert err.existing in str(err) and err.new in str(err)
    assert tasks.task_classes == (first,)
    assert set(tasks.journal.tasks) == {"Worker"}


def test_two_classes_with_one_name_in_one_registration_register_nothing() -> None:
    one = make_named("Dup")
    two = make_named("Dup")
    two.__qualname__ = "other.Dup"
    both = make_named("Both", DEPS=(one, two))
    tasks = Tasks()
    with pytest.raises(DuplicateTask) as info:
        tasks.register(both)
    assert {info.value.existing, info.value.new} == {f"{__name__}.Dup", f"{__name__}.other.Dup"}
    assert tasks.task_classes == ()
    assert tasks.journal.tasks == {}


def test_a_deps_cycle_raises_dependency_cycle_with_the_full_path() -> None:
    a = make_named("A")
    b = make_named("B", DEPS=(a,))
    c = make_named("C", DEPS=(b,))
    a.DEPS = (c,)
    free = make_named("Free")
    tasks = Tasks([free])
    with pytest.raises(DependencyCycle) as info:
        tasks.register(c)
    assert info.value.cycle == ("C", "B", "A", "C")
    assert "C -> B -> A -> C" in str(info.value)
    assert tasks.task_classes == (free,)


def test_a_wants_cycle_raises_dependency_cycle_at_registration() -> None:
    a = make_named("A")
    b = make_named("B", WANTS=(a,))
    a.WANTS = (b,)
    tasks = Tasks()
    with pytest.raises(DependencyCycle) as info:
        tasks.register(a)
    assert info.value.cycle == ("A", "B", "A")
    assert tasks.task_classes == ()
    assert tasks.state == C.REGISTERING


def test_a_single_class_instead_of_a_list_is_refused_with_a_hint() -> None:
    a = make_named("A")
    with pytest.raises(InvalidTask, match=r"iterable of task classes.*Tasks\(\[MyTask\]\)"):
        Tasks(a)  # type: ignore[arg-type]


def test_order_before_create_is_the_order_create_will_use() -> None:
    b = make_named("B")
    a = make_named("A", WANTS=(b,))
    tasks = Tasks([a, b])
    assert tasks.order == ("B", "A")
    tasks.create()
    assert tasks.order == ("B", "A")
    assert [t.name for t in tasks] == ["B", "A"]
    tasks.stop()


def test_registration_is_closed_after_create() -> None:
    a = make_named("A")
    late = make_named("Late")
    tasks = Tasks([a])
    tasks.create()
    with pytest.raises(RegistrationClosed) as info:
        tasks.register(late)
    assert (info.value.collection, info.value.state) == ("tasks", "created")
    assert "before create()" in str(info.value)
    with pytest.raises(RegistrationClosed):
        tasks.unregister(a)
    assert tasks.task_classes == (a,)
    tasks.stop()


def test_unregister_removes_a_task_before_create() -> None:
    a = make_named("A")
    b = make_named("B", DEPS=(a,))
    other = make_named("Other")
    tasks = Tasks([b, other])
    with pytest.raises(LifecycleError, match="required by B"):
        tasks.unregister(a)
    tasks.unregister(other)
    tasks.unregister("B")
    assert tasks.task_classes == (a,)
    assert set(tasks.journal.tasks) == {"A"}, "the journal header no longer lists them"
    with pytest.raises(UnknownTask):
        tasks.unregister("B")
    tasks.create()
    assert [t.name for t in tasks] == ["A"]
    tasks.stop()


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (42, "not a Task subclass"),
        (object, "not a Task subclass"),
        (Task, "no run_loop"),
        (type("NoLoop", (Task,), {}), "no run_loop"),
        (type("BadDep", (Static,), {"DEPS": ("Db",)}), "DEPS lists 'Db'"),
        (type("BadWant", (Static,), {"WANTS": (int,)}), "WANTS lists <class 'int'>"),
        (type("NoWorkers", (Idle,), {"workers": 0}), "workers must be an int >= 1"),
        (
            type("HasBadDep", (Static,), {"DEPS": (type("Inner", (Static,), {"DEPS": (1,)}),)}),
            "DEPS lists 1",
        ),
    ],
)
def test_invalid_task_for_what_is_not_a_usable_task_class(bad: object, problem: str) -> None:
    tasks = Tasks()
    with pytest.raises(InvalidTask, match=problem):
        tasks.register(bad)  # type: ignore[arg-type]
    assert tasks.task_classes == ()


# -- order ---------------------------------------------------------------------------------


def run_through_start(tasks: Tasks, service: object = None) -> None:
    tasks.create(service)
    tasks.init()
    tasks.start()


def test_init_and_start_follow_deps_with_registration_order_breaking_ties() -> None:
    c = make_named("C")
    a = make_named("A")
    b = make_named("B")
    d = make_named("D", DEPS=(b,))
    tasks = Tasks([c, a, d])  # D registers B first
    assert [cls.__name__ for cls in tasks.task_classes] == ["C", "A", "B", "D"]
    run_through_start(tasks)
    assert ok_records(tasks, "create") == ["C", "A", "B", "D"]
    assert ok_records(tasks, "init") == ["C", "A", "B", "D"]
    assert ok_records(tasks, "start") == ["C", "A", "B", "D"]
    assert tasks.start_order == ("C", "A", "B", "D")
    tasks.stop()
    assert tasks.join() == []
    journal_agrees(tasks)


def test_wants_pulls_the_wanted_task_in_and_orders_after_it() -> None:
    b = make_named("B")
    a = make_named("A", WANTS=(b,))
    alone = Tasks([a])
    assert alone.task_classes == (b, a)
    run_through_start(alone)
    assert alone.start_order == ("B", "A")
    assert ok_records(alone, "init") == ["B", "A"]
    alone.stop()
    assert alone.join(0) == []
    assert ok_records(alone, "stop") == ["A", "B"]
    assert alone.journal.tasks["A"]["wants"] == ["B"]


def test_a_wanted_task_that_is_skipped_does_not_skip_the_wanting_one() -> None:
    class Optional(Static):
        def init_task(self) -> None:
            raise SkipTask("not configured")

    wanting = make_named("Wanting", WANTS=(Optional,))
    tasks = Tasks([Optional, wanting])
    run_through_start(tasks)
    assert tasks.state_of(wanting) == T.RUNNING
    tasks.stop()


def test_stop_is_staged_each_task_after_the_tasks_ordered_after_it_ended(
    stopper: list[Tasks],
) -> None:
    db = make_named("Db")
    cache = type("Cache", (Idle,), {"DEPS": (db,)})
    web = type("Web", (Idle,), {"DEPS": (cache,)})
    log = make_named("Log")
    tasks = Tasks([log, web])
    stopper.append(tasks)
    run_through_start(tasks)
    assert tasks.start_order == ("Log", "Db", "Cache", "Web")
    tasks.stop()
    # Web and Log have nothing ordered after them: they stop at once, together.
    assert ok_records(tasks, "stop") == ["Web", "Log"]
    assert tasks.join(WORKER_DEADLINE) == []
    assert ok_records(tasks, "stop") == ["Web", "Log", "Cache", "Db"]
    seq = {r.subject: r.seq for r in tasks.journal.records if r.ok and r.trigger == "finish"}
    stops = {r.subject: r.seq for r in tasks.journal.records if r.ok and r.trigger == "stop"}
    assert seq["Web"] < stops["Cache"] and seq["Cache"] < stops["Db"]
    assert tasks.state == C.STOPPED
    assert set(tasks.by_state()) == {T.STOPPED}
    journal_agrees(tasks)


def test_stop_before_start_stops_everything_in_reverse_dependency_order() -> None:
    a = make_named("A")
    b = make_named("B", DEPS=(a,))
    for steps in (1, 2):
        tasks = Tasks([b])
        tasks.create()
        if steps == 2:
            tasks.init()
        tasks.stop()
        assert tasks.state == C.STOPPED
        assert ok_records(tasks, "stop") == ["B", "A"]
        assert tasks.by_state() == {T.STOPPED: ["A", "B"]}
        assert tasks.join(0) == []
        journal_agrees(tasks)


# -- skips and init errors -----------------------------------------------------------------


def test_skip_cascades_to_dependents_with_a_reason_naming_the_dependency() -> None:
    class Config(Static):
        def init_task(self) -> None:
            raise SkipTask("no config file")

    reader = make_named("Reader", DEPS=(Config,))
    report = make_named("Report", DEPS=(reader,))
    other = make_named("Other")
    tasks = Tasks([report, other])
    tasks.create()
    tasks.init()
    assert tasks.state == C.INITIALIZED
    assert tasks.by_state() == {
        T.SKIPPED: ["Config", "Reader", "Report"],
        T.INITIALIZED: ["Other"],
    }
    assert "no config file" in (record_of(tasks, "Config", "skip").cause or "")
    assert "required dependency 'Config' ended skipped" in (
        record_of(tasks, "Reader", "skip").cause or ""
    )
    assert "required dependency 'Reader' ended skipped" in (
        record_of(tasks, "Report", "skip").cause or ""
    )
    tasks.start()
    assert tasks.start_order == ("Other",)
    tasks.stop()
    journal_agrees(tasks)


def test_init_error_names_every_failed_task_and_leaves_everything_terminal() -> None:
    first_error = ValueError("bad port")
    second_error = OSError("no disk")
    calls: list[str] = []

    class Good(Static):
        def init_task(self) -> None:
            calls.append(self.name)

    class Port(Static):
        def init_task(self) -> None:
            raise first_error

    class Disk(Static):
        def init_task(self) -> None:
            raise second_error

    needs_port = make_named("NeedsPort", DEPS=(Port,))
    later = type("Later", (Good,), {})
    tasks = Tasks([Good, Port, needs_port, Disk, later])
    tasks.create()
    with pytest.raises(InitError) as info:
        tasks.init()
    err = info.value
    assert isinstance(err, ExceptionGroup) and isinstance(err, LifecycleError)
    assert dict(err.failed) == {"Port": first_error, "Disk": second_error}
    assert list(err.exceptions) == [first_error, second_error]
    assert "Port" in str(err) and "Disk" in str(err)
    assert err.__cause__ is first_error
    assert calls == ["Good", "Later"], "every task was still initialized or skipped"
    assert tasks.state == C.FAILED
    assert tasks.by_state() == {
        T.STOPPED: ["Good", "Later"],
        T.FAILED: ["Port", "Disk"],
        T.SKIPPED: ["NeedsPort"],
    }
    assert "ValueError: bad port" in (record_of(tasks, "Port", "fail").cause or "")
    assert "'Port' ended failed" in (record_of(tasks, "NeedsPort", "skip").cause or "")
    assert tasks.require("Port").failure is first_error
    journal_agrees(tasks)
    with pytest.raises(IllegalTransition):
        tasks.start()


def test_a_constructor_that_raises_fails_the_collection_with_init_error() -> None:
    boom = RuntimeError("cannot construct")

    class Fine(Static):
        pass

    class Broken(Static):
        def __init__(self, service: object = None) -> None:
            raise boom

    after = make_named("After", DEPS=(Broken,))
    tasks = Tasks([Fine, after])
    with pytest.raises(InitError) as info:
        tasks.create()
    assert dict(info.value.failed) == {"Broken": boom}
    assert info.value.__cause__ is boom
    assert tasks.state == C.FAILED
    states = {cls.__name__: tasks.state_of(cls) for cls in tasks.task_classes}
    assert states == {"Fine": T.STOPPED, "Broken": T.FAILED, "After": T.STOPPED}
    assert "cannot construct" in (record_of(tasks, "Broken", "fail").cause or "")
    journal_agrees(tasks)


def test_create_passes_its_arguments_to_every_constructor() -> None:
    seen: list[tuple[object, ...]] = []

    class Recorder(Static):
        def __init__(self, service: object = None, *, flag: int = 0) -> None:
            super().__init__(service)
            seen.append((service, flag))

    service = FakeService()
    tasks = Tasks([Recorder])
    tasks.create(service, flag=3)
    assert seen == [(service, 3)]
    assert tasks.Recorder.service is service
    tasks.stop()


# -- stop errors and join ------------------------------------------------------------------


def test_every_on_stop_is_called_and_errors_are_gathered_in_stop_error(
    stopper: list[Tasks],
) -> None:
    calls: list[str] = []
    errors = {"First": KeyError("first"), "Third": OSError("third")}

    class Stopping(Idle):
        def on_stop(self) -> None:
            calls.append(self.name)
            if self.name in errors:
                raise errors[self.name]

    classes = [type(name, (Stopping,), {}) for name in ("First", "Second", "Third")]
    tasks = Tasks(classes)
    stopper.append(tasks)
    run_through_start(tasks)
    tasks.stop()
    assert tasks.state == C.STOPPING
    with pytest.raises(StopError) as info:
        tasks.join(WORKER_DEADLINE)
    # Independent tasks stop together: their hooks run concurrently, in no fixed order.
    assert sorted(calls) == ["First", "Second", "Third"]
    assert dict(info.value.failed) == errors
    first_failed = next(
        r.subject for r in tasks.journal.records if r.ok and r.dest == T.FAILED
    )
    assert info.value.__cause__ is errors[first_failed]
    assert "First" in str(info.value) and "Third" in str(info.value)
    assert tasks.state == C.FAILED
    assert tasks.by_state() == {T.FAILED: ["First", "Third"], T.STOPPED: ["Second"]}
    assert all(not t.running for t in tasks)
    journal_agrees(tasks)


def test_join_returns_the_tasks_still_running(stopper: list[Tasks]) -> None:
    release = threading.Event()

    class Stubborn(Task):
        def run_loop(self) -> None:
            release.wait(WORKER_DEADLINE)  # ignores stop_event on purpose

    tasks = Tasks([Stubborn, Idle])
    stopper.append(tasks)
    try:
        run_through_start(tasks)
        assert tasks.join(0) == [tasks.Stubborn, tasks.Idle]
        tasks.stop()
        assert tasks.join(0.01) == [tasks.Stubborn]
        assert tasks.state == C.STOPPING
        assert tasks.state_of(Stubborn) == T.STOPPING
    finally:
        release.set()
    assert tasks.join(WORKER_DEADLINE) == []
    assert tasks.state == C.STOPPED
    assert all(not thread.is_alive() for task in tasks for thread in task.threads)
    journal_agrees(tasks)


def test_join_while_start_is_launching_workers_waits_for_start(stopper: list[Tasks]) -> None:
    # The first worker calls join while start() is still launching its siblings: join must
    # not try to join a thread that has not started yet (RuntimeError).
    errors: list[BaseException] = []

    class Pool(Idle):
        workers = 4

        def init_thread(self) -> None:
            try:
                tasks.join(0)
            except BaseException as exc:
                errors.append(exc)

    tasks = Tasks([Pool])
    stopper.append(tasks)
    run_through_start(tasks)
    tasks.stop()
    assert tasks.join(WORKER_DEADLINE) == []
    assert errors == []


def test_join_before_start_returns_nothing_and_changes_nothing() -> None:
    tasks = Tasks([Idle])
    assert tasks.join(0) == []
    tasks.create()
    assert tasks.join(0) == []
    assert tasks.state == C.CREATED
    tasks.stop()


# -- workers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [RuntimeError("worker broke"), SystemExit("worker exited")],
    ids=["exception", "system-exit"],
)
def test_a_worker_that_raises_fails_its_task_and_asks_the_service_to_shut_down(
    error: BaseException, stopper: list[Tasks]
) -> None:
    class Crashing(Task):
        def run_loop(self) -> None:
            raise error

    service = FakeService()
    tasks = Tasks([Crashing, Idle])
    stopper.append(tasks)
    run_through_start(tasks, service)
    assert service.asked.wait(WORKER_DEADLINE)
    wait_for_state(tasks.Crashing, T.FAILED, WORKER_DEADLINE)
    assert tasks.Crashing.failure is error
    (reason,) = service.reasons
    assert "'Crashing'" in reason and str(error) in reason
    cause = record_of(tasks, "Crashing", "fail").cause or ""
    assert type(error).__name__ in cause and str(error) in cause and "Traceback" in cause
    assert record_of(tasks, "Crashing", "fail").thread == "Crashing"
    assert tasks.state_of(Idle) == T.RUNNING
    tasks.stop()
    assert tasks.join(WORKER_DEADLINE) == []
    # A collection in which a task failed ends failed, with that failure as its cause.
    assert tasks.state == C.FAILED
    assert tasks.failure is error
    assert ok_records(tasks, "stop") == ["Idle"]
    assert type(error).__name__ in (record_of(tasks, "tasks", "fail").cause or "")
    journal_agrees(tasks)


def test_a_crashing_worker_without_a_service_is_logged(
    caplog: pytest.LogCaptureFixture, stopper: list[Tasks]
) -> None:
    class Lonely(Task):
        def run_loop(self) -> None:
            raise RuntimeError("alone")

    tasks = Tasks([Lonely])
    stopper.append(tasks)
    with caplog.at_level(logging.ERROR, logger="lifecycle.task"):
        run_through_start(tasks)
        assert tasks.Lonely.join(WORKER_DEADLINE)
    assert any("'Lonely' failed" in r.getMessage() for r in caplog.records)
    assert tasks.state_of(Lonely) == T.FAILED


def test_every_worker_thread_runs_init_thread_then_run_loop(stopper: list[Tasks]) -> None:
    seen: list[str] = []
    lock = threading.Lock()

    class Pool(Idle):
        workers = 3

        def init_thread(self) -> None:
            with lock:
                seen.append(threading.current_thread().name)

    tasks = Tasks([Pool])
    stopper.append(tasks)
    run_through_start(tasks)
    assert sorted(t.name for t in tasks.Pool.threads) == ["Pool-0", "Pool-1", "Pool-2"]
    assert tasks.Pool.running
    tasks.stop()
    assert tasks.join(WORKER_DEADLINE) == []
    assert sorted(seen) == ["Pool-0", "Pool-1", "Pool-2"]
    assert not tasks.Pool.running
    assert tasks.state_of(Pool) == T.STOPPED


@pytest.mark.parametrize("hook", ["start", "stop", "join"])
def test_overriding_an_engine_driven_method_raises_type_error_naming_the_hook(hook: str) -> None:
    with pytest.raises(TypeError, match=rf"overrides {hook}\(\)") as info:
        type("Rogue", (Static,), {hook: lambda self: None})
    expected = {"start": "init_task", "stop": "on_stop", "join": "on_stop"}[hook]
    assert expected in str(info.value)


# -- driver calls out of order -------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "call", "state"),
    [
        ((), "init", "registering"),
        ((), "start", "registering"),
        ((), "stop", "registering"),
        (("create",), "create", "created"),
        (("create",), "start", "created"),
        (("create", "init"), "init", "initialized"),
        (("create", "init", "start"), "create", "running"),
        (("create", "stop"), "stop", "stopped"),
    ],
)
def test_a_driver_call_out_of_order_raises_illegal_transition_and_changes_nothing(
    steps: tuple[str, ...], call: str, state: str
) -> None:
    tasks = Tasks([make_named("A")])
    for step in steps:
        getattr(tasks, step)()
    before = tasks.journal.records
    task_state = tasks.state_of("A")
    with pytest.raises(IllegalTransition) as info:
        getattr(tasks, call)()
    err = info.value
    assert (err.subject, err.kind, err.state, err.trigger) == ("tasks", "collection", state, call)
    assert tasks.state == state and tasks.state_of("A") == task_state
    (refused,) = tasks.journal.records[len(before) :]
    assert (refused.kind, refused.trigger, refused.ok, refused.dest) == (
        "collection",
        call,
        False,
        None,
    )
    journal_agrees(tasks)
    if tasks.lifecycle.can("stop"):
        tasks.stop()


def test_fail_fails_the_collection_with_its_cause() -> None:
    tasks = Tasks()
    tasks.fail(RuntimeError("deadline passed"))
    assert tasks.state == C.FAILED
    assert "deadline passed" in (tasks.journal.records[-1].cause or "")
    with pytest.raises(IllegalTransition):
        tasks.fail(RuntimeError("again"))


# -- lookups -------------------------------------------------------------------------------


def test_lookups_by_name_class_index_attribute_and_iteration() -> None:
    a = make_named("Alpha")
    b = make_named("Beta", DEPS=(a,))
    stranger = make_named("Alpha")
    tasks = Tasks([b])
    # Before create: the registered classes, in dependency order (as the seed describes).
    assert len(tasks) == 2
    assert list(tasks) == [a, b]
    assert tasks[0] is a and tasks[-1] is b and tasks["Beta"] is b and tasks[a] is a
    assert tasks.get("Alpha") is a and tasks.get("Gamma", "none") == "none"
    assert tasks.Alpha is a
    assert tasks.state_of("Alpha") == T.REGISTERED
    with pytest.raises(LifecycleError, match="no instance"):
        tasks.require("Alpha")
    with pytest.raises(UnknownTask) as info:
        tasks.require("Gamma")
    assert isinstance(info.value, LookupError)
    assert info.value.known == ("Alpha", "Beta")
    assert str(info.value) == "no task named 'Gamma'; registered: Alpha, Beta"
    with pytest.raises(UnknownTask):
        tasks.state_of(stranger)  # same name, different class
    with pytest.raises(UnknownTask):
        _ = tasks[stranger]
    with pytest.raises(AttributeError, match="no registered task 'Gamma'"):
        _ = tasks.Gamma

    tasks.create()
    alpha, beta = tasks.require(a), tasks.require("Beta")
    assert isinstance(alpha, a) and isinstance(beta, b)
    assert tasks.get("Alpha") is alpha and tasks.get(b) is beta
    assert tasks["Alpha"] is alpha and tasks[b] is beta
    assert tasks[0] is alpha and tasks[-1] is beta
    assert tasks.Alpha is alpha
    assert list(tasks) == [alpha, beta] == list(tasks.tasks)
    assert len(tasks) == 2
    assert "Alpha" in tasks and a in tasks and alpha in tasks
    assert stranger not in tasks and "Gamma" not in tasks
    with pytest.raises(UnknownTask):
        _ = tasks["Gamma"]
    with pytest.raises(AttributeError, match="no created task 'Gamma'"):
        _ = tasks.Gamma
    assert tasks.by_state() == {T.CREATED: ["Alpha", "Beta"]}
    assert tasks.start_order == ()
    tasks.init()
    tasks.start()
    assert tasks.start_order == ("Alpha", "Beta")
    assert tasks.state_of(a) == T.RUNNING and alpha.state == T.RUNNING and alpha.running
    assert "Tasks 'tasks' running (2 registered)" in repr(tasks)
    tasks.stop()
    assert not alpha.running
    assert tasks.by_state() == {T.STOPPED: ["Alpha", "Beta"]}


def test_a_task_not_created_by_a_collection_has_no_lifecycle() -> None:
    lone = Static()
    with pytest.raises(LifecycleError, match="not created by a collection"):
        _ = lone.state
    assert "unbound" in repr(lone)


def test_task_register_adds_to_the_module_level_registered_collection() -> None:
    cls = make_named("GloballyRegistered")
    try:
        assert cls.register() is cls
        assert cls in REGISTERED
        assert REGISTERED.state == C.REGISTERING
    finally:
        REGISTERED.unregister(cls)
    assert cls not in REGISTERED


# -- the journal of a run ------------------------------------------------------------------


def test_a_streamed_journal_holds_the_tasks_and_every_record_of_a_run(
    tmp_path: Path, stopper: list[Tasks]
) -> None:
    path = tmp_path / "run.jsonl"
    worker = type("Worker", (Idle,), {"DEPS": (Static,)})
    with Journal(path) as journal:
        tasks = Tasks([worker], journal=journal, name="svc")
        stopper.append(tasks)
        run_through_start(tasks)
        tasks.stop()
        assert tasks.join(WORKER_DEADLINE) == []
    header, records = read_journal(path)
    assert header["tasks"]["Worker"]["deps"] == ["Static"]
    assert header["tasks"]["Static"]["class"] == f"{__name__}.Static"
    assert records == list(journal.records)
    journal_agrees(tasks)
