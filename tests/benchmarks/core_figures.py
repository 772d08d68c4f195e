"""Figures 1, 2 and 6: the engine's cost per task, per transition and in memory.

These need only the core (`lifecycle.engine`, `lifecycle.collection`, `lifecycle.journal`).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

from transitions import Machine

from lifecycle.collection import Tasks
from lifecycle.engine import Lifecycle, machine_config
from lifecycle.journal import Journal
from lifecycle.spec import TASK, CollectionState, MachineSpec, TaskState
from lifecycle.task import Task
from tests.benchmarks.harness import Config, Row, Sample, interleave, medians

__all__ = ["figure_1_lifecycle", "figure_2_fire", "figure_6_memory"]

#: The phases of figure 1, and the `TASK` trigger each one fires on every task.
PHASES = ("register", "create", "init", "start", "stop", "join")
PHASE_TRIGGER = {
    "create": "create",
    "init": "init",
    "start": "start",
    "stop": "stop",
    "join": "finish",
}
#: One task's way from registered to stopped, as fired by figure 2.
HAPPY_PATH = ("create", "init", "start", "stop", "finish")

_class_cache: list[type[Task]] = []


def looples_task_classes(count: int) -> list[type[Task]]:
    """``count`` distinct LOOPLESS task classes (names must be unique in a collection).

    Built with ``type()`` once per process and reused by every run and every figure: class
    creation is not part of what is measured (its cost is reported separately by figure 1).
    """
    while len(_class_cache) < count:
        index = len(_class_cache)
        _class_cache.append(
            type(f"Bench{index}", (Task,), {"LOOPLESS": True, "__module__": __name__})
        )
    return _class_cache[:count]


def plain_machine(spec: MachineSpec) -> Any:
    """A plain `transitions.Machine` for ``spec``, configured as the engine's own."""
    return Machine(**machine_config(spec))


class _Model:
    """A model for the plain `transitions` baseline; the machine adds its state and triggers."""


class _Floor:
    """The floor of figure 1: the four hooks, called in order, no state kept."""

    def init_task(self) -> None:
        pass

    def start(self) -> None:
        pass

    def on_stop(self) -> None:
        pass

    def join(self) -> None:
        pass


def _clock_phases(
    steps: Sequence[tuple[str, Callable[[], object]]], count: int
) -> dict[str, float]:
    """Run ``steps`` back to back; µs per item for each, and ``total``."""
    clock = time.perf_counter_ns
    result: dict[str, float] = {}
    gc.collect()
    before = clock()
    for phase, step in steps:
        step()
        now = clock()
        result[phase] = (now - before) / count / 1000.0
        before = now
    result["total"] = sum(result[p] for p, _ in steps)
    return result


# -- figure 1 --------------------------------------------------------------------------------


def _ours_lifecycle(classes: list[type[Task]]) -> dict[str, float]:
    box: dict[str, Tasks] = {}

    def register() -> None:
        box["tasks"] = Tasks(classes)

    def join() -> None:
        left = box["tasks"].join(timeout=60.0)
        if left:
            raise RuntimeError(f"{len(left)} LOOPLESS tasks still running after join")

    result = _clock_phases(
        [
            ("register", register),
            ("create", lambda: box["tasks"].create()),
            ("init", lambda: box["tasks"].init()),
            ("start", lambda: box["tasks"].start()),
            ("stop", lambda: box["tasks"].stop()),
            ("join", join),
        ],
        len(classes),
    )
    tasks = box["tasks"]
    if tasks.state != CollectionState.STOPPED or len(tasks.journal) < 5 * len(classes):
        raise RuntimeError(f"benchmark run ended {tasks.state} with {len(tasks.journal)} records")
    return result


def _transitions_lifecycle(count: int) -> dict[str, float]:
    machine = plain_machine(TASK)
    models: list[_Model] = []

    def register() -> None:
        # add_model checks list membership: quadratic in the number of models.
        for _ in range(count):
            model = _Model()
            machine.add_model(model)
            models.append(model)

    def phase(trigger: str) -> Callable[[], None]:
        def fire_all() -> None:
            for model in models:
                getattr(model, trigger)()

        return fire_all

    steps: list[tuple[str, Callable[[], object]]] = [("register", register)]
    steps += [(p, phase(PHASE_TRIGGER[p])) for p in PHASES[1:]]
    result = _clock_phases(steps, count)
    if any(m.state != TaskState.STOPPED for m in models):  # type: ignore[attr-defined]
        raise RuntimeError("the transitions baseline did not reach stopped")
    return result


