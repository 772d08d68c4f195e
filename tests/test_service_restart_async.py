"""`Service.restart` on a service with async tasks: refused, with a typed error, changing
nothing (a fresh service would have no event loop to run its async tasks on)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lifecycle import LifecycleError, Service, ServiceState, Task
from lifecycle.aio import AsyncTask
from lifecycle.service import RestartUnsupported
from lifecycle.testing import wait_for_state
from tests.fakes import WAIT


class Beat(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class Ping(AsyncTask):
    DEPS = (Beat,)

    async def run_loop(self) -> None:
        await self.stop_event.wait()


class Mixed(Service):
    TASKS = (Ping,)


def test_restart_of_a_service_with_async_tasks_is_refused_and_leaves_it_running() -> None:
    service = Mixed({"stop_timeout": 5.0})
    codes: list[int] = []
    served = threading.Thread(target=lambda: codes.append(asyncio.run(service.serve())))
    served.start()
    try:
        wait_for_state(service, ServiceState.RUNNING, WAIT)
        with pytest.raises(RestartUnsupported) as info:
            service.restart()
        assert isinstance(info.value, LifecycleError) and info.value.service == "Mixed"
        message = str(info.value)
        assert "'Mixed'" in message and "async tasks (Ping)" in message
        assert "event loop" in message
        # Refused before anything was done: the service still runs, and was not asked to stop.
        assert service.state == ServiceState.RUNNING and not service.shutdown_requested
        assert service.tasks.Ping.running and service.tasks.Beat.running
    finally:
        service.shutdown("the test is over")
        served.join(WAIT)
    assert codes == [0]


def test_restart_unsupported_pickles_with_its_attributes() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(RestartUnsupported("Mixed", "it has async tasks (Ping)")))
    assert (error.service, error.reason) == ("Mixed", "it has async tasks (Ping)")
    assert str(error) == "cannot restart service 'Mixed': it has async tasks (Ping)"
