"""The DAGs the benchmark runs, and the same graphs as plain dicts for the floors.

Every shape is built the way a user would: one ``@task`` per function, called as
often as needed inside a ``@dag`` body (pipekit numbers the repeated ids). The task
functions live here, in an importable module, so the processes executor's workers
load them by reference, as they would a user's module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

import pipekit
from pipekit import dag, task

# A plain graph: task id -> (function, upstream ids, pass upstream values as one list).
Graph = dict[str, tuple[Callable[..., int], list[str], bool]]


def source() -> int:
    return 0


def step(x: int) -> int:
    return x + 1


def collect(values: list[int]) -> int:
    return sum(values)


def combine(*values: int) -> int:
    return 1


def nap(seconds: float) -> None:
    time.sleep(seconds)


def burn(n: int) -> int:
    """Pure-Python CPU work: about ``n`` loop iterations (calibrated by the caller)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def expected(shape: str, n: int) -> int:
    """The value the last task returns: n-1 for a chain, n-2 (ones summed) for a fan."""
    return n - 1 if shape == "chain" else n - 2


# -- chain and fan ------------------------------------------------------------------------


def build(shape: str, n: int) -> pipekit.DAG:
    """``chain``: t0 -> ... -> tN-1; ``fan``: 1 -> N-2 -> 1 (the sink gets a list)."""
    if n < 3:
        raise SystemExit("a DAG needs at least 3 tasks")
    src, stp, col = task(source), task(step), task(collect)

    def chain_body() -> None:
        ref = src()
        for _ in range(n - 1):
            ref = stp(ref)

    def fan_body() -> None:
        first = src()
        col([stp(first) for _ in range(n - 2)])

    body = chain_body if shape == "chain" else fan_body
    return dag(name=f"bench_{shape}_{n}")(body)


def plain(shape: str, n: int) -> Graph:
    """The same graph as :func:`build`, for the floors."""
    g: Graph = {"t0": (source, [], False)}
    if shape == "chain":
        for i in range(1, n):
            g[f"t{i}"] = (step, [f"t{i - 1}"], False)
    else:
        for i in range(1, n - 1):
            g[f"t{i}"] = (step, ["t0"], False)
        g[f"t{n - 1}"] = (collect, [f"t{i}" for i in range(1, n - 1)], True)
    return g


# -- layered (scale) ----------------------------------------------------------------------

LAYER_WIDTH = 100


def layered_upstream(n: int, width: int = LAYER_WIDTH) -> list[list[int]]:
    """Upstream indices of task i: 1 to 3 tasks of the layer before (fan-in up to 3).

    Tasks 0 .. width-1 are sources; task i in a later layer takes tasks j, j+1, j+2
    (wrapping within the previous layer) of that layer, 1 + i % 3 of them.
    """
    ups: list[list[int]] = []
    for i in range(n):
        layer, pos = divmod(i, width)
        if layer == 0:
            ups.append([])
            continue
        prev = (layer - 1) * width
        fan_in = 1 + i % 3
        ups.append([prev + (pos + k) % width for k in range(fan_in)])
    return ups


def build_layered(n: int) -> pipekit.DAG:
    """A layered DAG of ``n`` no-op tasks, :data:`LAYER_WIDTH` wide."""
    ups = layered_upstream(n)
    node = task(combine)

    def body() -> None:
        refs: list[pipekit.TaskRef] = []
        for up in ups:
            refs.append(node(*(refs[u] for u in up)))

    return dag(name=f"bench_layered_{n}")(body)


def plain_layered(n: int) -> Graph:
    return {
        f"t{i}": (combine, [f"t{u}" for u in up], False) for i, up in enumerate(layered_upstream(n))
    }


# -- backfill: 10 tasks, 1 -> 8 -> 1 ---------------------------------------------------------


def extract(ds: object) -> int:
    return 1


def backfill_dag() -> pipekit.DAG:
    """extract(ds) -> 8 transforms -> load: the 10-task DAG of the backfill figure."""
    ext, stp, col = task(extract), task(step), task(collect)

    def daily(ds: date) -> None:
        first = ext(ds)
        col([stp(first) for _ in range(8)])

    return dag(name="bench_daily")(daily)


def plain_backfill() -> Graph:
    g: Graph = {"t0": (extract, [], False)}
    for i in range(1, 9):
        g[f"t{i}"] = (step, ["t0"], False)
    g["t9"] = (collect, [f"t{i}" for i in range(1, 9)], True)
    return g


# -- parallelism --------------------------------------------------------------------------


def sleepers(n: int, seconds: float) -> pipekit.DAG:
    """``n`` independent tasks that each sleep ``seconds``."""
    t = task(nap)

    def body() -> None:
        for _ in range(n):
            t(seconds)

    return dag(name=f"bench_sleep_{n}")(body)


def burners(n: int, iterations: int) -> pipekit.DAG:
    """``n`` independent CPU-bound tasks of ``iterations`` loop steps each."""
    t = task(burn)

    def body() -> None:
        for _ in range(n):
            t(iterations)

    return dag(name=f"bench_cpu_{n}")(body)
