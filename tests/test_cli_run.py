"""`lifecycle run MODULE:CLASS`: options, --tasks, usage errors, the journal file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.cli import main
from lifecycle.journal import read_journal
from lifecycle.options import option
from lifecycle.service import Service


def test_run_prints_transitions_and_writes_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "j.jsonl"
    assert main(["run", "tests.services:SelfStopping", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "starting -> running" in out
    assert "(finisher is done)" in out
    header, records = read_journal(journal)
    assert set(header["tasks"]) == {"Waiter", "Finisher"}
    assert records[-1].kind == "service" and records[-1].dest == "stopped"


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--quiet", "tests.services:SelfStopping"]) == 0
    assert capsys.readouterr().out == ""


def test_tasks_alone_lists_them_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tests.services:SelfStopping", "--tasks"]) == 0
    out = capsys.readouterr().out
    assert "Waiter" in out and "Finisher  (requires Waiter)" in out


def test_an_unknown_task_exits_2_listing_the_available_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "tests.services:SelfStopping", "--tasks", "Ghost"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'Ghost'; available: Waiter, Finisher" in err


def test_a_bad_option_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tests.services:SelfStopping", "--stop-timeout", "soon"]) == 2
    assert "invalid float value" in capsys.readouterr().err


def test_help_shows_the_service_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tests.services:SelfStopping", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--stop-timeout" in out and "--tasks" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "expected MODULE:NAME"),
        ("tests.no_such_module:X", "importing"),
        ("tests.services:Nope", "no attribute"),
        ("tests.services:Waiter", "not a Service subclass"),
    ],
)
def test_a_bad_target_exits_2(
    target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", target]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_target_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert "MODULE:CLASS is required" in capsys.readouterr().err


def test_a_failed_run_exits_1_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tests.services:Crashing"]) == 1
    assert "RuntimeError: worker exploded" in capsys.readouterr().err


def test_an_unwritable_journal_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "missing-dir" / "j.jsonl"
    assert main(["run", "tests.services:SelfStopping", "--journal", str(bad)]) == 2
    assert "cannot write the journal" in capsys.readouterr().err


class JournalOptionService(Service):
    """Declares ``--journal``, which `lifecycle run` parses for itself."""

    TASKS = ()
    journal_path = option(name="journal", help="clashes with lifecycle run's own flag")


def test_run_refuses_a_service_option_that_run_takes_for_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --help: were the clash not caught, the command would print help and exit 0, not hang.
    code = main(["run", f"{__name__}:JournalOptionService", "--help"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--journal" in err and "rename the option" in err


def test_an_init_failure_shows_the_group_message_not_a_traceback_fragment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "tests.services:InitFailing"]) == 1
    out = capsys.readouterr().out
    assert "created -> failed  (InitError: tasks failed to initialize: Broken)" in out
    assert "+---" not in out


def test_the_summary_of_a_service_that_never_created_its_tasks_shows_no_dropped_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lifecycle.cli import _print_summary
    from tests.services import Dropping

    _print_summary(Dropping())
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line}
    assert rows["task"][-2:] == ["dropped", "cause"]
    assert rows["Holding"] == ["Holding", "registered", "-", "-"]
    assert rows["Filler"] == ["Filler", "registered", "-"]
