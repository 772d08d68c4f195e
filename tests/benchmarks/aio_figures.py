"""Figure 8: the asyncio runtime (`lifecycle.aio`).

8a/8b: the whole lifecycle of N LOOPLESS async tasks, per task, against a floor (create an
object, await four empty coroutines) and against the same lifecycle with thread tasks (figure
1's). The collection is driven from the benchmark's thread, the loop runs on a thread of its
own: what `Service.serve` does. 8c: shutdown latency of 1,000 async tasks blocked on
``await stop_event.wait()``, from `Service.shutdown` to `serve` returning, against setting
1,000 events and gathering the coroutines. 8d: start and stop of 1,000 services through
``aiomisc.entrypoint`` against 1,000 async tasks through `Service.run` (needs the ``bench``
extra; without aiomisc the row says so).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from lifecycle.aio import AsyncTask
from lifecycle.collection import Tasks
from lifecycle.service import Service
from lifecycle.spec import CollectionState, ServiceState
from lifecycle.task import Task
from tests.benchmarks.core_figures import looples_task_classes
from tests.benchmarks.harness import Config, Row, interleave

__all__ = ["figure_8_aio"]

#: No wait in a benchmark is unbounded: a run that takes longer than this is a failure.
DEADLINE = 60.0

_async_cache: list[type[Task]] = []


def _must(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(what)


def loopless_async_classes(count: int) -> list[type[Task]]:
    """``count`` distinct LOOPLESS async task classes, made once per process (as figure 1's)."""
    while len(_async_cache) < count:
        index = len(_async_cache)
        _async_cache.append(
            type(f"AsyncBench{index}", (AsyncTask,), {"LOOPLESS": True, "__module__": __name__})
        )
    return _async_cache[:count]


@contextmanager
def _loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(DEADLINE)
        loop.close()


def _on(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(DEADLINE)


# -- 8a, 8b ----------------------------------------------------------------------------------


def _lifecycle(classes: list[type[Task]], loop: asyncio.AbstractEventLoop | None) -> float:
    """ns for register, create, init, start, stop and join of ``classes``."""
    start = time.perf_counter_ns()
    tasks = Tasks(classes, loop=loop)
    tasks.create()
    tasks.init()
    tasks.start()
    tasks.stop()
    left = tasks.join(timeout=DEADLINE)
    elapsed = time.perf_counter_ns() - start
    _must(not left and tasks.state == CollectionState.STOPPED, f"the run ended {tasks.state}")
    return elapsed


class _AsyncFloor:
    """The floor of 8a: an object and its four hooks, awaited in order, no state kept."""

    async def init_task(self) -> None:
        pass

    async def start(self) -> None:
        pass

    async def on_stop(self) -> None:
        pass

    async def join(self) -> None:
        pass


def _floor(count: int, loop: asyncio.AbstractEventLoop) -> float:
    async def lifecycles() -> None:
        for _ in range(count):
            obj = _AsyncFloor()
            await obj.init_task()
            await obj.start()
            await obj.on_stop()
            await obj.join()

    start = time.perf_counter_ns()
    _on(loop, lifecycles())
    return time.perf_counter_ns() - start


def _lifecycle_rows(config: Config) -> list[Row]:
    count: int = config.pick(10_000, 10_000)
    repeats: int = config.pick(3, 7)
    async_classes = loopless_async_classes(count)
    thread_classes = looples_task_classes(count)
    with _loop_thread() as loop:
        samples = interleave(
            repeats,
            {
                "async": lambda: {"us": _lifecycle(async_classes, loop) / count / 1e3},
                "thread": lambda: {"us": _lifecycle(thread_classes, None) / count / 1e3},
                "floor": lambda: {"us": _floor(count, loop) / count / 1e3},
            },
        )
    ours, threads, floor = (samples[k]["us"] for k in ("async", "thread", "floor"))
    detail = {k: v["us"].to_dict() for k, v in samples.items()}
    return [
        Row(
            figure="8a",
            name=f"lifecycle of {count:,} LOOPLESS async tasks vs the floor (4 awaits)",
            ours=ours.median,
            baseline=floor.median,
            unit="us/task",
            target="<= 25x",
            met=ours.median <= 25 * floor.median,
            spread=(ours.spread, floor.spread),
            detail=detail,
        ),
        Row(
            figure="8b",
            name=f"lifecycle of {count:,} LOOPLESS async tasks vs thread tasks",
            ours=ours.median,
            baseline=threads.median,
            unit="us/task",
            target="<= 1.0x",
            met=ours.median <= threads.median,
            spread=(ours.spread, threads.spread),
            detail=detail,
        ),
    ]


# -- 8c --------------------------------------------------------------------------------------


def _blocked_classes(count: int, blocked: threading.Semaphore) -> list[type[Task]]:
    async def run_loop(self: AsyncTask) -> None:
        blocked.release()
        await self.stop_event.wait()

    return [
        type(f"AsyncBlocked{i}", (AsyncTask,), {"run_loop": run_loop, "__module__": __name__})
        for i in range(count)
    ]


def _wait_blocked(blocked: threading.Semaphore, count: int) -> None:
    for _ in range(count):
        _must(blocked.acquire(timeout=DEADLINE), "a coroutine never reached stop_event.wait")


def _ours_shutdown(
    classes: list[type[Task]], blocked: threading.Semaphore, loop: asyncio.AbstractEventLoop
) -> float:
    service = type("AsyncBenchService", (Service,), {"TASKS": classes})()
    served = asyncio.run_coroutine_threadsafe(service.serve(), loop)
    _wait_blocked(blocked, len(classes))
    start = time.perf_counter_ns()
    service.shutdown("benchmark")
    code = served.result(DEADLINE)
    elapsed = time.perf_counter_ns() - start
    _must(code == 0 and service.state == ServiceState.STOPPED, f"the service ended {service.state}")
    return elapsed


def _bare_shutdown(
    count: int, blocked: threading.Semaphore, loop: asyncio.AbstractEventLoop
) -> float:
    async def make() -> tuple[list[asyncio.Event], list[asyncio.Task[None]]]:
        events = [asyncio.Event() for _ in range(count)]

        async def wait(event: asyncio.Event) -> None:
            blocked.release()
            await event.wait()

        return events, [asyncio.create_task(wait(e)) for e in events]

    events, waiters = _on(loop, make())
    _wait_blocked(blocked, count)

    async def set_and_gather() -> None:
        for event in events:
            event.set()
        await asyncio.gather(*waiters)

    start = time.perf_counter_ns()
    _on(loop, set_and_gather())
    return time.perf_counter_ns() - start


def _shutdown_rows(config: Config) -> list[Row]:
    count = 1_000
    repeats: int = config.pick(3, 15)
    blocked = threading.Semaphore(0)
    classes = _blocked_classes(count, blocked)
    with _loop_thread() as loop:
        samples = interleave(
            repeats,
            {
                "ours": lambda: {"ms": _ours_shutdown(classes, blocked, loop) / 1e6},
                "bare": lambda: {"ms": _bare_shutdown(count, blocked, loop) / 1e6},
            },
        )
    ours, bare = samples["ours"]["ms"], samples["bare"]["ms"]
    return [
        Row(
            figure="8c",
            name=f"shutdown of {count:,} async tasks blocked on stop_event",
            ours=ours.median,
            baseline=bare.median,
            unit="ms",
            target="<= 2x",
            met=ours.median <= 2 * bare.median,
            spread=(ours.spread, bare.spread),
            note="bare: set 1,000 events, gather",
            detail={"ours": ours.to_dict(), "bare": bare.to_dict()},
        )
    ]


# -- 8d --------------------------------------------------------------------------------------


def _aiomisc_rows(config: Config) -> list[Row]:
    try:
        import aiomisc  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return [
            Row(
                "8d",
                "start and stop of 1,000 services vs aiomisc.entrypoint",
                None,
                None,
                "",
                "<= 1.0x",
                None,
                note="not available: aiomisc is not installed (pip install -e '.[bench]')",
            )
        ]
    count = 1_000
    repeats: int = config.pick(3, 9)

    class Noop(aiomisc.Service):  # type: ignore[misc, name-defined, unused-ignore]
        async def start(self) -> None:
            pass

        async def stop(self, exception: Exception | None = None) -> None:
            pass

    def theirs() -> float:
        services = [Noop() for _ in range(count)]
        start = time.perf_counter_ns()
        with aiomisc.entrypoint(*services, log_config=False):
            pass
        return time.perf_counter_ns() - start

    hooked = _hooked_async_classes(count)

    def ours() -> float:
        service = type("AsyncNoopService", (Service,), {"TASKS": hooked})()
        start = time.perf_counter_ns()
        code = service.run()
        elapsed = time.perf_counter_ns() - start
        _must(code == 0, f"the service ended {service.state}")
        return elapsed

    samples = interleave(
        repeats, {"ours": lambda: {"ms": ours() / 1e6}, "aiomisc": lambda: {"ms": theirs() / 1e6}}
    )
    mine, base = samples["ours"]["ms"], samples["aiomisc"]["ms"]
    return [
        Row(
            figure="8d",
            name=f"start and stop of {count:,} services vs aiomisc.entrypoint",
            ours=mine.median,
            baseline=base.median,
            unit="ms",
            target="<= 1.0x",
            met=mine.median <= base.median,
            spread=(mine.spread, base.spread),
            note=f"aiomisc {getattr(aiomisc, '__version__', '?')}; ours: Service.run()",
            detail={"ours": mine.to_dict(), "aiomisc": base.to_dict()},
        )
    ]


def _hooked_async_classes(count: int) -> list[type[Task]]:
    """``count`` LOOPLESS async tasks with an (empty) ``init_task`` and ``on_stop``, as an
    aiomisc service has ``start`` and ``stop``; the last one stops the service once started."""

    async def init_task(self: AsyncTask) -> None:
        pass

    async def on_stop(self: AsyncTask) -> None:
        pass

    async def stop_all(self: AsyncTask) -> None:
        self.service.shutdown("all started")
        await self.stop_event.wait()

    body: dict[str, Any] = {"init_task": init_task, "on_stop": on_stop, "__module__": __name__}
    classes: list[type[Task]] = [
        type(f"AsyncNoop{i}", (AsyncTask,), {**body, "LOOPLESS": True}) for i in range(count - 1)
    ]
    # Registered last, so started last: its run_loop runs once every other task is running.
    classes.append(type("AsyncNoopLast", (AsyncTask,), {**body, "run_loop": stop_all}))
    return classes


def figure_8_aio(config: Config) -> list[Row]:
    """The asyncio runtime: lifecycle cost, shutdown latency, and against aiomisc."""
    return [*_lifecycle_rows(config), *_shutdown_rows(config), *_aiomisc_rows(config)]

