"""The public names users and acceptance checks rely on."""

from __future__ import annotations

import pipekit

EXPECTED = {
    "DAG",
    "Attempt",
    "Clock",
    "ContextError",
    "CycleError",
    "DefinitionError",
    "Param",
    "ParamError",
    "PipekitError",
    "Retry",
    "Run",
    "RunFailed",
    "Skip",
    "State",
    "StoreError",
    "SystemClock",
    "Task",
    "TaskContext",
    "TaskRef",
    "TaskRun",
    "TaskTimeout",
    "__version__",
    "configure",
    "context",
    "dag",
    "get_logger",
    "task",
    "BackfillReport",
    "DateOutcome",
    "atomic_path",
    "backfill",
    "prune",
    "rerun",
    "serve",
    "Event",
    "from_yaml",
}


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ is sorted-complete and every name resolves."""
    assert set(pipekit.__all__) == EXPECTED
    for name in pipekit.__all__:
        assert getattr(pipekit, name) is not None


def test_every_error_derives_from_the_root() -> None:
    """One exception root, with builtin bases where they fit."""
    for name in (
        "CycleError",
        "ParamError",
        "ContextError",
        "StoreError",
        "RunFailed",
        "TaskTimeout",
        "DefinitionError",
    ):
        assert issubclass(getattr(pipekit, name), pipekit.PipekitError)
    assert issubclass(pipekit.ParamError, TypeError)
    assert issubclass(pipekit.TaskTimeout, TimeoutError)


def test_states_are_strings() -> None:
    """State members compare equal to, and print as, their strings."""
    assert [str(s) for s in pipekit.State] == [
        "queued",
        "running",
        "success",
        "failed",
        "upstream_failed",
        "skipped",
    ]
    assert pipekit.State.UPSTREAM_FAILED == "upstream_failed"


def test_store_and_executor_subpackages_export_their_implementations() -> None:
    """Stores and executors are importable from their subpackages."""
    from pipekit.executors import Executor, ProcessesExecutor, SequentialExecutor, ThreadsExecutor
    from pipekit.stores import MemoryStore, SQLiteStore, Store

    assert isinstance(MemoryStore(), Store)
    for cls in (SequentialExecutor, ThreadsExecutor, ProcessesExecutor):
        assert isinstance(cls(), Executor)
    assert SQLiteStore.__name__ == "SQLiteStore"
