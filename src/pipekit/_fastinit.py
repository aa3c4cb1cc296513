"""A faster ``__init__`` for the frozen dataclasses the run loop creates per task.

A frozen dataclass's generated ``__init__`` sets each field with
``object.__setattr__(self, name, value)``: a generic attribute lookup per field. The
run loop creates four such objects per task (an attempt's start and end, a saved
result, the task context) and one :class:`pipekit.TaskRun` per task at the end, so at
10,000 tasks that lookup costs more than the loop's own bookkeeping. :func:`fast_init`
replaces ``__init__`` with one that calls each slot's descriptor directly. Everything
else stays as the dataclass made it: the signature and defaults, immutability
(assignment still raises ``FrozenInstanceError``), equality, hashing, ``repr``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["fast_init"]

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give a frozen, slotted dataclass without default factories a faster ``__init__``."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    namespace: dict[str, Any] = {}
    signature: list[str] = []
    body: list[str] = []
    for i, f in enumerate(params):
        if f.default_factory is not dataclasses.MISSING or not f.init or f.kw_only:
            raise TypeError(f"fast_init does not handle field {f.name!r} of {cls.__name__}")
        namespace[f"_set{i}"] = getattr(cls, f.name).__set__
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            namespace[f"_default{i}"] = f.default
            signature.append(f"{f.name}=_default{i}")
        body.append(f"    _set{i}(self, {f.name})")
    source = f"def __init__(self, {', '.join(signature)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    setattr(cls, "__init__", init)  # noqa: B010 (mypy forbids assigning a method)
    return cls
