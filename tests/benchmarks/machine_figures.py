"""Figure 8: a user's own machine bound to a user's class (`lifecycle.bind`).

Every contender drives the same door machine (closed, open, locked) on objects of the same
shape: one fire is ``open`` or ``close`` on an object that has already fired once, so that
what is timed is the steady-state trigger, not an object's first one (which makes its lock:
that cost is in 8d, binding).

* 8a: one strict fire on a bound object without a journal vs the floor: a dict lookup plus
  ``setattr`` on the same objects, no lock, no check beyond the lookup.
* 8b: the same fire with an in-memory `Journal`, against an absolute target.
* 8c: `transitions`' own trigger on one model (``Machine(model=obj)``), for reference.
* 8d: binding N objects (making an instance and firing its first trigger), per object, at
  100,000 over 10,000 (linearity).
* 8e: memory per bound object (after its first trigger, no journal) vs `transitions` with one
  shared machine (``Machine(model=None)`` then ``add_model`` for each object: what transitions
  documents for many models; it gives each model its trigger and ``is_<state>`` methods).
"""

from __future__ import annotations

import enum
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from transitions import Machine

from lifecycle.bind import bind, lock_of
from lifecycle.engine import machine_config
from lifecycle.journal import Journal
from lifecycle.spec import Edge, MachineSpec
from tests.benchmarks.harness import Config, Row, interleave

__all__ = ["DOOR", "figure_8_machines"]


class DoorState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    LOCKED = "locked"


DOOR = MachineSpec(
    name="door",
    states=DoorState,
    initial=DoorState.CLOSED,
    terminal=(),
    transitions=(
        Edge("open", (DoorState.CLOSED,), DoorState.OPEN),
        Edge("close", (DoorState.OPEN,), DoorState.CLOSED),
        Edge("lock", (DoorState.CLOSED,), DoorState.LOCKED),
        Edge("unlock", (DoorState.LOCKED,), DoorState.CLOSED),
    ),
)
#: The triggers each object fires in a timed run (it starts and ends closed).
CYCLE = ("open", "close", "open", "close")


@bind(DOOR)
class Door:
    """A user's class, bound, without a journal."""


_JOURNAL = Journal()


@bind(DOOR, journal=_JOURNAL)
class JournaledDoor:
    """The same, journaled in memory."""


class _Plain:
    """The floor's object: a state attribute, nothing else."""

    def __init__(self) -> None:
        self.state = DoorState.CLOSED


def _fires_us(objects: list[Any], count: int) -> float:
    calls = [[getattr(o, trigger) for o in objects] for trigger in CYCLE]
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    for bound in calls:
        for call in bound:
            call()
    return (clock() - start) / count / len(CYCLE) / 1000.0


def _bound_fire(cls: type, count: int) -> dict[str, float]:
    objects = [cls() for _ in range(count)]
    for obj in objects:
        lock_of(obj)  # the first trigger's set-up, not timed here
    us = _fires_us(objects, count)
    if any(o.state is not DoorState.CLOSED for o in objects):
        raise RuntimeError("a bound door did not end closed")
    return {"us": us}


def _journaled_fire(count: int) -> dict[str, float]:
    before = len(_JOURNAL)
    result = _bound_fire(JournaledDoor, count)
    if len(_JOURNAL) - before != count * len(CYCLE):
        raise RuntimeError("the journal did not record every fire")
    return result


def _floor_fire(count: int) -> dict[str, float]:
    table = dict(DOOR.table)
    objects = [_Plain() for _ in range(count)]
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    for trigger in CYCLE:
        for obj in objects:
            obj.state = table[(obj.state, trigger)]
    elapsed = clock() - start
    if any(o.state != DoorState.CLOSED for o in objects):
        raise RuntimeError("the floor did not end closed")
    return {"us": elapsed / count / len(CYCLE) / 1000.0}


class _Model:
    """A model for transitions; the machine adds its state and trigger methods."""


def _transitions_one_model(count: int) -> dict[str, float]:
    model = _Model()
    Machine(**{**machine_config(DOOR), "model": model})
    steps = [getattr(model, trigger) for trigger in CYCLE] * count
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    for step in steps:
        step()
    elapsed = clock() - start
    if model.state != DoorState.CLOSED:  # type: ignore[attr-defined]
        raise RuntimeError("the transitions model did not end closed")
    return {"us": elapsed / len(steps) / 1000.0}


def _binding_us(count: int) -> dict[str, float]:
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    objects = [Door() for _ in range(count)]
    for obj in objects:
        obj.open()  # type: ignore[attr-defined]
    elapsed = clock() - start
    return {"us": elapsed / count / 1000.0}


