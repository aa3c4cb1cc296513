"""structlog events: names, bound keys, get_logger() in tasks, and no configuration on import."""

from __future__ import annotations

import subprocess
import sys

import structlog
from structlog.testing import capture_logs

import pipekit
from pipekit import dag, task
from pipekit.stores import MemoryStore


@task(retries=1)
def wobbly() -> None:
    if pipekit.context().attempt == 1:
        raise ConnectionError("blip")
    pipekit.get_logger().info("rows_loaded", rows=5)


@task
def broken() -> None:
    raise ValueError("bad row")


@dag
def logged(ds: str) -> None:
    wobbly()
    broken()


def test_run_and_task_events_carry_dag_run_id_task_and_attempt() -> None:
    """Every lifecycle event has dag, run_id, attempt, and task events name the task."""
    with capture_logs() as logs:
        run = logged.run(ds="d", store=MemoryStore(), raise_on_failure=False, executor="sequential")
    events = [(e["event"], e.get("task"), e.get("attempt")) for e in logs]
    assert events == [
        ("run_started", None, 1),
        ("task_started", "wobbly", 1),
        ("task_retrying", "wobbly", 1),
        ("task_started", "broken", 1),
        ("task_failed", "broken", 1),
        ("task_started", "wobbly", 2),
        ("rows_loaded", "wobbly", 2),
        ("task_succeeded", "wobbly", 2),
        ("run_finished", None, 1),
    ]
    assert all(e["dag"] == "logged" and e["run_id"] == run.id for e in logs)
    failed = next(e for e in logs if e["event"] == "task_failed")
    assert failed["log_level"] == "error" and failed["error"] == "ValueError: bad row"
    assert logs[-1]["state"] == "failed"


def test_get_logger_outside_a_task_is_unbound() -> None:
    """get_logger() in plain code logs without run keys."""
    with capture_logs() as logs:
        pipekit.get_logger().info("hello", n=1)
    assert logs == [{"event": "hello", "n": 1, "log_level": "info"}]


def test_import_does_not_configure_structlog() -> None:
    """import pipekit leaves structlog unconfigured, so the application's setup wins."""
    code = "import structlog, pipekit; print(structlog.is_configured())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert structlog.is_configured() in (True, False)  # the test process itself is untouched
