"""Shared by the asyncio tests: a test fails if the loop reports a task destroyed while
pending, a coroutine never awaited, or any other error the loop logs."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from lifecycle.service import Service


@pytest.fixture(autouse=True)
def asyncio_hygiene(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail on "Task was destroyed but it is pending", "coroutine ... was never awaited",
    "exception was never retrieved" and any other error the asyncio logger reports."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()  # destroyed-pending and never-awaited are reported at collection
    problems = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    problems += [r.getMessage() for r in caplog.records if r.name.startswith("asyncio")]
    assert problems == []


def serve(
    service: Service, meanwhile: Callable[[Service], Awaitable[Any]] | None = None
) -> tuple[int, set[asyncio.Task[Any]]]:
    """Serve ``service`` on a fresh loop (running ``meanwhile(service)`` beside it); return
    the exit code and the asyncio tasks other than the test's own left once serve() returned."""

    async def main() -> tuple[int, set[asyncio.Task[Any]]]:
        served = asyncio.create_task(service.serve())
        if meanwhile is not None:
            await meanwhile(service)
        code = await served
        return code, asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    return asyncio.run(main())
