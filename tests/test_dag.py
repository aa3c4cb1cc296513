"""@dag: tracing the body into nodes and edges, ids, ordering operators, cycles, params."""

from __future__ import annotations

import datetime as dt
from typing import Any

import networkx as nx
import pytest

import pipekit
from pipekit import dag, task
from tests.dags.etl import etl


@task
def one() -> int:
    return 1


@task
def add(*xs: int) -> int:
    return sum(xs)


def test_the_issue_example_builds_a_chain() -> None:
    """extract -> transform -> load, with params ds (required) and region (default)."""
    assert etl.name == "etl"
    assert list(etl.tasks) == ["extract", "transform", "load"]
    assert isinstance(etl.graph, nx.DiGraph)
    assert set(etl.graph.edges) == {("extract", "transform"), ("transform", "load")}
    assert etl.params["ds"].required and etl.params["ds"].kind == "date"
    assert etl.params["region"].default == "eu"
    assert not etl.params["region"].required
    assert etl.module == "tests.dags.etl"
    assert etl.file is not None and etl.file.endswith("etl.py")


def test_repeated_calls_get_unique_deterministic_ids() -> None:
    """The first call keeps the name; later ones get __1, __2."""

    @dag
    def g() -> None:
        add(one(), one(), one())

    assert list(g.tasks) == ["one", "one__1", "one__2", "add"]
    assert g.tasks["add"].upstream == ("one", "one__1", "one__2")


def test_named_dag_and_task_override_names() -> None:
    """@dag(name=...) and @task(name=...) set the ids."""
    custom = task(name="custom")(lambda: 1)

    @dag(name="renamed", description="d")
    def g() -> None:
        custom()

    assert g.name == "renamed"
    assert g.description == "d"
    assert list(g.tasks) == ["custom"]


def test_shift_operators_add_ordering_edges_and_chain() -> None:
    """a >> b >> c, [a, b] >> c, a >> [b, c] and << all add edges without data."""

    @dag
    def g() -> None:
        a, b, c, d, e = one(), one(), one(), one(), one()
        a >> b >> c
        [a, b] >> d
        a >> [d, e]
        e << c

    edges = set(g.graph.edges)
    assert edges == {
        ("one", "one__1"),
        ("one__1", "one__2"),
        ("one", "one__3"),
        ("one__1", "one__3"),
        ("one", "one__4"),
        ("one__2", "one__4"),
    }
    assert g.tasks["one__1"].args == ()


def test_cycle_is_reported_with_its_tasks() -> None:
    """A cycle raises CycleError at definition, naming the tasks on it."""
    with pytest.raises(pipekit.CycleError) as info:

        @dag
        def looped() -> None:
            a, b, c = one(), one(), one()
            a >> b >> c >> a

    err = info.value
    assert set(err.cycle) == {"one", "one__1", "one__2"}
    assert err.cycle[0] == err.cycle[-1]
    assert "looped" in str(err) and "one__1" in str(err)
    assert isinstance(err, pipekit.PipekitError)


def test_self_dependency_is_a_cycle() -> None:
    """a >> a is a cycle of one task."""
    with pytest.raises(pipekit.CycleError, match="one -> one"):

        @dag
        def selfish() -> None:
            a = one()
            a >> a


def test_varargs_and_reserved_param_names_are_refused() -> None:
    """*args and names that DAG.run uses itself cannot be run parameters."""
    with pytest.raises(pipekit.DefinitionError, match=r"\*args"):

        @dag
        def star(*args: Any) -> None:
            one()

    with pytest.raises(pipekit.DefinitionError, match="'store'"):

        @dag
        def reserved(store: str) -> None:
            one()


def test_using_a_param_value_in_the_body_explains_the_model() -> None:
    """Formatting or testing a placeholder in the body raises a DefinitionError that says why."""
    with pytest.raises(pipekit.DefinitionError, match="pass the parameter to a task"):

        @dag
        def formatted(ds: str) -> None:
            add(f"{ds}-x")  # type: ignore[arg-type]

    with pytest.raises(pipekit.DefinitionError, match="tested for truth"):

        @dag
        def branched(flag: bool) -> None:
            if flag:
                one()


def test_using_a_task_result_in_the_body_explains_the_model() -> None:
    """Unpacking a task reference in the body raises a DefinitionError."""
    with pytest.raises(pipekit.DefinitionError, match="pass it whole"):

        @dag
        def unpacked() -> None:
            _p, _q = one()  # type: ignore[misc]


def test_shift_with_a_non_reference_is_refused() -> None:
    """a >> 3 names the offending value."""
    with pytest.raises(pipekit.DefinitionError, match="holds 3"):

        @dag
        def bad() -> None:
            one() >> 3  # type: ignore[operator]


def test_invalid_timezone_is_refused_at_definition() -> None:
    """tz is checked against the IANA database and quoted when unknown."""
    with pytest.raises(pipekit.DefinitionError, match="'Mars/Olympus'"):

        @dag(tz="Mars/Olympus")
        def g() -> None:
            one()


def test_refs_nested_in_containers_are_dependencies() -> None:
    """References inside lists and dicts add edges and resolve at run time."""

    @task
    def total(parts: dict[str, list[int]]) -> int:
        return sum(sum(v) for v in parts.values())

    @dag
    def g(base: int = 10) -> None:
        total({"a": [one(), one()], "b": [base]})  # type: ignore[list-item]

    assert g.tasks["total"].upstream == ("one", "one__1")
    run = g.run(store=pipekit.stores.MemoryStore(), executor="sequential")
    assert run.tasks["total"].result == 12


def test_dag_applied_twice_and_calls_outside_dag_do_not_leak() -> None:
    """@dag on a DAG is refused; a task call after definition is a plain call again."""

    @dag
    def g() -> None:
        one()

    assert one() == 1
    with pytest.raises(pipekit.DefinitionError, match="already a DAG"):
        dag(g)  # type: ignore[arg-type]


def test_date_annotation_kinds() -> None:
    """date and datetime annotations are recognised, including Optional ones."""

    @dag
    def g(a: dt.date, b: dt.datetime, c: dt.date | None = None, d: int = 1, e: Any = 2) -> None:
        one()

    assert {n: p.kind for n, p in g.params.items()} == {
        "a": "date",
        "b": "datetime",
        "c": "date",
        "d": "int",
        "e": None,
    }


@pytest.mark.parametrize("name", [5, "", "daily sales", "-x", "a/b", b"etl"])
def test_a_dag_name_that_is_not_a_name_is_refused_at_once(name: Any) -> None:
    """@dag(name=...) takes letters, digits, _, . and - (as YAML DAG names do)."""
    with pytest.raises(pipekit.DefinitionError, match=r"name=") as info:
        dag(name=name)
    assert repr(name) in str(info.value)


def test_dag_names_may_use_dots_and_hyphens() -> None:
    """The YAML rule: 'daily-sales.v2' is a valid DAG name."""

    @dag(name="daily-sales.v2")
    def g() -> None:
        one()

    assert g.name == "daily-sales.v2"


def test_the_dag_class_refuses_a_name_that_is_not_a_string() -> None:
    """DAG(fn, name=5), bypassing the decorator, is refused too."""
    with pytest.raises(pipekit.DefinitionError, match="name=5"):
        pipekit.DAG(lambda: None, name=5)  # type: ignore[arg-type]
