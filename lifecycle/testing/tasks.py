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
stops slowly beside or above a task under test (an `AsyncTask` beside or above an async one).
Since the registered classes are the user's own, code such as
``self.service.tasks.require(Mailer)`` works as in production.

Thread tasks and async tasks (`lifecycle.aio.AsyncTask` and its kinds) are checked alike, in
any mix. A service with async tasks is run as in production, by `Service.serve` on an event
loop of the kit's own thread; once it returned, every asyncio task still pending is reported
(if user code made it) and cancelled, and the loop is closed, so that no example leaves a loop,
a pending asyncio task or a thread behind. An async task stopped only by the engine's
escalation (its ``run_loop`` ignored `stop_event` and was cancelled once its stop grace passed,
within ``stop_timeout``) kept the promise, so it does not fail the check; it is reported with a
`StopGraceWarning`.

Nothing here can hang the caller: the service is started and waited for on threads of the kit,
with deadlines. A task that does not stop in time is given up on (the collection's `fail`, as
a service does at its stop deadline), reported with the hook its threads or coroutines are stuck
in, and abandoned: the engine's threads are daemon threads, and a coroutine that swallows every
cancellation is left suspended on the closed loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import queue
import sys
import sysconfig
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
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

from lifecycle.aio.task import AsyncTask
from lifecycle.audit import check
from lifecycle.collection import Tasks
from lifecycle.errors import InitError, StopTimeout, safe_str
from lifecycle.journal import Journal, Transition
from lifecycle.service import Service
from lifecycle.spec import SERVICE, TASK, CollectionState, TaskState
from lifecycle.stopping import stop_layers
from lifecycle.task import SkipTask, Task, task_name

__all__ = ["InjectedFault", "Scenario", "StopGraceWarning", "check_tasks"]

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
    "init_task": "its init_task did not return",
}
#: What the kit adds to a hint when an async task's coroutine survived its cancellation.
_SWALLOWS = " and swallows cancellation"
#: The service records after which its `start` has returned (or never will run again).
_START_OVER = frozenset({"started", "stop", "fail", "finish"})
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


class StopGraceWarning(UserWarning):
    """An async task under test kept the stop promise only because the engine cancelled its
    ``run_loop`` when its stop grace (``STOP_GRACE``) passed: the loop did not return on its
    own when `stop_event` was set. Warned once per task and `check_tasks` call; turn it into a
    failure with ``-W error::lifecycle.testing.StopGraceWarning``."""


@attrs.frozen
class Scenario:
    """One run of the tasks: when the stop is requested (``phase``) and around which task
    under test (``target``), the fault of each dependency (``faults``: name -> one of
    `DEP_FAULTS`), and where a slowly stopping neighbour sits (``neighbour``: ``"none"``,
    ``"beside"`` or the name of the task under test it sits above, requiring it), and whether
    that neighbour is an async task (``async_neighbour``: it is when the task it sits above,
    or for ``"beside"`` the target, is one)."""

    phase: str
    target: str
    faults: tuple[tuple[str, str], ...]
    neighbour: str
    async_neighbour: bool = False

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
        kind = "an async neighbour task" if self.async_neighbour else "a neighbour task"
        if self.neighbour == "beside":
            faults.append(f"{kind} stops slowly beside them")
        elif self.neighbour != "none":
            faults.append(f"{kind} that requires {self.neighbour} stops slowly")
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
        choices = ["none"]
        if _has_init_task(cls):  # else the engine never calls an injected init_task
            choices += ["skips", "fails"]
        if _has_on_stop(cls) or not cls.LOOPLESS:
            choices.append("stops slowly")
        return choices

    def neighbour_is_async(self, where: str, target: str) -> bool:
        """Whether the neighbour placed ``where`` (for a ``target``) is an async task."""
        above = target if where == "beside" else where
        return any(_is_async(c) for c in self.under_test if task_name(c) == above)


