"""`check_tasks`: the conformance check of a user's own task classes.

Each example hypothesis draws is one whole run of the tasks in a `Service` (the user's own
service class if given, so that tasks find the options and attributes they expect there):
create, init, start, stop, join, with the stop requested at a chosen moment and faults
injected around the tasks under test. Then the lifecycle promises are checked:

* every task asked to stop ends within ``stop_timeout`` of its ``stop`` record;
* no task's code raises (a hook, a worker, a constructor) except `SkipTask` from `init_task`;
* no thread started during the run is alive once the run ended;
* every task, the collection and the service end in a terminal state;
* the journal audits clean (`lifecycle.audit.check`).

Faults are injected into the *instances* the collection creates, never into a class: the
dependencies (the classes DEPS and WANTS pull in that are not under test) get an `init_task`
that skips or raises, or a stop that takes a while; a `SlowNeighbour` task of the kit's own
stops slowly beside or above a task under test. Since the registered classes are the user's
own, code such as ``self.service.tasks.require(Mailer)`` works as in production.

Nothing here can hang the caller: the service is started and waited for on threads of the kit,
with deadlines. A task that does not stop in time is given up on (the collection's `fail`, as
a service does at its stop deadline), reported with the hook its threads are stuck in, and
abandoned: the engine's threads are daemon threads.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import queue
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import attrs

try:
    from hypothesis import HealthCheck, Verbosity, example, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import FlakyFailure
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "lifecycle.testing.check_tasks needs hypothesis: "
        "pip install 'lifecycle-engine[testing]'"
    ) from exc

from lifecycle.audit import check
from lifecycle.collection import Tasks
from lifecycle.errors import InitError, StopTimeout, safe_str
from lifecycle.journal import Journal, Transition
from lifecycle.service import Service
from lifecycle.spec import TASK, CollectionState, TaskState
from lifecycle.stopping import stop_layers
from lifecycle.task import SkipTask, Task, task_name

__all__ = ["InjectedFault", "Scenario", "check_tasks"]

#: When the stop is requested, simplest first (hypothesis shrinks towards the first).
PHASES = ("while running", "before init", "during init", "while starting", "twice")
#: What a dependency may be made to do, no fault first.
DEP_FAULTS = ("none", "skips", "fails", "stops slowly")
#: The hooks whose frames say where a task's thread is stuck, and what to do about each.
_HINTS = {
    "run_loop": "its run_loop does not watch stop_event",
    "execute": "its execute did not return",
    "init_thread": "its init_thread did not return",
    "on_stop": "its on_stop did not return",
}
_HOOK_OF_STATE = {
    "registered": "its constructor",
    "created": "its init_task",
    "initialized": "its code",
    "running": "its worker",
    "stopping": "its code",
}
_PHASE_OF_STATE = {
    "registered": "while being created",
    "created": "during init",
    "initialized": "after init",
    "running": "while running",
    "stopping": "while stopping",
}
_PACKAGE = str(Path(__file__).resolve().parent.parent)
_STDLIB = str(Path(sysconfig.get_paths()["stdlib"]).resolve())


class InjectedFault(Exception):
    """What a dependency's `init_task` raises when `check_tasks` makes it fail."""


@attrs.frozen
class Scenario:
    """One run of the tasks: when the stop is requested (``phase``) and around which task
    under test (``target``), the fault of each dependency (``faults``: name -> one of
    `DEP_FAULTS`), and where a slowly stopping neighbour sits (``neighbour``: ``"none"``,
    ``"beside"`` or the name of the task under test it sits above, requiring it)."""

    phase: str
    target: str
    faults: tuple[tuple[str, str], ...]
    neighbour: str

    def describe(self) -> str:
        """The scenario in words."""
        when = {
            "while running": "once every task was running",
            "before init": f"after the tasks were created, before {self.target}'s init_task",
            "during init": f"while {self.target}'s init_task ran",
            "while starting": f"while {self.target} was starting (before its workers ran)",
            "twice": f"once every task was running, and again while {self.target} was stopping",
        }[self.phase]
        faults = [f"{name} {fault} (injected)" for name, fault in self.faults if fault != "none"]
        if self.neighbour == "beside":
            faults.append("a neighbour task stops slowly beside them")
        elif self.neighbour != "none":
            faults.append(f"a neighbour task that requires {self.neighbour} stops slowly")
        return f"stop requested {when}; " + ("; ".join(faults) if faults else "no fault injected")


