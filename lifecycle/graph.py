"""Dependency graphs: closure, cycle detection with the full path, topological order and layers.

Graphs are given as ``edges: node -> the nodes it depends on``. Every function is iterative, so
a chain of any depth is fine, and pure (no shared state: thread-safe).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from lifecycle.errors import DependencyCycle

__all__ = ["dependents", "find_cycle", "layers", "postorder", "topological_order"]

N = TypeVar("N", bound=Any)


def postorder(
    roots: Iterable[N],
    children: Callable[[N], Iterable[N]],
    name: Callable[[N], str] = str,
    known: Callable[[N], bool] = lambda node: False,
) -> list[N]:
    """Every node reachable from ``roots``, each after all of its children, each once.

    Nodes for which ``known(node)`` is true count as already visited (neither listed nor
    descended into). Raises `DependencyCycle` (named with ``name``) if the reachable graph has
    a cycle.
    """
    done: set[N] = set()
    order: list[N] = []
    for root in roots:
        if root in done or known(root):
            continue
        path: list[N] = [root]
        on_path: set[N] = {root}
        stack = [iter(children(root))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                node = path.pop()
                on_path.discard(node)
                done.add(node)
                order.append(node)
            elif child in on_path:
                start = path.index(child)
                raise DependencyCycle([name(n) for n in (*path[start:], child)])
            elif child not in done and not known(child):
                path.append(child)
                on_path.add(child)
                stack.append(iter(children(child)))
    return order


def find_cycle(edges: Mapping[N, Iterable[N]]) -> list[N] | None:
    """One cycle of the graph as a path whose last node repeats its first, or None."""
    try:
        postorder(edges, lambda n: (d for d in edges.get(n, ()) if d in edges), name=repr)
    except DependencyCycle as exc:
        by_repr = {repr(n): n for n in edges}
        return [by_repr[r] for r in exc.cycle]
    return None


def topological_order(nodes: Sequence[N], edges: Mapping[N, Iterable[N]]) -> list[N]:
    """``nodes`` ordered so each comes after what it depends on; ties keep ``nodes``' order.

    Dependencies outside ``nodes`` are ignored. Raises `DependencyCycle` naming the cycle.
    """
    index = {n: i for i, n in enumerate(nodes)}
    if all(index.get(d, -1) < index[n] for n in nodes for d in edges.get(n, ())):
        # Already ordered (registering a task registers its DEPS first, so this is the usual
        # case): picking the earliest ready node each time would give back ``nodes`` itself.
        return list(nodes)
    return [n for layer in _kahn(nodes, edges, layered=False) for n in layer]


def layers(nodes: Sequence[N], edges: Mapping[N, Iterable[N]]) -> list[list[N]]:
    """``nodes`` grouped into layers: each layer depends only on earlier ones.

    Within a layer, ``nodes``' order is kept. Raises `DependencyCycle` naming the cycle.
    """
    return _kahn(nodes, edges, layered=True)


def dependents(node: N, edges: Mapping[N, Iterable[N]]) -> set[N]:
    """Every node that depends on ``node``, directly or not (``node`` itself excluded)."""
    reverse: dict[N, list[N]] = {}
    for n, deps in edges.items():
        for d in deps:
            reverse.setdefault(d, []).append(n)
    seen: set[N] = set()
    frontier = [node]
    while frontier:
        for dependent in reverse.get(frontier.pop(), ()):
            if dependent not in seen:
                seen.add(dependent)
                frontier.append(dependent)
    seen.discard(node)
    return seen


def _kahn(nodes: Sequence[N], edges: Mapping[N, Iterable[N]], layered: bool) -> list[list[N]]:
    index = {n: i for i, n in enumerate(nodes)}
    waiting = {n: 0 for n in nodes}
    users: dict[N, list[N]] = {n: [] for n in nodes}
    for n in nodes:
        for d in set(edges.get(n, ())):
            if d in index and d != n:
                waiting[n] += 1
                users[d].append(n)
            elif d == n:
                raise DependencyCycle([str(n), str(n)])
    ready = [index[n] for n in nodes if waiting[n] == 0]
    heapq.heapify(ready)
    result: list[list[N]] = []
    emitted = 0
    while ready:
        if layered:
            current, ready = sorted(ready), []
        else:
            current = [heapq.heappop(ready)]
        result.append([nodes[i] for i in current])
        emitted += len(current)
        for i in current:
            for user in users[nodes[i]]:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, index[user])
    if emitted != len(nodes):
        stuck = {n: [d for d in edges.get(n, ()) if d in index] for n in nodes if waiting[n]}
        cycle = find_cycle(stuck)
        raise DependencyCycle([str(n) for n in cycle or stuck])
    return result
