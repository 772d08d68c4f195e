"""Measurement helpers shared by the benchmark figures.

Every figure measures its own code and its baseline in the same process, repeat by repeat
(ours, baseline, ours, baseline, ...; the order flips on every repeat), so that a noisy
neighbour on a shared machine slows both sides alike. Each timed run starts after a
``gc.collect()`` so that garbage from the previous run is not collected on this run's clock.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Config",
    "Row",
    "Sample",
    "interleave",
    "medians",
    "per_item_us",
    "percentile",
    "timed_ns",
]


@dataclass(frozen=True)
class Config:
    """How hard to measure: ``quick`` is the CI smoke mode (small sizes, few repeats)."""

    quick: bool

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in quick mode, ``full`` otherwise."""
        return quick if self.quick else full


@dataclass
class Sample:
    """Repeated measurements of one quantity; the figure reported is the median."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were (0.0 for one repeat)."""
        if len(self.values) < 2 or self.median == 0:
            return 0.0
        return (max(self.values) - min(self.values)) / abs(self.median)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "repeats": len(self.values),
            "spread": self.spread,
            "values": list(self.values),
        }


@dataclass
class Row:
    """One line of the results table.

    ``ours`` and ``baseline`` are medians in ``unit``; ``ratio`` is ours / baseline; ``met`` is
    whether the target holds (None when there is nothing to judge, e.g. a skipped figure).
    """

    figure: str
    name: str
    ours: float | None
    baseline: float | None
    unit: str
    target: str
    met: bool | None
    ratio: float | None = None
    spread: tuple[float, float] | None = None
    note: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ratio is None and self.ours is not None and self.baseline:
            self.ratio = self.ours / self.baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "name": self.name,
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "spread": None if self.spread is None else list(self.spread),
            "note": self.note,
            "detail": dict(self.detail),
        }


def timed_ns(run: Callable[[], object]) -> int:
    """Collect garbage, then the wall time of ``run()`` in nanoseconds."""
    gc.collect()
    start = time.perf_counter_ns()
    run()
    return time.perf_counter_ns() - start


def interleave(
    repeats: int,
    contenders: Mapping[str, Callable[[], Mapping[str, float]]],
) -> dict[str, dict[str, Sample]]:
    """Run each contender ``repeats`` times, alternating between them.

    A contender returns the quantities it measured in one run (``{"total": ..., ...}``); the
    result maps contender → quantity → `Sample`. The order of the contenders is reversed on
    every other repeat so that neither always runs first (warm caches, a neighbour's burst).
    """
    names = list(contenders)
    samples: dict[str, dict[str, Sample]] = {name: {} for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            for key, value in contenders[name]().items():
                samples[name].setdefault(key, Sample()).add(value)
    return samples


def per_item_us(total_ns: float, count: int) -> float:
    """Nanoseconds for ``count`` items → microseconds per item."""
    return total_ns / count / 1000.0


def medians(samples: Mapping[str, Sample]) -> dict[str, float]:
    return {key: sample.median for key, sample in samples.items()}


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) of ``values``, by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
