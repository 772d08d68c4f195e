"""``lifecycle run`` on services with async tasks, in a real child process: signals reach the
loop, a crashing coroutine exits 1, a coroutine that ignores cancellation is named at the
deadline."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from lifecycle.audit import check
from lifecycle.journal import read_journal
from tests.test_signals import Child

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


def _ready(child: Child) -> None:
    child.wait_for("service", "starting -> running")


def test_sigterm_stops_an_async_service_with_exit_0_and_a_journal_that_audits_clean(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.aio_services:AsyncQuiet", "--journal", str(journal))
    _ready(child)
    child.signal(signal.SIGTERM)
    out, err = child.finish()
    assert child.proc.returncode == 0, err
    assert check(journal) == []
    _, records = read_journal(journal)
    service = [(r.trigger, r.cause) for r in records if r.kind == "service"]
    assert ("stop", "received SIGTERM") in service and service[-1] == ("finish", None)
    stops = [r.subject for r in records if r.kind == "task" and r.trigger == "stop"]
    assert stops == ["Reporter", "Pump", "Waiter"]
    assert "Pump" in out and "destroyed" not in err and "never awaited" not in err


def test_a_second_signal_forces_exit_1_while_a_coroutine_ignores_its_stop(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.aio_services:AsyncStubborn", "--journal", str(journal))
    _ready(child)
    child.signal(signal.SIGINT)
    child.wait_for("Waiter", "stopping")
    child.signal(signal.SIGINT)
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "ForcedShutdown" in err and "Stubborn" in err


def test_a_crashing_async_task_exits_1_with_its_traceback(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.aio_services:AsyncCrashing", "--journal", str(journal))
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "coroutine exploded" in err
    _, records = read_journal(journal)
    fail = next(r for r in records if r.subject == "Exploder" and r.trigger == "fail")
    assert "RuntimeError: coroutine exploded" in (fail.cause or "")
    assert check(journal) == []


def test_a_task_that_ignores_cancellation_exits_1_with_stop_timeout_naming_it(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child(
        "tests.aio_services:AsyncStubborn", "--journal", str(journal), "--stop-timeout", "0.3"
    )
    _ready(child)
    child.signal(signal.SIGTERM)
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "StopTimeout" in err and "Stubborn" in err
    assert "Task was destroyed" not in err
    _, records = read_journal(journal)
    collection = [r for r in records if r.kind == "collection"][-1]
    assert (collection.trigger, collection.dest) == ("fail", "failed")
    assert "Stubborn" in (collection.cause or "")
