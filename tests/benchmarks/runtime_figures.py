"""Figures 3, 4 and 5: shutdown latency, queue throughput and periodic accuracy.

These need the service runtime (`lifecycle.service`, `lifecycle.tasks.queue`,
`lifecycle.tasks.periodic`). Each figure imports what it needs when it runs, so a module that
does not exist yet makes only its own figure report "not available".
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

from lifecycle.collection import Tasks
from lifecycle.spec import CollectionState
from lifecycle.task import Task
from tests.benchmarks.harness import Config, Row, Sample, interleave, percentile

__all__ = ["figure_3_shutdown", "figure_4_queue", "figure_5_periodic"]

#: No wait in a benchmark is unbounded: a run that takes longer than this is a failure.
DEADLINE = 60.0


def _must(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(what)


# -- figure 3 --------------------------------------------------------------------------------

#: Released once by each blocked worker of figure 3, so a run is timed only once all block.
_blocked = threading.Semaphore(0)


def _blocked_task_classes(count: int) -> list[type[Task]]:
    def run_loop(self: Task) -> None:
        _blocked.release()
        self.stop_event.wait(DEADLINE)

    return [
        type(f"Blocked{i}", (Task,), {"run_loop": run_loop, "__module__": __name__})
        for i in range(count)
    ]


def _wait_blocked(count: int) -> None:
    for _ in range(count):
        _must(_blocked.acquire(timeout=DEADLINE), "a worker never reached stop_event.wait")


def _service_api() -> Any:
    """`lifecycle.service.Service`, or None while that module is missing."""
    try:
        from lifecycle.service import Service
    except ImportError:
        return None
    return Service


def _ours_shutdown(classes: list[type[Task]]) -> dict[str, float]:
    service_cls = _service_api()
    if service_cls is not None:
        return _service_shutdown(service_cls, classes)
    tasks = Tasks(classes)
    tasks.create()
    tasks.init()
    tasks.start()
    _wait_blocked(len(classes))
    start = time.perf_counter_ns()
    tasks.stop()
    left = tasks.join(timeout=DEADLINE)
    elapsed = time.perf_counter_ns() - start
    _must(not left and tasks.state == CollectionState.STOPPED, f"{len(left)} tasks did not stop")
    return {"ms": elapsed / 1e6}


def _service_shutdown(service_cls: Any, classes: list[type[Task]]) -> dict[str, float]:
    from lifecycle.spec import ServiceState

    bench_service = type("BenchService", (service_cls,), {"TASKS": classes})
    service = bench_service()
    service.start()
    _wait_blocked(len(classes))
    start = time.perf_counter_ns()
    service.shutdown("benchmark")
    ended = service.wait(timeout=DEADLINE)  # the calling thread carries out the stop
    elapsed = time.perf_counter_ns() - start
    _must(ended and service.state == ServiceState.STOPPED, f"the service ended {service.state}")
    _must(
        not any(t.is_alive() for task in service.tasks for t in task.threads),
        "a worker outlived the stopped service",
    )
    return {"ms": elapsed / 1e6}


def _bare_shutdown(count: int) -> dict[str, float]:
    events = [threading.Event() for _ in range(count)]

    def worker(event: threading.Event) -> None:
        _blocked.release()
        event.wait(DEADLINE)

    threads = [threading.Thread(target=worker, args=(e,), daemon=True) for e in events]
    for thread in threads:
        thread.start()
    _wait_blocked(count)
    start = time.perf_counter_ns()
    for event in events:
        event.set()
    for thread in threads:
        thread.join(DEADLINE)
    elapsed = time.perf_counter_ns() - start
    _must(not any(t.is_alive() for t in threads), "a bare thread did not exit")
    return {"ms": elapsed / 1e6}


def _ours_stop_call(classes: list[type[Task]]) -> dict[str, float]:
    """`Tasks.stop()` alone on running tasks whose workers block on `stop_event`."""
    tasks = Tasks(classes)
    tasks.create()
    tasks.init()
    tasks.start()
    _wait_blocked(len(classes))
    start = time.perf_counter_ns()
    tasks.stop()
    elapsed = time.perf_counter_ns() - start
    left = tasks.join(timeout=DEADLINE)
    _must(not left and tasks.state == CollectionState.STOPPED, f"{len(left)} tasks did not stop")
    return {"ms": elapsed / 1e6}


def _bare_set_events(count: int) -> dict[str, float]:
    """The floor of `_ours_stop_call`: a loop setting the events ``count`` threads wait on."""
    events = [threading.Event() for _ in range(count)]

    def worker(event: threading.Event) -> None:
        _blocked.release()
        event.wait(DEADLINE)

    threads = [threading.Thread(target=worker, args=(e,), daemon=True) for e in events]
    for thread in threads:
        thread.start()
    _wait_blocked(count)
    start = time.perf_counter_ns()
    for event in events:
        event.set()
    elapsed = time.perf_counter_ns() - start
    for thread in threads:
        thread.join(DEADLINE)
    _must(not any(t.is_alive() for t in threads), "a bare thread did not exit")
    return {"ms": elapsed / 1e6}


def figure_3_shutdown(config: Config) -> list[Row]:
    """100 threaded tasks blocked on stop_event: stop request to all joined (3a, 3b), and
    `Tasks.stop()` alone against setting the events of bare threads (3c)."""
    count = 100
    repeats: int = config.pick(5, 20)
    classes = _blocked_task_classes(count)
    samples = interleave(
        repeats, {"ours": lambda: _ours_shutdown(classes), "bare": lambda: _bare_shutdown(count)}
    )
    ours, bare = samples["ours"]["ms"], samples["bare"]["ms"]
    calls = interleave(
        repeats,
        {
            "ours": lambda: _ours_stop_call(classes),
            "events": lambda: _bare_set_events(count),
        },
    )
    stop_call, set_loop = calls["ours"]["ms"], calls["events"]["ms"]
    how = (
        "Service.shutdown() + wait()"
        if _service_api() is not None
        else "no lifecycle.service yet: Tasks.stop() + join()"
    )
    detail = {
        "tasks": count,
        "driver": how,
        "samples": {"ours": ours.to_dict(), "bare": bare.to_dict()},
        "stop_call_samples": {"ours": stop_call.to_dict(), "events": set_loop.to_dict()},
    }
    return [
        Row(
            figure="3a",
            name=f"shutdown of {count} blocked threaded tasks, median of {repeats}",
            ours=ours.median,
            baseline=bare.median,
            unit="ms",
            target="<= 1.05x",
            met=ours.median <= 1.05 * bare.median,
            spread=(ours.spread, bare.spread),
            note=how,
            detail=detail,
        ),
        Row(
            figure="3b",
            name=f"shutdown of {count} blocked threaded tasks, max of {repeats}",
            ours=max(ours.values),
            baseline=max(bare.values),
            unit="ms",
            target="(reference)",
            met=None,
            detail=detail,
        ),
        Row(
            figure="3c",
            name=f"Tasks.stop() of {count} running tasks vs a loop setting {count} events",
            ours=stop_call.median,
            baseline=set_loop.median,
            unit="ms",
            target="<= 1.1x",
            met=stop_call.median <= 1.1 * set_loop.median,
            spread=(stop_call.spread, set_loop.spread),
            note="each event has a thread waiting on it, as each task has a worker",
            detail=detail,
        ),
    ]


# -- figure 4 --------------------------------------------------------------------------------


def _queue_class(workers: int) -> type[Task]:
    from lifecycle.tasks.queue import QueueTask

    def execute(self: Any, item: Any, context: Any) -> Any:
        return item

    return type(
        f"BenchQueue{workers}",
        (QueueTask,),
        {"WORKERS": workers, "execute": execute, "__module__": __name__},
    )


def _collect(futures: list[concurrent.futures.Future[Any]], count: int) -> None:
    done, pending = concurrent.futures.wait(futures, timeout=DEADLINE)
    _must(not pending, f"{len(pending)} of {count} items were not done before the deadline")
    _must(sum(f.result() for f in done) == count * (count - 1) // 2, "wrong results")


def _ours_queue(cls: type[Task], items: int) -> dict[str, float]:
    tasks = Tasks([cls])
    tasks.create()
    tasks.init()
    tasks.start()
    try:
        queue: Any = tasks.require(cls)
        start = time.perf_counter_ns()
        futures = [queue.submit(i) for i in range(items)]
        _collect(futures, items)
        elapsed = time.perf_counter_ns() - start
    finally:
        tasks.stop()
        tasks.join(timeout=DEADLINE)
    return {"per_s": items / (elapsed / 1e9)}


def _pool_queue(workers: int, items: int) -> dict[str, float]:
    def execute(item: int) -> int:
        return item

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        start = time.perf_counter_ns()
        futures = [pool.submit(execute, i) for i in range(items)]
        _collect(futures, items)
        elapsed = time.perf_counter_ns() - start
    return {"per_s": items / (elapsed / 1e9)}


def figure_4_queue(config: Config) -> list[Row]:
    """QueueTask throughput with 1 and 4 workers against ThreadPoolExecutor."""
    items: int = config.pick(10_000, 100_000)
    repeats: int = config.pick(2, 5)
    rows = []
    for workers in (1, 4):
        cls = _queue_class(workers)
        samples = interleave(
            repeats,
            {
                "ours": lambda cls=cls: _ours_queue(cls, items),  # type: ignore[misc]
                "pool": lambda w=workers: _pool_queue(w, items),  # type: ignore[misc]
            },
        )
        ours, pool = samples["ours"]["per_s"], samples["pool"]["per_s"]
        rows.append(
            Row(
                figure="4",
                name=f"QueueTask, {items:,} trivial items, {workers} worker(s), vs ThreadPool",
                ours=ours.median,
                baseline=pool.median,
                unit="items/s",
                target=">= 0.9x",
                met=ours.median >= 0.9 * pool.median,
                spread=(ours.spread, pool.spread),
                detail={
                    "items": items,
                    "workers": workers,
                    "repeats": repeats,
                    "samples": {"ours": ours.to_dict(), "pool": pool.to_dict()},
                },
            )
        )
    return rows


# -- figure 5 --------------------------------------------------------------------------------


def _periodic_class(interval: float, runs: int, done: threading.Event) -> type[Task]:
    from lifecycle.tasks.periodic import PeriodicTask

    def execute(self: Any, *args: Any, **kwargs: Any) -> None:
        # Called once per tick; extra ticks between `done` and the stop are ignored.
        stamps: list[int] = self.__dict__.setdefault("bench_stamps", [])
        if len(stamps) < runs:
            stamps.append(time.monotonic_ns())
            if len(stamps) == runs:
                done.set()

    return type(
        "BenchPeriodic",
        (PeriodicTask,),
        {"INTERVAL": interval, "execute": execute, "__module__": __name__},
    )


def _schedule_stats(stamps: list[int], interval_ns: int, fixed_rate: bool) -> dict[str, float]:
    """Drift (last run against the ideal schedule) and p99 lateness, in milliseconds.

    ``fixed_rate``: lateness is measured against ``first + k * interval`` (what a periodic
    scheduler promises); otherwise against ``previous + interval`` (what a bare
    ``Event.wait(interval)`` asks for on each turn).
    """
    first = stamps[0]
    if fixed_rate:
        late = [stamps[k] - (first + k * interval_ns) for k in range(1, len(stamps))]
    else:
        late = [stamps[k] - (stamps[k - 1] + interval_ns) for k in range(1, len(stamps))]
    drift = stamps[-1] - (first + (len(stamps) - 1) * interval_ns)
    return {"drift_ms": drift / 1e6, "p99_late_ms": percentile(late, 0.99) / 1e6}


def _ours_periodic(interval: float, runs: int) -> dict[str, float]:
    done = threading.Event()
    cls = _periodic_class(interval, runs, done)
    tasks = Tasks([cls])
    tasks.create()
    tasks.init()
    tasks.start()
    try:
        finished = done.wait(runs * interval * 5 + DEADLINE)
    finally:
        tasks.stop()
        tasks.join(timeout=DEADLINE)
    _must(finished, f"the periodic task did not run {runs} times in time")
    stamps = tasks.require(cls).__dict__["bench_stamps"]
    return _schedule_stats(stamps, round(interval * 1e9), fixed_rate=True)


def _bare_periodic(interval: float, runs: int) -> dict[str, float]:
    event = threading.Event()
    stamps = [time.monotonic_ns()]
    while len(stamps) < runs:
        event.wait(interval)
        stamps.append(time.monotonic_ns())
    return _schedule_stats(stamps, round(interval * 1e9), fixed_rate=False)


def figure_5_periodic(config: Config) -> list[Row]:
    """PeriodicTask at 10 ms for 200 runs against a bare Event.wait(interval) loop."""
    interval, runs = 0.010, 200
    repeats: int = config.pick(1, 5)
    samples = interleave(
        repeats,
        {
            "ours": lambda: _ours_periodic(interval, runs),
            "bare": lambda: _bare_periodic(interval, runs),
        },
    )
    ours, bare = samples["ours"], samples["bare"]
    detail: dict[str, Any] = {
        "interval_ms": interval * 1e3,
        "runs": runs,
        "repeats": repeats,
        "lateness": "ours: against first + k*interval; bare: against previous + interval",
        "samples": {k: {m: s.to_dict() for m, s in v.items()} for k, v in samples.items()},
    }

    def row(
        figure: str, metric: str, name: str, target: str, check: Callable[[Sample, Sample], bool]
    ) -> Row:
        return Row(
            figure=figure,
            name=name,
            ours=ours[metric].median,
            baseline=bare[metric].median,
            unit="ms",
            target=target,
            met=check(ours[metric], bare[metric]),
            spread=(ours[metric].spread, bare[metric].spread),
            detail=detail,
        )

    return [
        row(
            "5a",
            "drift_ms",
            f"PeriodicTask 10 ms x {runs}: cumulative drift",
            "<= 1 ms",
            lambda o, b: abs(o.median) <= 1.0,
        ),
        row(
            "5b",
            "p99_late_ms",
            f"PeriodicTask 10 ms x {runs}: p99 lateness",
            "<= 1.5x",
            lambda o, b: o.median <= 1.5 * b.median,
        ),
    ]
