"""Each record of a restart says why it happened: the crashed task's ``restart`` counts the
restarts within its limit's window, and a task that requires it is suspended and restarted
with causes naming the task it waits for. An auditor reads these causes, not the code."""

from __future__ import annotations

import threading

import pytest

from lifecycle.journal import Transition
from tests import restart_services as rs

#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 30.0


def _causes(records: tuple[Transition, ...], subject: str, trigger: str) -> list[str | None]:
    return [
        r.cause
        for r in records
        if r.kind == "task" and r.ok and r.subject == subject and r.trigger == trigger
    ]


@pytest.fixture(scope="module")
def two_restarts_journal() -> tuple[Transition, ...]:
    """The records of a service whose `CrashesTwice` crashes twice while `UsesIt`, which
    requires it, runs; the run is stopped once `UsesIt` has started for the third time."""
    for cls in (rs.CrashesTwice, rs.UsesIt):
        cls.made.clear()
    rs.UsesIt.up.clear()
    service = rs.RestartsTwice()
    third_start = threading.Event()
    starts: list[Transition] = []

    def on_record(record: Transition) -> None:
        if record.subject == "UsesIt" and record.trigger == "start" and record.ok:
            starts.append(record)
            if len(starts) == 3:
                third_start.set()

    unsubscribe = service.journal.subscribe(on_record)
    service.start()
    try:
        assert third_start.wait(WAIT), "the dependent was not brought back twice"
    finally:
        unsubscribe()
        service.shutdown("test over")
        assert service.wait(WAIT)
    return service.journal.records


def test_each_restart_record_counts_the_restarts_within_the_limit_window(
    two_restarts_journal: tuple[Transition, ...],
) -> None:
    causes = _causes(two_restarts_journal, "CrashesTwice", "restart")
    assert len(causes) == 2
    for number, cause in enumerate(causes, start=1):
        assert cause is not None
        assert cause.startswith(f"restart {number} within the RESTART_LIMIT window")


def test_a_dependent_is_suspended_with_a_cause_naming_the_task_that_restarts(
    two_restarts_journal: tuple[Transition, ...],
) -> None:
    causes = _causes(two_restarts_journal, "UsesIt", "suspend")
    assert len(causes) == 2
    for cause in causes:
        assert cause is not None
        assert "'CrashesTwice'" in cause and "restarts" in cause


def test_a_dependent_is_restarted_with_a_cause_naming_the_task_that_runs_again(
    two_restarts_journal: tuple[Transition, ...],
) -> None:
    causes = _causes(two_restarts_journal, "UsesIt", "restart")
    assert len(causes) == 2
    for cause in causes:
        assert cause is not None
        assert "'CrashesTwice'" in cause and "runs again" in cause
