"""Binding a task call's arguments: references in a DAG body become values at run time.

A node's arguments may hold :class:`~pipekit.task.TaskRef` (an upstream task's value)
and :class:`~pipekit.dag.ParamRef` (a run parameter), also nested in lists, tuples,
sets and dicts. :func:`bind_planned` replaces them with values, following the plan that
:func:`plans_for` makes once per DAG of where the references are, so launching a task
does not walk every argument again.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipekit.dag import ParamRef, _scan
from pipekit.task import TaskRef

if TYPE_CHECKING:
    from pipekit.dag import DAG, Node

__all__ = ["bind_planned", "plans_for"]


def _resolve(value: Any, results: dict[str, Any], params: dict[str, Any]) -> Any:  # noqa: PLR0911
    if isinstance(value, TaskRef):
        return results[value.task_id]
    if isinstance(value, ParamRef):
        return params[value.name]
    if isinstance(value, list):
        return [_resolve(v, results, params) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve(v, results, params) for v in value)
    if isinstance(value, set | frozenset):
        return type(value)(_resolve(v, results, params) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, results, params) for k, v in value.items()}
    return value


_REF, _PARAM, _NESTED = 0, 1, 2
_plans: weakref.WeakKeyDictionary[DAG, dict[str, tuple[Any, Any]]] = weakref.WeakKeyDictionary()


def _plan(values: Any) -> list[tuple[Any, int, Any]]:
    """Where the references among a node's arguments are: (position or name, kind, key)."""
    if not values:
        return []
    items = values.items() if isinstance(values, Mapping) else enumerate(values)
    plan: list[tuple[Any, int, Any]] = []
    for where, value in items:
        if isinstance(value, TaskRef):
            plan.append((where, _REF, value.task_id))
        elif isinstance(value, ParamRef):
            plan.append((where, _PARAM, value.name))
        elif _scan(value, []):
            plan.append((where, _NESTED, value))
    return plan


def _fill(
    target: Any, plan: list[tuple[Any, int, Any]], results: dict[str, Any], params: dict[str, Any]
) -> Any:
    """Put each planned reference's value into ``target`` (a list or a dict) and return it."""
    for where, kind, key in plan:
        if kind == _REF:
            target[where] = results[key]
        elif kind == _PARAM:
            target[where] = params[key]
        else:
            target[where] = _resolve(key, results, params)
    return target


def plans_for(dag: DAG) -> dict[str, tuple[Any, Any]]:
    """Where each dynamic node's references are, planned once per DAG (cached)."""
    cache = _plans.get(dag)
    if cache is None:
        cache = {
            tid: (_plan(node.args), _plan(node.kwargs))
            for tid, node in dag.tasks.items()
            if node.dynamic
        }
        _plans[dag] = cache
    return cache


def bind_planned(
    node: Node, plans: tuple[Any, Any], results: dict[str, Any], params: dict[str, Any]
) -> tuple[Any, Any]:
    """A node's arguments with references replaced by values, following ``plans``."""
    arg_plan, kwarg_plan = plans
    args: Any = node.args
    if arg_plan:
        args = _fill(list(args), arg_plan, results, params)
    kwargs: Any = node.kwargs
    if kwarg_plan:
        kwargs = _fill(dict(kwargs), kwarg_plan, results, params)
    return args, kwargs
