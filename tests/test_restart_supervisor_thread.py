"""Restarts run on one thread of the collection's own: the journal names it on every record a
restart makes, and it never keeps a process alive (a process that returns from its main
code without stopping its collection still exits)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from lifecycle.collection import Tasks
from lifecycle.journal import Transition
from lifecycle.task import Task

ROOT = Path(__file__).resolve().parent.parent
#: A bound on waits that only a broken engine reaches, never a timing assertion.
WAIT = 30.0


class Service:
    def shutdown(self, reason: str | None = None) -> None:
        pass


def test_the_records_of_a_restart_name_the_supervisor_thread() -> None:
    made: list[int] = []

    class CrashesOnce(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def __init__(self, service: Any = None) -> None:
            super().__init__(service)
            made.append(len(made) + 1)
            self.number = len(made)

        def run_loop(self) -> None:
            if self.number == 1:
                raise RuntimeError("the first instance crashes")
            self.stop_event.wait(WAIT)

    tasks = Tasks([CrashesOnce])
    back = threading.Event()

    def on_record(record: Transition) -> None:
        started = record.subject == "CrashesOnce" and record.trigger == "start" and record.ok
        if started and len(made) == 2:
            back.set()

    unsubscribe = tasks.journal.subscribe(on_record)
    try:
        tasks.create(Service())
        tasks.init()
        tasks.start()
        assert back.wait(WAIT), "the crashed task was not restarted"
    finally:
        unsubscribe()
        tasks.stop()
        assert tasks.join(WAIT) == []
    restart_records = {
        r.trigger: r.thread
        for r in tasks.journal.records
        if r.ok
        and r.subject == "CrashesOnce"
        and r.trigger in ("restart", "init", "start")
        and r.seq > _crash_seq(tasks)
    }
    assert restart_records == dict.fromkeys(("restart", "init", "start"), "lifecycle-supervisor")


def _crash_seq(tasks: Tasks) -> int:
    return next(r.seq for r in tasks.journal.records if r.trigger == "crash")


_LEFT_RUNNING = textwrap.dedent(
    """
    import sys
    import threading
    from lifecycle.collection import Tasks
    from lifecycle.task import Task

    made = []
    back = threading.Event()

    class CrashesOnce(Task):
        RESTART = "on-failure"
        RESTART_DELAY = 0.0
        RESTART_DELAY_MAX = 0.0

        def __init__(self, service=None):
            super().__init__(service)
            made.append(len(made) + 1)
            self.number = len(made)

        def run_loop(self):
            if self.number == 1:
                raise RuntimeError("the first instance crashes")
            back.set()
            self.stop_event.wait()

    if sys.argv[1] == "thread-cannot-start":
        # The first worker thread cannot start (as when the process is out of threads): the
        # task then crashes on the thread that starts it, this main thread.
        real_start = threading.Thread.start

        def start(thread):
            if thread.name == "CrashesOnce" and not made[1:]:
                raise RuntimeError("can't start new thread")
            real_start(thread)

        threading.Thread.start = start

    tasks = Tasks([CrashesOnce])
    tasks.create(None)
    tasks.init()
    tasks.start()
    if not back.wait(30):
        raise SystemExit("the crashed task was not restarted")
    print("restarted; leaving without a stop")
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("crash", ["worker-raises", "thread-cannot-start"])
def test_a_process_that_leaves_its_collection_running_after_a_restart_still_exits(
    crash: str,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _LEFT_RUNNING, crash],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=WAIT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "restarted; leaving without a stop"
