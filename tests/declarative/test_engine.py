"""A YAML DAG on the engine: runs, failures, re-runs from a new process, backfills, serve."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

import pipekit
from pipekit.declarative import from_yaml
from pipekit.serve import Scheduler
from pipekit.stores import MemoryStore, SQLiteStore
from pipekit.testing import FakeClock
from tests.declarative.conftest import DAGS, Write

REPORT = DAGS / "report.yml"
MIXED = DAGS / "mixed"


@pytest.fixture
def report_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The report DAG's database and calls file in tmp_path, and no broken date."""
    paths = {"YAML_DB": tmp_path / "report.db", "YAML_CALLS": tmp_path / "calls.txt"}
    for name, path in paths.items():
        monkeypatch.setenv(name, str(path))
    monkeypatch.delenv("YAML_BROKEN", raising=False)
    return paths


def calls(report_env: dict[str, Path]) -> list[str]:
    """The lines the report DAG's tasks appended, in order."""
    path = report_env["YAML_CALLS"]
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_a_yaml_dag_runs_each_operator_against_real_things(
    executor: str, report_env: dict[str, Path]
) -> None:
    """SQL into a SQLite file, a Python function reading it, a shell command: all succeed."""
    run = from_yaml(REPORT).run(
        ds="2024-01-05", region="us", store=MemoryStore(), executor=executor
    )
    assert run.state == "success"
    assert run.tasks["summarize"].result == 20  # two zones, scale 10
    with sqlite3.connect(report_env["YAML_DB"]) as con:
        assert con.execute("SELECT * FROM loads").fetchall() == [("2024-01-05", "us")]
        assert sorted(con.execute("SELECT zone FROM zones").fetchall()) == [("north",), ("south",)]
    assert calls(report_env) == ["summarize 2024-01-05", "publish 2024-01-05 us"]
    assert run.file == str(REPORT.resolve())


def test_a_failing_task_fails_the_run_and_its_downstream_does_not_run(
    report_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, write: Write
) -> None:
    """A non-zero exit fails the task with its code and stderr; RunFailed names it."""
    monkeypatch.setenv("YAML_BROKEN", "2024-01-05")
    with pytest.raises(pipekit.RunFailed) as caught:
        from_yaml(REPORT).run(ds="2024-01-05", store=MemoryStore())
    run = caught.value.run
    assert (run.tasks["publish"].error or "").startswith(
        "CommandFailed: command of task 'publish' exited with code 3; "
        "stderr ends: cannot publish 2024-01-05"
    )
    assert "publish failed" in str(caught.value)
    path = write(
        """
        tasks:
          first: {sh: "exit 1"}
          second: {sh: "echo never", depends_on: [first]}
        """
    )
    run = from_yaml(path).run(store=MemoryStore(), raise_on_failure=False)
    assert run.tasks["second"].state == "upstream_failed"


def _python(code: str, env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]  # after pipekit's log lines


def test_a_failed_run_reruns_from_a_new_process_that_finds_the_file(
    report_env: dict[str, Path], tmp_path: Path
) -> None:
    """The run records the YAML path; a fresh process re-runs only what failed."""
    env = {k: v for k, v in os.environ.items() if k != "YAML_BROKEN"}
    env["PIPEKIT_HOME"] = str(tmp_path / "home")
    first = _python(
        "import pipekit; "
        f"r = pipekit.from_yaml({str(REPORT)!r}).run(ds='2024-01-05', raise_on_failure=False); "
        "print(r.id, r.state)",
        {**env, "YAML_BROKEN": "2024-01-05"},
        cwd=DAGS,
    )
    run_id, state = first.split()
    assert state == "failed"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    second = _python(
        "import pipekit; "
        f"r = pipekit.rerun({run_id!r}, raise_on_failure=False); "
        "print(r.id, r.state, r.tasks['publish'].attempts)",
        env,
        cwd=elsewhere,
    )
    assert second.split() == [run_id, "success", "2"]
    assert calls(report_env) == [
        "summarize 2024-01-05",
        "publish 2024-01-05 eu",
        "publish 2024-01-05 eu",
    ]
    recorded = SQLiteStore(tmp_path / "home" / "history.db").get_run(run_id)
    assert recorded.file == str(REPORT.resolve())


