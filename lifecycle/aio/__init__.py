"""The asyncio runtime: tasks whose hooks are coroutines, run by the same `Service`.

`AsyncTask` has the hooks of `lifecycle.Task` as coroutines, the same class attributes and
options, the same TASK machine and journal records. A `Service` whose ``TASKS`` include async
tasks runs them on an event loop (``Service.run`` through `asyncio.run`, or the caller's loop
through ``await service.serve()``) next to its thread tasks.
"""

from lifecycle.aio.task import AsyncTask, SkipTask, TryLater

__all__ = ["AsyncTask", "SkipTask", "TryLater"]

from lifecycle.aio.blocking import (
    BlockedEpisode,
    BlockingDetector,
    BlockingDetectorError,
    InvalidThreshold,
)
from lifecycle.aio.periodic import AsyncPeriodicTask
from lifecycle.aio.queue import AsyncQueueTask

__all__ += [
    "AsyncPeriodicTask",
    "AsyncQueueTask",
    "BlockedEpisode",
    "BlockingDetector",
    "BlockingDetectorError",
    "InvalidThreshold",
]
