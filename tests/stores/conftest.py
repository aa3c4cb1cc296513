"""The `store` fixture: one instance of each store kind, selected with indirect parametrization.

A test module that says ``pytestmark = pytest.mark.parametrize("store", ["memory",
"sqlite"], indirect=True)`` runs each of its tests once per kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipekit.stores import MemoryStore, SQLiteStore, Store


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of the kind named by the parameter, closed after the test."""
    kind = request.param
    made: Store
    if kind == "memory":
        made = MemoryStore()
    elif kind == "sqlite":
        made = SQLiteStore(tmp_path / "history.db")
    else:
        raise ValueError(f"unknown store kind {kind!r}; add it to tests/stores/conftest.py")
    yield made
    made.close()
