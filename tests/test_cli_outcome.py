"""`lifecycle audit`'s outcome, `lifecycle summary` and `lifecycle timeline`, through the
command line: real child processes where the exit code is the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path

import pytest

from lifecycle.cli import AUDIT_SCHEMA_VERSION, main
from lifecycle.journal import Journal
from tests.test_journal_input import HOSTILE, SHOWN, is_clean_text

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0


def lifecycle(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lifecycle", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def crashed(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The journal of a real crashed run (a worker raised), and that run."""
    path = tmp_path_factory.mktemp("crashed") / "run.jsonl"
    run = lifecycle("run", "tests.services:Crashing", "--journal", str(path))
    assert run.returncode == 1, run.stderr
    return path, run


@pytest.fixture(scope="module")
def dropping(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    path = tmp_path_factory.mktemp("dropping") / "run.jsonl"
    run = lifecycle("run", "tests.services:Dropping", "--journal", str(path))
    assert run.returncode == 0, run.stderr
    return path, run


# -- the acceptance: a crashed run -------------------------------------------------------------

pytestmark = pytest.mark.slow


def test_a_crashed_run_audits_clean_but_fails_require_success_and_json_names_the_task(
    crashed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    path, _ = crashed
    audit = lifecycle("audit", str(path))
    assert audit.returncode == 0, audit.stderr
    assert (
        "clean; unsealed: detects accidental edits, not a forger; "
        "the run failed: service 'Crashing' failed: RuntimeError: worker exploded"
    ) in audit.stderr
    assert audit.stdout.startswith(
        "outcome: the run failed: service 'Crashing' failed: RuntimeError: worker exploded\n"
    )
    assert "first failure: task 'Crasher'" in audit.stdout
    assert lifecycle("audit", "--require-success", str(path)).returncode == 1
    done = lifecycle("audit", "--json", str(path))
    assert done.returncode == 0
    doc = json.loads(done.stdout)
    assert doc["schema"] == AUDIT_SCHEMA_VERSION
    assert (doc["clean"], doc["sealed"], doc["violations"]) == (True, False, [])
    result = doc["outcome"]
    assert (result["service"], result["verdict"]) == ("failed", "failed")
    assert result["cause"] == "RuntimeError: worker exploded"
    assert result["first_failure"] == "Crasher"
    crasher = result["tasks"]["Crasher"]
    assert (crasher["state"], crasher["cause"]) == ("failed", "RuntimeError: worker exploded")
    assert 'raise RuntimeError("worker exploded")' in crasher["cause_text"]
    assert result["tasks"]["Waiter"]["state"] == "stopped"
    assert set(crasher) == {
        "state",
        "cause",
        "cause_text",
        "time_to_running",
        "time_to_stop",
        "dropped",
    }


def test_a_clean_run_passes_require_success(
    dropping: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    path, _ = dropping
    done = lifecycle("audit", "--require-success", "--json", str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"]["verdict"] == "succeeded"


def test_require_success_fails_a_run_cut_short_even_when_partial_accepts_it(
    dropping: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    path, _ = dropping
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(path.read_text().splitlines(keepends=True)[:12]))
    assert lifecycle("audit", "--partial", str(cut)).returncode == 0
    done = lifecycle("audit", "--partial", "--require-success", str(cut))
    assert done.returncode == 1
    assert "the run did not finish: service 'Dropping' running" in done.stderr


def test_violations_still_exit_1_and_come_before_the_outcome(
    crashed: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    path, _ = crashed
    edited = tmp_path / "edited.jsonl"
    edited.write_text(path.read_text().replace('"dest":"failed"', '"dest":"stopped"', 1))
    done = lifecycle("audit", str(edited))
    assert done.returncode == 1
    integrity, _, rest = done.stdout.partition("\n\noutcome: ")
    assert integrity.startswith("line ") and rest


# -- summary ------------------------------------------------------------------------------------


def table_of(text: str) -> list[str]:
    """The lines of the per-task table in ``text``: from its header to the first blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("task "))
    end = next((i for i, line in enumerate(lines[start:], start) if not line.strip()), len(lines))
    return lines[start:end]


def test_summary_prints_the_table_the_run_printed(
    crashed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    path, run = crashed
    done = lifecycle("summary", str(path))
    assert done.returncode == 0, done.stderr
    assert table_of(done.stdout) == table_of(run.stdout.split("\n\n")[-1])
    assert done.stdout.splitlines()[-1] == (
        "the run failed: service 'Crashing' failed: RuntimeError: worker exploded"
    )


def test_summary_shows_the_items_dropped_at_stop(
    dropping: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    path, run = dropping
    done = lifecycle("summary", str(path))
    assert done.returncode == 0, done.stderr
    holding = [line for line in table_of(done.stdout) if line.startswith("Holding ")]
    assert holding == [line for line in table_of(run.stdout) if line.startswith("Holding ")]
    # 17 wait behind the one item the worker holds (18 if the stop comes before it took one)
    count = holding[0].split()[-1]
    assert count in ("17", "18")
    assert f"{count} queued item(s) dropped at stop, never run" in done.stdout
    assert f"{count} queued item(s) dropped at stop, never run" in run.stdout


# -- selection ----------------------------------------------------------------------------------


def test_kind_and_subject_select_the_rows_of_every_command(
    crashed: tuple[Path, subprocess.CompletedProcess[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(crashed[0])
    assert main(["summary", path, "--kind", "service"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:3] == ["subject", "final", "state"]
    assert [r.split()[:3] for r in rows[1:-2]] == [["service", "Crashing", "failed"]]
    assert main(["timeline", path, "--subject", "Waiter", "--subject", "tasks"]) == 0
    heads = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert heads == ["collection tasks", "task Waiter"]
    assert main(["audit", "--json", path, "--kind", "task", "--subject", "Waiter"]) == 0
    assert list(json.loads(capsys.readouterr().out)["outcome"]["tasks"]) == ["Waiter"]


def test_a_selection_hides_violations_of_other_subjects_but_not_the_verdict(
    crashed: tuple[Path, subprocess.CompletedProcess[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    edited = tmp_path / "edited.jsonl"
    lines = crashed[0].read_text().splitlines(keepends=True)
    crasher_fail = next(
        i
        for i, line in enumerate(lines)
        if '"subject":"Crasher","thread"' in line and "fail" in line
    )
    lines[crasher_fail] = lines[crasher_fail].replace('"dest":"failed"', '"dest":"stopped"')
    edited.write_text("".join(lines))
    assert main(["audit", "--json", str(edited), "--subject", "Waiter"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["clean"] is False
    assert all(v["subject"] in ("Waiter", "<journal>", "<header>") for v in doc["violations"])
    assert main(["audit", str(edited), "--subject", "Waiter"]) == 1
    assert "not shown: another subject" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["audit", "summary", "timeline"])
def test_a_subject_the_journal_does_not_have_exits_2_in_one_line(
    crashed: tuple[Path, subprocess.CompletedProcess[str]], command: str
) -> None:
    done = lifecycle(command, str(crashed[0]), "--kind", "task", "--subject", "Crashing")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        f"lifecycle {command}: {crashed[0]}: no subject 'Crashing' of kind task in the journal"
    ]


def test_an_unknown_kind_is_a_usage_error() -> None:
    done = lifecycle("summary", "x.jsonl", "--kind", "job")
    assert done.returncode == 2 and "invalid choice: 'job'" in done.stderr


# -- timeline -----------------------------------------------------------------------------------


def test_timeline_text_lists_each_subjects_states_in_order(
    crashed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    done = lifecycle("timeline", str(crashed[0]), "--kind", "service")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "service Crashing"
    assert [line.split()[2] for line in lines[1:]] == ["starting", "running", "stopping", "failed"]
    assert lines[-1].endswith("by fail  RuntimeError: worker exploded")


def test_timeline_svg_is_xml_with_a_bar_per_state(
    crashed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lifecycle", "timeline", str(crashed[0]), "--format", "svg"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    document = xml.dom.minidom.parseString(done.stdout)
    assert document.documentElement.tagName == "svg"
    assert len(document.getElementsByTagName("rect")) == 4 + 5 + 4 + 5


@pytest.fixture
def hostile_journal(tmp_path: Path) -> Path:
    """A clean run of two tasks, one named with a lone surrogate and terminal escapes."""
    journal = Journal()
    journal.describe_tasks({HOSTILE: {"class": "m.X"}, "plain": {"class": "m.Y"}})
    journal.record("collection", "tasks", "create", "registering", "created", True)
    for name in (HOSTILE, "plain"):
        journal.record("task", name, "create", "registered", "created", True)
    journal.record("collection", "tasks", "stop", "created", "stopped", True)
    for name in ("plain", HOSTILE):
        journal.record("task", name, "stop", "created", "stopped", True, "é \x1b[31m")
    path = tmp_path / "hostile.jsonl"
    journal.write(path)
    return path


@pytest.mark.parametrize(
    "argv",
    [["summary"], ["timeline"], ["audit"], ["timeline", "--format", "mermaid"]],
)
def test_hostile_names_are_printed_escaped(hostile_journal: Path, argv: list[str]) -> None:
    done = lifecycle(*argv, str(hostile_journal))
    assert done.returncode == 0, done.stderr
    assert is_clean_text(done.stdout) and is_clean_text(done.stderr)
    if "mermaid" not in argv:
        assert SHOWN in done.stdout


def test_hostile_names_make_valid_svg(hostile_journal: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lifecycle", "timeline", str(hostile_journal), "--format", "svg"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    xml.dom.minidom.parseString(done.stdout)
    assert b"\\ud800\\x1b[2J" in done.stdout


def test_a_timeline_in_a_format_it_has_not_is_a_typed_error(
    crashed: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    from lifecycle.diagrams import DiagramError
    from lifecycle.outcome import timeline
    from lifecycle.timeline import render

    with pytest.raises(DiagramError, match="cannot draw a timeline as 'dot'"):
        render(timeline(crashed[0]), "dot")
