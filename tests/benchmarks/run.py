"""The benchmark script: every figure side by side with its baseline, from one process.

Run from the repository root::

    python -m tests.benchmarks.run            # the full run (several minutes)
    python -m tests.benchmarks.run --quick    # small sizes, few repeats: under a minute
    python -m tests.benchmarks.run --only 1,2 --json out.json

It prints a table (figure, our value, baseline value, ratio, target, met?) and writes every
measurement, with its repeats, to a JSON file. Figures are medians over repeated runs, ours and
the baseline interleaved. A missed target is reported, never an error: the exit status is
non-zero only when a figure crashed. A figure whose module cannot be imported yet is reported
as "not available". This file is not a test module; pytest does not collect it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from tests.benchmarks.aio_figures import figure_9_aio
from tests.benchmarks.audit_figures import figure_7_audit
from tests.benchmarks.core_figures import figure_1_lifecycle, figure_2_fire, figure_6_memory
from tests.benchmarks.harness import Config, Row
from tests.benchmarks.journal_figures import figure_10_journal
from tests.benchmarks.machine_figures import figure_8_machines
from tests.benchmarks.runtime_figures import (
    figure_3_shutdown,
    figure_4_queue,
    figure_5_periodic,
)

Figure = Callable[[Config], list[Row]]

#: Every figure, by number; each returns its table rows.
FIGURES: list[tuple[str, str, Figure]] = [
    ("1", "lifecycle cost and scale (LOOPLESS tasks)", figure_1_lifecycle),
    ("2", "one strict fire", figure_2_fire),
    ("3", "shutdown latency", figure_3_shutdown),
    ("4", "QueueTask throughput", figure_4_queue),
    ("5", "PeriodicTask accuracy", figure_5_periodic),
    ("6", "memory per task", figure_6_memory),
    ("7", "journal audit at scale, sealed and unsealed", figure_7_audit),
    ("8", "your own machine bound to your class", figure_8_machines),
    ("9", "the asyncio runtime: lifecycle, shutdown, aiomisc", figure_9_aio),
    ("10", "a journal record: memory and streamed throughput", figure_10_journal),
]

DEFAULT_JSON = os.path.join("tests", "benchmarks", "results.json")


def run_figure(number: str, title: str, figure: Figure, config: Config) -> tuple[list[Row], bool]:
    """The rows of one figure, and whether it crashed (a missing module is not a crash)."""
    try:
        return figure(config), False
    except ImportError as exc:
        return [Row(number, title, None, None, "", "", None, note=f"not available: {exc}")], False
    except Exception as exc:
        trace = traceback.format_exc()
        print(trace, file=sys.stderr)
        row = Row(
            number,
            title,
            None,
            None,
            "",
            "",
            None,
            note=f"CRASHED: {exc!r}",
            detail={"traceback": trace},
        )
        return [row], True


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (the README shows one)."""
    head = ["#", "figure", "ours", "baseline", "unit", "ratio", "target", "met?", "noise", "note"]
    lines = [head]
    for row in rows:
        met = {True: "yes", False: "NO", None: "-"}[row.met]
        noise = "-" if row.spread is None else f"±{row.spread[0]:.0%} / ±{row.spread[1]:.0%}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            [
                row.figure,
                row.name,
                _num(row.ours),
                _num(row.baseline),
                row.unit,
                ratio,
                row.target,
                met,
                noise,
                row.note,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for index, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def format_phases(rows: Sequence[Row]) -> str:
    """Figure 1's per-phase costs (µs per task, medians) for each N and contender."""
    from tests.benchmarks.core_figures import PHASES

    seen: set[int] = set()
    lines = [
        "figure 1, us per task per phase (medians):",
        f"{'N':>8} {'who':<12}" + "".join(f"{p:>10}" for p in (*PHASES, "total")),
    ]
    for row in rows:
        detail = row.detail
        if row.figure != "1b" or "phases" not in detail or detail["n"] in seen:
            continue
        seen.add(detail["n"])
        for who, phases in detail["phases"].items():
            cells = "".join(f"{phases[p]:>10.2f}" for p in (*PHASES, "total"))
            lines.append(f"{detail['n']:>8,} {who:<12}{cells}")
    return "\n".join(lines) if len(lines) > 2 else ""


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": load,
        "optimized": not __debug__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few repeats (a smoke run, under a minute)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=DEFAULT_JSON,
        help=f"where to write the results (default: {DEFAULT_JSON})",
    )
    parser.add_argument(
        "--only",
        metavar="LIST",
        default="",
        help="comma-separated figure numbers to run (default: all)",
    )
    args = parser.parse_args(argv)

    known = [number for number, _, _ in FIGURES]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in known]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(known)}")

    config = Config(quick=args.quick)
    started = time.perf_counter()
    info = machine_info()
    rows: list[Row] = []
    timings: dict[str, float] = {}
    crashed = False
    for number, title, figure in FIGURES:
        if only and number not in only:
            continue
        print(f"figure {number}: {title} ...", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        figure_rows, figure_crashed = run_figure(number, title, figure, config)
        timings[number] = time.perf_counter() - begin
        rows.extend(figure_rows)
        crashed = crashed or figure_crashed
    elapsed = time.perf_counter() - started
    info["loadavg_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None

    print(format_table(rows))
    phases = format_phases(rows)
    if phases:
        print()
        print(phases)
    print()
    print(
        f"mode: {'quick' if args.quick else 'full'}; {elapsed:.1f} s; python {info['python']}"
        f" on {info['cpus']} cpus; load {info['loadavg']} -> {info['loadavg_after']};"
        " noise = (max - min) / median of the repeats, ours / baseline"
    )

    document = {
        "command": " ".join(["python -m tests.benchmarks.run", *(argv or sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "seconds": elapsed,
        "figure_seconds": timings,
        "machine": info,
        "rows": [row.to_dict() for row in rows],
    }
    directory = os.path.dirname(args.json)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2, default=str)
        out.write("\n")
    print(f"results written to {args.json}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
