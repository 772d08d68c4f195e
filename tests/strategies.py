"""Hypothesis strategies and table oracles shared by the tests.

The oracles judge runs against `lifecycle.spec` alone (``spec.table`` / ``spec.edges()``), never
against a copy of a table. They return lists of problems instead of asserting, so that they
check the same under ``python -O`` as without it (only test modules get pytest's assert
rewriting).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from hypothesis import strategies as st

from lifecycle.journal import Transition
from lifecycle.spec import SPECS, MachineSpec

Graph = dict[str, list[str]]


# -- tables --------------------------------------------------------------------------------


def paths_to_states(spec: MachineSpec) -> dict[str, list[str]]:
    """For every state, a shortest trigger sequence leading to it from ``spec.initial``."""
    paths: dict[str, list[str]] = {spec.initial: []}
    queue = deque([spec.initial])
    while queue:
        state = queue.popleft()
        for source, trigger, dest in spec.edges():
            if source == state and dest not in paths:
                paths[dest] = [*paths[state], trigger]
                queue.append(dest)
    return paths


def edge_set(spec: MachineSpec) -> dict[tuple[str, str], str]:
    """``(state, trigger) -> dest`` rebuilt from ``spec.edges()``."""
    return {(source, trigger): dest for source, trigger, dest in spec.edges()}


# -- journal oracles -----------------------------------------------------------------------


def replay(records: Iterable[Transition]) -> tuple[dict[tuple[str, str], str], list[str]]:
    """Apply the ok records through ``spec.next`` from ``spec.initial``, per (kind, subject).

    Returns the resulting state of every subject seen and the problems found: an ok record
    that is illegal from the replayed state, or whose source is not the previous ok record's
    dest (continuity), or whose dest is not the table's; a refused record whose trigger the
    replayed state accepts, or that names a wrong source, or that has a dest.
    """
    states: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for rec in records:
        spec = SPECS.get(rec.kind)
        if spec is None:
            problems.append(f"#{rec.seq}: unknown kind {rec.kind!r}")
            continue
        key = (rec.kind, rec.subject)
        current = states.setdefault(key, spec.initial)
        if rec.source != current:
            problems.append(
                f"#{rec.seq} {rec.subject} {rec.trigger}: source {rec.source!r}, "
                f"but the previous ok record left it {current!r}"
            )
        legal = (current, rec.trigger) in spec.table
        if rec.ok:
            if not legal:
                problems.append(f"#{rec.seq} {rec.subject}: ok {rec.trigger!r} from {current!r}")
                continue
            expected = spec.next(current, rec.trigger)
            if rec.dest != expected:
                problems.append(
                    f"#{rec.seq} {rec.subject}: {rec.trigger!r} from {current!r} went to "
                    f"{rec.dest!r}, the table says {expected!r}"
                )
            states[key] = expected
        else:
            if legal:
                problems.append(
                    f"#{rec.seq} {rec.subject}: refused {rec.trigger!r}, which {current!r} accepts"
                )
            if rec.dest is not None:
                problems.append(f"#{rec.seq} {rec.subject}: refused record has dest {rec.dest!r}")
    return states, problems


def sequence_problems(records: Sequence[Transition]) -> list[str]:
    """Problems with the numbering: seq must be 1, 2, 3, ... in record order."""
    return [
        f"record {index} has seq {rec.seq}"
        for index, rec in enumerate(records, start=1)
        if rec.seq != index
    ]


def ok_records(records: Iterable[Transition], kind: str | None = None) -> list[Transition]:
    return [r for r in records if r.ok and (kind is None or r.kind == kind)]


# -- graphs --------------------------------------------------------------------------------


def node_names(count: int) -> list[str]:
    return [f"n{i}" for i in range(count)]


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 12) -> tuple[list[str], Graph]:
    """A random DAG: ``(nodes in input order, node -> its dependencies)``.

    Dependencies only point to nodes earlier in a hidden random order, so there is no cycle;
    the input order is an independent shuffle, so ties and edges disagree with it freely.
    """
    count = draw(st.integers(min_value=0, max_value=max_nodes))
    hidden = node_names(count)
    edges: Graph = {}
    for index, node in enumerate(hidden):
        earlier = hidden[:index]
        edges[node] = (
            draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []
        )
    nodes = draw(st.permutations(hidden))
    return list(nodes), edges


@st.composite
def graphs_with_cycle(draw: st.DrawFn, max_nodes: int = 10) -> tuple[list[str], Graph]:
    """A random DAG with a cycle injected: a path of 1+ nodes plus an edge closing it."""
    nodes, edges = draw(dags(max_nodes=max_nodes).filter(lambda g: len(g[0]) >= 1))
    length = draw(st.integers(min_value=1, max_value=min(4, len(nodes))))
    ring = draw(st.permutations(nodes))[:length]
    for node, dep in zip(ring, [*ring[1:], ring[0]], strict=True):
        if dep not in edges[node]:
            edges[node] = [*edges[node], dep]
    return nodes, edges


def edge_problems(cycle: Sequence[str], edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Why ``cycle`` is not a cycle of ``edges`` (empty if it is one)."""
    problems = []
    if len(cycle) < 2:
        problems.append(f"cycle {cycle!r} is too short")
    elif cycle[0] != cycle[-1]:
        problems.append(f"cycle {cycle!r} does not end where it starts")
    for node, dep in itertools.pairwise(cycle):
        if dep not in set(edges.get(node, ())):
            problems.append(f"{node} -> {dep} is not an edge")
    return problems