@st.composite
def _scenarios(draw: st.DrawFn, plan: _Plan) -> Scenario:
    phase = draw(st.sampled_from(PHASES))
    target = draw(st.sampled_from(plan.names))
    faults = tuple(
        (task_name(dep), draw(st.sampled_from(plan.fault_choices(dep))))
        for dep in plan.dependencies
    )
    neighbour = draw(st.sampled_from(["none", "beside", *plan.names]))
    async_neighbour = neighbour != "none" and plan.neighbour_is_async(neighbour, target)
    return Scenario(phase, target, faults, neighbour, async_neighbour)


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

    The classes may be thread tasks (`Task` and its kinds), async tasks (`AsyncTask` and its
    kinds) or any mix. Each of up to ``max_examples`` examples runs the classes (and the
    tasks their DEPS and WANTS pull in) in a fresh ``service`` (a `Service` subclass: its
    options and attributes are what the tasks see; its ``TASKS`` are replaced) with
    ``options``, through create, init, start, stop and join, the stop requested at one of
    `PHASES`, the dependencies made to skip, fail or stop slowly, and a neighbour task
    stopping slowly (an async one beside or above an async task); a service with async tasks
    runs under `Service.serve` on an event loop of the kit's. It then checks that every task
    asked to stop ended within ``stop_timeout`` seconds of its ``stop`` record; that no
    task's code raised (a failed task, `SystemExit` included; `SkipTask` from `init_task` is
    how a task opts out); that no thread started during the run is still alive once it ended
    (after a grace of a tenth of ``stop_timeout``), and no asyncio task user code made is
    still pending; that every task, the collection and the service ended terminal; and that
    the journal audits clean. The start (create, init, start) may take ``start_timeout``
    seconds.

    The message leads with the first broken promise, in words a user can act on (``"Poller did
    not stop within 1.0 s after stop was requested while running; its run_loop does not watch
    stop_event (...)"``; for a coroutine that also survives its cancellation, ``"its run_loop
    does not watch stop_event and swallows cancellation (coroutine 'Poller.run_loop' is still
    at ...)"``), then the scenario and anything else found. Scenarios are drawn
    deterministically, so a run repeats.

    An async task whose ``run_loop`` ignored `stop_event` but was cancelled by the engine
    when its stop grace passed, within ``stop_timeout``, kept the promise: that is no failure,
    but it is warned about with `StopGraceWarning` (once per task), since its ``run_loop``
    relies on being cancelled. Cancelled later than ``stop_timeout`` (the default grace, half
    the time left until the service's deadline, is at least twice ``stop_timeout`` here), it
    did not stop in time and fails the check.

    Cost: a run of well-behaved tasks takes what their start and stop take, plus a tenth of
    ``stop_timeout`` for the slow stops. A task that does not stop costs about
    ``stop_timeout`` in each example that meets it, and once one example failed hypothesis
    replays smaller ones (a handful to a few dozen) to find the smallest; a hung `init_task`
    costs ``start_timeout`` plus the service's stop deadline (``stop_timeout`` per stop
    layer, plus one; twice that with async tasks). Threads of tasks that never return are
    abandoned (daemon threads).

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
    finally:
        for text in runner.cut_by_grace.values():
            warnings.warn(StopGraceWarning(text), stacklevel=2)


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
        #: Task -> the `StopGraceWarning` text for it (the first example that showed it).
        self.cut_by_grace: dict[str, str] = {}

    def run(self, scenario: Scenario) -> None:
        if scenario not in self.results:
            if self.failed:
                if self.budget <= 0:
                    return
                self.budget -= 1
            example = _Example(self.plan, scenario)
            findings = example.run()
            # (getattr: a stand-in for `_Example` in the kit's own tests may not have it)
            for name, text in getattr(example, "cut_by_grace", {}).items():
                self.cut_by_grace.setdefault(name, text)
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


def _is_async(cls: type[Task]) -> bool:
    return issubclass(cls, AsyncTask)


def _has_on_stop(cls: type[Task]) -> bool:
    """Whether the engine calls ``on_stop`` (it looks at the class, not the instance)."""
    return cls.on_stop not in (Task.on_stop, AsyncTask.on_stop)


def _has_init_task(cls: type[Task]) -> bool:
    """Whether an ``init_task`` given to an instance is called: always for a thread task;
    an async task whose class has none is not awaited at all (the engine looks at the class)."""
    return not _is_async(cls) or cls.init_task is not AsyncTask.init_task


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
        # Set once the service's start has returned: by the kit's thread that ran it, or,
        # under `serve` (``by_serve``: the service has async tasks; `serve`'s driver runs the
        # start), by the service record that follows it.
        self.start_over = threading.Event()
        self.by_serve = False
        # The async runtime: the kit's loop (None for thread tasks only), set once `serve`
        # returned; where each async task overrunning its stop was stuck (task -> (hook,
        # where), read on the loop); the asyncio tasks user code left pending; the engine's
        # coroutines that survived cancellation (task -> their asyncio tasks' names).
        self.loop: asyncio.AbstractEventLoop | None = None
        self.served = threading.Event()
        self.stuck: dict[str, tuple[str | None, str]] = {}
        self.left_pending: list[tuple[str, str, str]] = []  # (owner, asyncio task, coroutine)
        self.swallowed: dict[str, list[str]] = {}
        #: Task -> the `StopGraceWarning` text, for async tasks stopped by the grace's cancel.
        self.cut_by_grace: dict[str, str] = {}
        self.late: set[str] = set()  # the tasks that did not stop within stop_timeout
        self.hung_start = False  # the start did not return within start_timeout
        self.neighbour: type[Task] | None = None
        extra: list[type[Task]] = []
        if scenario.neighbour != "none":
            self.neighbour = _neighbour(
                plan, scenario.neighbour, self.slow, self.release, scenario.async_neighbour
            )
            extra.append(self.neighbour)
        cls = _service_class(plan.service, plan.under_test, extra)
        layers = stop_layers(*_graph([*plan.under_test, *plan.dependencies, *extra]))
        # The service's own deadline is a backstop: the kit gives up on a task that overruns
        # ``stop_timeout`` itself, so that a hung task costs about that much. Twice as long
        # with async tasks: their default stop grace is half the time left until the deadline,
        # which then ends well after ``stop_timeout`` (a run_loop cut by it is late, and seen
        # where it hangs), rather than at about the moment the kit gives up.
        async_tasks = any(_is_async(c) for c in (*plan.under_test, *plan.dependencies, *extra))
        layers_and_one = (len(layers) + 1) * (2 if async_tasks else 1)
        options = {**plan.options, "stop_timeout": plan.stop_timeout * layers_and_one}
        self.journal = Journal()
        self.service = cls(options, journal=self.journal)
        self.tasks = self.service.tasks
        self.by_serve = self.service.has_async_tasks
        self.journal.subscribe(self._on_record)

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> list[_Finding]:
        before = set(threading.enumerate())
        plan, service = self.plan, self.service
        served = self.by_serve
        try:
            self._thread(self._watch, "check_tasks-watchdog")
            if served:  # as in production: serve() on a loop; its driver starts and waits
                runner = self._thread(self._serve, "check_tasks-loop")
            else:
                runner = self._thread(self._start, "check_tasks-start")
            if not self.start_over.wait(plan.start_timeout):
                self._report_hung_start()
            elif self.scenario.phase in ("while running", "twice"):
                self._wait_until_running(time.monotonic() + plan.start_timeout)
            service.shutdown("check_tasks: the scenario's stop request")
            # The deadline, its grace, and some slack (`serve` adds two short graces: for
            # the async hooks it cancels at the deadline, and for the coroutines it awaits).
            bound = service.stop_timeout + (3.0 if served else 2.0)
            if served:
                ended = self.served.wait(bound)
            else:
                waiter = self._thread(service.wait, "check_tasks-wait")
                waiter.join(bound)
                ended = not waiter.is_alive()
            if not ended:
                self.findings.append(
                    _Finding(0, f"the service did not end within {bound:g} s of the stop "
                             f"request; it is {service.state} ({self._busy()})")
                )
            elif served:
                runner.join(bound)  # the loop closes after a short grace per round of cancels
                if runner.is_alive():
                    self.findings.append(
                        _Finding(0, "the event loop could not be closed after the service "
                                 f"ended: a coroutine blocks it ({self._busy()})")
                    )
            self._judge_start()
            self._judge_tasks()
            self._judge_threads(before)
            self._judge_pending()
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
        finally:
            self.start_over.set()

    def _serve(self) -> None:
        """The kit's loop thread: `Service.serve` on a new loop, then the loop's cleanup."""
        loop = self.loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self.service.serve())
            except BaseException as exc:  # judged later: the kit must not crash on it
                self.start_error = exc
            finally:
                self.start_over.set()
                self.served.set()
            self._close_loop(loop)
        finally:
            loop.close()

    def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Once `serve` returned: note the asyncio tasks still pending (user code made them,
        or the engine's coroutines that swallowed their cancellation, which `serve` keeps in
        `Service.abandoned`), cancel them, wait a short grace, and shut the loop's async
        generators and default executor down, with deadlines."""
        engine = {id(run) for run in self.service.abandoned}
        for task in self.tasks.tasks:
            if isinstance(task, AsyncTask):
                engine.update(id(run) for run in task._pending_runs())
        pending = [run for run in asyncio.all_tasks(loop) if not run.done()]
        for run in pending:
            coro = run.get_coro()
            code = getattr(coro, "cr_code", None)
            if id(run) not in engine and (code is None or _user_frame(code.co_filename)):
                coroutine = getattr(code, "co_qualname", "") if code is not None else ""
                frame = getattr(coro, "cr_frame", None)
                method_of = frame.f_locals.get("self") if frame is not None else None
                owner = method_of.name if isinstance(method_of, Task) else None
                self.left_pending.append(
                    (owner or self._owner_of(coroutine), run.get_name(), coroutine)
                )
            run.cancel()
        grace = max(self.slow, 0.1)
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=grace))
        for task in self.tasks.tasks:
            if isinstance(task, AsyncTask):
                still = [run.get_name() for run in task._pending_runs()]
                if still:
                    self.swallowed[task.name] = still
        for run in pending:
            if not run.done():  # suspended for good on a closed loop: not news at its gc
                run._log_destroy_pending = False  # type: ignore[attr-defined]
        with contextlib.suppress(TimeoutError):
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), grace))
        with contextlib.suppress(TimeoutError):
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_default_executor(), grace))

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
        if not rec.ok:
            return
        if rec.kind == SERVICE.name:
            if self.by_serve and rec.trigger in _START_OVER:
                self.start_over.set()  # `start` holds the drive lock until it returns
            return
        if rec.kind != TASK.name:
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
        coroutines = isinstance(task, AsyncTask)  # its hooks must stay coroutine functions
        if fault in ("skips", "fails"):
            task.init_task = (_faulty_init_async if coroutines else _faulty_init)(name, fault)
        elif fault == "stops slowly":
            hook = "on_stop" if _has_on_stop(type(task)) else "run_loop"
            slowed = _slowed_async if coroutines else _slowed
            setattr(task, hook, slowed(getattr(task, hook), self.slow, self.release))
        if name in self.plan.names:
            if not task.LOOPLESS:
                task.run_loop = self._counted(task.name, task.run_loop, coroutines)
            if self.scenario.phase == "during init" and name == self.scenario.target:
                if _has_init_task(type(task)):
                    task.init_task = self._stopping_first(task.init_task, coroutines)
                else:  # no init code to stop during: the stop comes just before its init
                    self.service.shutdown("check_tasks: stop requested during init")

    def _entered(self, name: str) -> None:
        with self.entered_changed:
            self.entered[name] = self.entered.get(name, 0) + 1
            self.entered_changed.notify_all()

    def _counted(self, name: str, run_loop: Callable[[], Any], coroutines: bool) -> Any:
        if coroutines:
            async def run_loop_entered_async() -> None:
                self._entered(name)
                await run_loop()

            return run_loop_entered_async

        def run_loop_entered() -> None:
            self._entered(name)
            run_loop()

        return run_loop_entered

    def _stopping_first(self, init_task: Callable[[], Any], coroutines: bool) -> Any:
        if coroutines:
            async def init_task_with_a_stop_request_async() -> None:
                self.service.shutdown("check_tasks: stop requested during init")
                await init_task()

            return init_task_with_a_stop_request_async

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
        loop = self.loop
        if loop is not None and isinstance(tasks.get(name), AsyncTask):
            # Where its coroutines are, read on the loop (between two of its steps, so the
            # frames hold still) before anything is cancelled: the callbacks run in order.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to see
                loop.call_soon_threadsafe(self._note_stuck, name)
        if tasks.state == CollectionState.STOPPING:
            with contextlib.suppress(Exception):  # it ended meanwhile: nothing to give up
                tasks.fail(StopTimeout([name], self.plan.stop_timeout))

    def _note_stuck(self, name: str) -> None:
        """On the loop: where the coroutines of async task ``name`` are suspended."""
        task = self.tasks.get(name)
        if not isinstance(task, AsyncTask):
            return
        for run in task._pending_runs():
            hook, where = _stuck_in_stack(_coroutine_frames(run.get_coro()))
            self.stuck[name] = (hook, f"coroutine {run.get_name()!r} is still at {where}")
            return

    # -- judging -----------------------------------------------------------------------------

    def _tasks_under_test(self) -> list[Task]:
        return [t for n in self.plan.names if (t := self.tasks.get(n)) is not None]

    def _user_names(self) -> list[str]:
        kit = self.neighbour.__name__ if self.neighbour is not None else None
        # Registration order, read without the collection's lock (a hung init holds it).
        return [n for c in self.tasks.task_classes if (n := task_name(c)) != kit]

    def _report_hung_start(self) -> None:
        self.hung_start = True
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
                self.late.add(name)
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
            if isinstance(getattr(self.tasks.get(name), "failure", None), StopTimeout) and (
                name in self.late or self.hung_start
            ):
                continue  # the engine's give-up on a hook already reported as hung or late
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
        if isinstance(task, AsyncTask):
            return self._why_late_async(task, stop, end)
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

    def _why_late_async(self, task: AsyncTask, stop: Transition, end: Transition | None) -> str:
        """`_why_late` for an async task: the hook its coroutine was suspended in when the
        kit gave up on it, and whether the coroutine survived its cancellation."""
        name = task.name
        swallowed = name in self.swallowed
        hook, where = self.stuck.get(name, (None, ""))
        if hook is None and swallowed:  # not seen at the give-up: named by what survived
            hook = self.swallowed[name][0].removeprefix(f"{name}.").split("-")[0]
        if hook is None:
            if end is not None:
                took = (end.mono - stop.mono) / 1e9
                cause = task._cancel_cause
                if cause:
                    return f"it ended only when cancelled, after {took:.2f} s ({cause})"
                return f"it took {took:.2f} s"
            return "its coroutines have ended, but it did not"
        hint = _HINTS.get(hook, "its code is still running")
        if swallowed:
            hint += _SWALLOWS
        elif end is not None:
            where = where.replace(" is still at ", " was at ", 1)
            where += "; it ended only when cancelled" if task._cancel_cause else ""
        return f"{hint} ({where})" if where else hint

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
        for thread in threading.enumerate():  # the driver `serve` runs the collection on
            if getattr(getattr(thread, "_target", None), "__self__", None) is self.service:
                engine.add(thread)
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
        return self._owner_of(getattr(target, "__qualname__", ""))

    def _owner_of(self, qualname: str) -> str:
        """The task whose class defines the function ``qualname`` names."""
        scopes = qualname.split(".")[:-1]  # a class defined in a function: f.<locals>.Task.m
        for name in self._user_names():
            if name in scopes:
                return name
        return "a task (which one is not known)"

    def _judge_pending(self) -> None:
        """Asyncio tasks user code left pending once the service ended; and the async tasks
        under test that kept the stop promise only through the engine's cancellation."""
        for owner, run, coroutine in self.left_pending:
            running = f" (running {coroutine})" if coroutine else ""
            self.findings.append(
                _Finding(5, f"{owner} left an asyncio task pending after the tasks ended: "
                         f"{run!r}{running}; await or cancel the asyncio tasks a task starts "
                         "(in on_stop, or before run_loop returns)")
            )
        for task in self._tasks_under_test():
            if (
                isinstance(task, AsyncTask)
                and task._cancel_cause is not None
                and task.state == TaskState.STOPPED
                and task.name not in self.late
            ):
                self.cut_by_grace[task.name] = (
                    f"{task.name} stopped within {_seconds(self.plan.stop_timeout)} s only "
                    f"because its run_loop was cancelled ({task._cancel_cause}); it does not "
                    "return once stop_event is set: await stop_event.wait() (or check "
                    "stop_event.is_set()) so that it ends on its own"
                )

    def _judge_journal(self) -> None:
        for violation in check(self.journal):
            self.findings.append(_Finding(6, f"the journal does not audit clean: {violation}"))


