"""The README's code runs as written."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from lifecycle import ServiceState, TaskState

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_service_runs_and_stops_cleanly() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no python example"
    module = ModuleType("readme_example")
    exec(compile(blocks[0], str(README), "exec"), module.__dict__)
    service = module.App.from_argv(["--Poller-interval", "0.01"])
    service.start()  # returns once every task is running
    try:
        assert service.tasks.state_of("Poller") == TaskState.RUNNING
    finally:
        service.shutdown("test over")
        assert service.wait(10)
    assert service.state == ServiceState.STOPPED
    assert service.exit_code == 0
    assert service.tasks.by_state() == {TaskState.STOPPED: ["Database", "Poller"]}


def _readme_app(tmp_path: Path) -> Path:
    """The README's first python block as a script, ``__main__`` block included."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    path = tmp_path / "readme_app.py"
    path.write_text(blocks[0], encoding="utf-8")
    return path


def _run_script(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.slow
def test_the_readme_main_block_answers_help_and_usage_errors_without_a_traceback(
    tmp_path: Path,
) -> None:
    app = _readme_app(tmp_path)
    shown = _run_script(app, "--help")
    assert shown.returncode == 0 and "--Poller-interval" in shown.stdout and not shown.stderr
    for args in (["--Poller-interval", "0"], ["--no-such-flag"], ["--tasks", "Ghost"]):
        refused = _run_script(app, *args)
        assert refused.returncode == 2, args
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_readme_main_block_runs_until_sigterm_then_prints_the_summary(
    tmp_path: Path,
) -> None:
    app = _readme_app(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, str(app), "--Poller-interval", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(60, child.kill)  # a child that never prints cannot hang us
    watchdog.start()
    try:
        assert child.stdout is not None
        for line in child.stdout:  # the service is running once its start record is printed
            if "service" in line and "starting -> running" in line:
                break
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        watchdog.cancel()
        watchdog.join()
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "running -> stopping  (received SIGTERM)" in out
    summary = [line.split()[:2] for line in out.splitlines()[-3:]]
    assert summary == [["task", "final"], ["Database", "stopped"], ["Poller", "stopped"]]
