"""The bundled example service that ``lifecycle demo`` runs.

Seven tasks, threads and coroutines in one service, show what the engine does:

* `Heartbeat`, a periodic task (`PeriodicTask`);
* `Mailer`, a queue task whose items each fail twice with `TryLater` before they go through;
* `Producer`, which requires both and feeds the mailer from a periodic tick;
* `Metrics`, which skips itself for want of configuration (``--Metrics-endpoint``), and
  `MetricsReporter`, which requires it and so is skipped with it;
* `Stopwatch`, which asks the service to shut down after ``--duration`` seconds;
* `Pinger`, an async task (`AsyncTask`): a coroutine on the service's event loop that
  requires the (thread) `Heartbeat` and counts its beats until its `stop_event` is set.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from lifecycle.aio import AsyncTask
from lifecycle.context import ExecuteContext
from lifecycle.errors import OptionError
from lifecycle.options import option
from lifecycle.service import Service
from lifecycle.task import SkipTask, Task, TryLater
from lifecycle.tasks import PeriodicTask, QueueTask

__all__ = [
    "DemoService",
    "Heartbeat",
    "Mailer",
    "Metrics",
    "MetricsReporter",
    "Pinger",
    "Producer",
    "Stopwatch",
]


class Heartbeat(PeriodicTask):
    """Beats every ``INTERVAL`` seconds."""

    INTERVAL = 0.25

    def execute(self) -> int:
        return self.iterations + 1


class Mailer(QueueTask):
    """Sends messages; each one fails ``FLAKY`` times (`TryLater`) before it goes through."""

    WORKERS = 2
    FLAKY = 2
    RETRY_AFTER = 0.05

    def execute(self, item: Any, context: ExecuteContext) -> str:
        if context.attempt <= self.FLAKY:
            raise TryLater(f"mail server busy (attempt {context.attempt})", after=self.RETRY_AFTER)
        return f"sent {item!r} on attempt {context.attempt}"


class Producer(PeriodicTask):
    """Hands a message to the mailer on each tick; needs the mailer and the heartbeat."""

    DEPS = (Mailer, Heartbeat)
    INTERVAL = 0.4

    def init_task(self) -> None:
        self.mailer: Mailer = self.service.tasks.require(Mailer)

    def execute(self) -> None:
        self.mailer.submit(f"message {self.iterations + 1}")


class Metrics(Task):
    """Would ship metrics to ``--Metrics-endpoint``; skips itself when none is configured."""

    LOOPLESS = True
    endpoint = option(help="where to send metrics (the demo leaves it unset, so this skips)")

    def init_task(self) -> None:
        if not self.endpoint:
            raise SkipTask("no --Metrics-endpoint configured")


class MetricsReporter(PeriodicTask):
    """Reports to `Metrics`; skipped with it."""

    DEPS = (Metrics,)
    INTERVAL = 1.0

    def execute(self) -> None:
        pass


class Stopwatch(Task):
    """Asks the service to shut down once ``duration`` seconds have passed (or on stop)."""

    def run_loop(self) -> None:
        duration = float(self.service.duration)
        if not self.stop_event.wait(duration):
            self.service.shutdown(f"the demo's {duration:g} seconds are up")
            self.stop_event.wait()  # stop with the others, in reverse start order


class Pinger(AsyncTask):
    """An async task: every ``INTERVAL`` seconds it awaits a look at the heartbeat (a thread
    task it requires) and counts the beats it saw, until its `stop_event` is set."""

    DEPS = (Heartbeat,)
    INTERVAL = 0.3

    async def init_task(self) -> None:
        self.beating: Heartbeat = self.service.tasks.require(Heartbeat)
        self.pings = 0
        self.beats_seen = 0

    async def run_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.stop_event.wait(), self.INTERVAL)
                return
            except TimeoutError:
                self.pings += 1
                self.beats_seen = self.beating.iterations


class DemoService(Service):
    """The example service of ``lifecycle demo``."""

    name = "demo"
    TASKS = (Producer, MetricsReporter, Stopwatch, Pinger)
    duration = option(
        type=float, gt=0, default=3.0, metavar="SECONDS", help="stop gracefully after this long"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        duration = self.duration
        if not isinstance(duration, int | float) or not (0 < duration < math.inf):
            raise OptionError("--duration", f"must be seconds > 0, not {duration!r}")

    def counts(self) -> dict[str, int]:
        """What the tasks did: heartbeats, pings, mails sent, retries, mails dropped at stop."""
        mailer = self.tasks.get(Mailer)
        heartbeat = self.tasks.get(Heartbeat)
        pinger = self.tasks.get(Pinger)
        return {
            "heartbeats": heartbeat.iterations if heartbeat is not None else 0,
            "pings": getattr(pinger, "pings", 0),
            "mails sent": mailer.completed if mailer is not None else 0,
            "mail retries": mailer.try_laters if mailer is not None else 0,
            "mails still queued at stop": mailer.dropped if mailer is not None else 0,
        }
