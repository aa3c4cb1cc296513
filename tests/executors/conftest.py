"""Fixtures for the executor tests: the executor under test, a store, and a work directory.

The Dask executor runs on one LocalCluster for all the tests of this folder (two
worker processes, one thread each), started the first time a test asks for it: by name
(``executor="dask"``, which uses ``$PIPEKIT_DASK_ADDRESS``) or through ``dask_cluster``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipekit.stores.memory import MemoryStore

from .pipelines import RELEASE


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every run away from ~/.pipekit, should a test ever forget ``store=``."""
    monkeypatch.setenv("PIPEKIT_HOME", str(tmp_path / "pipekit-home"))


@pytest.fixture(scope="package")
def dask_cluster() -> Iterator[Any]:
    """A LocalCluster of two single-threaded worker processes, shared by the executor tests.

    While it is up, ``$PIPEKIT_DASK_ADDRESS`` points at it, so ``executor="dask"`` runs
    there. Skipped when dask.distributed is not installed.
    """
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    from pipekit.executors.dask import ADDRESS_ENV, close_shared, local_cluster

    cluster = local_cluster(n_workers=2, threads_per_worker=1)
    before = os.environ.get(ADDRESS_ENV)
    os.environ[ADDRESS_ENV] = cluster.scheduler_address
    try:
        yield cluster
    finally:
        if before is None:
            os.environ.pop(ADDRESS_ENV, None)
        else:
            os.environ[ADDRESS_ENV] = before
        close_shared()
        cluster.close()


@pytest.fixture
def executor(request: pytest.FixtureRequest) -> str:
    """The name of the executor under test; tests parametrize it with ``indirect=True``."""
    name: str = request.param
    if name == "dask":
        request.getfixturevalue("dask_cluster")
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
