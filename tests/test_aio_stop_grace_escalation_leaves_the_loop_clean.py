"""A `run_loop` cancelled after its stop grace ends the task cleanly and leaves nothing behind on
the loop: no error reported to the loop's exception handler, no timer, no pending task."""

from __future__ import annotations

import asyncio
from typing import Any

from lifecycle import Service
from lifecycle.aio import AsyncTask
from lifecycle.audit import check
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)


class Deaf(AsyncTask):
    """Never looks at its stop_event: only the cancellation after the grace ends it."""

    STOP_GRACE = 0.0

    async def run_loop(self) -> None:
        self.service.shutdown("the test is over")
        await asyncio.Event().wait()


class DeafService(Service):
    TASKS = (Deaf,)


def test_a_cancelled_run_loop_reports_nothing_to_the_loop_exception_handler() -> None:
    reported: list[dict[str, Any]] = []

    async def main() -> int:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        return await service.serve()

    service = DeafService()
    assert asyncio.run(main()) == 0
    assert reported == []
    deaf = next(r for r in service.journal.records if r.subject == "Deaf" and r.dest == "stopped")
    assert "stop grace" in (deaf.cause or "")
    assert check(service.journal) == []
