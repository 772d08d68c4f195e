"""Signals, crashes and the stop deadline, in a real child process (``lifecycle run``)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lifecycle.audit import check
from lifecycle.journal import read_journal

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0


class Child:
    """A ``lifecycle run`` child whose stdout can be awaited line by line, with deadlines."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lifecycle", "run", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._buffer = b""

    def wait_for(self, *needles: str) -> str:
        """The first stdout line containing every needle; fails after TIMEOUT or at EOF."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode()
                    self.lines.append(line)
                    if all(n in line for n in needles):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    pytest.fail(f"no line with {needles} in time; got {self.lines}")
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    _, err = self.finish()
                    pytest.fail(f"child ended before a line with {needles}: {self.lines}\n{err}")
                self._buffer += chunk

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self) -> tuple[str, str]:
        """Wait for the exit (TIMEOUT at most); return the rest of stdout and stderr."""
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("child did not exit in time")
        return (self._buffer + out).decode(), err.decode()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=TIMEOUT)


def _ready(child: Child) -> None:
    child.wait_for("service", "starting -> running")


def test_sigterm_stops_gracefully_with_exit_0_and_a_complete_journal(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.services:Quiet", "--journal", str(journal))
    _ready(child)
    child.signal(signal.SIGTERM)
    _, err = child.finish()
    assert child.proc.returncode == 0, err
    header, records = read_journal(journal)
    assert set(header["tasks"]) == {"Waiter", "Dependent"}
    service = [(r.trigger, r.dest, r.cause) for r in records if r.kind == "service"]
    assert service == [
        ("start", "starting", None),
        ("started", "running", None),
        ("stop", "stopping", "received SIGTERM"),
        ("finish", "stopped", None),
    ]
    last = {}
    for r in records:
        assert r.ok
        assert r.source == last.get((r.kind, r.subject), r.source)  # continuity per subject
        last[(r.kind, r.subject)] = r.dest
    assert last == {
        ("service", "Quiet"): "stopped",
        ("collection", "tasks"): "stopped",
        ("task", "Waiter"): "stopped",
        ("task", "Dependent"): "stopped",
    }
    stops = [r.subject for r in records if r.kind == "task" and r.trigger == "stop"]
    assert stops == ["Dependent", "Waiter"]  # the reverse of the start order


def test_second_sigint_while_a_task_refuses_to_stop_forces_exit_1(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.services:Refusing", "--journal", str(journal))
    _ready(child)
    child.signal(signal.SIGINT)
    child.wait_for("Waiter", "stopping -> stopped")  # everything but Stubborn has stopped
    child.signal(signal.SIGINT)
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "ForcedShutdown" in err
    assert "Stubborn" in err
    _, records = read_journal(journal)
    final = [r for r in records if r.kind == "service"][-1]
    assert (final.trigger, final.dest) == ("fail", "failed")
    assert "still running: Stubborn" in (final.cause or "")


def test_a_crashing_worker_exits_1_with_the_traceback_in_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.services:Crashing", "--journal", str(journal))
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "worker exploded" in err
    _, records = read_journal(journal)
    fail = next(r for r in records if r.subject == "Crasher" and r.trigger == "fail")
    assert fail.cause is not None
    assert "Traceback" in fail.cause
    assert "RuntimeError: worker exploded" in fail.cause
    assert [r.dest for r in records if r.kind == "service"][-1] == "failed"


def test_system_exit_in_a_worker_is_a_crash_not_a_lost_thread(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.services:Exiting", "--journal", str(journal))
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "SystemExit" in err
    _, records = read_journal(journal)
    fail = next(r for r in records if r.subject == "Exiter" and r.trigger == "fail")
    assert "SystemExit" in (fail.cause or "")


def test_the_stop_deadline_lets_the_process_exit_past_a_task_that_never_stops(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.services:Refusing", "--journal", str(journal), "--stop-timeout", "0.2")
    _ready(child)
    child.signal(signal.SIGTERM)
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "StopTimeout" in err
    assert "Stubborn" in err
    _, records = read_journal(journal)
    collection = [r for r in records if r.kind == "collection"][-1]
    assert (collection.trigger, collection.dest) == ("fail", "failed")
    assert "Stubborn" in (collection.cause or "")


def _audits_clean(journal: Path) -> None:
    assert check(journal) == [], [str(v) for v in check(journal)]


def _signalled(
    tmp_path: Path,
    service: str,
    *flags: str,
    ready: tuple[str, ...] = ("service", "starting -> running"),
    signals: tuple[int, ...] = (signal.SIGTERM,),
) -> tuple[int, str, Path]:
    """Run ``lifecycle run tests.services:SERVICE`` with a journal, send ``signals`` once a
    stdout line has every ``ready`` needle, and return the exit code, stderr and the journal."""
    journal = tmp_path / "run.jsonl"
    child = Child(f"tests.services:{service}", "--journal", str(journal), *flags)
    child.wait_for(*ready)
    for signum in signals:
        child.signal(signum)
    _, err = child.finish()
    return child.proc.returncode, err, journal


def test_sigterm_with_a_dependency_closed_in_on_stop_exits_0_and_audits_clean(
    tmp_path: Path,
) -> None:
    # The writer still writes after the stop request: the database must outlive it.
    code, err, journal = _signalled(tmp_path, "SqliteService")
    assert code == 0, err
    _audits_clean(journal)


IN_INIT = ("HangsInInit: inside init_task",)


def test_sigterm_while_init_task_hangs_exits_1_at_the_deadline_naming_it(tmp_path: Path) -> None:
    code, err, journal = _signalled(tmp_path, "HungInit", "--stop-timeout", "0.3", ready=IN_INIT)
    assert code == 1
    assert "StopTimeout" in err and "HangsInInit" in err
    _audits_clean(journal)


def test_a_second_signal_while_init_task_hangs_forces_exit_1(tmp_path: Path) -> None:
    code, err, journal = _signalled(
        tmp_path,
        "HungInit",
        "--stop-timeout",
        "60",
        ready=IN_INIT,
        signals=(signal.SIGTERM, signal.SIGINT),
    )
    assert code == 1
    assert "ForcedShutdown" in err and "HangsInInit" in err
    _audits_clean(journal)


def test_an_on_stop_that_never_returns_ends_at_the_deadline_with_exit_1(tmp_path: Path) -> None:
    code, err, journal = _signalled(tmp_path, "HungOnStop", "--stop-timeout", "0.3")
    assert code == 1
    assert "StopTimeout" in err and "HangsInOnStop" in err
    _audits_clean(journal)


@pytest.mark.parametrize(
    ("service", "task", "raised"),
    [
        ("StopExits", "ExitsInOnStop", "SystemExit"),
        ("StopInterrupts", "InterruptsInOnStop", "KeyboardInterrupt"),
    ],
)
def test_system_exit_or_keyboard_interrupt_from_on_stop_fails_the_run_with_exit_1(
    tmp_path: Path, service: str, task: str, raised: str
) -> None:
    code, err, journal = _signalled(tmp_path, service)
    assert code == 1, err
    _, records = read_journal(journal)
    fail = next(r for r in records if r.subject == task and r.trigger == "fail")
    assert raised in (fail.cause or "")
    # Every other task was still stopped, after it.
    assert [r.dest for r in records if r.subject == "Waiter"][-1] == "stopped"
    _audits_clean(journal)


def test_system_exit_0_in_init_task_is_a_failed_start_with_exit_1(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    child = Child("tests.services:InitExits", "--journal", str(journal))
    _, err = child.finish()
    assert child.proc.returncode == 1, err
    assert "InitError" in err or "ExitsInInit" in err
    _, records = read_journal(journal)
    fail = next(r for r in records if r.subject == "ExitsInInit" and r.trigger == "fail")
    assert "SystemExit" in (fail.cause or "")
    _audits_clean(journal)