@attrs.frozen
class _Plan:
    """What every example shares: the classes, who is under test, the service to run them."""

    under_test: tuple[type[Task], ...]
    dependencies: tuple[type[Task], ...]  # pulled in by DEPS or WANTS, not under test
    service: type[Service]
    options: Mapping[str, Any]
    stop_timeout: float
    start_timeout: float

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(task_name(c) for c in self.under_test)

    def fault_choices(self, cls: type[Task]) -> list[str]:
        choices = ["none", "skips", "fails"]
        if _has_on_stop(cls) or not cls.LOOPLESS:
            choices.append("stops slowly")
        return choices


@st.composite
def _scenarios(draw: st.DrawFn, plan: _Plan) -> Scenario:
    phase = draw(st.sampled_from(PHASES))
    target = draw(st.sampled_from(plan.names))
    faults = tuple(
        (task_name(dep), draw(st.sampled_from(plan.fault_choices(dep))))
        for dep in plan.dependencies
    )
    neighbour = draw(st.sampled_from(["none", "beside", *plan.names]))
    return Scenario(phase, target, faults, neighbour)


def check_tasks(
    *task_classes: type[Task],
    stop_timeout: float = 1.0,
    max_examples: int = 20,
    start_timeout: float = 5.0,
    service: type[Service] = Service,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Check that ``task_classes`` keep the lifecycle promises under faults; raise
    `AssertionError` naming what broke, in the smallest scenario hypothesis found.

    Each of up to ``max_examples`` examples runs the classes (and the tasks their DEPS and
    WANTS pull in) in a fresh ``service`` (a `Service` subclass: its options and attributes
    are what the tasks see; its ``TASKS`` are replaced) with ``options``, through create,
    init, start, stop and join, the stop requested at one of `PHASES`, the dependencies made
    to skip, fail or stop slowly, and a neighbour task stopping slowly. It then checks that
    every task asked to stop ended within ``stop_timeout`` seconds of its ``stop`` record; that
    no task's code raised (a failed task, `SystemExit` included; `SkipTask` from `init_task`
    is how a task opts out); that no thread started during the run is still alive once it
    ended (after a grace of a tenth of ``stop_timeout``); that every task, the collection and the
    service ended terminal; and that the journal audits clean. The start (create, init, start)
    may take ``start_timeout`` seconds.

    The message leads with the first broken promise, in words a user can act on (``"Poller did
    not stop within 1.0 s after stop was requested while running; its run_loop does not watch
    stop_event (...)"``), then the scenario and anything else found. Scenarios are drawn
    deterministically, so a run repeats.

    Cost: a run of well-behaved tasks takes what their start and stop take, plus a tenth of
    ``stop_timeout`` for the slow stops. A task that does not stop costs about
    ``stop_timeout`` in each example that meets it, and once one example failed hypothesis
    replays smaller ones (a handful to a few dozen) to find the smallest; a hung `init_task`
    costs ``start_timeout`` plus the service's stop deadline (``stop_timeout`` per stop
    layer, plus one). Threads of tasks that never return are abandoned (daemon threads).

    Raises `InvalidTask`, `DuplicateTask` or `DependencyCycle` at once for classes that cannot
    be registered, `TypeError` or `ValueError` for bad arguments.
    """
    if not task_classes:
        raise TypeError("check_tasks() needs at least one task class")
    for name, value in (("stop_timeout", stop_timeout), ("start_timeout", start_timeout)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be seconds (a number), not {value!r}")
        if not (0 < value < math.inf):
            raise ValueError(f"{name} must be finite seconds > 0, not {value!r}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be an int >= 1, not {max_examples!r}")
    if not (isinstance(service, type) and issubclass(service, Service)):
        raise TypeError(f"service must be a Service subclass, not {service!r}")
    plan = _plan(task_classes, service, dict(options or {}), stop_timeout, start_timeout)

    runner = _Runner(plan)
    first = plan.names[0]
    no_faults = tuple((task_name(dep), "none") for dep in plan.dependencies)
    run = given(scenario=_scenarios(plan))(runner.run)
    for phase in reversed(PHASES):  # the simplest scenario of each phase, tried first
        run = example(scenario=Scenario(phase, first, no_faults, "none"))(run)
    run = settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )(run)
    try:
        run()
    except _Broken as exc:
        raise AssertionError(str(exc)) from None
    except FlakyFailure as exc:  # pragma: no cover - results are memoized per scenario
        broken = [e for e in exc.exceptions if isinstance(e, _Broken)]
        if not broken:
            raise
        raise AssertionError(str(broken[0])) from None


#: Once a scenario failed, how many more are run while hypothesis looks for a smaller one.
SHRINK_RUNS = 8


class _Runner:
    """Runs scenarios for hypothesis, each once: a result is kept per scenario (a replay of a
    failure costs nothing and cannot come out differently), and once one failed at most
    `SHRINK_RUNS` more are run (a task that hangs costs ``stop_timeout`` in each); the others
    count as passing, so the failure reported is always one that was seen."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.results: dict[Scenario, str | None] = {}
        self.failed = False
        self.budget = SHRINK_RUNS

    def run(self, scenario: Scenario) -> None:
        if scenario not in self.results:
            if self.failed:
                if self.budget <= 0:
                    return
                self.budget -= 1
            findings = _Example(self.plan, scenario).run()
            self.results[scenario] = _message(findings, scenario) if findings else None
        message = self.results[scenario]
        if message is not None:
            self.failed = True
            raise _Broken(message)


