"""`lifecycle demo`: the bundled example service and its command."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.aio import AsyncTask
from lifecycle.cli import main
from lifecycle.demo import DemoService, Mailer
from lifecycle.errors import OptionError
from lifecycle.journal import read_journal
from lifecycle.spec import ServiceState


def test_the_demo_service_shows_every_kind_of_task_and_stops_cleanly() -> None:
    service = DemoService({"duration": 0.3})
    assert service.run() == 0
    states = {s.name: s.state for s in service.summary()}
    assert states == {
        "Mailer": "stopped",
        "Heartbeat": "stopped",
        "Producer": "stopped",
        "Metrics": "skipped",
        "MetricsReporter": "skipped",
        "Stopwatch": "stopped",
        "Pinger": "stopped",
    }
    causes = {s.name: s.cause for s in service.summary()}
    assert "no --Metrics-endpoint configured" in (causes["Metrics"] or "")
    assert "'Metrics' ended skipped" in (causes["MetricsReporter"] or "")
    kinds = {type(task).__name__: isinstance(task, AsyncTask) for task in service.tasks}
    assert kinds["Pinger"] and not kinds["Heartbeat"]  # both kinds in one service
    counts = service.counts()
    assert counts["heartbeats"] >= 1  # the first beat is due as soon as the worker starts
    # Every mail that went through was retried exactly FLAKY times first.
    assert counts["mail retries"] >= counts["mails sent"] * Mailer.FLAKY


def test_the_demo_with_metrics_configured_runs_the_reporter_too() -> None:
    service = DemoService.from_argv(["--duration", "0.2", "--Metrics-endpoint", "udp://x"])
    assert service.run() == 0
    assert {s.name: s.state for s in service.summary()}["MetricsReporter"] == "stopped"


def test_a_non_positive_duration_is_refused() -> None:
    with pytest.raises(OptionError, match="duration"):
        DemoService({"duration": 0.0})


def test_lifecycle_demo_prints_transitions_a_summary_and_writes_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "demo.jsonl"
    assert main(["demo", "--duration", "0.3", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "created -> skipped" in out
    assert "task             final state  time to running  dropped  cause" in out
    assert "demo stopped; exit code 0" in out
    _, records = read_journal(journal)
    final = [r for r in records if r.kind == "service"][-1]
    assert final.dest == ServiceState.STOPPED


def test_lifecycle_demo_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--duration", "-1"]) == 2
    assert "duration" in capsys.readouterr().err


def test_the_demo_journal_audits_clean_and_a_hand_edit_is_named_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "run.jsonl"
    assert main(["demo", "--duration", "0.2", "--journal", str(journal)]) == 0
    assert main(["audit", str(journal)]) == 0
    capsys.readouterr()
    lines = journal.read_text(encoding="ascii").splitlines(keepends=True)
    edited = 5  # a task's create record
    assert '"trigger":"create"' in lines[edited - 1]
    lines[edited - 1] = lines[edited - 1].replace('"ok":true', '"ok":false')
    journal.write_text("".join(lines), encoding="ascii")
    assert main(["audit", str(journal)]) == 1
    out = capsys.readouterr().out
    assert f"line {edited}: hash-chain" in out
