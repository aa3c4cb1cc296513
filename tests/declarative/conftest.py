"""Fixtures for DAG file tests: writing YAML files, and a sys.path restored afterwards."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

DAGS = Path(__file__).parent / "dags"
"""The YAML fixture DAGs and the Python module their python: tasks call."""

Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write dedented text to ``tmp_path/name`` (default ``dag.yml``) and return the path."""

    def _write(text: str, name: str = "dag.yml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture(autouse=True)
def keep_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the folders that loading DAG files (and python: modules) adds to sys.path."""
    monkeypatch.setattr(sys, "path", [*sys.path])