class _Broken(AssertionError):
    """A broken promise in one example (re-raised plain, without hypothesis' notes)."""


def _plan(
    classes: Sequence[type[Task]],
    service: type[Service],
    options: dict[str, Any],
    stop_timeout: float,
    start_timeout: float,
) -> _Plan:
    # Registration checks the classes (InvalidTask, DuplicateTask, DependencyCycle) and
    # pulls in what their DEPS and WANTS name.
    registered = Tasks(classes, journal=Journal(), name="check_tasks").task_classes
    under_test = tuple(dict.fromkeys(classes))
    dependencies = tuple(c for c in registered if c not in under_test)
    # The service must accept the options given (OptionError otherwise, naming the option).
    _service_class(service, registered, ())(dict(options), journal=Journal())
    return _Plan(under_test, dependencies, service, options, stop_timeout, start_timeout)


def _service_class(
    base: type[Service], classes: Iterable[type[Task]], extra: Iterable[type[Task]]
) -> type[Service]:
    return type(
        base.__name__,
        (base,),
        {
            "TASKS": (*classes, *extra),
            "name": base.name,
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": base.__doc__,
        },
    )


def _has_on_stop(cls: type[Task]) -> bool:
    return cls.on_stop is not Task.on_stop


@attrs.frozen
class _Finding:
    """One broken promise: ``rank`` orders them (the first leads the message)."""

    rank: int
    text: str


