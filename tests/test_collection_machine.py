"""A stateful property: random collections driven by random calls, checked against the tables.

Each run builds a collection from a random DAG of task classes (LOOPLESS and threaded, made
with ``type()``), each with random faults (a constructor or `init_task` that raises or skips,
an `on_stop` that raises, a `run_loop` that raises or exits at once or after stop is
requested), then makes driver calls in any order, illegal ones included. After every step the
live states must equal the table oracle's replay of the journal, and the ordering rules must
hold. Worker threads wait on ``stop_event`` with a deadline, so nothing can hang.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from lifecycle import audit
from lifecycle.collection import Tasks
from lifecycle.errors import (
    IllegalTransition,
    InitError,
    LifecycleError,
    RegistrationClosed,
    StopError,
)
from lifecycle.journal import Transition
from lifecycle.spec import COLLECTION, TASK, CollectionState, TaskState
from lifecycle.task import SkipTask, Task
from tests.strategies import replay, sequence_problems

C = CollectionState
T = TaskState

#: How long a worker waits for stop_event before giving up on its own (never reached when the
#: machine works: teardown always stops).
WORKER_DEADLINE = 5.0
ENDED_BADLY = (T.SKIPPED, T.FAILED)
WORKER_FAULTS = ("raise_now", "exit_now", "raise_after_stop")


@attrs.frozen
class Plan:
    """One task class to build: its dependencies (indices of earlier tasks) and its faults."""

    name: str
    deps: tuple[int, ...]
    wants: tuple[int, ...]
    loopless: bool
    workers: int
    ctor: str  # ok | raise
    init: str  # ok | skip | raise
    stop: str  # ok | raise
    run: str  # ok | raise_now | exit_now | raise_after_stop (threaded tasks only)
    kind: str = "thread"  # thread | async (tests/test_aio_collection_machine.py)


def rarely(faults: list[str], among: int) -> st.SearchStrategy[str]:
    """One of ``faults`` about ``len(faults)`` times in ``among``, else ``"ok"``.

    The faults sit in the middle of the choices: hypothesis favours the first and last ones.
    """
    half = ["ok"] * ((among - len(faults)) // 2)
    return st.sampled_from([*half, *faults, *half, "ok"])


@st.composite
def plans(draw: st.DrawFn, count: int, first: int = 0) -> list[Plan]:
    """``count`` task plans; the dependencies of plan i point to plans before it (a DAG)."""
    result = []
    for i in range(first, first + count):
        earlier = list(range(i))
        loopless = draw(st.booleans())
        result.append(
            Plan(
                name=f"T{i}",
                deps=tuple(draw(st.sets(st.sampled_from(earlier), max_size=2))) if earlier else (),
                wants=tuple(draw(st.sets(st.sampled_from(earlier), max_size=1))) if earlier else (),
                loopless=loopless,
                workers=1 if loopless else draw(st.integers(min_value=1, max_value=2)),
                # Faults are rare enough that most runs get as far as running tasks.
                ctor=draw(rarely(["raise"], among=15)),
                init=draw(rarely(["skip", "raise"], among=10)),
                stop=draw(rarely(["raise"], among=4)),
                run="ok" if loopless else draw(rarely(list(WORKER_FAULTS), among=6)),
            )
        )
    return result


class Faulty(Task):
    """A task that misbehaves as its class's `Plan` says."""

    PLAN: ClassVar[Plan]
    LOOPLESS = True

    def __init__(self, service: Any = None) -> None:
        if self.PLAN.ctor == "raise":
            raise RuntimeError(f"{self.PLAN.name}: constructor fault")
        super().__init__(service)
        self.loops_lock = threading.Lock()
        self.loops = 0  # run_loop calls under way

    def init_task(self) -> None:
        if self.PLAN.init == "skip":
            raise SkipTask(f"{self.PLAN.name}: skip fault")
        if self.PLAN.init == "raise":
            raise RuntimeError(f"{self.PLAN.name}: init fault")

    def on_stop(self) -> None:
        if self.PLAN.stop == "raise":
            raise RuntimeError(f"{self.PLAN.name}: on_stop fault")

    def run_loop(self) -> None:
        with self.loops_lock:
            self.loops += 1
        try:
            self._misbehave()
        finally:
            with self.loops_lock:
                self.loops -= 1

    def _misbehave(self) -> None:
        run = self.PLAN.run
        if run == "raise_now":
            raise RuntimeError(f"{self.PLAN.name}: run_loop fault")
        if run == "exit_now":
            raise SystemExit(f"{self.PLAN.name}: run_loop exit")
        self.stop_event.wait(WORKER_DEADLINE)
        if run == "raise_after_stop":
            raise RuntimeError(f"{self.PLAN.name}: run_loop fault after stop")


