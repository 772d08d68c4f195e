"""`ExecuteContext`: one unit of work handed to a task's ``execute`` (a queue item or a tick)."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Future, InvalidStateError
from typing import Any

import attrs

__all__ = ["ExecuteContext"]


@attrs.define(eq=False, order=False)
class ExecuteContext:
    """The item being executed, its attempt number, its future and its timer.

    ``attempt`` counts from 1 and grows by one each time the item is retried (`TryLater`).
    Contexts compare and order by ``item`` alone, so a priority queue can hold them.
    ``future`` (optional) receives the outcome through `set_result` / `set_exception`.
    Not thread-safe on its own: one worker handles a context at a time.
    """

    item: Any = None
    attempt: int = 1
    future: Future[Any] | None = None
    started: float | None = None
    # The future `start` already marked running: a retry need not ask it again (a lock round
    # trip per item on a queue's hot path), while a future attached later still gets marked.
    _marked: Future[Any] | None = attrs.field(default=None, init=False, repr=False)

    def start(self) -> bool:
        """Start the timer (again, on a retry) and mark the future running.

        Returns False if the future was cancelled before the work started: skip the work.
        """
        self.started = time.monotonic()
        future = self.future
        if future is None or future is self._marked:
            return True
        self._marked = future
        return future.set_running_or_notify_cancel()

    @property
    def elapsed(self) -> float:
        """Seconds since `start` (0.0 if not started)."""
        return 0.0 if self.started is None else time.monotonic() - self.started

    def set_result(self, result: Any) -> None:
        """Resolve the future with ``result`` (no-op without a future or once it is done)."""
        if self.future is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per queue item
                self.future.set_result(result)
            except InvalidStateError:
                pass

    def set_exception(self, exc: BaseException) -> bool:
        """Fail the future with ``exc``; True if someone can observe it (there is a future)."""
        if self.future is None:
            return False
        with contextlib.suppress(InvalidStateError):
            self.future.set_exception(exc)
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExecuteContext):
            return NotImplemented
        return bool(self.item == other.item)

    # A context orders only against contexts: anything else is NotImplemented, so that
    # Python raises its usual TypeError rather than an AttributeError on ``other.item``.

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ExecuteContext):
            return NotImplemented
        return bool(self.item < other.item)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, ExecuteContext):
            return NotImplemented
        return bool(self.item <= other.item)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, ExecuteContext):
            return NotImplemented
        return bool(self.item > other.item)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, ExecuteContext):
            return NotImplemented
        return bool(self.item >= other.item)

    __hash__ = None  # type: ignore[assignment]
