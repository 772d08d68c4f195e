"""With no ``STOP_GRACE``, a task whose stop begins once its service's stop deadline has
already passed gets no grace at all: its `run_loop` is cancelled at once, and the finish
record says after 0 s."""

from __future__ import annotations

import asyncio
import time

from lifecycle import Tasks, TaskState
from lifecycle.aio import AsyncTask
from tests.aio_fakes import collected, in_thread
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT, FakeService


class PastDeadline(FakeService):
    """A service whose stop deadline passed long ago."""

    stop_deadline = time.monotonic() - 3600.0


class Deaf(AsyncTask):
    """Never looks at its stop_event: only the cancellation after the grace ends it."""

    async def run_loop(self) -> None:
        await asyncio.Event().wait()


def test_a_stop_past_the_deadline_cancels_run_loop_with_no_grace() -> None:
    async def main() -> Tasks:
        async with collected(Deaf, service=PastDeadline()) as tasks:
            assert await in_thread(lambda: (tasks.stop(), tasks.join(WAIT))[1]) == []
        return tasks

    tasks = asyncio.run(main())
    assert tasks.require(Deaf).state == TaskState.STOPPED
    [finish] = [r for r in tasks.journal.records if r.subject == "Deaf" and r.trigger == "finish"]
    assert "run_loop still running 0 s after stop_event was set" in (finish.cause or "")
