"""Shared fixtures: every test gets its own PIPEKIT_HOME and a clean process-wide default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pipekit


@pytest.fixture(autouse=True)
def pipekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point PIPEKIT_HOME at a fresh directory so no test touches ~/.pipekit."""
    home = tmp_path / "pipekit-home"
    monkeypatch.setenv("PIPEKIT_HOME", str(home))
    pipekit.configure(store=None)
    yield home
    pipekit.configure(store=None)


@pytest.fixture
def memory_store() -> pipekit.stores.MemoryStore:
    """A fresh in-memory history."""
    from pipekit.stores import MemoryStore

    return MemoryStore()
