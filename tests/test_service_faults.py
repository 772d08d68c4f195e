"""A fault-injection property over whole services: whatever the tasks do, the service ends.

Each example builds a random DAG of tasks (LOOPLESS, threaded, and queue tasks with items in
flight) whose hooks misbehave at random points: they raise an `Exception`, `SystemExit`,
`KeyboardInterrupt` or an exception whose ``str`` raises, hang, stop slowly, or return early.
A stop is requested at a random moment (before, during or after init). Then:

* `Service.run` returns within the stop deadline plus a second of the request;
* the service ends ``failed`` exactly when some fault that fails a task fired, or a hook hung;
* every future handed out is resolved;
* no thread of a task outlives `run` (except those of hooks that hang on purpose, which are
  released afterwards);
* the journal audits clean, and its outcome is what the live service, collection and tasks
  say (states, verdict, items dropped).
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future
from typing import Any, ClassVar

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle import audit
from lifecycle.context import ExecuteContext
from lifecycle.outcome import outcome
from lifecycle.service import Service
from lifecycle.spec import ServiceState
from lifecycle.task import Task
from lifecycle.tasks import QueueTask

#: The stop deadline of every service built here, and how late `run` may return past it.
STOP_TIMEOUT = 0.3
SLACK = 1.0
HOOKS = ("ctor", "init_task", "run_loop", "on_stop")
#: Faults that fail the task they fire in (and so the service).
FAILING = ("raise", "exit", "interrupt", "unprintable")
#: Faults that do not fail anything.
BENIGN = ("slow", "early")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")


@attrs.frozen
class Fault:
    """One task's plan: its kind, what it is ordered after, and the fault of one hook."""

    kind: str  # loopless | threaded | queue
    deps: tuple[int, ...]
    wants: tuple[int, ...]
    hook: str
    fault: str  # ok | raise | exit | interrupt | unprintable | hang | slow | early


@st.composite
def services(draw: st.DrawFn) -> list[Fault]:
    count = draw(st.integers(min_value=1, max_value=4))
    faults = []
    for i in range(count):
        earlier = list(range(i))
        kind = draw(st.sampled_from(["loopless", "threaded", "queue"]))
        hook = draw(st.sampled_from(HOOKS))
        choices = ["ok", "ok", *FAILING, "hang", "slow"]
        if hook == "run_loop" and kind == "threaded":
            choices.append("early")
        if hook == "run_loop" and kind != "threaded":
            choices = ["ok"]  # a LOOPLESS task has no run loop; a queue task's is the engine's
        faults.append(
            Fault(
                kind=kind,
                deps=tuple(draw(st.sets(st.sampled_from(earlier), max_size=2))) if i else (),
                wants=tuple(draw(st.sets(st.sampled_from(earlier), max_size=1))) if i else (),
                hook=hook,
                fault=draw(st.sampled_from(choices)),
            )
        )
    return faults


class Harness:
    """What the faulty hooks share with the test: what fired, and the release of the hangs."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def act(self, task: str, fault: str) -> None:
        with self.lock:
            self.fired.append((task, fault))
        if fault == "raise":
            raise RuntimeError(f"{task} broke")
        if fault == "exit":
            raise SystemExit(0)
        if fault == "interrupt":
            raise KeyboardInterrupt
        if fault == "unprintable":
            raise Unprintable
        if fault == "hang":
            self.release.wait(30)
        if fault == "slow":
            time.sleep(0.02)


class Faulty:
    """Mixed into each task class: runs its plan's fault in the planned hook."""

    FAULT: ClassVar[Fault]
    HARNESS: ClassVar[Harness]

    def _maybe(self, hook: str) -> None:
        if self.FAULT.hook == hook and self.FAULT.fault != "ok":
            self.HARNESS.act(type(self).__name__, self.FAULT.fault)


