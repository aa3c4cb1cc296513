"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 12) -> tuple[int, list[tuple[int, int]]]:
    """A random DAG: ``n`` tasks and edges ``(u, v)`` with ``u < v`` (so it is acyclic)."""
    n = draw(st.integers(min_value=1, max_value=max_tasks))
    pairs = [(u, v) for v in range(n) for u in range(v)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=3 * n)) if pairs else []
    return n, edges


@st.composite
def dags_with_failures(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], set[int]]:
    """A random DAG and a random set of its tasks that will fail."""
    n, edges = draw(dags())
    failing = draw(st.sets(st.integers(min_value=0, max_value=n - 1), max_size=n))
    return n, edges, failing