def _floor_lifecycle(names: list[str]) -> dict[str, float]:
    registry: dict[str, type[_Floor]] = {}
    objects: list[_Floor] = []

    def register() -> None:
        for name in names:
            registry[name] = _Floor

    def create() -> None:
        objects.extend(registry[name]() for name in names)

    def hook(method: str) -> Callable[[], None]:
        def call_all() -> None:
            for obj in objects:
                getattr(obj, method)()

        return call_all

    return _clock_phases(
        [
            ("register", register),
            ("create", create),
            ("init", hook("init_task")),
            ("start", hook("start")),
            ("stop", hook("on_stop")),
            ("join", hook("join")),
        ],
        len(names),
    )


def figure_1_lifecycle(config: Config) -> list[Row]:
    """Full lifecycle of N LOOPLESS tasks against plain transitions and against the floor."""
    sizes: list[tuple[int, int]] = config.pick(
        [(1_000, 3), (10_000, 3)], [(1_000, 7), (10_000, 5), (100_000, 3)]
    )
    largest = max(n for n, _ in sizes)
    start = time.perf_counter_ns()
    looples_task_classes(largest)
    class_us = (time.perf_counter_ns() - start) / largest / 1000.0
    # The classes are set-up, not what is measured: keep the collector from scanning them on
    # every full collection (with 100,000 classes alive that would tax the small sizes most).
    gc.collect()
    gc.freeze()
    try:
        return _figure_1_rows(sizes, class_us)
    finally:
        gc.unfreeze()


def _figure_1_rows(sizes: list[tuple[int, int]], class_us: float) -> list[Row]:
    rows: list[Row] = []
    totals: dict[int, Sample] = {}
    for count, repeats in sizes:
        classes = looples_task_classes(count)
        names = [c.__name__ for c in classes]
        contenders: dict[str, Callable[[], dict[str, float]]] = {
            "ours": lambda classes=classes: _ours_lifecycle(classes),  # type: ignore[misc]
            "floor": lambda names=names: _floor_lifecycle(names),  # type: ignore[misc]
        }
        if count <= 10_000:  # add_model is quadratic: 100,000 would take minutes
            contenders["transitions"] = lambda count=count: _transitions_lifecycle(count)  # type: ignore[misc]
        samples = interleave(repeats, contenders)
        ours = samples["ours"]
        totals[count] = ours["total"]
        detail = {
            "n": count,
            "repeats": repeats,
            "unit": "us per task",
            "phases": {name: medians(s) for name, s in samples.items()},
            "samples": {
                name: {k: v.to_dict() for k, v in s.items()} for name, s in samples.items()
            },
            "class_creation_us_per_task": class_us,
        }
        if "transitions" in samples:
            base = samples["transitions"]["total"]
            rows.append(
                Row(
                    figure="1a",
                    name=f"lifecycle of {count:,} LOOPLESS tasks vs plain transitions",
                    ours=ours["total"].median,
                    baseline=base.median,
                    unit="us/task",
                    target="< 1.0x",
                    met=ours["total"].median < base.median,
                    spread=(ours["total"].spread, base.spread),
                    detail=detail,
                )
            )
        floor = samples["floor"]["total"]
        ratio = ours["total"].median / floor.median
        rows.append(
            Row(
                figure="1b",
                name=f"lifecycle of {count:,} LOOPLESS tasks vs the floor",
                ours=ours["total"].median,
                baseline=floor.median,
                unit="us/task",
                target="<= 25x",
                met=ratio <= 25.0,
                spread=(ours["total"].spread, floor.spread),
                note=f"type() for the classes: {class_us:.1f} us/task, not timed",
                detail=detail,
            )
        )
    small, large = sorted(totals)[-2:]
    rows.append(
        Row(
            figure="1c",
            name=f"per-task cost at {large:,} over that at {small:,} (linearity)",
            ours=totals[large].median,
            baseline=totals[small].median,
            unit="us/task",
            target="<= 1.25x",
            met=totals[large].median <= 1.25 * totals[small].median,
            spread=(totals[large].spread, totals[small].spread),
            note=""
            if large == 100_000
            else "quick mode: the full run compares 100,000 with 10,000",
        )
    )
    return rows


# -- figure 2 --------------------------------------------------------------------------------


def _ours_fire(count: int) -> dict[str, float]:
    journal = Journal()
    fires = [Lifecycle(TASK, f"t{i}", journal).fire for i in range(count)]
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    for trigger in HAPPY_PATH:
        for fire in fires:
            fire(trigger)
    elapsed = clock() - start
    if len(journal) != count * len(HAPPY_PATH):
        raise RuntimeError("strict fire did not journal every transition")
    return {"us": elapsed / count / len(HAPPY_PATH) / 1000.0}


def _transitions_fire(count: int) -> dict[str, float]:
    machine = plain_machine(TASK)
    models = [_Model() for _ in range(count)]
    for model in models:
        machine.add_model(model)
    calls = [[getattr(m, trigger) for m in models] for trigger in HAPPY_PATH]
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    for bound in calls:
        for call in bound:
            call()
    elapsed = clock() - start
    if any(m.state != TaskState.STOPPED for m in models):  # type: ignore[attr-defined]
        raise RuntimeError("the transitions baseline did not reach stopped")
    return {"us": elapsed / count / len(HAPPY_PATH) / 1000.0}