def _plain_us(count: int) -> dict[str, float]:
    """The same for plain objects (made, one attribute set): the interpreter's own scaling."""
    gc.collect()
    clock = time.perf_counter_ns
    start = clock()
    objects = [_Plain() for _ in range(count)]
    for obj in objects:
        obj.state = DoorState.OPEN
    elapsed = clock() - start
    return {"us": elapsed / count / 1000.0}


def _traced_bytes(build: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del built
    return after - before


def _bound_memory(count: int) -> dict[str, float]:
    def build() -> list[Any]:
        objects = [Door() for _ in range(count)]
        for obj in objects:
            obj.open()  # type: ignore[attr-defined]
        return objects

    return {"bytes": _traced_bytes(build) / count}


def _transitions_memory(count: int) -> dict[str, float]:
    machine = Machine(**machine_config(DOOR))  # one shared machine, built before measuring

    def build() -> list[Any]:
        objects = [_Model() for _ in range(count)]
        for obj in objects:
            machine.add_model(obj)
            obj.open()  # type: ignore[attr-defined]
        return objects

    size = _traced_bytes(build)
    machine.remove_model(machine.models)
    return {"bytes": size / count}


def figure_8_machines(config: Config) -> list[Row]:
    """A user's machine on a user's class: fire cost, binding scale, memory per object."""
    count: int = config.pick(2_000, 10_000)
    repeats: int = config.pick(3, 11)
    fires = interleave(
        repeats,
        {
            "bound": lambda: _bound_fire(Door, count),
            "journaled": lambda: _journaled_fire(count),
            "floor": lambda: _floor_fire(count),
            "transitions": lambda: _transitions_one_model(count),
        },
    )
    bound, journaled, floor, trans = (
        fires[k]["us"] for k in ("bound", "journaled", "floor", "transitions")
    )
    detail = {"objects": count, "samples": {k: v["us"].to_dict() for k, v in fires.items()}}
    rows = [
        Row(
            figure="8a",
            name="one fire on a bound object, no journal, vs the floor",
            ours=bound.median,
            baseline=floor.median,
            unit="us/fire",
            target="<= 5x",
            met=bound.median <= 5 * floor.median,
            spread=(bound.spread, floor.spread),
            detail=detail,
        ),
        Row(
            figure="8b",
            name="one fire on a bound object, in-memory journal, vs transitions",
            ours=journaled.median,
            baseline=trans.median,
            unit="us/fire",
            target="<= 1.0 us",
            met=journaled.median <= 1.0,
            spread=(journaled.spread, trans.spread),
            detail=detail,
        ),
        Row(
            figure="8c",
            name="one fire on a bound object, no journal, vs transitions (one model)",
            ours=bound.median,
            baseline=trans.median,
            unit="us/fire",
            target="(reference)",
            met=None,
            spread=(bound.spread, trans.spread),
            detail=detail,
        ),
    ]

    small, large = config.pick((2_000, 20_000), (10_000, 100_000))
    scale_repeats: int = config.pick(3, 5)
    binding = interleave(
        scale_repeats,
        {
            "small": lambda: _binding_us(small),
            "large": lambda: _binding_us(large),
            "plain small": lambda: _plain_us(small),
            "plain large": lambda: _plain_us(large),
        },
    )
    at_small, at_large = binding["small"]["us"], binding["large"]["us"]
    plain_ratio = binding["plain large"]["us"].median / binding["plain small"]["us"].median
    rows.append(
        Row(
            figure="8d",
            name=f"binding {large:,} objects over {small:,} (per object, linearity)",
            ours=at_large.median,
            baseline=at_small.median,
            unit="us/object",
            target="<= 1.25x",
            met=at_large.median <= 1.25 * at_small.median,
            spread=(at_large.spread, at_small.spread),
            note=(
                "binding = making an instance and firing its first trigger; plain objects "
                f"(made, one attribute set) scale {plain_ratio:.2f}x on the same run"
            ),
            detail={"samples": {k: v["us"].to_dict() for k, v in binding.items()}},
        )
    )

    memory_count: int = config.pick(2_000, 10_000)
    memory = interleave(
        config.pick(2, 3),
        {
            "bound": lambda: _bound_memory(memory_count),
            "transitions": lambda: _transitions_memory(memory_count),
        },
    )
    ours_bytes, trans_bytes = memory["bound"]["bytes"], memory["transitions"]["bytes"]
    rows.append(
        Row(
            figure="8e",
            name="memory per bound object vs transitions, one shared machine (add_model)",
            ours=ours_bytes.median,
            baseline=trans_bytes.median,
            unit="bytes/object",
            target="< 1.0x",
            met=ours_bytes.median < trans_bytes.median,
            spread=(ours_bytes.spread, trans_bytes.spread),
            note=f"{memory_count:,} objects, each after its first trigger",
            detail={"samples": {k: v["bytes"].to_dict() for k, v in memory.items()}},
        )
    )
    return rows