class Service:
    """Collects the shutdown requests of crashing workers (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reasons: list[str] = []

    def shutdown(self, reason: str) -> None:
        with self._lock:
            self.reasons.append(reason)


def build(plan: Plan, classes: list[type[Task]]) -> type[Task]:
    namespace = {
        "PLAN": plan,
        "DEPS": tuple(classes[i] for i in plan.deps),
        "WANTS": tuple(classes[i] for i in plan.wants),
        "LOOPLESS": plan.loopless,
        "workers": plan.workers,
        "__module__": __name__,
        "__qualname__": f"machine.{plan.name}",
    }
    return type(plan.name, (Faulty,), namespace)


def pulled_in(cls: type[Task], known: set[type[Task]] | None = None) -> set[type[Task]]:
    """``cls`` and everything it requires or wants, directly or not (registration pulls them
    in), except through the ``known`` classes: registered already, they pull in nothing again
    (a WANTS of theirs that was unregistered stays so)."""
    known = known or set()
    found = {cls}
    stack = [cls]
    while stack:
        top = stack.pop()
        if top in known:
            continue
        for dep in (*top.DEPS, *top.WANTS):
            if dep not in found:
                found.add(dep)
                stack.append(dep)
    return found


def records_by(records: tuple[Transition, ...], subject: str) -> list[Transition]:
    return [r for r in records if r.subject == subject and r.kind == "task"]


class CollectionMachine(RuleBasedStateMachine):
    #: The worker faults that crash (and so ask the service to shut down), and those of them
    #: that may have failed their task before `start` returns. A subclass adds its own.
    CRASHES: ClassVar[tuple[str, ...]] = WORKER_FAULTS
    FAST_CRASHES: ClassVar[tuple[str, ...]] = ("raise_now", "exit_now")

    def draw_plans(self, data: st.DataObject, count: int, first: int, label: str) -> list[Plan]:
        """The plans of ``count`` new task classes (a subclass draws other kinds too)."""
        return data.draw(plans(count, first), label=label)

    def build_class(self, plan: Plan) -> type[Task]:
        """The task class of ``plan`` (its DEPS index `classes`)."""
        return build(plan, self.classes)

    def __init__(self) -> None:
        super().__init__()
        self.tasks = Tasks(name="machine")
        self.service = Service()
        #: Every class built so far (plans refer to their DEPS by index in this list).
        self.classes: list[type[Task]] = []
        #: Tasks that were journaled as finished while one of their run_loops still ran.
        self.early_finishes: list[str] = []
        self.tasks.journal.subscribe(self.watch_finish)

    # -- set-up ----------------------------------------------------------------------------

    @initialize(
        data=st.data(),
        count=st.integers(min_value=1, max_value=5),
        head_start=st.sampled_from([3, 3, 3, 2, 1, 0]),
    )
    def build_collection(self, data: st.DataObject, count: int, head_start: int) -> None:
        for plan in self.draw_plans(data, count, 0, "plans"):
            self.classes.append(self.build_class(plan))
        order = data.draw(st.permutations(self.classes), label="registration order")
        self.tasks.register_all(order)
        assert set(self.tasks.task_classes) == set(self.classes)
        # Most runs begin with the usual create, init, start (each checked like the rules),
        # so that the random calls after it mostly meet running tasks.
        for step in (self.create, self.init, self.start)[:head_start]:
            if self.tasks.state == C.FAILED:
                break
            step()

    def watch_finish(self, rec: Transition) -> None:
        # Runs on the thread that fires, under the task's lock: a finish must come only after
        # every worker has exited.
        if rec.ok and rec.kind == "task" and rec.trigger == "finish":
            task = self.tasks.get(rec.subject)
            with task.loops_lock:
                if task.loops:
                    self.early_finishes.append(f"#{rec.seq} {rec.subject}: {task.loops} running")

    # -- helpers ---------------------------------------------------------------------------

    @property
    def plans(self) -> dict[str, Plan]:
        """The plan of every registered class (DEPS re-register an unregistered class)."""
        return {c.__name__: c.PLAN for c in self.tasks.task_classes}  # type: ignore[attr-defined]

    @property
    def journal_records(self) -> tuple[Transition, ...]:
        return self.tasks.journal.records

    def task_state(self, name: str) -> T:
        return self.tasks.state_of(name)

    def mine(self, since: int) -> list[Transition]:
        """The records this (driver) thread appended since record number ``since``."""
        me = threading.current_thread().name
        return [r for r in self.journal_records[since:] if r.thread == me]

    def refused(self, trigger: str, call: Any, *args: Any) -> None:
        """``call`` must raise IllegalTransition, journal one refusal, and change nothing."""
        state = self.tasks.state
        since = len(self.journal_records)
        with pytest.raises(IllegalTransition) as info:
            call(*args)
        err = info.value
        assert (err.subject, err.kind, err.state, err.trigger) == (
            "machine",
            "collection",
            state,
            trigger,
        )
        assert err.allowed == COLLECTION.allowed(state)
        assert self.tasks.state == state
        (rec,) = self.mine(since)
        assert (rec.kind, rec.subject, rec.trigger, rec.source, rec.dest, rec.ok) == (
            "collection",
            "machine",
            trigger,
            state,
            None,
            False,
        )

    def expected_init_outcome(self) -> dict[str, T]:
        """The state each created task must reach in `init`, in dependency order."""
        outcome: dict[str, T] = {}
        plans = self.plans
        for name in self.tasks.order:
            plan = plans[name]
            if (
                any(outcome[self.classes[i].__name__] in ENDED_BADLY for i in plan.deps)
                or plan.init == "skip"
            ):
                outcome[name] = T.SKIPPED
            elif plan.init == "raise":
                outcome[name] = T.FAILED
            else:
                outcome[name] = T.INITIALIZED
        return outcome

    def no_worker_alive(self) -> bool:
        return not any(t.is_alive() for task in self.tasks.tasks for t in task.threads)

    # -- driver calls ----------------------------------------------------------------------

    @rule()
    def create(self) -> None:
        if self.tasks.state != C.REGISTERING:
            self.refused("create", self.tasks.create, self.service)
            return
        broken = [n for n in self.tasks.order if self.plans[n].ctor == "raise"]
        if not broken:
            self.tasks.create(self.service)
            assert self.tasks.state == C.CREATED
            assert set(self.tasks.by_state()) <= {T.CREATED}
            return
        with pytest.raises(InitError) as info:
            self.tasks.create(self.service)
        assert sorted(info.value.failed) == sorted(broken)
        first = info.value.__cause__
        assert isinstance(first, RuntimeError) and str(first).startswith(broken[0] + ":")
        self.check_failed_collection()

    @rule()
    def init(self) -> None:
        if self.tasks.state != C.CREATED:
            self.refused("init", self.tasks.init)
            return
        expected = self.expected_init_outcome()
        failed = [n for n, s in expected.items() if s == T.FAILED]
        if not failed:
            self.tasks.init()
            assert self.tasks.state == C.INITIALIZED
            assert {n: self.task_state(n) for n in expected} == expected
            return
        with pytest.raises(InitError) as info:
            self.tasks.init()
        assert list(info.value.failed) == failed
        assert info.value.__cause__ is info.value.failed[failed[0]]
        self.check_failed_collection()
        for name, state in expected.items():
            want = T.STOPPED if state == T.INITIALIZED else state
            assert self.task_state(name) == want, name

    def check_failed_collection(self) -> None:
        assert self.tasks.state == C.FAILED
        ended = {T.STOPPED, T.SKIPPED, T.FAILED}
        assert {self.task_state(n) for n in self.plans} <= ended, self.tasks.by_state()

    @rule()
    def start(self) -> None:
        if self.tasks.state != C.INITIALIZED:
            self.refused("start", self.tasks.start)
            return
        initialized = [n for n in self.tasks.order if self.task_state(n) == T.INITIALIZED]
        self.tasks.start()
        assert self.tasks.state == C.RUNNING
        assert list(self.tasks.start_order) == initialized
        for name in initialized:
            allowed = {T.RUNNING}
            if self.plans[name].run in self.FAST_CRASHES:
                allowed.add(T.FAILED)  # its worker may have crashed already
            assert self.task_state(name) in allowed, name

    @rule()
    def stop(self) -> None:
        state = self.tasks.state
        if state not in (C.CREATED, C.INITIALIZED, C.RUNNING):
            self.refused("stop", self.tasks.stop)
            return
        since = len(self.journal_records)
        self.tasks.stop()
        stops = [r for r in self.mine(since) if r.kind == "task" and r.trigger == "stop" and r.ok]
        if state != C.RUNNING:
            assert self.tasks.state == C.STOPPED
            assert {self.task_state(n) for n in self.plans} <= {T.STOPPED, T.SKIPPED}
            names = [r.subject for r in stops]
            assert names == [n for n in reversed(self.tasks.order) if n in names]
            return
        assert self.tasks.state == C.STOPPING
        # What stop() began at once is checked by the audit invariant (the staged order);
        # that the rest follows is checked by join.

    def stopped_with_errors(self) -> set[str]:
        """The tasks whose raising on_stop was called: stop took them from running."""
        return {
            r.subject
            for r in self.journal_records
            if r.ok
            and r.kind == "task"
            and r.trigger == "stop"
            and r.dest == T.STOPPING
            and self.plans[r.subject].stop == "raise"
        }

    @rule(timeout=st.sampled_from([0, 0.01]))
    def join(self, timeout: float) -> None:
        state = self.tasks.state
        try:
            left = self.tasks.join(timeout)
        except StopError as err:
            assert state == C.STOPPING
            assert set(err.failed) == self.stopped_with_errors()
            assert self.tasks.state == C.FAILED
            assert self.no_worker_alive()
            return
        assert [t.name for t in left] == [
            n for n in self.tasks.start_order if n in {t.name for t in left}
        ]
        for task in self.tasks.tasks:
            if task not in left:
                # Not reported running: its workers are gone (threads never come back).
                assert not any(t.is_alive() for t in task.threads), task.name
        if left:
            assert self.tasks.state == state
            return
        # Nothing reported running: no worker thread may be alive.
        assert self.no_worker_alive()
        if state == C.STOPPING:
            assert not self.stopped_with_errors()
            ends = {self.task_state(n) for n in self.plans}
            assert ends <= {T.STOPPED, T.SKIPPED, T.FAILED}
            # Any failed task fails the collection, with the first failure as its cause.
            if T.FAILED in ends:
                assert self.tasks.state == C.FAILED
                assert self.tasks.failure is self.tasks.first_failure() is not None
            else:
                assert self.tasks.state == C.STOPPED
        else:
            assert self.tasks.state == state

    @rule(data=st.data())
    def register_late(self, data: st.DataObject) -> None:
        (plan,) = self.draw_plans(data, 1, len(self.classes), "late plan")
        cls = self.build_class(plan)
        before = self.tasks.task_classes
        since = len(self.journal_records)
        if self.tasks.state != C.REGISTERING:
            with pytest.raises(RegistrationClosed):
                self.tasks.register(cls)
            assert self.tasks.task_classes == before
            assert self.mine(since) == []
            return
        self.classes.append(cls)
        self.tasks.register(cls)
        assert self.tasks.task_classes[-1] is cls
        assert set(self.tasks.task_classes) == {*before, *pulled_in(cls, set(before))}

    @rule(data=st.data())
    def unregister(self, data: st.DataObject) -> None:
        registered = [c.__name__ for c in self.tasks.task_classes]
        if not registered:
            return
        name = data.draw(st.sampled_from(registered), label="unregister")
        if self.tasks.state != C.REGISTERING:
            with pytest.raises(RegistrationClosed):
                self.tasks.unregister(name)
            return
        needed = [
            c.__name__ for c in self.tasks.task_classes if name in {d.__name__ for d in c.DEPS}
        ]
        if needed:
            with pytest.raises(LifecycleError, match="required by"):
                self.tasks.unregister(name)
            return
        self.tasks.unregister(name)
        assert name not in self.tasks and name not in self.tasks.journal.tasks

    @rule(data=st.data(), hook=st.sampled_from(["start", "stop"]))
    def call_a_task_out_of_turn(self, data: st.DataObject, hook: str) -> None:
        if not self.tasks.tasks:
            return
        # The draw must not depend on thread timing, so pick any task first, then act only if
        # the call is illegal: a legal one would drive a task behind its collection's back.
        # Workers never make an illegal start or stop legal, so the check stays true.
        task = data.draw(st.sampled_from(self.tasks.tasks), label="task")
        if task.lifecycle.can(hook):
            return
        state = task.state
        since = len(self.journal_records)
        with pytest.raises(IllegalTransition) as info:
            getattr(task, hook)()
        err = info.value
        assert (err.subject, err.kind, err.trigger) == (task.name, "task", hook)
        assert err.allowed == TASK.allowed(err.state)
        (rec,) = self.mine(since)
        assert (rec.subject, rec.trigger, rec.ok, rec.dest) == (task.name, hook, False, None)
        if state not in TASK.terminal:
            # Only a worker could have moved it meanwhile, and only to an end.
            assert task.state in (state, T.FAILED, T.STOPPED)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def states_match_the_table_oracle(self) -> None:
        lc = self.tasks.lifecycle
        with lc.lock:
            live = lc.state
            states, problems = replay(self.journal_records)
        assert problems == []
        assert states.get(("collection", "machine"), COLLECTION.initial) == live
        instances = {task.name: task for task in self.tasks.tasks}
        for cls in self.tasks.task_classes:
            name = cls.__name__
            task = instances.get(name)
            if task is None:  # never created: no worker can touch it
                live_task = self.task_state(name)
                states, problems = replay(self.journal_records)
            else:
                # Under the task's lock no worker can fire for it between the two reads.
                with task.lifecycle.lock:
                    live_task = task.state
                    states, problems = replay(self.journal_records)
            assert problems == []
            assert states.get(("task", name), TASK.initial) == live_task, name

    @invariant()
    def the_journal_audits_clean_so_far(self) -> None:
        # Every rule of the audit, the staged stop order included, holds at every step.
        assert audit.check(self.tasks.journal, partial=True) == []

    @invariant()
    def finish_comes_after_every_worker_exited(self) -> None:
        assert self.early_finishes == []

    @invariant()
    def seq_counts_up_without_gaps(self) -> None:
        assert sequence_problems(self.journal_records) == []

    @invariant()
    def init_and_start_come_after_every_dependency(self) -> None:
        records = self.journal_records
        registered = set(self.tasks.task_classes)

        def first(name: str, phase: Any) -> int | None:
            seqs = [r.seq for r in records_by(records, name) if r.ok and phase(r)]
            return seqs[0] if seqs else None

        def decided(r: Transition) -> bool:  # init, skip or fail from created: init's verdict
            return r.source == T.CREATED and r.trigger in ("init", "skip", "fail")

        def started(r: Transition) -> bool:
            return r.trigger == "start"

        for cls in registered:
            mine_decided = first(cls.__name__, decided)
            mine_started = first(cls.__name__, started)
            for dep in (*cls.DEPS, *(w for w in cls.WANTS if w in registered)):
                hard = dep in cls.DEPS
                if mine_decided is not None:
                    theirs = first(dep.__name__, decided)
                    assert theirs is not None and theirs < mine_decided, (cls, dep)
                if mine_started is not None:
                    theirs = first(dep.__name__, started)
                    # A DEPS must have started first; a WANTS only if it started at all.
                    if hard or theirs is not None:
                        assert theirs is not None and theirs < mine_started, (cls, dep)

    @invariant()
    def every_skip_and_failure_has_its_cause(self) -> None:
        for rec in self.journal_records:
            if rec.ok and rec.kind == "task" and rec.dest in ENDED_BADLY:
                assert rec.cause, rec
                if rec.dest == T.SKIPPED:
                    own = f"{rec.subject}: skip fault"
                    named = [
                        d.__name__
                        for d in self.tasks.require(rec.subject).DEPS
                        if f"required dependency '{d.__name__}' ended" in rec.cause
                        and self.task_state(d.__name__) in ENDED_BADLY
                    ]
                    assert own in rec.cause or named, rec.cause

    @invariant()
    def only_crashed_workers_ask_for_shutdown(self) -> None:
        with self.service._lock:
            reasons = list(self.service.reasons)
        for reason in reasons:
            named = [n for n, p in self.plans.items() if f"task {n!r} failed" in reason]
            assert len(named) == 1 and self.plans[named[0]].run in self.CRASHES, reason

    # -- the end ---------------------------------------------------------------------------

    def teardown(self) -> None:
        tasks = self.tasks
        try:
            # The end of every run: stop and join through the checked rules.
            if tasks.lifecycle.can("stop"):
                self.stop()
            self.join(2 * WORKER_DEADLINE)
            assert self.no_worker_alive()
            if tasks.state in (C.STOPPED, C.FAILED):
                assert all(TASK.is_terminal(s) for s in (self.task_state(n) for n in self.plans))
            for check in (
                self.states_match_the_table_oracle,
                self.seq_counts_up_without_gaps,
                self.init_and_start_come_after_every_dependency,
                self.every_skip_and_failure_has_its_cause,
                self.finish_comes_after_every_worker_exited,
                self.the_journal_audits_clean_so_far,
                self.only_crashed_workers_ask_for_shutdown,
            ):
                check()
            # Every started task with a crashing worker asked the service to shut down.
            crashed = {n for n in tasks.start_order if self.plans[n].run in self.CRASHES}
            asked = {
                n for n in self.plans for r in self.service.reasons if f"task {n!r} failed" in r
            }
            assert asked == crashed
            event(f"ended {tasks.state} after starting {len(tasks.start_order)} tasks")
            event(f"{len(asked)} crashed workers")
        finally:
            # Whatever failed above, leave no thread behind.
            for task in tasks.tasks:
                task.stop_event.set()
                for thread in task.threads:
                    thread.join(WORKER_DEADLINE)


# A run is cheap (a few ms), so the machine gets four times the profile's example budget. The
# explain phase traces every line, threads included: too slow to finish within the test timeout
# when a failure is found, so it is left out and the shrunk example is reported as it is.
CollectionMachine.TestCase.settings = settings(
    CollectionMachine.TestCase.settings,
    max_examples=4 * settings().max_examples,
    stateful_step_count=20,
    phases=[phase for phase in Phase if phase != Phase.explain],
)
TestCollectionMachine = CollectionMachine.TestCase
