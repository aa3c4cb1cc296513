"""Every command of the CLI with YAML DAG files, in real subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.declarative.conftest import DAGS, Write

REPORT = DAGS / "report.yml"
RUN_ID = re.compile(r"^run\s+(\d{8}T\d{6}-[0-9a-f]{12})\s*$", re.MULTILINE)

Proc = subprocess.CompletedProcess[str]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A CLI environment: its own PIPEKIT_HOME, report database and calls file; wide output."""
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("YAML_") and k not in ("FORCE_COLOR", "COLUMNS", "LINES")
    }
    out.update(
        PIPEKIT_HOME=str(tmp_path / "home"),
        YAML_DB=str(tmp_path / "report.db"),
        YAML_CALLS=str(tmp_path / "calls.txt"),
        COLUMNS="200",
    )
    return out


def pipekit(*args: object, env: dict[str, str], cwd: Path | None = None) -> Proc:
    """Run ``python -m pipekit ...`` and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "pipekit", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_fail_show_and_rerun_from_another_directory(
    env: dict[str, str], tmp_path: Path
) -> None:
    """run exits 1 naming the failure; show prints it; rerun (elsewhere) finishes the run."""
    failed = pipekit("run", REPORT, "-p", "ds=2024-01-05", env={**env, "YAML_BROKEN": "2024-01-05"})
    assert failed.returncode == 1, failed.stderr
    assert "FAILED 2024-01-05: publish: CommandFailed: command of task 'publish' exited" in (
        failed.stdout
    )
    found = RUN_ID.search(failed.stdout)
    assert found is not None, failed.stdout
    run_id = found.group(1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    show = pipekit("show", run_id, env=env)
    assert show.returncode == 0 and "cannot publish 2024-01-05" in show.stdout
    rerun = pipekit("rerun", run_id, env=env, cwd=elsewhere)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert run_id in rerun.stdout and "success" in rerun.stdout
    assert Path(env["YAML_CALLS"]).read_text().splitlines() == [
        "summarize 2024-01-05",
        "publish 2024-01-05 eu",
        "publish 2024-01-05 eu",
    ]
    runs = pipekit("runs", "--dag", "yaml_report", env=env)
    assert runs.returncode == 0 and run_id in runs.stdout


def test_backfill_reports_failed_dates_and_exits_1(env: dict[str, str]) -> None:
    """backfill runs each date of the YAML DAG; a failed date is named and the exit code is 1."""
    proc = pipekit(
        "backfill",
        REPORT,
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-03",
        env={**env, "YAML_BROKEN": "2024-01-02"},
    )
    assert proc.returncode == 1, proc.stderr
    assert "backfill of yaml_report: 3 dates, 2 succeeded, 1 failed" in proc.stdout
    assert "2024-01-02" in proc.stdout


def test_graph_list_validate_and_schema(env: dict[str, str], write: Write, tmp_path: Path) -> None:
    """The read-only commands, run at once: they share nothing."""
    bad = write(
        """
        tasks:
          a: {sh: "true", retires: 1}
          b: {sql: "SELECT 1", conn: nowhere}
        """,
        "bad.yml",
    )
    commands = [
        ["graph", REPORT],
        ["graph", REPORT, "--format", "mermaid"],
        ["list", DAGS / "mixed"],
        ["validate", REPORT, DAGS / "mixed"],
        ["validate", REPORT, bad],
        ["schema"],
        ["list", tmp_path / "nothing-here"],
    ]
    with ThreadPoolExecutor(len(commands)) as pool:
        graph, mermaid, listed, ok, problems, schema, missing = pool.map(
            lambda args: pipekit(*args, env=env), commands
        )
    assert graph.returncode == 0
    assert graph.stdout.splitlines()[:3] == [
        "yaml_report (5 tasks)",
        "load",
        "  zones[north]  <- load",
    ]
    assert mermaid.returncode == 0
    assert "load --> zones_north__" in mermaid.stdout and '["zones[north]"]' in mermaid.stdout
    assert listed.returncode == 0
    rows = [line for line in listed.stdout.splitlines() if "│" in line]
    assert [r.split("│")[0].strip() for r in rows] == ["mixed_python", "mixed_yaml"]
    assert "settings.yaml" not in listed.stdout
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f"{REPORT}: ok",
        f"{DAGS / 'mixed' / 'daily_py.py'}: ok (1 DAG)",
        f"{DAGS / 'mixed' / 'daily_yaml.yml'}: ok",
    ]
    assert problems.returncode == 2
    assert problems.stderr.splitlines() == [
        f"{bad}:2: task 'a', key 'retires': unknown key; did you mean 'retries'? (allowed here: "
        "sh, sql, sql_file, python, args, description, depends_on, for_each, output, retries, "
        "retry_delay, retry_backoff, retry_max_delay, retry_jitter, timeout, conn, cwd, env, "
        "on_failure, on_success, on_retry)",
        f"{bad}:3: task 'b', key 'conn': 'nowhere' is not a connection; connections: none "
        "declared (or give a URL)",
    ]
    assert problems.stdout == f"{REPORT}: ok\n"
    assert schema.returncode == 0
    document = json.loads(schema.stdout)
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(document)
    from pipekit.declarative._yaml import read_source

    for file in (
        REPORT,
        DAGS / "mixed" / "daily_yaml.yml",
        DAGS.parents[2] / "examples" / "dags" / "flights_marts.yml",
    ):
        errors = list(Draft202012Validator(document).iter_errors(read_source(file).data))
        assert errors == [], (file, errors)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no such file or folder")


def test_serve_once_schedules_python_and_yaml_files_of_a_folder(
    env: dict[str, str], write: Write, tmp_path: Path
) -> None:
    """serve --once starts the latest interval of each DAG in the folder, YAML and Python."""
    write(
        """
        name: served_yaml
        schedule: "@daily"
        start: 2024-01-01
        catchup: false
        params: {ds: {type: date}}
        tasks:
          hello: {sh: [echo, "${ds}"]}
        """,
        "flows/served.yml",
    )
    write(
        """
        import datetime as dt
        from pipekit import dag, task

        @task
        def hello(ds: dt.date) -> str:
            return str(ds)

        @dag(schedule="@daily", start="2024-01-01", catchup=False)
        def served_python(ds: dt.date) -> None:
            hello(ds)
        """,
        "flows/served.py",
    )
    proc = pipekit("serve", tmp_path / "flows", "--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(line.split()[1] + " " + line.split()[-1] for line in proc.stdout.splitlines())
    assert lines == ["served_python success", "served_yaml success"]


def test_list_names_each_broken_file_and_still_lists_the_others(
    env: dict[str, str], write: Write, tmp_path: Path
) -> None:
    """A folder with one good DAG file and two broken ones: the good one is listed, exit 1."""
    write(
        """
        tasks:
          hello: {sh: "echo hi"}
        """,
        "dags/fine.yml",
    )
    write(
        """
        tasks:
          a: {sh: "true", retires: 1}
        """,
        "dags/typo.yml",
    )
    write('raise RuntimeError("boom at import")\n', "dags/broken.py")
    listed = pipekit("list", tmp_path / "dags", env=env)
    assert listed.returncode == 1
    rows = [line for line in listed.stdout.splitlines() if "│" in line]
    assert [r.split("│")[0].strip() for r in rows] == ["fine"]
    errors = listed.stderr.splitlines()
    assert len(errors) == 2
    assert any("typo.yml:2" in e and "did you mean 'retries'" in e for e in errors)
    assert any("broken.py" in e and "boom at import" in e for e in errors)

    alone = pipekit("list", tmp_path / "dags" / "typo.yml", env=env)  # one file: as before
    assert alone.returncode == 2
    assert alone.stderr.startswith("error: ") and "typo.yml:2" in alone.stderr
