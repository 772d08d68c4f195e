"""The command line under hostile input, in real child processes: exit 0, 1 or 2, never a
traceback escaping the command (a failed run shows its task's traceback, by design).

Covers `lifecycle run` (bad service definitions, out-of-range option values, failures and the
summary) and `Service.main`, the README's ``raise SystemExit(App.main())``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0

#: Services with bad definitions, and modules that end the process while they are imported.
BAD_DEFINITIONS = textwrap.dedent(
    """
    from lifecycle import Service, Task, option

    class A(Task):
        LOOPLESS = True

    class B(Task):
        LOOPLESS = True
        DEPS = (A,)

    class Cyclic(Task):
        LOOPLESS = True

    class Cyclic2(Task):
        LOOPLESS = True
        DEPS = (Cyclic,)

    Cyclic.DEPS = (Cyclic2,)

    class Cycle(Service):
        TASKS = (Cyclic2,)

    class Duplicate(Service):
        TASKS = (A, type("A", (Task,), {"LOOPLESS": True}))

    class NotATask(Service):
        TASKS = [42]

    class NotAList(Service):
        TASKS = 42

    class NoLoop(Task):
        pass

    class NoRunLoop(Service):
        TASKS = (NoLoop,)

    class One(Task):
        LOOPLESS = True
        OPT_PREFIX = "same"
        x = option()

    class Two(Task):
        LOOPLESS = True
        OPT_PREFIX = "same"
        x = option()

    class Conflict(Service):
        TASKS = (One, Two)

    class InitRaises(Service):
        TASKS = (B,)
        def __init__(self, *args, **kwargs):
            raise RuntimeError("no config file")

    class InitExits(Service):
        TASKS = (B,)
        def __init__(self, *args, **kwargs):
            raise SystemExit(3)
    """
)


BAD_DEFAULT = textwrap.dedent(
    """
    from lifecycle import Service, option

    class BadDefault(Service):
        retries = option(type=int, ge=1, default=0)
    """
)


@pytest.fixture(scope="module")
def bad_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("bad_modules")
    (where / "bad_definitions.py").write_text(BAD_DEFINITIONS, encoding="utf-8")
    # Apart: a module of its own, so that the others import wherever `ge` is unknown.
    (where / "bad_default.py").write_text(BAD_DEFAULT, encoding="utf-8")
    (where / "exits_on_import.py").write_text("raise SystemExit(4)\n", encoding="utf-8")
    (where / "interrupted_on_import.py").write_text("raise KeyboardInterrupt\n", encoding="utf-8")
    yield where
    for name in ("bad_definitions", "bad_default", "exits_on_import", "interrupted_on_import"):
        sys.modules.pop(name, None)


def run(*args: str, path: Path | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``python *args`` with the repository (and ``path``) importable; wait for the exit."""
    paths = [str(ROOT), *([str(path)] if path else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {lines}"
    return lines[0]


DEFINITION_PROBLEMS = [
    ("bad_definitions:Cycle", "dependency cycle: Cyclic2 -> Cyclic -> Cyclic2"),
    ("bad_definitions:Duplicate", "task name 'A' is taken"),
    ("bad_definitions:NotATask", "42: is not a Task subclass"),
    ("bad_definitions:NotAList", "42: expected an iterable of task classes"),
    ("bad_definitions:NoRunLoop", "no run_loop()"),
    ("bad_definitions:Conflict", "--same-x: declared by both"),
    ("bad_default:BadDefault", "--retries: the default at"),
    ("bad_definitions:InitRaises", "creating the service raised RuntimeError: no config file"),
    ("bad_definitions:InitExits", "creating the service raised SystemExit: 3"),
    ("exits_on_import:X", "importing 'exits_on_import' raised SystemExit: 4"),
    ("interrupted_on_import:X", "importing 'interrupted_on_import' raised KeyboardInterrupt"),
]


@pytest.mark.parametrize(("target", "message"), DEFINITION_PROBLEMS)
def test_run_of_a_bad_definition_exits_2_with_one_line_naming_the_problem(
    bad_modules: Path, target: str, message: str
) -> None:
    child = run("-m", "lifecycle", "run", target, path=bad_modules)
    assert child.returncode == 2, child.stderr
    assert message in one_line(child.stderr)
    assert child.stdout == ""


def test_help_of_a_bad_definition_exits_2_too_printing_nothing_else(
    bad_modules: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(bad_modules))
    assert main(["run", "bad_definitions:Cycle", "--help"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "dependency cycle" in one_line(captured.err)


#: What plan and diagram read of a definition: the tasks and their dependencies.
GRAPH_PROBLEMS = [target for target, _ in DEFINITION_PROBLEMS[:5] + DEFINITION_PROBLEMS[-2:]]


@pytest.mark.parametrize("target", GRAPH_PROBLEMS)
@pytest.mark.parametrize("command", [["plan"], ["diagram", "--deps"]])
def test_plan_and_diagram_of_a_bad_definition_exit_2_with_one_line_too(
    bad_modules: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    target: str,
) -> None:
    monkeypatch.syspath_prepend(str(bad_modules))
    assert main([*command, target]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in one_line(captured.err) and captured.out == ""


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--Tick-interval", "0", "must be > 0, not 0.0"),
        ("--Tick-interval", "-1", "must be > 0, not -1.0"),
        ("--Tick-interval", "nan", "must be a finite number > 0, not nan"),
        ("--Tick-interval", "inf", "must be a finite number > 0, not inf"),
        ("--Inbox-workers", "0", "must be >= 1, not 0"),
        ("--Inbox-max-items", "-1", "must be >= 0, not -1"),
        ("--stop-timeout", "nan", "must be a finite number >= 0, not nan"),
    ],
)
def test_an_out_of_range_option_exits_2_with_one_line_naming_the_flag(
    flag: str, value: str, message: str
) -> None:
    child = run("-m", "lifecycle", "run", "tests.services:Kinds", f"{flag}={value}")
    assert child.returncode == 2, child.stderr
    assert f"argument {flag}: {message}" in one_line(child.stderr)


def test_a_crash_shows_its_traceback_and_ends_with_the_summary() -> None:
    child = run("-m", "lifecycle", "run", "tests.services:Crashing")
    assert child.returncode == 1
    err = child.stderr
    first, *rest = err.splitlines()
    assert first == "lifecycle run: service 'Crashing' failed: RuntimeError: worker exploded"
    assert rest[0] == "Traceback (most recent call last):"
    assert 'raise RuntimeError("worker exploded")' in err
    assert "cli.py" not in err  # the task's traceback, not one escaping the command
    summary = child.stdout.split("\n\n")[-1].splitlines()
    assert summary[0].split() == ["task", "final", "state", "time", "to", "running", "cause"]
    assert summary[2].split()[:2] == ["Crasher", "failed"]
    assert summary[2].endswith("RuntimeError: worker exploded")


def test_quiet_keeps_a_crash_to_one_line() -> None:
    child = run("-m", "lifecycle", "run", "--quiet", "tests.services:Crashing")
    assert child.returncode == 1
    assert one_line(child.stderr).endswith("failed: RuntimeError: worker exploded")
    assert child.stdout == ""


def test_an_init_failure_shows_the_root_cause_traceback_and_the_group() -> None:
    child = run("-m", "lifecycle", "run", "tests.services:InitFailing")
    assert child.returncode == 1
    assert 'raise RuntimeError("database unreachable")' in child.stderr
    assert "also: InitError: tasks failed to initialize: Broken" in child.stderr
    broken = next(line for line in child.stdout.splitlines() if line.startswith("Broken "))
    assert broken.split()[:3] == ["Broken", "failed", "-"]
    assert broken.endswith("  RuntimeError: database unreachable")


def test_items_dropped_at_stop_show_in_the_summary() -> None:
    child = run("-m", "lifecycle", "run", "tests.services:Dropping")
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    header = next(line for line in lines if line.startswith("task "))
    assert header.split() == ["task", "final", "state", "time", "to", "running", "dropped", "cause"]
    holding = next(line for line in lines if line.startswith("Holding "))
    assert holding.split()[:2] == ["Holding", "stopped"] and holding.split()[-1] == "17"
    assert "17 queued item(s) dropped at stop, never run" in lines
    assert "stopping -> stopped  (17 queued item(s) not run" in child.stdout


# -- Service.main: the README's __main__ pattern ------------------------------------------------

APP = textwrap.dedent(
    """
    import sys
    from tests.services import Crashing, Kinds, SelfStopping

    SERVICES = {"crashing": Crashing, "kinds": Kinds, "self-stopping": SelfStopping}

    if __name__ == "__main__":
        raise SystemExit(SERVICES[sys.argv.pop(1)].main())
    """
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("app") / "app.py"
    path.write_text(APP, encoding="utf-8")
    return path


def test_main_help_exits_0_showing_the_service_and_run_options(app: Path) -> None:
    child = run(str(app), "kinds", "--help")
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("usage: app.py ")
    for flag in ("--Tick-interval", "--Inbox-workers", "--tasks", "--journal", "--quiet"):
        assert flag in child.stdout
    assert child.stderr == ""


def test_main_usage_errors_exit_2_in_one_line(app: Path) -> None:
    for args, message in [
        (["--no-such-flag"], "app.py: error: unrecognized arguments: --no-such-flag"),
        (["--Tick-interval", "0"], "app.py: error: argument --Tick-interval: must be > 0"),
        (["--tasks", "Ghost"], "app.py: error: unknown task 'Ghost'; available: Tick, Inbox"),
        (["--journal"], "app.py: error: argument --journal: expected one argument"),
    ]:
        child = run(str(app), "kinds", *args)
        assert child.returncode == 2, (args, child.stderr)
        assert one_line(child.stderr).startswith(message)


def test_main_runs_the_service_with_a_journal_and_ends_with_the_summary(
    app: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    child = run(str(app), "self-stopping", "--journal", str(journal))
    assert child.returncode == 0, child.stderr
    assert "starting -> running" in child.stdout
    assert "Finisher  stopped" in child.stdout
    assert journal.read_text(encoding="utf-8").count("\n") > 10
    assert run("-m", "lifecycle", "audit", str(journal)).returncode == 0


def test_main_shows_a_crash_with_its_traceback_and_exits_1(app: Path) -> None:
    child = run(str(app), "crashing")
    assert child.returncode == 1
    assert child.stderr.startswith("app.py: service 'Crashing' failed: RuntimeError: worker")
    assert "Traceback (most recent call last):" in child.stderr
    assert "Crasher  failed" in child.stdout
    quiet = run(str(app), "crashing", "--quiet")
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert one_line(quiet.stderr).endswith("RuntimeError: worker exploded")
