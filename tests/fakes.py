"""Test doubles shared by the task-kind tests: a service that records shutdown requests, and a
started collection that is always stopped and joined afterwards."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lifecycle import Tasks

WAIT = 10.0  # generous deadline for anything that should happen promptly


class FakeService:
    """Records shutdown requests; carries parsed options like a real service."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options
        self.reasons: list[str | None] = []
        self.asked = threading.Event()

    def shutdown(self, reason: str | None = None) -> None:
        self.reasons.append(reason)
        self.asked.set()


@contextmanager
def running(*classes: type, service: Any = None) -> Iterator[Tasks]:
    """A started collection of ``classes``, stopped and joined (within `WAIT`) afterwards."""
    tasks = Tasks(classes)
    tasks.create(service if service is not None else FakeService())
    tasks.init()
    tasks.start()
    try:
        yield tasks
    finally:
        stop(tasks)


def stop(tasks: Tasks) -> None:
    """Stop ``tasks`` if it still can be, and fail unless every worker is gone within `WAIT`."""
    if tasks.lifecycle.can("stop"):
        tasks.stop()
    left = tasks.join(WAIT)
    assert left == [], f"workers still running after stop: {left}"
