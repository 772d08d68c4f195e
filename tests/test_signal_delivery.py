"""A stop signal the kernel hands to a thread other than the main one still stops the
service: the main thread, blocked in `Service.wait`, is woken by the signals' wakeup pipe."""

from __future__ import annotations

import linecache
import signal
import sys
import threading
import time

import pytest

from lifecycle.service import Service
from lifecycle.task import Task


class Idle(Task):
    LOOPLESS = True


class SignalsItsOwnThread(Task):
    """Once the main thread waits in `Service.run`, sends SIGTERM to its own worker thread:
    the kernel may hand a process's signal to any thread, and this makes it one of ours."""

    def run_loop(self) -> None:
        main = threading.main_thread().ident
        while True:  # until the main thread is at the line where the service's wait blocks
            frame = sys._current_frames().get(main)  # type: ignore[arg-type]
            line = (
                "" if frame is None else linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            )
            if "_wake_permit" in line or "select.select" in line:
                break
            time.sleep(0.001)
        time.sleep(0.05)  # and blocked in it
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        if not self.stop_event.wait(10):
            self.service.shutdown("the signal never reached the main thread")
        self.stop_event.wait()


class Signalled(Service):
    TASKS = (SignalsItsOwnThread, Idle)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX threads' signals")
def test_a_stop_signal_taken_by_another_thread_still_stops_the_service() -> None:
    service = Signalled()
    assert service.run() == 0
    assert service.shutdown_reason == "received SIGTERM"
