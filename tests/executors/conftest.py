"""Fixtures for the executor tests: the executor under test, a store, and a work directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipekit.stores.memory import MemoryStore

from .pipelines import RELEASE


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every run away from ~/.pipekit, should a test ever forget ``store=``."""
    monkeypatch.setenv("PIPEKIT_HOME", str(tmp_path / "pipekit-home"))


@pytest.fixture
def executor(request: pytest.FixtureRequest) -> str:
    """The name of the executor under test; tests parametrize it with ``indirect=True``."""
    name: str = request.param
    return name


@pytest.fixture
def store() -> MemoryStore:
    """A fresh in-memory run history."""
    return MemoryStore()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[str]:
    """A directory the tasks report through; on teardown it releases any blocked task."""
    path = tmp_path / "work"
    path.mkdir()
    yield str(path)
    # Threads abandoned by a timeout are still waiting: let them end now.
    (path / RELEASE).touch()