class _Example:
    """One run of the plan under one scenario; `run` returns what broke."""

    def __init__(self, plan: _Plan, scenario: Scenario) -> None:
        self.plan = plan
        self.scenario = scenario
        self.faults = dict(scenario.faults)
        self.slow = plan.stop_timeout / 10
        self.release = threading.Event()  # ends the injected slow stops early at cleanup
        self.kit_threads: set[threading.Thread] = set()
        self.entered: dict[str, int] = {}  # task -> workers that entered run_loop
        self.entered_changed = threading.Condition()
        # The stop records of tasks asked to stop, for the watchdog: (name, deadline), or None
        # to end it. A SimpleQueue: its put is quick enough for a journal listener.
        self.stopping: queue.SimpleQueue[tuple[str, float] | None] = queue.SimpleQueue()
        self.findings: list[_Finding] = []
        self.start_error: BaseException | None = None
        self.neighbour: type[Task] | None = None
        extra: list[type[Task]] = []
        if scenario.neighbour != "none":
            self.neighbour = _neighbour(plan, scenario.neighbour, self.slow, self.release)
            extra.append(self.neighbour)
        cls = _service_class(plan.service, plan.under_test, extra)
        layers = stop_layers(*_graph([*plan.under_test, *plan.dependencies, *extra]))
        # The service's own deadline is a backstop: the kit gives up on a task that overruns
        # ``stop_timeout`` itself, so that a hung task costs about that much.
        options = {**plan.options, "stop_timeout": plan.stop_timeout * (len(layers) + 1)}
        self.journal = Journal()
        self.service = cls(options, journal=self.journal)
        self.tasks = self.service.tasks
        self.journal.subscribe(self._on_record)

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> list[_Finding]:
        before = set(threading.enumerate())
        plan, service = self.plan, self.service
        try:
            self._thread(self._watch, "check_tasks-watchdog")
            starter = self._thread(self._start, "check_tasks-start")
            starter.join(plan.start_timeout)
            if starter.is_alive():
                self._report_hung_start()
            elif self.scenario.phase in ("while running", "twice"):
                self._wait_until_running(time.monotonic() + plan.start_timeout)
            service.shutdown("check_tasks: the scenario's stop request")
            waiter = self._thread(service.wait, "check_tasks-wait")
            bound = service.stop_timeout + 2.0  # the deadline, its grace, and some slack
            waiter.join(bound)
            if waiter.is_alive():
                self.findings.append(
                    _Finding(0, f"the service did not end within {bound:g} s of the stop "
                             f"request; it is {service.state} ({self._busy()})")
                )
            self._judge_start()
            self._judge_tasks()
            self._judge_threads(before)
            self._judge_journal()
        finally:
            self.release.set()
            self.stopping.put(None)
            for thread in self.kit_threads:  # the watchdog ends now; a hung start is abandoned
                thread.join(0.1)
        self.findings.sort(key=lambda f: f.rank)
        return self.findings

    def _thread(self, target: Callable[[], object], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.kit_threads.add(thread)
        thread.start()
        return thread

    def _start(self) -> None:
        try:
            self.service.start()
        except BaseException as exc:  # judged later: the kit must not crash on it
            self.start_error = exc

    def _wait_until_running(self, deadline: float) -> None:
        """Until every worker of every running task under test entered its run_loop (or the
        task ended), so that "while running" means it."""
        with self.entered_changed:
            while True:
                waiting = [
                    t for t in self._tasks_under_test()
                    if not t.LOOPLESS and t.running and self.entered.get(t.name, 0) < t.workers
                ]
                left = deadline - time.monotonic()
                if not waiting or left <= 0:
                    return
                self.entered_changed.wait(left)

    # -- what the kit does on records --------------------------------------------------------

    def _on_record(self, rec: Transition) -> None:
        # On the firing thread with the journal's lock held: quick work only, no triggers.
        if rec.kind != TASK.name or not rec.ok:
            return
        phase, target = self.scenario.phase, self.scenario.target
        if rec.trigger == "create":
            self._inject(rec.subject)
            if phase == "before init" and rec.subject == target:
                self.service.shutdown("check_tasks: stop requested before init")
        elif rec.trigger == "start" and phase == "while starting" and rec.subject == target:
            self.service.shutdown("check_tasks: stop requested while starting")
        elif rec.trigger == "stop":
            if phase == "twice" and rec.subject == target:
                self.service.shutdown("check_tasks: stop requested again")
            if rec.dest == TaskState.STOPPING:
                self.stopping.put((rec.subject, time.monotonic() + self.plan.stop_timeout))
        elif rec.trigger in ("finish", "fail", "skip"):
            with self.entered_changed:
                self.entered_changed.notify_all()

    def _inject(self, name: str) -> None:
        """Give the instance ``name`` its faults (instance attributes: the class is left as
        the user wrote it)."""
        task = self.tasks.get(name)
        if task is None:
            return
        fault = self.faults.get(name, "none")
        if fault in ("skips", "fails"):
            task.init_task = _faulty_init(name, fault)
        elif fault == "stops slowly":
            hook = "on_stop" if _has_on_stop(type(task)) else "run_loop"
            setattr(task, hook, _slowed(getattr(task, hook), self.slow, self.release))
        if name in self.plan.names:
            if not task.LOOPLESS:
                task.run_loop = self._counted(task.name, task.run_loop)
            if self.scenario.phase == "during init" and name == self.scenario.target:
                task.init_task = self._stopping_first(task.init_task)

    def _counted(self, name: str, run_loop: Callable[[], None]) -> Callable[[], None]:
        def run_loop_entered() -> None:
            with self.entered_changed:
                self.entered[name] = self.entered.get(name, 0) + 1
                self.entered_changed.notify_all()
            run_loop()

        return run_loop_entered

    def _stopping_first(self, init_task: Callable[[], None]) -> Callable[[], None]:
        def init_task_with_a_stop_request() -> None:
            self.service.shutdown("check_tasks: stop requested during init")
            init_task()

        return init_task_with_a_stop_request

    def _watch(self) -> None:
        """The watchdog: give up on each task still running ``stop_timeout`` after it was
        asked to stop (woken by the stop records and by the earliest deadline, no polling)."""
        due: list[tuple[float, str]] = []  # a heap of (deadline, task)
        while True:
            wait = max(0.0, due[0][0] - time.monotonic()) if due else None
            try:
                news = self.stopping.get(timeout=wait)
            except queue.Empty:
                news = ("", 0.0)  # a deadline came: nothing new
            if news is None:
                return
            if news[0]:
                heapq.heappush(due, (news[1], news[0]))
            while due and due[0][0] <= time.monotonic():
                self._overran(heapq.heappop(due)[1])

    def _overran(self, name: str) -> None:
        """``name`` was asked to stop ``stop_timeout`` ago: if it still runs, give up on it as
        the service would at its deadline (the rest still stop, in order)."""
        tasks = self.tasks
        if tasks.state_of(name) in TASK.terminal:
            return
        if tasks.state == CollectionState.STOPPING:
            with contextlib.suppress(Exception):  # it ended meanwhile: nothing to give up
                tasks.fail(StopTimeout([name], self.plan.stop_timeout))

    # -- judging -----------------------------------------------------------------------------

    def _tasks_under_test(self) -> list[Task]:
        return [t for n in self.plan.names if (t := self.tasks.get(n)) is not None]

    def _user_names(self) -> list[str]:
        kit = self.neighbour.__name__ if self.neighbour is not None else None
        # Registration order, read without the collection's lock (a hung init holds it).
        return [n for c in self.tasks.task_classes if (n := task_name(c)) != kit]

    def _report_hung_start(self) -> None:
        name = self.tasks.initializing
        if name is not None:
            what = f"{name}'s init_task did not return"
        else:
            what = f"the service's start (create, init, start) did not return; {self._busy()}"
        self.findings.append(
            _Finding(1, f"{what} within {self.plan.start_timeout:g} s "
                     "(a hook that blocks must give up on its own, or watch a deadline)")
        )

    def _busy(self) -> str:
        states = self.tasks.by_state()
        live = [n for s, names in states.items() if s not in TASK.terminal for n in names]
        return "tasks not ended: " + (", ".join(live) if live else "none")

    def _judge_start(self) -> None:
        error = self.start_error
        if error is None or isinstance(error, InitError):
            return  # an InitError's tasks are judged one by one, as failed tasks
        self.findings.append(
            _Finding(3, f"the service's start raised {_exc_line(error)}")
        )

    def _judge_tasks(self) -> None:
        records = self.journal.records
        phase = self.scenario.phase
        stop_at: dict[str, Transition] = {}
        ended_at: dict[str, Transition] = {}
        failed: dict[str, Transition] = {}
        for rec in records:
            if rec.kind != TASK.name or not rec.ok:
                continue
            if rec.trigger == "stop" and rec.dest == TaskState.STOPPING:
                stop_at[rec.subject] = rec
            if rec.dest in TASK.terminal:
                ended_at[rec.subject] = rec
                if rec.dest == TaskState.FAILED:
                    failed[rec.subject] = rec
        limit_ns = self.plan.stop_timeout * 1e9
        for name in self._user_names():
            stop = stop_at.get(name)
            end = ended_at.get(name)
            if stop is not None and (end is None or end.mono - stop.mono > limit_ns):
                self.findings.append(
                    _Finding(2, f"{name} did not stop within {_seconds(self.plan.stop_timeout)} s "
                             f"after stop was requested {phase}; {self._why_late(name, stop, end)}")
                )
            elif self.tasks.state_of(name) not in TASK.terminal:
                self.findings.append(
                    _Finding(4, f"{name} did not end: it is {self.tasks.state_of(name)} "
                             "after the service ended")
                )
            fail = failed.get(name)
            if fail is not None and self.faults.get(name) != "fails":
                self.findings.append(_Finding(3, self._why_failed(name, fail, phase)))
        for subject in (self.tasks, self.service):
            if not subject.lifecycle.terminal:
                self.findings.append(
                    _Finding(4, f"{subject.lifecycle.spec.name} {subject.lifecycle.subject!r} "
                             f"did not end: it is {subject.lifecycle.state}")
                )

    def _why_late(self, name: str, stop: Transition, end: Transition | None) -> str:
        task = self.tasks.get(name)
        threads = [*task.threads, *((task._hook,) if task._hook is not None else ())]
        frames = sys._current_frames()
        for thread in threads:
            frame = frames.get(thread.ident) if thread.is_alive() and thread.ident else None
            if frame is None:
                continue
            hook, where = _stuck_in(frame)
            hint = _HINTS.get(hook or "", "its code is still running")
            return f"{hint} (thread {thread.name!r} is still at {where})"
        if end is not None:
            took = (end.mono - stop.mono) / 1e9
            return f"it took {took:.2f} s"
        return "its threads have ended, but it did not"

    def _why_failed(self, name: str, rec: Transition, phase: str) -> str:
        source = str(rec.source)
        task = self.tasks.get(name)
        error = task.failure if task is not None else None
        when = _PHASE_OF_STATE.get(source, f"while {source}")
        if error is None:
            cause = (rec.cause or "no cause recorded").strip().splitlines()[-1]
            return f"{name} failed {when}: {cause}"
        hook, where = _raised_in(error)
        who = f"its {hook}" if hook else _HOOK_OF_STATE.get(source, "its code")
        advice = "a task's code must not raise: it fails the task and stops the service"
        if source == "created":
            advice += "; raise SkipTask from init_task to opt out"
        if not isinstance(error, Exception):
            advice += f" ({type(error).__name__} included: it is the task's failure, not an exit)"
        return f"{name} failed {when}: {who} raised {_exc_line(error)} (at {where}); {advice}"

    def _judge_threads(self, before: set[threading.Thread]) -> None:
        engine: set[threading.Thread] = set()
        for task in self.tasks.tasks:
            engine.update(task.threads)
            if task._hook is not None:
                engine.add(task._hook)
        ours = self.kit_threads
        left = [
            t for t in threading.enumerate()
            if t not in before and t not in ours and t not in engine and t.is_alive()
        ]
        deadline = time.monotonic() + self.slow
        for thread in left:  # a thread told to end in on_stop may still be on its way out
            thread.join(max(0.0, deadline - time.monotonic()))
        for thread in left:
            if thread.is_alive():
                owner = self._owner(thread)
                self.findings.append(
                    _Finding(5, f"{owner} left a thread running after the tasks ended: "
                             f"{thread.name!r}{_target_text(thread)}; join the threads a task "
                             "starts (in on_stop, or before run_loop returns)")
                )

    def _owner(self, thread: threading.Thread) -> str:
        target = getattr(thread, "_target", None)
        owner = getattr(target, "__self__", None)
        if isinstance(owner, Task):
            return owner.name
        qualname = getattr(target, "__qualname__", "")
        for name in self._user_names():
            if qualname.startswith(f"{name}."):
                return name
        return "a task (which one is not known)"

    def _judge_journal(self) -> None:
        for violation in check(self.journal):
            self.findings.append(_Finding(6, f"the journal does not audit clean: {violation}"))


def _neighbour(plan: _Plan, where: str, delay: float, release: threading.Event) -> type[Task]:
    """A LOOPLESS task of the kit's own whose `on_stop` takes ``delay`` seconds, beside the
    tasks (no order) or above the task under test named ``where`` (requiring it)."""
    taken = {task_name(c) for c in (*plan.under_test, *plan.dependencies)}
    name = "SlowNeighbour"
    while name in taken:
        name += "_"
    deps = tuple(c for c in plan.under_test if task_name(c) == where)

    def on_stop(self: Task) -> None:
        release.wait(delay)  # a deliberate, bounded delay; set at cleanup

    return type(
        name,
        (Task,),
        {"LOOPLESS": True, "DEPS": deps, "on_stop": on_stop, "__module__": __name__},
    )


def _graph(classes: Sequence[type[Task]]) -> tuple[list[str], dict[str, list[str]]]:
    order = [task_name(c) for c in classes]
    known = set(order)
    before = {
        task_name(c): [task_name(d) for d in (*c.DEPS, *c.WANTS) if task_name(d) in known]
        for c in classes
    }
    return order, before


def _faulty_init(name: str, fault: str) -> Callable[[], None]:
    def init_task() -> None:
        if fault == "skips":
            raise SkipTask(f"check_tasks: {name} skips (injected)")
        raise InjectedFault(f"check_tasks: {name} fails in init_task (injected)")

    return init_task


def _slowed(hook: Callable[[], None], delay: float, release: threading.Event) -> Callable[[], None]:
    def slowly() -> None:
        hook()
        release.wait(delay)  # a deliberate, bounded delay; set at cleanup

    return slowly


def _seconds(value: float) -> str:
    return repr(float(value))


def _exc_line(error: BaseException) -> str:
    text = safe_str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _user_frame(filename: str) -> bool:
    path = str(Path(filename).resolve()) if filename and not filename.startswith("<") else filename
    return not (path.startswith(_PACKAGE) or path.startswith(_STDLIB))


def _stuck_in(frame: FrameType) -> tuple[str | None, str]:
    """The hook a thread is in (the innermost frame named like one) and where it is (the
    innermost frame of user code, else the innermost frame)."""
    stack = traceback.extract_stack(frame)  # outermost first
    hook = next((f.name for f in reversed(stack) if f.name in _HINTS), None)
    spot = next((f for f in reversed(stack) if _user_frame(f.filename)), stack[-1])
    return hook, f"{spot.filename}:{spot.lineno}, in {spot.name}"


def _raised_in(error: BaseException) -> tuple[str | None, str]:
    """The hook a traceback went through last and the line that raised."""
    stack = traceback.extract_tb(error.__traceback__)
    if not stack:
        return None, "an unknown place"
    hooks = {"__init__", "init_task", *_HINTS}
    hook = next((f.name for f in reversed(stack) if f.name in hooks), None)
    if hook == "__init__":
        hook = "constructor"
    spot = next((f for f in reversed(stack) if _user_frame(f.filename)), stack[-1])
    return hook, f"{spot.filename}:{spot.lineno}, in {spot.name}"


def _target_text(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    name = getattr(target, "__qualname__", None)
    return f" (running {name})" if name else ""


def _message(findings: Sequence[_Finding], scenario: Scenario) -> str:
    lines = [findings[0].text, f"scenario (the smallest found): {scenario.describe()}"]
    if len(findings) > 1:
        lines.append("also found:")
        lines += [f"  - {f.text}" for f in findings[1:]]
    return "\n".join(lines)
