"""Reading a DAG file: safe YAML 1.2 loading that remembers where every value was written.

PyYAML's ``SafeLoader`` builds only plain data (no tag constructs an arbitrary object),
and its node tree carries the line of every key and value, which is what error
messages point at. Its implicit typing is YAML 1.1's, though, where ``NO`` is False,
``010`` is 8 and ``1:30`` is 90; the loader here resolves plain scalars by the YAML 1.2
core schema instead (only ``true``/``false`` are booleans, dates stay strings), which is
also what editors' YAML language servers use, so an editor and pipekit read a file the
same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pipekit.declarative.errors import DagFileError

__all__ = ["Source", "read_source"]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema resolution of plain scalars."""


_Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    ("merge", r"^(?:<<)$", ["<"]),
):
    _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), _first)


def _construct_bool(loader: yaml.SafeLoader, node: Node) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"  # type: ignore[arg-type]


def _construct_int(loader: yaml.SafeLoader, node: Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _construct_float(loader: yaml.SafeLoader, node: Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)

Path_ = Sequence[str | int]
"""Where a value sits in the document: keys and list indexes from the top."""


@dataclass(frozen=True)
class Source:
    """A parsed DAG file: its data, and the node tree that knows every value's line.

    Attributes:
        path: the file as the user named it (messages show it like this).
        folder: the file's folder, absolute: relative paths in the file start here.
        data: the document as plain data (dicts, lists, str, int, float, bool, None).
    """

    path: Path
    folder: Path
    data: Any
    root: Node | None

    def _find(self, where: Path_, key: bool) -> tuple[Node | None, bool]:
        """The node at ``where`` (its key node with ``key``), and whether it exists."""
        found = self.root
        if found is None:
            return None, False
        for i, step in enumerate(where):
            last = i == len(where) - 1
            if isinstance(found, MappingNode) and isinstance(step, str):
                pair = next(
                    (
                        (k, v)
                        for k, v in reversed(found.value)
                        if isinstance(k, ScalarNode) and k.value == step
                    ),
                    None,
                )
                if pair is None:
                    return found, False
                if last and key:
                    return pair[0], True
                found = pair[1]
            elif (
                isinstance(found, SequenceNode)
                and isinstance(step, int)
                and 0 <= step < len(found.value)
            ):
                found = found.value[step]
            else:
                return found, False
        return found, True

    def line(self, where: Path_, *, key: bool = False) -> int | None:
        """The 1-based line of the value at ``where`` (of its key with ``key=True``).

        Falls back to the nearest enclosing value that exists, so a missing key points
        at the mapping that should hold it.
        """
        node, _ = self._find(where, key)
        return None if node is None else int(node.start_mark.line) + 1

    def written(self, where: Path_) -> str | None:
        """The text of the scalar at ``where`` as written in the file (``02134``, ``1.10``).

        None when there is no scalar exactly there (a value merged in with ``<<``, say).
        """
        node, exact = self._find(where, False)
        return str(node.value) if exact and isinstance(node, ScalarNode) else None

    def is_block(self, where: Path_) -> bool:
        """True when the text at ``where`` is a ``|`` or ``>`` block (it starts a line later)."""
        node, exact = self._find(where, False)
        return exact and isinstance(node, ScalarNode) and node.style in ("|", ">")


def _duplicates(node: Node | None, seen: set[int], found: list[tuple[str, int]]) -> None:
    """Collect keys written twice in one mapping (YAML would silently keep the last)."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        keys: set[str] = set()
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value != "<<":
                if k.value in keys:
                    found.append((k.value, int(k.start_mark.line) + 1))
                keys.add(k.value)
            _duplicates(v, seen, found)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _duplicates(item, seen, found)


def read_source(path: Path) -> Source:
    """Parse a DAG file safely.

    Raises:
        DagFileError: the file cannot be read, is not valid YAML (with the line), holds
            several documents, or writes a key twice in one mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DagFileError(f"cannot read the file ({exc}); check the path", file=path) from exc
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            dups: list[tuple[str, int]] = []
            _duplicates(root, set(), dups)
            if dups:
                name, line = dups[0]
                raise DagFileError(
                    "written twice in the same mapping; YAML would keep only the last one, "
                    "so remove or rename one of them",
                    file=path,
                    line=line,
                    key=name,
                )
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = int(mark.line) + 1 if mark is not None else None
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise DagFileError(
            f"not valid YAML: {what}; check the indentation and quote values that start "
            "with @, *, & or contain ': '",
            file=path,
            line=at,
        ) from exc
    except yaml.YAMLError as exc:
        raise DagFileError(f"not valid YAML: {exc}", file=path) from exc
    finally:
        loader.dispose()
    return Source(path, path.resolve().parent, data, root)
