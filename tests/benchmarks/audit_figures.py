"""Figure 7: auditing journals at scale, sealed and unsealed, and what sealing costs a writer.

The journals are written by the real writer (`lifecycle.journal.Journal`) into a temporary
directory and removed afterwards: a run of ``tasks`` tasks through their whole lifecycle, the
middle filled with refused triggers (each one judged by the audit like any record). Never
committed: the full run writes two journals of 1,000,000 records (about 300 MB each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lifecycle.audit import audit
from lifecycle.journal import Journal
from lifecycle.seal import keygen, load_verify_key
from tests.benchmarks.harness import Config, Row, Sample, interleave

__all__ = ["figure_7_audit", "write_journal"]

_TASK_CAUSE = "IllegalTransition: task {name!r} cannot 'init' from 'running'"


def write_journal(
    path: Path, records: int, *, tasks: int = 1_000, seal: Path | None = None, every: int = 256
) -> float:
    """Write a clean journal of exactly ``records`` records; returns the seconds spent
    recording (the writer's cost, streaming and sealing included)."""
    names = [f"Task{index}" for index in range(tasks)]
    lifecycle = 2 + 2 * 3 + tasks * 5  # service and collection edges, five per task
    if records < lifecycle:
        raise ValueError(f"a journal of {tasks} tasks needs at least {lifecycle} records")
    started = time.perf_counter()
    journal = Journal(path, seal=seal, seal_epoch=every)
    journal.describe_tasks({name: {"class": name, "deps": [], "wants": []} for name in names})
    record = journal.record
    record("service", "bench", "start", "new", "starting", True)
    for name in names:
        record("task", name, "create", "registered", "created", True)
    record("collection", "bench", "create", "registering", "created", True)
    for name in names:
        record("task", name, "init", "created", "initialized", True)
    record("collection", "bench", "init", "created", "initialized", True)
    for name in names:
        record("task", name, "start", "initialized", "running", True)
    record("collection", "bench", "start", "initialized", "running", True)
    record("service", "bench", "started", "starting", "running", True)
    causes = [_TASK_CAUSE.format(name=name) for name in names]
    for index in range(records - lifecycle):
        name = index % tasks
        record("task", names[name], "init", "running", None, False, causes[name])
    record("service", "bench", "stop", "running", "stopping", True)
    record("collection", "bench", "stop", "running", "stopping", True)
    for name in names:
        record("task", name, "stop", "running", "stopping", True)
        record("task", name, "finish", "stopping", "stopped", True)
    record("collection", "bench", "finish", "stopping", "stopped", True)
    record("service", "bench", "finish", "stopping", "stopped", True)
    journal.close()
    elapsed = time.perf_counter() - started
    if journal.stream_error is not None:
        raise journal.stream_error
    return elapsed


def _bare_json_loop(path: Path) -> int:
    """The baseline: every line parsed as JSON, nothing checked."""
    count = 0
    with open(path, "rb") as lines:
        for line in lines:
            json.loads(line)
            count += 1
    return count


_MEMORY_CHILD = """
import sys
from lifecycle.audit import audit
from lifecycle.seal import load_verify_key
what, path = sys.argv[1], sys.argv[2]
if what == "audit":
    key = load_verify_key(sys.argv[3]) if len(sys.argv) > 3 else None
    report = audit(path, verify_key=key)
    if not (report.clean and report.sealed == (key is not None)):
        raise SystemExit(f"the benchmark journal does not audit as expected: {report}")
elif what == "diagram":
    from lifecycle import diagrams
    diagrams.journal_dependency_diagram(path)
elif what == "baseline":
    import lifecycle.audit, lifecycle.diagrams
# VmHWM, the peak resident set of this program (ru_maxrss would count the parent's, inherited
# at fork); ru_maxrss only where there is no /proc.
try:
    with open("/proc/self/status") as status:
        print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
except OSError:
    import resource, sys
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(peak // 1024 if sys.platform == "darwin" else peak)  # bytes on macOS, else KiB
"""


def _peak_rss_mib(*argv: str) -> float:
    """The peak resident memory of a child process doing ``argv`` (see `_MEMORY_CHILD`)."""
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return int(done.stdout.split()[-1]) / 1024  # VmHWM is in kB


def figure_7_audit(config: Config) -> list[Row]:
    """Audit throughput (unsealed and sealed) against a bare JSON loop; peak memory of an
    audit and of ``diagram --journal`` on the big journal; the writer's cost of sealing."""
    records: int = config.pick(20_000, 1_000_000)
    repeats: int = config.pick(1, 3)
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-") as tmp:
        base = Path(tmp)
        seal, verify = base / "s.key", base / "v.key"
        keygen(seal, verify)
        plain, sealed = base / "plain.jsonl", base / "sealed.jsonl"
        write = {
            "unsealed": lambda: write_journal(plain, records),
            "sealed": lambda: write_journal(sealed, records, seal=seal),
        }
        writes: dict[str, Sample] = {name: Sample() for name in write}
        for _ in range(repeats):
            for name, run in write.items():
                writes[name].add(run() / records * 1e6)
        key = load_verify_key(verify)
        size = os.path.getsize(plain)

        def rate(run: Callable[[], object]) -> Callable[[], dict[str, float]]:
            def measure() -> dict[str, float]:
                started = time.perf_counter()
                run()
                return {"rate": records / (time.perf_counter() - started)}

            return measure

        def audit_plain() -> None:
            if not audit(plain).clean:
                raise RuntimeError("the benchmark journal does not audit clean")

        def audit_sealed() -> None:
            report = audit(sealed, verify_key=key)
            if not (report.clean and report.sealed):
                raise RuntimeError("the sealed benchmark journal does not verify")

        samples = interleave(
            repeats,
            {
                "unsealed": rate(audit_plain),
                "sealed": rate(audit_sealed),
                "json": rate(lambda: _bare_json_loop(plain)),
            },
        )
        memory = {
            "unsealed": _peak_rss_mib("audit", str(plain)),
            "sealed": _peak_rss_mib("audit", str(sealed), str(verify)),
            "diagram": _peak_rss_mib("diagram", str(plain)),
            "baseline": _peak_rss_mib("baseline", str(plain)),
        }
    bare = samples["json"]["rate"]
    rows = []
    for name, target in (("unsealed", 150_000), ("sealed", 100_000)):
        ours = samples[name]["rate"]
        rows.append(
            Row(
                figure="7",
                name=f"audit throughput, {name} ({records:,} records)",
                ours=ours.median,
                baseline=bare.median,
                unit="records/s",
                target=f">= {target:,}/s" if not config.quick else "(quick: not judged)",
                met=None if config.quick else ours.median >= target,
                spread=(ours.spread, bare.spread),
                note="baseline: for line in file: json.loads(line)",
                detail={
                    "bytes": size,
                    "samples": {k: v["rate"].to_dict() for k, v in samples.items()},
                },
            )
        )
    for name in ("unsealed", "sealed", "diagram"):
        what = "diagram --journal" if name == "diagram" else f"audit, {name}"
        rows.append(
            Row(
                figure="7",
                name=f"peak RSS, {what} ({records:,} records)",
                ours=memory[name],
                baseline=memory["baseline"],
                unit="MiB",
                target="<= 64 MiB",
                met=memory[name] <= 64,
                spread=(0.0, 0.0),
                note="baseline: the interpreter with lifecycle imported",
                detail={"bytes": size},
            )
        )
    rows.append(
        Row(
            figure="7",
            name="journal write per record, sealed",
            ours=writes["sealed"].median,
            baseline=writes["unsealed"].median,
            unit="us/record",
            target="(reported)",
            met=None,
            spread=(writes["sealed"].spread, writes["unsealed"].spread),
            note="baseline: the same records, unsealed; every 256 lines the key file is synced",
            detail={k: v.to_dict() for k, v in writes.items()},
        )
    )
    return rows
