"""Random crash schedules against random restart policies: restarts never exceed the limit,
never come before the backoff, follow DEPS, and every journal audits clean."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from hypothesis import given
from hypothesis import strategies as st

from lifecycle import Tasks
from lifecycle.audit import check
from lifecycle.restart import RestartPolicy, seconds_ns
from lifecycle.spec import TASK, TaskState
from lifecycle.task import Task

WAIT = 30.0  # a bound only a broken engine reaches

#: What one instance's run loop does: raise, return at once, or run until stopped.
CRASH, RETURN, RUN = "crash", "return", "run"


class _Watch:
    """The service the tasks report to; wakes the test on each journal record and shutdown."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.shutdown_reason: str | None = None

    def shutdown(self, reason: str) -> None:
        with self.changed:
            if self.shutdown_reason is None:
                self.shutdown_reason = reason
            self.changed.notify_all()

    def poke(self, _: object = None) -> None:
        with self.changed:
            self.changed.notify_all()


def _task_class(
    name: str, deps: tuple[type[Task], ...], policy: RestartPolicy, schedule: list[str]
) -> type[Task]:
    def run_loop(self: Any) -> None:
        cls = type(self)
        with cls.lock:
            number = cls.made
            cls.made += 1
        action = cls.schedule[number] if number < len(cls.schedule) else RUN
        if action == CRASH:
            raise RuntimeError(f"{cls.__name__} instance {number} crashes")
        if action == RETURN:
            return
        self.steady = True
        self.service.poke()
        self.stop_event.wait()

    namespace: dict[str, Any] = {
        "DEPS": deps,
        "RESTART": policy.mode,
        "RESTART_DELAY": policy.delay,
        "RESTART_DELAY_MAX": policy.delay_max,
        "RESTART_LIMIT": policy.limit,
        "schedule": schedule,
        "made": 0,
        "lock": threading.Lock(),
        "steady": False,
        "run_loop": run_loop,
        "__annotations__": {"made": ClassVar[int]},
    }
    return type(name, (Task,), namespace)


policies = st.builds(
    RestartPolicy,
    mode=st.sampled_from(["never", "on-failure", "always"]),
    delay=st.sampled_from([0.0, 0.0005, 0.001]),
    delay_max=st.sampled_from([0.002, 0.004]),
    limit=st.tuples(st.integers(0, 3), st.just(60.0)),
)


@st.composite
def services(draw: st.DrawFn) -> list[tuple[int | None, RestartPolicy, list[str]]]:
    """Up to four tasks, each requiring at most one earlier task, each with a policy and a
    schedule of what its first instances do."""
    count = draw(st.integers(1, 4))
    return [
        (
            draw(st.one_of(st.none(), st.integers(0, index - 1))) if index else None,
            draw(policies),
            draw(st.lists(st.sampled_from([CRASH, CRASH, RETURN]), max_size=4)),
        )
        for index in range(count)
    ]


def _settled(tasks: Tasks, watch: _Watch) -> bool:
    if watch.shutdown_reason is not None:
        return True
    for task in tasks.tasks:
        state = tasks.state_of(task.name)
        if TASK.is_terminal(state):
            continue
        if state != TaskState.RUNNING or not getattr(task, "steady", False):
            return False
    return True


@given(services())
def test_random_crashes_restart_within_policy_and_audit_clean(
    plan: list[tuple[int | None, RestartPolicy, list[str]]],
) -> None:
    classes: list[type[Task]] = []
    for index, (dep, policy, schedule) in enumerate(plan):
        deps = () if dep is None else (classes[dep],)
        classes.append(_task_class(f"T{index}", deps, policy, schedule))
    watch = _Watch()
    tasks = Tasks(classes)
    tasks.journal.subscribe(watch.poke)
    tasks.create(watch)
    tasks.init()
    tasks.start()
    with watch.changed:
        assert watch.changed.wait_for(lambda: _settled(tasks, watch), WAIT)
    tasks.stop()
    assert tasks.join(WAIT) == []
    assert tasks.state in ("stopped", "failed")
    records = [r for r in tasks.journal.records if r.kind == "task" and r.ok]
    for cls, (_, policy, _) in zip(classes, plan, strict=True):
        mine = [r for r in records if r.subject == cls.__name__]
        crashes = [r for r in mine if r.trigger == "crash"]
        # never more restarts than the limit (the window is far longer than a test)
        assert len(crashes) <= policy.burst
        if policy.mode == "never":
            assert not crashes
        # never a restart before its backoff
        for crash in crashes:
            restart = next(
                (r for r in mine if r.seq > crash.seq and r.trigger == "restart"), None
            )
            if restart is not None:
                assert restart.mono - crash.mono >= seconds_ns(policy.delay)
    assert check(tasks.journal) == []
