"""A service whose async task blocks its event loop, run by ``lifecycle run`` in a child process
(tests/test_aio_blocking)."""

from __future__ import annotations

import asyncio
import time

from lifecycle.aio import AsyncTask
from lifecycle.service import BLOCKING_THRESHOLD, Service


class Hog(AsyncTask):
    """Blocks the loop for three times the threshold `lifecycle run` sets, then asks to stop."""

    async def run_loop(self) -> None:
        await asyncio.sleep(0)
        time.sleep(BLOCKING_THRESHOLD * 3)  # the bug the detector reports
        self.service.shutdown("the hog is done")
        await self.stop_event.wait()


class HogService(Service):
    TASKS = (Hog,)
