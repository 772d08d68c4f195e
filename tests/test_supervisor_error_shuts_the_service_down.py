"""An error of the supervisor itself, raised while it restarts a task where no task code runs
(here: a collection that cannot answer), never leaves a zombie service: it is logged naming
the task, and that task asks its service to shut down."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from lifecycle.restart import RestartPolicy
from lifecycle.supervision import Supervisor

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 10.0


class _Crashed:
    """What the supervisor reads of a crashed task, and where it sends a shutdown request."""

    name = "Fetcher"

    def __init__(self) -> None:
        self.failure: BaseException | None = RuntimeError("the worker raised")
        self.shutdown_for: list[BaseException] = []
        self.asked = threading.Event()

    def current_restart_policy(self) -> RestartPolicy:
        return RestartPolicy("on-failure", 0.0, 0.0)

    def _request_shutdown(self, exc: BaseException) -> None:
        self.shutdown_for.append(exc)
        self.asked.set()


class _BrokenHost:
    """A collection that cannot say what state a task is in."""

    def __init__(self, task: _Crashed) -> None:
        self._task = task

    def lifecycle_of(self, name: str) -> Any:
        raise LookupError(f"no lifecycle for {name!r}")

    def instance_of(self, name: str) -> _Crashed:
        return self._task


def test_an_error_while_restarting_is_logged_naming_the_task_and_shuts_the_service_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = _Crashed()
    supervisor = Supervisor(_BrokenHost(task))  # type: ignore[arg-type]
    supervisor.started()
    with caplog.at_level(logging.ERROR, logger="lifecycle.supervision"):
        assert supervisor.verdict(task) is True  # type: ignore[arg-type]
        supervisor.crashed(task)  # type: ignore[arg-type]
        try:
            assert task.asked.wait(WAIT), "the service was not asked to shut down"
        finally:
            supervisor.stop()
    [error] = task.shutdown_for
    assert isinstance(error, LookupError) and "'Fetcher'" in str(error)
    logged = [r for r in caplog.records if r.name == "lifecycle.supervision"]
    assert [r.getMessage() for r in logged] == ["restarting task 'Fetcher' failed"]
    assert logged[0].exc_info is not None and logged[0].exc_info[1] is error