class _Subject:
    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def _floor_fire(count: int) -> dict[str, float]:
    table = dict(TASK.table)
    subjects = [_Subject(TASK.initial) for _ in range(count)]
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    for trigger in HAPPY_PATH:
        for subject in subjects:
            subject.state = table[(subject.state, trigger)]
    elapsed = clock() - start
    if any(s.state != TaskState.STOPPED for s in subjects):
        raise RuntimeError("the floor did not reach stopped")
    return {"us": elapsed / count / len(HAPPY_PATH) / 1000.0}


def figure_2_fire(config: Config) -> list[Row]:
    """One strict `Lifecycle.fire` against the unlocked transitions trigger and the floor."""
    count: int = config.pick(2_000, 5_000)
    repeats: int = config.pick(5, 15)
    samples = interleave(
        repeats,
        {
            "ours": lambda: _ours_fire(count),
            "transitions": lambda: _transitions_fire(count),
            "floor": lambda: _floor_fire(count),
        },
    )
    ours, base, floor = (samples[k]["us"] for k in ("ours", "transitions", "floor"))
    detail = {
        "subjects": count,
        "fires_per_run": count * len(HAPPY_PATH),
        "samples": {k: v["us"].to_dict() for k, v in samples.items()},
    }
    return [
        Row(
            figure="2a",
            name="one strict fire (lock, check, journal) vs transitions trigger",
            ours=ours.median,
            baseline=base.median,
            unit="us/fire",
            # The bound is absolute: one strict fire, journal included, in 0.6 us.
            target="<= 0.6 us",
            met=ours.median <= 0.6,
            spread=(ours.spread, base.spread),
            detail=detail,
        ),
        Row(
            figure="2b",
            name="one strict fire vs dict lookup + setattr (the floor)",
            ours=ours.median,
            baseline=floor.median,
            unit="us/fire",
            target="(reference)",
            met=None,
            spread=(ours.spread, floor.spread),
            detail=detail,
        ),
    ]


# -- figure 6 --------------------------------------------------------------------------------


def _traced_bytes(build: Callable[[], object]) -> tuple[int, Any, list[tuple[str, int]]]:
    """Bytes still allocated after ``build()`` (kept alive), what was built, the top files."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    top = [
        ("/".join(stat.traceback[0].filename.split("/")[-2:]), stat.size)
        for stat in snapshot.statistics("filename")[:6]
    ]
    return after - before, built, top


#: The files that allocated most in the last measured run of `_ours_memory`.
_largest_allocators: list[tuple[str, int]] = []


def _ours_memory(classes: list[type[Task]]) -> dict[str, float]:
    def build() -> Tasks:
        tasks = Tasks(classes)
        tasks.create()
        tasks.init()
        tasks.start()
        return tasks

    size, tasks, top = _traced_bytes(build)
    running = tasks.by_state().get(TaskState.RUNNING, [])
    if len(running) != len(classes):
        raise RuntimeError(f"only {len(running)} of {len(classes)} tasks are running")
    records = len(tasks.journal)
    tasks.stop()
    tasks.join(timeout=60.0)
    _largest_allocators[:] = top
    return {"bytes": size / len(classes), "records_per_task": records / len(classes)}


class _Bare:
    def __init__(self) -> None:
        self.state = "running"


def _bare_memory(count: int) -> dict[str, float]:
    size, _, _ = _traced_bytes(lambda: [_Bare() for _ in range(count)])
    return {"bytes": size / count}


def figure_6_memory(config: Config) -> list[Row]:
    """Memory per LOOPLESS task, running, its journal records included (tracemalloc)."""
    count: int = config.pick(2_000, 10_000)
    repeats: int = config.pick(2, 3)
    classes = looples_task_classes(count)
    samples = interleave(
        repeats, {"ours": lambda: _ours_memory(classes), "bare": lambda: _bare_memory(count)}
    )
    ours, bare = samples["ours"]["bytes"], samples["bare"]["bytes"]
    return [
        Row(
            figure="6",
            name="memory per running LOOPLESS task, journal included",
            ours=ours.median,
            baseline=bare.median,
            unit="bytes/task",
            target="<= 800 B",
            met=ours.median <= 800,
            spread=(ours.spread, bare.spread),
            note=f"{samples['ours']['records_per_task'].median:.0f} journal records per task",
            detail={
                "tasks": count,
                "samples": {k: v["bytes"].to_dict() for k, v in samples.items()},
                "largest_allocators": list(_largest_allocators),
            },
        )
    ]
