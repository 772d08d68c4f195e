"""The audit's ``restart`` rule: each way a run can break its tasks' restart policies is found,
and a journal file carries the policies in its header."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lifecycle import Journal
from lifecycle.audit import RULES, Violation, check
from lifecycle.engine import Lifecycle
from lifecycle.restart import RestartPolicy
from lifecycle.spec import TASK

QUICK = RestartPolicy("on-failure", 0.0, 0.0, (2, 3600.0)).to_dict()
SLOW = RestartPolicy("on-failure", 3600.0, 3600.0, (5, 3600.0)).to_dict()


def _run(
    steps: Iterable[tuple[str, str]], tasks: dict[str, dict[str, object]]
) -> list[Violation]:
    journal = Journal()
    machines = {name: Lifecycle(TASK, name, journal) for name in tasks}
    for name, trigger in steps:
        machines[name].fire(trigger)
    return [v for v in check(journal.records, tasks=tasks, partial=True) if v.rule == "restart"]


def _task(
    deps: tuple[str, ...] = (), restart: dict[str, object] | None = None
) -> dict[str, object]:
    described: dict[str, object] = {"class": "x", "deps": list(deps), "wants": []}
    if restart is not None:
        described["restart"] = restart
    return described


UP = (("A", "create"), ("A", "init"), ("A", "start"))


def test_restart_is_a_rule() -> None:
    assert "restart" in RULES


def test_a_lawful_restart_is_clean() -> None:
    steps = [*UP, ("A", "crash"), ("A", "restart"), ("A", "init"), ("A", "start")]
    assert _run(steps, {"A": _task(restart=QUICK)}) == []


def test_a_crash_of_a_task_that_may_not_restart_is_a_violation() -> None:
    found = _run([*UP, ("A", "crash")], {"A": _task()})
    assert [v.message for v in found] == [
        "expected no restart: its restart policy is 'never' (the task table gives it no other)"
    ]


def test_more_restarts_than_the_limit_within_its_window_is_a_violation() -> None:
    again = [("A", "crash"), ("A", "restart"), ("A", "init"), ("A", "start")]
    found = _run([*UP, *again, *again, *again], {"A": _task(restart=QUICK)})
    assert len(found) == 1
    assert "at most 2 restart(s) within 3600s (RESTART_LIMIT); this is restart 3" in (
        found[0].message
    )


def test_a_restart_sooner_than_the_delay_is_a_violation() -> None:
    found = _run([*UP, ("A", "crash"), ("A", "restart")], {"A": _task(restart=SLOW)})
    assert len(found) == 1
    assert found[0].message.startswith("expected its restart at least RESTART_DELAY (3600s)")


def test_a_restart_while_what_requires_it_still_runs_is_a_violation() -> None:
    steps = [
        *UP,
        ("B", "create"), ("B", "init"), ("B", "start"),
        ("A", "crash"), ("A", "restart"),
    ]
    found = _run(steps, {"A": _task(restart=QUICK), "B": _task(("A",))})
    assert [v.message for v in found] == [
        "expected every task that requires it (DEPS) to be stopped before it restarted; "
        "'B' is running"
    ]


def test_a_dependent_started_while_what_it_requires_restarts_is_a_violation() -> None:
    steps = [
        *UP,
        ("B", "create"), ("B", "init"), ("B", "start"),
        ("B", "suspend"), ("B", "finish"),
        ("A", "crash"),
        ("B", "restart"), ("B", "init"), ("B", "start"),  # A is still in backoff
    ]
    found = _run(steps, {"A": _task(restart=QUICK), "B": _task(("A",))})
    assert [v.message for v in found] == [
        "expected its DEPS 'A' to run again before it started; 'A' is restarting (backoff)"
    ]


def test_a_suspend_and_restart_around_a_restart_is_clean() -> None:
    steps = [
        *UP,
        ("B", "create"), ("B", "init"), ("B", "start"),
        ("A", "crash"),
        ("B", "suspend"), ("B", "finish"),
        ("A", "restart"), ("A", "init"), ("A", "start"),
        ("B", "restart"), ("B", "init"), ("B", "start"),
    ]
    assert _run(steps, {"A": _task(restart=QUICK), "B": _task(("A",))}) == []


def test_a_malformed_policy_in_a_header_is_a_header_violation(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    journal = Journal(path)
    journal.describe_tasks({"A": _task(restart={"policy": "sometimes"})})
    Lifecycle(TASK, "A", journal).fire("create")
    journal.close()
    found = [v for v in check(path, partial=True) if v.rule == "header"]
    assert any("restart policy for task 'A'" in v.message for v in found)
