"""Re-check mutmut's survivors in a fresh interpreter, and print the mutation score per module.

mutmut runs the tests in forked copies of one interpreter and learns which tests reach which
function from that interpreter alone: code reached only from a child process (``lifecycle
run`` in a subprocess, the signal tests, the ``python -O`` runs) is reported as "no tests" or
"survived" even when a child-process test kills the mutant. This script runs the test suite
again, in a new interpreter per mutant, for every mutant mutmut did not kill; the mutant is
active there, and in every child process, through ``MUTANT_UNDER_TEST`` and a ``PYTHONPATH``
that puts the mutated copy (``mutants/``) first.

Usage, from the repository root, after ``mutmut run``::

    python tools/mutation_recheck.py                      # every module mutmut mutated
    python tools/mutation_recheck.py lifecycle/stopping.py --timeout 300
    python tools/mutation_recheck.py --no-recheck         # only mutmut's own verdicts
    python tools/mutation_recheck.py lifecycle/audit.py --child-process-tests

It prints, per module: the mutants, those killed (by mutmut, then on re-check), those that
survived, and two scores: of all mutants, and of those that change more than a string (a
message's wording is not behaviour a test must pin). ``--survivors`` lists the survivors'
names (``mutmut show NAME`` shows the diff of one). ``--equivalent FILE`` reads mutants
known to be equivalent (one name per line, then ``#`` and the reason) and leaves them out.

``--sample N`` (with ``--seed``) prints N of the modules' non-string mutants, drawn at random
and leaving out the equivalent ones, one name a line: ``mutmut run $(python
tools/mutation_recheck.py lifecycle/audit.py --sample 150)`` then checks only those, and the
score printed afterwards is the sample's (its mutants not drawn are "not checked").

``--child-process-tests`` re-checks with only the test files that start a child process (their
source names ``subprocess``, ``sys.executable``, ``os.fork`` or ``multiprocessing``): the tests
a fresh interpreter can add to mutmut's verdict, whose forked runs already gave every
in-process test that reaches the mutant its chance. Much faster than the whole suite per
survivor; a mutant that only an in-process test kills in a fresh interpreter (an order effect)
then counts as survived, so the score can only come out lower than with the whole suite, never
higher.

A developer command: slow (one test-suite run per survivor) and not part of CI.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"

#: mutmut's exit codes that mean the mutant was detected (see ``mutmut.stats``).
KILLED = frozenset({1, 3, 36, 37, -24, 24, 152, 255, -11, -9})
#: Those that mean no test (of mutmut's forked interpreter) detected it.
UNDETECTED = frozenset({0, 5, 33})


@dataclass
class Module:
    """The verdicts on one mutated module."""

    path: str
    killed: list[str] = field(default_factory=list)
    rechecked: list[str] = field(default_factory=list)  # killed in a fresh interpreter
    survived: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # mutmut never ran it
    strings_only: set[str] = field(default_factory=set)

    def score(self, *, strings: bool) -> float | None:
        def counted(names: Iterable[str]) -> int:
            return sum(1 for n in names if strings or n not in self.strings_only)

        detected = counted(self.killed) + counted(self.rechecked)
        total = detected + counted(self.survived)
        return None if total == 0 else 100.0 * detected / total


def read_meta(meta: Path) -> dict[str, int | None]:
    data = json.loads(meta.read_text())
    codes: dict[str, int | None] = data["exit_code_by_key"]
    return codes


def string_only_mutants(source: Path) -> set[str]:
    """The mutants in mutmut's copy of a module that differ from the original function only in
    a string constant (an error message, a log line)."""
    tree = ast.parse(source.read_text())
    functions: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name:
            functions[node.name] = node

    def shape(node: ast.AST) -> str:
        copy = ast.parse(ast.unparse(node))
        for sub in ast.walk(copy):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                sub.value = ""
            if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                sub.name = ""
        return ast.dump(copy)

    found: set[str] = set()
    for name, node in functions.items():
        stem, _, number = name.rpartition("__mutmut_")
        if not number.isdigit():
            continue
        original = functions.get(f"{stem}__mutmut_orig")
        if original is not None and shape(node) == shape(original):
            found.add(name)
    return found


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def pytest_args() -> list[str]:
    """The pytest options mutmut runs the tests with (``[tool.mutmut]`` in pyproject.toml)."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file).get("tool", {}).get("mutmut", {})
    args: list[str] = config.get("pytest_add_cli_args", [])
    return args