def test_a_backfill_with_failed_dates_reports_them_and_reruns_only_those(
    report_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two dates fail; re-running the failures after the fix succeeds for exactly those."""
    dag = from_yaml(REPORT)
    store = MemoryStore()
    monkeypatch.setenv("YAML_BROKEN", "2024-01-02")
    report = pipekit.backfill(dag, "2024-01-01", "2024-01-03", store=store, progress=False)
    assert [str(d) for d in report.failed] == ["2024-01-02"]
    assert [str(d) for d in report.succeeded] == ["2024-01-01", "2024-01-03"]
    monkeypatch.delenv("YAML_BROKEN")
    again = report.rerun_failed()
    assert again.ok and [str(d) for d in again.succeeded] == ["2024-01-02"]
    assert calls(report_env).count("publish 2024-01-02 eu") == 2


def test_serve_once_runs_the_due_intervals_of_a_yaml_file(report_env: dict[str, Path]) -> None:
    """serve(file, once=True) starts each ended interval since start, once."""
    store = MemoryStore()
    clock = FakeClock(start=dt.datetime(2024, 1, 3, 12, tzinfo=dt.UTC))
    runs = pipekit.serve(REPORT, store=store, once=True, clock=clock)
    assert [(r.dag, str(r.params["ds"]), r.state) for r in runs] == [
        ("yaml_report", "2024-01-01", "success"),
        ("yaml_report", "2024-01-02", "success"),
    ]
    assert pipekit.serve(REPORT, store=store, once=True, clock=clock) == []


def test_python_and_yaml_dags_in_one_folder_are_served_together() -> None:
    """A folder's Python and YAML DAG files are scheduled side by side; other YAML is skipped."""
    clock = FakeClock(start=dt.datetime(2024, 1, 2, 1, tzinfo=dt.UTC))
    runs = pipekit.serve(MIXED, store=MemoryStore(), once=True, clock=clock)
    assert sorted((r.dag, str(r.params["ds"]), r.state) for r in runs) == [
        ("mixed_python", "2024-01-01", "success"),
        ("mixed_yaml", "2024-01-01", "success"),
    ]
    by_dag = {r.dag: r for r in runs}
    assert by_dag["mixed_yaml"].tasks["hello"].result == "hello 2024-01-01"
    from pipekit.loader import find_files

    assert [f.name for f in find_files(MIXED)] == ["daily_py.py", "daily_yaml.yml"]


def test_the_scheduler_picks_up_an_edited_yaml_file(write: Write) -> None:
    """A changed file is read again; a broken edit is logged and the file serves nothing."""
    path = write(
        """
        name: edited
        schedule: "@daily"
        start: 2024-01-01
        params: {ds: {type: date}}
        tasks:
          a: {sh: "true"}
        """
    )
    scheduler = Scheduler(
        [path.parent], store=MemoryStore(), executor="threads", max_workers=None, clock=None
    )
    assert [(d.name, list(d.tasks)) for d in scheduler.dags()] == [("edited", ["a"])]
    path.write_text(path.read_text() + "  b: {sh: 'true', depends_on: [a]}\n")
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
    assert [(d.name, list(d.tasks)) for d in scheduler.dags()] == [("edited", ["a", "b"])]
    path.write_text(path.read_text().replace("sh: 'true'", "shh: 'true'"))
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 20))
    assert scheduler.dags() == []


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"auth": self.headers.get("Authorization"), **json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def hook() -> Iterator[str]:
    """A webhook endpoint on 127.0.0.1 that keeps what it receives."""
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_a_failure_notifies_the_webhook_whose_url_and_token_come_from_the_environment(
    hook: str, write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """on_failure: webhook with ${VAR} options posts the run's failure when it happens."""
    monkeypatch.setenv("PK_HOOK_URL", hook)
    monkeypatch.setenv("PK_HOOK_TOKEN", "t0k3n")
    path = write(
        """
        name: notified
        params: {ds: {type: date}}
        on_failure:
          - webhook:
              url: "${PK_HOOK_URL}"
              headers: {Authorization: "Bearer ${PK_HOOK_TOKEN}"}
        tasks:
          broken:
            sh: "echo disk full >&2; exit 2"
            on_failure: [{webhook: {url: "${PK_HOOK_URL}"}}]
        """
    )
    dag = from_yaml(path)
    assert "t0k3n" not in repr(dag.on_failure)
    run = dag.run(ds="2024-01-05", store=MemoryStore(), raise_on_failure=False)
    task_message, message = _Hook.received  # the task's notifier first, then the run's
    assert (task_message["kind"], task_message["task"], task_message["auth"]) == (
        "failure",
        "broken",
        None,
    )
    assert message["auth"] == "Bearer t0k3n"
    assert (message["kind"], message["dag"], message["run_id"]) == ("failure", "notified", run.id)
    assert message["failed_tasks"] == ["broken"]
    assert "exited with code 2; stderr ends: disk full" in message["error"]
