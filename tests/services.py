"""Small services for the subprocess tests (run as ``lifecycle run tests.services:NAME``).

Readiness is read from the child's stdout: ``lifecycle run`` prints each transition as it
happens, so a line with ``starting -> running`` on the service means every task is running.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from lifecycle.context import ExecuteContext
from lifecycle.service import Service
from lifecycle.task import Task
from lifecycle.tasks import PeriodicTask, QueueTask

#: Never set: a worker waiting on it never returns (the process exits past it: daemon threads).
_NEVER = threading.Event()


class Waiter(Task):
    """Runs until asked to stop."""

    def run_loop(self) -> None:
        self.stop_event.wait()


class Dependent(Task):
    DEPS = (Waiter,)

    def run_loop(self) -> None:
        self.stop_event.wait()


class Stubborn(Task):
    """Ignores stop requests forever."""

    def run_loop(self) -> None:
        _NEVER.wait()


class Crasher(Task):
    """Its worker raises as soon as the service is running."""

    def run_loop(self) -> None:
        raise RuntimeError("worker exploded")


class Exiter(Task):
    """Its worker calls sys.exit(), which is a crash, not a quiet thread exit."""

    def run_loop(self) -> None:
        raise SystemExit(0)


class Quiet(Service):
    TASKS = (Dependent,)


class Refusing(Service):
    TASKS = (Waiter, Stubborn)


class Crashing(Service):
    TASKS = (Waiter, Crasher)


class Exiting(Service):
    TASKS = (Waiter, Exiter)


class Finisher(Task):
    """Asks its service to shut down as soon as it runs (so `run()` returns on its own)."""

    DEPS = (Waiter,)

    def run_loop(self) -> None:
        self.service.shutdown("finisher is done")
        self.stop_event.wait()


class SelfStopping(Service):
    TASKS = (Finisher,)


# -- the staged stop: a dependency closed under its user fails a graceful stop -------------------


class SqliteDb(Task):
    """An in-memory sqlite database, closed in `on_stop`."""

    LOOPLESS = True

    def init_task(self) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.conn.execute("create table notes (text)")

    def on_stop(self) -> None:
        self.conn.close()


class SqliteWriter(Task):
    """After stop is requested, still writes its in-flight work to the database."""

    DEPS = (SqliteDb,)

    def run_loop(self) -> None:
        db = self.service.tasks.require(SqliteDb)
        self.stop_event.wait()
        time.sleep(0.2)  # in-flight work, finishing after the stop request
        with db.conn:
            db.conn.execute("insert into notes values ('written after stop')")


class SqliteService(Service):
    TASKS = (SqliteWriter,)


# -- hooks that hang or raise what they should not -----------------------------------------------


class HangsInInit(Task):
    """Its init_task never returns."""

    LOOPLESS = True

    def init_task(self) -> None:
        print("HangsInInit: inside init_task", flush=True)  # the test signals only now
        _NEVER.wait()


class HungInit(Service):
    TASKS = (HangsInInit,)


class HangsInOnStop(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()

    def on_stop(self) -> None:
        _NEVER.wait()


class HungOnStop(Service):
    TASKS = (Waiter, HangsInOnStop)


class ExitsInOnStop(Task):
    DEPS = (Waiter,)

    def run_loop(self) -> None:
        self.stop_event.wait()

    def on_stop(self) -> None:
        raise SystemExit(0)


class StopExits(Service):
    TASKS = (ExitsInOnStop,)


class InterruptsInOnStop(Task):
    DEPS = (Waiter,)
    LOOPLESS = True

    def on_stop(self) -> None:
        raise KeyboardInterrupt


class StopInterrupts(Service):
    TASKS = (InterruptsInOnStop,)


class ExitsInInit(Task):
    LOOPLESS = True

    def init_task(self) -> None:
        raise SystemExit(0)


class InitExits(Service):
    TASKS = (Waiter, ExitsInInit)


class Broken(Task):
    """Its init_task raises: the service fails to start."""

    LOOPLESS = True

    def init_task(self) -> None:
        raise RuntimeError("database unreachable")


class InitFailing(Service):
    TASKS = (Waiter, Broken)


class Tick(PeriodicTask):
    """A periodic task: ``--Tick-interval``."""

    INTERVAL = 1.0

    def execute(self) -> None:
        pass


class Inbox(QueueTask):
    """A queue task: ``--Inbox-workers`` and ``--Inbox-max-items``."""

    def execute(self, item: Any, context: ExecuteContext) -> Any:
        return item


class Kinds(Service):
    TASKS = (Tick, Inbox)


class Holding(QueueTask):
    """One worker that holds each item until the task is asked to stop."""

    def __init__(self, service: Any = None) -> None:
        super().__init__(service)
        self.holding = threading.Event()  # set once the worker holds an item

    def execute(self, item: Any, context: ExecuteContext) -> Any:
        self.holding.set()
        self.stop_event.wait()
        return item


class Filler(Task):
    """Queues one item that `Holding`'s worker holds, then 17 more that wait behind it, then
    asks the service to shut down: those 17 are dropped at stop."""

    DEPS = (Holding,)
    ITEMS = 17

    def run_loop(self) -> None:
        holding = self.service.tasks.require(Holding)
        holding.put(0)
        # Exactly ITEMS wait behind the held one only once the worker really holds it.
        holding.holding.wait(30)
        for index in range(1, self.ITEMS + 1):
            holding.put(index)
        self.service.shutdown("queue filled")
        self.stop_event.wait()


class Dropping(Service):
    TASKS = (Filler,)
