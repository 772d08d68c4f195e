"""Dependency graphs: topological order, layers, cycles with their path, dependents, depth."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.collection import Tasks
from lifecycle.errors import DependencyCycle
from lifecycle.graph import dependents, find_cycle, layers, postorder, topological_order
from lifecycle.spec import TaskState
from lifecycle.task import Task
from tests.strategies import Graph, dags, edge_problems, graphs_with_cycle


def reachable_from(node: str, edges: Graph) -> set[str]:
    """Everything ``node`` depends on, directly or not (a plain depth-first search)."""
    seen: set[str] = set()
    stack = list(edges.get(node, ()))
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(edges.get(dep, ()))
    return seen


@given(dags())
def test_topological_order_puts_every_node_after_its_dependencies(
    graph: tuple[list[str], Graph],
) -> None:
    nodes, edges = graph
    order = topological_order(nodes, edges)
    assert sorted(order) == sorted(nodes)
    position = {n: i for i, n in enumerate(order)}
    for node in nodes:
        for dep in edges[node]:
            assert position[dep] < position[node], f"{node} needs {dep}"


@given(dags())
def test_topological_order_breaks_ties_by_input_order(graph: tuple[list[str], Graph]) -> None:
    # Each emitted node is the earliest (in input order) of the nodes that are ready then.
    nodes, edges = graph
    order = topological_order(nodes, edges)
    done: set[str] = set()
    for node in order:
        ready = [n for n in nodes if n not in done and set(edges[n]) <= done]
        assert node == ready[0]
        done.add(node)


@given(dags())
def test_an_input_order_that_is_already_topological_is_kept(graph: tuple[list[str], Graph]) -> None:
    nodes, edges = graph
    order = topological_order(nodes, edges)
    assert topological_order(order, edges) == order


@given(dags())
def test_layers_are_the_longest_path_layering_in_input_order(
    graph: tuple[list[str], Graph],
) -> None:
    nodes, edges = graph
    result = layers(nodes, edges)
    assert sorted(n for layer in result for n in layer) == sorted(nodes)
    assert all(result), "no empty layer"
    depth = {n: i for i, layer in enumerate(result) for n in layer}
    index = {n: i for i, n in enumerate(nodes)}
    for layer in result:
        assert [index[n] for n in layer] == sorted(index[n] for n in layer)
    for node in nodes:
        # Each node sits one layer after its deepest dependency (layer 0 without any).
        assert depth[node] == max((depth[d] + 1 for d in edges[node]), default=0)


@given(graphs_with_cycle())
def test_a_cycle_is_reported_as_a_real_cycle_of_the_graph(graph: tuple[list[str], Graph]) -> None:
    nodes, edges = graph
    for function in (topological_order, layers):
        with pytest.raises(DependencyCycle) as info:
            function(nodes, edges)
        cycle = info.value.cycle
        assert edge_problems(cycle, edges) == []
        assert len(set(cycle)) == len(cycle) - 1, "a simple cycle visits each node once"
        assert str(info.value) == "dependency cycle: " + " -> ".join(cycle)
    found = find_cycle(edges)
    assert found is not None
    assert edge_problems(found, edges) == []


@given(graphs_with_cycle())
def test_postorder_reports_a_real_cycle_of_the_graph(graph: tuple[list[str], Graph]) -> None:
    nodes, edges = graph
    with pytest.raises(DependencyCycle) as info:
        postorder(nodes, lambda n: edges[n])
    assert edge_problems(info.value.cycle, edges) == []


@given(dags())
def test_find_cycle_finds_none_in_a_dag(graph: tuple[list[str], Graph]) -> None:
    assert find_cycle(graph[1]) is None


def test_a_self_loop_is_a_cycle_of_one_node() -> None:
    with pytest.raises(DependencyCycle) as info:
        topological_order(["a", "b"], {"a": [], "b": ["b"]})
    assert info.value.cycle == ("b", "b")


def test_dependencies_outside_the_nodes_are_ignored() -> None:
    assert topological_order(["b", "a"], {"a": ["zzz"], "b": ["a"]}) == ["a", "b"]
    assert layers(["b", "a"], {"a": ["zzz"], "b": ["a"]}) == [["a"], ["b"]]


@given(dags())
def test_dependents_are_every_node_that_needs_it_directly_or_not(
    graph: tuple[list[str], Graph],
) -> None:
    nodes, edges = graph
    for node in nodes:
        expected = {n for n in nodes if node in reachable_from(n, edges)}
        assert dependents(node, edges) == expected


@given(dags(), st.data())
def test_postorder_lists_each_reachable_node_once_after_its_children(
    graph: tuple[list[str], Graph], data: st.DataObject
) -> None:
    nodes, edges = graph
    roots = data.draw(st.lists(st.sampled_from(nodes), max_size=3) if nodes else st.just([]))
    known = set(data.draw(st.lists(st.sampled_from(nodes), max_size=2) if nodes else st.just([])))
    order = postorder(roots, lambda n: edges[n], known=known.__contains__)
    assert len(order) == len(set(order))
    assert not set(order) & known
    position = {n: i for i, n in enumerate(order)}
    for node in order:
        for dep in edges[node]:
            assert dep in known or position[dep] < position[node]
    # Everything reachable without passing through a known node is listed.
    expected: set[str] = set()
    stack = [r for r in roots if r not in known]
    while stack:
        node = stack.pop()
        if node not in expected:
            expected.add(node)
            stack.extend(d for d in edges[node] if d not in known)
    assert set(order) == expected


DEPTH = 10_000


def test_a_ten_thousand_deep_deps_chain_registers_without_recursion() -> None:
    chain: list[type[Task]] = []
    for i in range(DEPTH):
        deps = (chain[-1],) if chain else ()
        chain.append(type(f"Link{i}", (Task,), {"DEPS": deps, "LOOPLESS": True}))
    tasks = Tasks()
    tasks.register(chain[-1])
    assert tasks.task_classes == tuple(chain)
    tasks.create()
    assert tasks.order == tuple(c.__name__ for c in chain)
    tasks.init()
    assert tasks.by_state() == {TaskState.INITIALIZED: [c.__name__ for c in chain]}
    tasks.stop()


def test_a_ten_thousand_deep_graph_sorts_and_finds_its_cycle() -> None:
    nodes = [f"n{i}" for i in range(DEPTH)]
    edges = {n: [nodes[i - 1]] if i else [] for i, n in enumerate(nodes)}
    assert topological_order(list(reversed(nodes)), edges) == nodes
    assert dependents(nodes[0], edges) == set(nodes[1:])
    edges[nodes[0]] = [nodes[-1]]
    with pytest.raises(DependencyCycle) as info:
        topological_order(nodes, edges)
    assert len(info.value.cycle) == DEPTH + 1
    assert edge_problems(info.value.cycle, edges) == []
