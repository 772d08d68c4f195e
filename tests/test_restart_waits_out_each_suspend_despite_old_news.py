"""A restart's staged stop waits for each task it suspends to end before the crashed task is
made anew, even when the supervisor holds news from before that stop naming the same task
(news of an earlier suspend or crash): old news never count as an end.

The collection is a stand-in here, so that the test decides when the suspended task ends and
sees the supervisor wait for it (on its news queue) with no timing involved."""

from __future__ import annotations

import queue
import threading
from typing import Any

from lifecycle.restart import RestartPolicy
from lifecycle.spec import TaskState
from lifecycle.supervision import Supervisor
from lifecycle.task import Task

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 10.0


class _News(queue.SimpleQueue[str | None]):
    """The supervisor's news queue, saying when a reader blocks on it (``waited``, and
    ``either``, shared with the host)."""

    def __init__(self, either: threading.Event) -> None:
        self.waited = threading.Event()
        self.either = either

    def get(self, block: bool = True, timeout: float | None = None) -> str | None:
        if block:
            self.waited.set()
            self.either.set()
        return super().get(block, timeout)


class _Lifecycle:
    def __init__(self, state: TaskState) -> None:
        self.lock = threading.RLock()
        self.state = state

    def fire(self, trigger: str, cause: object = None) -> TaskState:
        if trigger != "fail":
            raise AssertionError(f"unexpected trigger {trigger!r}")
        self.state = TaskState.FAILED
        return self.state


class _Instance:
    def __init__(self, name: str, lifecycle: _Lifecycle) -> None:
        self.name = name
        self.failure: BaseException | None = RuntimeError(f"{name} crashed")
        self._lifecycle = lifecycle
        self.suspends: list[str] = []

    def current_restart_policy(self) -> RestartPolicy:
        return RestartPolicy("on-failure", 0.0, 0.0)

    def _begin_suspend(self, cause: str) -> None:
        # Its stop hook runs on: it ends only when the test says so.
        self.suspends.append(cause)
        self._lifecycle.state = TaskState.SUSPENDING

    def _request_shutdown(self, exc: BaseException) -> None:
        pass


class Base(Task):
    pass


class User(Task):
    DEPS = (Base,)


class _Host:
    """`Base` crashed into backoff; `User`, which requires it, runs. Making a fresh instance
    notes the state of `User` at that moment, sets ``made`` and ``either``, then raises (the
    restart ends there)."""

    def __init__(self, either: threading.Event) -> None:
        self.either = either
        self.lifecycles = {
            "Base": _Lifecycle(TaskState.BACKOFF),
            "User": _Lifecycle(TaskState.RUNNING),
        }
        self.instances = {name: _Instance(name, lc) for name, lc in self.lifecycles.items()}
        self.user_state_when_made: list[TaskState] = []
        self.made = threading.Event()

    order = ("Base", "User")

    def lifecycle_of(self, name: str) -> _Lifecycle:
        return self.lifecycles[name]

    def class_of(self, name: str) -> type[Task]:
        return {"Base": Base, "User": User}[name]

    def instance_of(self, name: str) -> _Instance:
        return self.instances[name]

    def edges(self) -> dict[str, list[str]]:
        return {"Base": [], "User": ["Base"]}

    def make(self, name: str) -> Any:
        if name == "Base":
            self.user_state_when_made.append(self.lifecycles["User"].state)
            self.made.set()
            self.either.set()
        raise RuntimeError(f"no fresh {name} in this test")


def test_news_from_before_a_restart_never_count_as_the_end_of_a_suspended_task() -> None:
    either = threading.Event()
    host = _Host(either)
    supervisor = Supervisor(host)  # type: ignore[arg-type]
    supervisor.news = _News(either)
    supervisor.started()
    user, base = host.instances["User"], host.instances["Base"]
    supervisor.suspended(user)  # type: ignore[arg-type]  # news from an earlier suspend
    try:
        assert supervisor.verdict(base) is True  # type: ignore[arg-type]
        supervisor.crashed(base)  # type: ignore[arg-type]
        assert either.wait(WAIT), "the restart neither waited nor went on"
        assert not host.made.is_set(), "Base was made anew while User was still suspending"
        assert len(user.suspends) == 1 and "'Base'" in user.suspends[0]
        with host.lifecycles["User"].lock:
            host.lifecycles["User"].state = TaskState.BACKOFF
        supervisor.suspended(user)  # type: ignore[arg-type]  # now it ended
        assert host.made.wait(WAIT), "the restart did not go on once User ended"
    finally:
        supervisor.stop()
    assert host.user_state_when_made == [TaskState.BACKOFF]
