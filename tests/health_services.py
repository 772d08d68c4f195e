"""Services for the health, probe and sd_notify tests, in process and as ``lifecycle run``
children. Their slow parts wait on gates the test holds (a named pipe, read until the test
closes its end), so no test depends on how long anything takes.
"""

from __future__ import annotations

import os
import threading

from lifecycle.options import option
from lifecycle.service import Service
from lifecycle.task import Task


def pass_gate(path: str) -> None:
    """Block until the test closes its end of the named pipe ``path`` (at once if it did
    already; nothing to do for an empty path)."""
    if not path:
        return
    # Opened without blocking (a FIFO with no writer left would block `open` forever), then
    # read blocking: the read ends once no writer holds the pipe open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.set_blocking(fd, True)
        while os.read(fd, 4096):
            pass
    finally:
        os.close(fd)


class SlowStart(Task):
    """``init_task`` waits for the ``--SlowStart-gate`` pipe, then the task runs until stopped."""

    gate = option(default="", help="a named pipe init_task waits on")

    def init_task(self) -> None:
        pass_gate(self.gate)

    def run_loop(self) -> None:
        self.stop_event.wait()


class SlowStop(Task):
    """Runs until stopped; its ``on_stop`` waits for the ``--SlowStop-gate`` pipe."""

    LOOPLESS = True
    gate = option(default="", help="a named pipe on_stop waits on")

    def on_stop(self) -> None:
        pass_gate(self.gate)


class Beating(Task):
    """Heartbeats (``WATCHDOG`` 0.3 s) until the ``--Beating-gate`` pipe is opened, then goes
    silent (but keeps running until its stop event is set)."""

    WATCHDOG = 0.3
    gate = option(default="", help="a named pipe after which the task stops beating")

    def run_loop(self) -> None:
        silent = [False]

        def go_silent() -> None:
            pass_gate(self.gate)
            silent[0] = True

        watcher = threading.Thread(target=go_silent, daemon=True)
        watcher.start()
        while not self.stop_event.wait(0.02):
            if not silent[0]:
                self.heartbeat()
        watcher.join(0)


class Starting(Service):
    """SlowStart, then SlowStop (stopped first)."""

    TASKS = (SlowStart, SlowStop)


class Watched(Service):
    """Beating and SlowStop: the heartbeat stops on a gate; the stop waits on another."""

    TASKS = (Beating, SlowStop)
