"""Graph properties over random DAGs and failure sets (Hypothesis)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings

from pipekit import DAG, dag, task
from pipekit.stores import MemoryStore
from tests.strategies import dags, dags_with_failures


def build(n: int, edges: list[tuple[int, int]], failing: set[int], log: list[int]) -> DAG:
    """A DAG of tasks t0..tn-1 with the given edges; tasks in ``failing`` raise."""
    lock = threading.Lock()

    def make(i: int) -> Callable[[], int]:
        def body() -> int:
            with lock:
                log.append(i)
            if i in failing:
                raise RuntimeError(f"t{i} fails")
            return i

        return body

    tasks = [task(name=f"t{i}")(make(i)) for i in range(n)]

    @dag(name="random")
    def g() -> None:
        refs = [t() for t in tasks]
        for u, v in edges:
            refs[u] >> refs[v]

    return g


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_definition_matches_the_edges(spec: tuple[int, list[tuple[int, int]]]) -> None:
    """graph has exactly the declared edges; order is a topological order of them."""
    n, edges = spec
    g = build(n, edges, set(), [])
    assert set(g.graph.edges) == {(f"t{u}", f"t{v}") for u, v in edges}
    position = {t: i for i, t in enumerate(g.order)}
    assert all(position[f"t{u}"] < position[f"t{v}"] for u, v in edges)
    assert sorted(g.order) == sorted(f"t{i}" for i in range(n))


@pytest.mark.parametrize("executor", ["sequential", "threads"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=dags_with_failures())
def test_runs_respect_edges_and_fail_exactly_the_descendants(
    executor: str, spec: tuple[int, list[tuple[int, int]], set[int]]
) -> None:
    """Each task runs at most once after its upstreams; descendants of failures never run."""
    n, edges, failing = spec
    log: list[int] = []
    g = build(n, edges, failing, log)
    run = g.run(store=MemoryStore(), executor=executor, raise_on_failure=False)

    oracle = nx.DiGraph()
    oracle.add_nodes_from(range(n))
    oracle.add_edges_from(edges)
    blocked = set().union(*(nx.descendants(oracle, f) for f in failing)) if failing else set()
    failed = failing - blocked

    assert len(log) == len(set(log)), "a task ran twice"
    assert set(log) == set(range(n)) - blocked
    pos = {t: i for i, t in enumerate(log)}
    assert all(pos[u] < pos[v] for u, v in edges if u in pos and v in pos)
    states = {int(t[1:]): r.state for t, r in run.tasks.items()}
    assert {i for i, s in states.items() if s == "upstream_failed"} == blocked
    assert {i for i, s in states.items() if s == "failed"} == failed
    assert {i for i, s in states.items() if s == "success"} == set(range(n)) - blocked - failed
    assert run.state == ("failed" if failing else "success")
    for i in set(range(n)) - blocked - failed:
        assert run.tasks[f"t{i}"].result == i
