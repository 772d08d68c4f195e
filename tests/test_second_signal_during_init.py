"""Signals and the stop deadline while an ``init_task`` runs on the main thread, in-process.

`Service.run` on the main thread installs its SIGINT/SIGTERM handlers; a hook that raises a
signal at itself stands for a user pressing Ctrl-C while the service is still starting. A hook
that never returned would hang the process, so the service must interrupt it: at once on a
second signal, at the stop deadline after a first one.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, ClassVar

import pytest

from lifecycle.errors import ForcedShutdown, StopTimeout
from lifecycle.service import Service
from lifecycle.spec import ServiceState, TaskState
from lifecycle.task import Task

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(signal, "SIGALRM"), reason="POSIX signals"
)

#: How long a hook waits when nothing interrupts it: a bound so that a regression fails the
#: test instead of hanging it (the interrupt itself comes at once, or at a 0.05 s deadline).
HOOK_BOUND = 10.0


class _Hook(Task):
    """A LOOPLESS task whose ``init_task`` raises ``SIGNALS`` at its own process, then waits;
    ``finished`` says whether the wait ever ended (it must be interrupted instead)."""

    LOOPLESS = True
    SIGNALS: ClassVar[tuple[signal.Signals, ...]] = ()
    finished: ClassVar[bool] = False

    def init_task(self) -> None:
        for signum in self.SIGNALS:
            signal.raise_signal(signum)
        threading.Event().wait(HOOK_BOUND)
        type(self).finished = True


def _service(task: type[Task], **options: Any) -> Service:
    return type("Svc", (Service,), {"TASKS": (task,)})(options or None)


def _task_record(service: Service, name: str, trigger: str) -> Any:
    records = [r for r in service.journal.records if r.subject == name and r.trigger == trigger]
    assert records, f"no {trigger} record of {name}"
    return records[-1]


def test_a_second_signal_interrupts_a_hanging_init_task_and_names_it_and_the_signal() -> None:
    class TermThenInt(_Hook):
        SIGNALS = (signal.SIGTERM, signal.SIGINT)

    service = _service(TermThenInt, stop_timeout=60.0)
    assert service.run() == 1
    # The hook was cut at the second signal, long before its wait (or the 60 s deadline) ended.
    assert TermThenInt.finished is False
    assert service.state == ServiceState.FAILED
    failure = service.failure
    assert isinstance(failure, ForcedShutdown)
    assert failure.tasks == ("TermThenInt",)
    assert failure.signal == "SIGINT"  # the second signal, the one that forced the exit
    assert service.tasks.state_of("TermThenInt") in (TaskState.FAILED, TaskState.STOPPED)


def test_the_forced_exit_names_the_signal_that_forced_it_whichever_came_first() -> None:
    class IntThenTerm(_Hook):
        SIGNALS = (signal.SIGINT, signal.SIGTERM)

    service = _service(IntThenTerm, stop_timeout=60.0)
    assert service.run() == 1
    assert IntThenTerm.finished is False
    assert isinstance(service.failure, ForcedShutdown)
    assert service.failure.signal == "SIGTERM"
    assert service.failure.tasks == ("IntThenTerm",)


def test_one_signal_during_init_interrupts_the_hook_at_the_stop_deadline_naming_it() -> None:
    class TermOnly(_Hook):
        SIGNALS = (signal.SIGTERM,)

    service = _service(TermOnly, stop_timeout=0.05)
    assert service.run() == 1
    assert TermOnly.finished is False
    failure = service.failure
    assert isinstance(failure, StopTimeout)
    assert failure.tasks == ("TermOnly",)
    assert failure.timeout == 0.05
    assert service.shutdown_reason == "received SIGTERM"


def test_the_interrupted_init_task_is_journaled_as_the_cause_of_the_failed_run() -> None:
    class TermThenTerm(_Hook):
        SIGNALS = (signal.SIGTERM, signal.SIGTERM)

    service = _service(TermThenTerm, stop_timeout=60.0)
    assert service.run() == 1
    assert TermThenTerm.finished is False
    fail = _task_record(service, service.name, "fail")
    assert fail.kind == "service"
    assert fail.cause is not None and "ForcedShutdown" in fail.cause
    assert "TermThenTerm" in fail.cause