class FaultyTask(Faulty, Task):
    def __init__(self, service: Any = None) -> None:
        self._maybe("ctor")
        super().__init__(service)

    def init_task(self) -> None:
        self._maybe("init_task")

    def run_loop(self) -> None:
        if self.FAULT.hook == "run_loop" and self.FAULT.fault == "early":
            self.HARNESS.act(type(self).__name__, "early")
            return
        self._maybe("run_loop")
        self.stop_event.wait(30)

    def on_stop(self) -> None:
        self._maybe("on_stop")


class FaultyQueue(Faulty, QueueTask):
    def __init__(self, service: Any = None) -> None:
        self._maybe("ctor")
        super().__init__(service)

    def init_task(self) -> None:
        self._maybe("init_task")

    def execute(self, item: Any, context: ExecuteContext) -> Any:
        return item

    def on_stop(self) -> None:
        super().on_stop()  # fails the futures still waiting
        self._maybe("on_stop")


def build(faults: list[Fault], harness: Harness) -> type[Service]:
    classes: list[type[Task]] = []
    for i, fault in enumerate(faults):
        base: type[Task] = FaultyQueue if fault.kind == "queue" else FaultyTask
        classes.append(
            type(
                f"F{i}",
                (base,),
                {
                    "FAULT": fault,
                    "HARNESS": harness,
                    "LOOPLESS": fault.kind == "loopless",
                    "DEPS": tuple(classes[d] for d in fault.deps),
                    "WANTS": tuple(classes[w] for w in fault.wants),
                    "__module__": __name__,
                },
            )
        )
    return type("Faults", (Service,), {"TASKS": tuple(classes), "__module__": __name__})


@settings(max_examples=2 * settings().max_examples)
@given(faults=services(), when=st.sampled_from(["at-once", "running", "later"]))
def test_whatever_the_tasks_do_the_service_ends_in_time_and_audits_clean(
    faults: list[Fault], when: str
) -> None:
    harness = Harness()
    service = build(faults, harness)({"stop_timeout": STOP_TIMEOUT})
    futures: list[Future[Any]] = []
    asked_at: list[float] = []

    def request_stop() -> None:
        # Hand work to every running queue task first: none of it may be lost.
        for task in service.tasks.tasks:
            if isinstance(task, QueueTask) and task.running:
                with contextlib.suppress(Exception):  # refused if it stopped: not lost
                    futures.extend(task.submit(i) for i in range(3))
        asked_at.append(time.monotonic())
        service.shutdown("the test asks")

    delay = {"at-once": 0.0, "running": 0.01, "later": 0.05}[when]
    timer = threading.Timer(delay, request_stop)
    timer.start()
    try:
        code = service.run()
        ended = time.monotonic()
    finally:
        timer.cancel()
        timer.join(30)
        harness.release.set()
    if asked_at:
        assert ended - asked_at[0] <= STOP_TIMEOUT + SLACK, ended - asked_at[0]

    fired = {fault for _, fault in harness.fired}
    failed = bool(fired & {*FAILING, "hang"})
    assert (service.state == ServiceState.FAILED) == failed, (fired, service.failure)
    assert code == (1 if failed else 0)
    assert all(f.done() for f in futures)
    assert audit.check(service.journal) == []
    # What the journal says the run did is what the live objects say.
    result = outcome(service.journal)
    assert result.service is not None and result.collection is not None
    assert result.service.state == service.state.value
    assert result.collection.state == service.tasks.state.value
    live = {name: service.tasks.state_of(name).value for name in service.tasks.order}
    assert {t.name: t.state for t in result.tasks} == live
    assert result.succeeded == (code == 0)
    assert result.stop_order_kept is True
    summaries = {t.name: t for t in result.tasks}
    for task in service.tasks.tasks:
        if isinstance(task, QueueTask) and task.state.value == "stopped":
            assert summaries[task.name].dropped == task.dropped
    if "hang" not in fired:
        threads = [t for task in service.tasks.tasks for t in (*task.threads, task._hook)]
        assert not any(t is not None and t.is_alive() for t in threads)
    # Hooks that hung were released above; their threads end now.
    for task in service.tasks.tasks:
        task.join(30)
