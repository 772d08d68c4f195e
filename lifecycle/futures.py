"""`TaskFuture`: the future of work handed to a task, for thread code and async code alike.

Every task kind hands out the same future (`QueueTask.submit`, `PeriodicTask.execute_async`
and their async siblings): a `concurrent.futures.Future`, so thread code calls ``result()``,
that async code can also ``await``. One future for both worlds is what lets a thread submit to
an async task and a coroutine await a thread task's work, with no wrapping at the call site.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["TaskFuture"]

T = TypeVar("T")


class TaskFuture(Future[T]):
    """A `concurrent.futures.Future` that a coroutine may ``await``.

    ``await future`` gives the result (or raises the exception) on the awaiting coroutine's
    own event loop, whichever thread resolves the future; it may be awaited any number of times
    and by several coroutines, each on its loop. Thread code uses it as any
    `concurrent.futures.Future` (``result(timeout)``, ``add_done_callback``, ``cancel``).

    Cancellation: cancelling a coroutine that awaits the future cancels the future itself
    (as `asyncio.wrap_future` does), which succeeds only while the work has not started; the
    task then skips the work. Once started, the work runs to its end and the awaiting coroutine
    alone is cancelled. Thread-safe.
    """

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self).__await__()