def _neighbour(
    plan: _Plan, where: str, delay: float, release: threading.Event, coroutines: bool
) -> type[Task]:
    """A LOOPLESS task of the kit's own whose `on_stop` takes ``delay`` seconds, beside the
    tasks (no order) or above the task under test named ``where`` (requiring it); an
    `AsyncTask` whose `on_stop` awaits the delay if ``coroutines``."""
    taken = {task_name(c) for c in (*plan.under_test, *plan.dependencies)}
    name = "SlowNeighbour"
    while name in taken:
        name += "_"
    deps = tuple(c for c in plan.under_test if task_name(c) == where)

    def on_stop(self: Task) -> None:
        release.wait(delay)  # a deliberate, bounded delay; set at cleanup

    async def on_stop_async(self: Task) -> None:
        await asyncio.sleep(delay)  # a deliberate, bounded delay

    base: type[Task] = AsyncTask if coroutines else Task
    return type(
        name,
        (base,),
        {
            "LOOPLESS": True,
            "DEPS": deps,
            "on_stop": on_stop_async if coroutines else on_stop,
            "__module__": __name__,
        },
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


def _faulty_init_async(name: str, fault: str) -> Callable[[], Coroutine[Any, Any, None]]:
    init = _faulty_init(name, fault)

    async def init_task() -> None:
        init()

    return init_task


def _slowed(hook: Callable[[], None], delay: float, release: threading.Event) -> Callable[[], None]:
    def slowly() -> None:
        hook()
        release.wait(delay)  # a deliberate, bounded delay; set at cleanup

    return slowly


def _slowed_async(
    hook: Callable[[], Coroutine[Any, Any, None]], delay: float, release: threading.Event
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def slowly() -> None:
        await hook()
        await asyncio.sleep(delay)  # a deliberate, bounded delay (on the loop: no release)

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
    return _hook_and_spot(traceback.extract_stack(frame))  # outermost first


def _stuck_in_stack(frames: Sequence[FrameType]) -> tuple[str | None, str]:
    """`_stuck_in` for a suspended coroutine, from its frames (outermost first)."""
    return _hook_and_spot(traceback.StackSummary.extract((f, f.f_lineno) for f in frames))


def _coroutine_frames(coroutine: object) -> list[FrameType]:
    """The frames of a suspended coroutine and of what it awaits, outermost first
    (`asyncio.Task.get_stack` gives only the outermost one of a suspended coroutine)."""
    frames: list[FrameType] = []
    seen: set[int] = set()
    while coroutine is not None and id(coroutine) not in seen:  # a loop: any depth
        seen.add(id(coroutine))
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)
    return frames


def _hook_and_spot(stack: traceback.StackSummary) -> tuple[str | None, str]:
    if not stack:
        return None, "an unknown place"
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
