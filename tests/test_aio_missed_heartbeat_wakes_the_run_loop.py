"""An async task that misses its heartbeat (``WATCHDOG``) is failed from the watchdog's thread:
its `run_loop`, waiting on `stop_event` on the loop, is woken through the loop, never from
the watchdog's thread (nothing is left for the loop's exception handler), the task fails
with `WatchdogTimeout`, and the service stops with it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from lifecycle import Service, TaskState
from lifecycle.aio import AsyncTask
from lifecycle.health import WatchdogTimeout
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.fakes import WAIT


class Silent(AsyncTask):
    """Never beats: the watchdog fails it once ``WATCHDOG`` seconds passed after it ran."""

    WATCHDOG = 0.01

    async def run_loop(self) -> None:
        await self.stop_event.wait()


class SilentService(Service):
    TASKS = (Silent,)


@pytest.mark.parametrize("debug", [False, True])  # asyncio's debug mode checks thread safety
def test_a_missed_heartbeat_wakes_the_run_loop_and_fails_the_task(debug: bool) -> None:
    reported: list[dict[str, Any]] = []
    service = SilentService({"stop_timeout": WAIT})

    async def main() -> int:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        return await service.serve()

    codes: list[int] = []
    served = threading.Thread(
        target=lambda: codes.append(asyncio.run(main(), debug=debug)), daemon=True
    )
    served.start()
    served.join(2 * WAIT)  # a bound for a broken engine only: the watchdog ends the service
    assert not served.is_alive()
    assert codes and codes[0] != 0
    assert reported == []
    task = service.tasks.require(Silent)
    assert task.state == TaskState.FAILED
    assert isinstance(task.failure, WatchdogTimeout)