#: What marks a test file that starts a child process (`--child-process-tests`).
CHILD_PROCESS_MARKS = ("subprocess", "sys.executable", "os.fork", "multiprocessing")


def child_process_test_files(tests_dir: Path = ROOT / "tests") -> list[str]:
    """The test files (relative to the root) whose source starts a child process."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in tests_dir.rglob("test_*.py")
        if any(mark in path.read_text() for mark in CHILD_PROCESS_MARKS)
    )


def recheck(name: str, tests: Sequence[str], timeout: float) -> bool:
    """Whether the tests fail (kill ``name``) in a fresh interpreter with the mutant active."""
    env = {
        **os.environ,
        "MUTANT_UNDER_TEST": name,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(MUTANTS), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    command = [sys.executable, "-m", "pytest", "-x", "-q", *pytest_args(), *tests]
    try:
        result = subprocess.run(
            command, cwd=MUTANTS, env=env, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return True  # a hang is a detection: the suite has no test that hangs
    return result.returncode != 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module paths, e.g. lifecycle/engine.py")
    parser.add_argument("--tests", nargs="+", default=["tests"], help="what pytest runs")
    parser.add_argument(
        "--child-process-tests",
        action="store_true",
        help="re-check with only the test files that start a child process (a lower bound)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per re-check")
    parser.add_argument("--no-recheck", action="store_true", help="only mutmut's verdicts")
    parser.add_argument("--survivors", action="store_true", help="list the survivors")
    parser.add_argument("--equivalent", type=Path, help="a file of equivalent mutants")
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="print N of the modules' non-string mutants, drawn at random, for `mutmut run`",
    )
    parser.add_argument("--seed", type=int, default=15, help="the draw's seed (--sample)")
    args = parser.parse_args(argv)
    if not MUTANTS.is_dir():
        parser.error("no mutants/ directory: run `mutmut run` first")
    equivalent: set[str] = set()
    if args.equivalent is not None:
        for line in args.equivalent.read_text().splitlines():
            name = line.split("#", 1)[0].strip()
            if name:
                equivalent.add(name)
    wanted = {m.removeprefix("./") for m in args.modules}
    tests: list[str] = child_process_test_files() if args.child_process_tests else args.tests
    modules: list[Module] = []
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        path = meta.relative_to(MUTANTS).as_posix().removesuffix(".meta")
        if wanted and path not in wanted:
            continue
        module = Module(path)
        prefix = module_name(path)
        module.strings_only = {f"{prefix}.{n}" for n in string_only_mutants(MUTANTS / path)}
        for name, code in sorted(read_meta(meta).items()):
            if name in equivalent:
                continue
            if code in KILLED:
                module.killed.append(name)
            elif code is None:
                module.unchecked.append(name)
            elif args.no_recheck or args.sample is not None or code not in UNDETECTED:
                module.survived.append(name)
            elif recheck(name, tests, args.timeout):
                module.rechecked.append(name)
                print(f"killed in a fresh interpreter: {name}", file=sys.stderr)
            else:
                module.survived.append(name)
                print(f"survived: {name}", file=sys.stderr)
        modules.append(module)
    if args.sample is not None:
        candidates = sorted(
            name
            for m in modules
            for name in (*m.killed, *m.rechecked, *m.survived, *m.unchecked)
            if name not in m.strings_only
        )
        drawn = random.Random(args.seed).sample(candidates, min(args.sample, len(candidates)))
        print("\n".join(sorted(drawn)))
        return 0
    print(
        f"{'module':32} {'mutants':>7} {'killed':>6} {'rechk':>5} {'alive':>5} {'score':>6} "
        f"{'non-str':>7}"
    )
    for m in modules:
        total = len(m.killed) + len(m.rechecked) + len(m.survived) + len(m.unchecked)
        scores = [m.score(strings=True), m.score(strings=False)]
        shown = ["   n/a" if s is None else f"{s:5.1f}%" for s in scores]
        print(
            f"{m.path:32} {total:7} {len(m.killed):6} {len(m.rechecked):5} "
            f"{len(m.survived):5} {shown[0]:>6} {shown[1]:>7}"
        )
        if m.unchecked:
            print(f"  {len(m.unchecked)} mutant(s) not checked by mutmut yet")
        if args.survivors:
            for name in m.survived:
                tag = " (string only)" if name in m.strings_only else ""
                print(f"  survived: {name}{tag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
