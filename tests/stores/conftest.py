"""The `store` fixture: one instance of each store kind, selected with indirect parametrization.

A test module that says ``pytestmark = pytest.mark.parametrize("store", STORES,
indirect=True)`` runs each of its tests once per kind. The PostgreSQL store runs
against a real server (see ``tests/pg.py``), each test in a schema of its own; its
tests are skipped, with the reason, only when no server can be started.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipekit.stores import MemoryStore, PostgresStore, SQLiteStore, Store
from tests import pg

STORES = ["memory", "sqlite", "postgres"]
"""Every store kind, for ``parametrize("store", STORES, indirect=True)``."""


@pytest.fixture
def postgres_dsn() -> str:
    """The test PostgreSQL database's DSN (the server starts on first use), or a skip."""
    return pg.dsn_or_skip()


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of the kind named by the parameter, closed after the test."""
    kind = request.param
    made: Store
    schema = None
    if kind == "memory":
        made = MemoryStore()
    elif kind == "sqlite":
        made = SQLiteStore(tmp_path / "history.db")
    elif kind == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        schema = pg.new_schema()
        made = PostgresStore(dsn, schema=schema)
    else:
        raise ValueError(f"unknown store kind {kind!r}; add it to tests/stores/conftest.py")
    yield made
    made.close()
    if schema is not None:
        pg.drop_schema(schema)
