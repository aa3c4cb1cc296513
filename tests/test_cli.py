"""The ``pipekit`` command line, driven as a user drives it: in real subprocesses.

Every command runs as ``python -m pipekit ...`` (and through the installed console
script) with its own PIPEKIT_HOME, and the tests read its stdout, stderr and exit code.
The DAGs live in ``tests/cli_dags/``; their tasks read environment variables, so each
subprocess decides which dates break (``CLI_BROKEN``) and where task calls are logged
(``CLI_CALLS``), which is how calls are counted across processes.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

DAGS = Path(__file__).parent / "cli_dags"
DAILY = DAGS / "daily.py"
SEVERAL = DAGS / "several.py"
SCHEDULED = DAGS / "scheduled"
SCRIPT = Path(sys.executable).with_name("pipekit")
RUN_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{12}")

# Variables that would make rich colour or size its output as if it wrote to a terminal.
_TERMINAL_HINTS = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")

Proc = subprocess.CompletedProcess[str]


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this one, with its own PIPEKIT_HOME and wide output."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CLI_") and k not in _TERMINAL_HINTS
    }
    env.update(PIPEKIT_HOME=str(home), COLUMNS="200")
    env.update(extra)
    return env


def pipekit(
    *args: object, env: dict[str, str], cwd: Path | None = None, script: bool = False
) -> Proc:
    """Run the CLI (``python -m pipekit``, or the console script) and capture what it prints."""
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "pipekit"]
    return subprocess.run(
        [*command, *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pipekit_all(commands: Sequence[Sequence[object]], env: dict[str, str]) -> list[Proc]:
    """Run independent CLI commands at once (they touch no shared state); results in order."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda args: pipekit(*args, env=env), commands))


def run_id_of(out: str) -> str:
    """The id on the ``run <id>`` line a run's header prints."""
    found = re.search(rf"^run\s+({RUN_ID.pattern})\s*$", out, re.MULTILINE)
    assert found is not None, out
    return found.group(1)


def rows(out: str) -> dict[str, list[str]]:
    """The rows of the rich tables in ``out``, keyed by their first cell."""
    table: dict[str, list[str]] = {}
    for line in out.splitlines():
        if "│" in line or "┃" in line:  # a body row, or the header row
            cells = [c.strip() for c in re.split("[│┃]", line)]
            table[cells[0]] = cells
    return table


def calls(path: Path) -> list[tuple[str, str]]:
    """The (task, ISO date) pairs the DAG's tasks appended to ``path``, in call order."""
    if not path.exists():
        return []
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines())
    return [(name, day) for name, day in pairs]


def assert_usage_error(proc: Proc, *fragments: str) -> str:
    """Exit code 2, one ``error: ...`` line on stderr naming each fragment, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_click_usage(proc: Proc, *fragments: str) -> None:
    """Exit code 2 with click's usage message (``Usage:`` then ``Error: ...``), no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Usage: pipekit"), proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: "), error
    for fragment in fragments:
        assert fragment in error, (fragment, error)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A PIPEKIT_HOME for one test's subprocesses."""
    return tmp_path / "home"


# -- help and version --------------------------------------------------------------------

COMMANDS = ("run", "backfill", "rerun", "runs", "show", "graph", "list", "serve")


def test_help_of_the_group_and_every_command(home: Path) -> None:
    """``--help`` (and ``-h``) exits 0 for the group and each command, showing its usage."""
    procs = pipekit_all([["--help"], ["-h"], *([c, "--help"] for c in COMMANDS)], env=env_for(home))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
    group, short, *commands = procs
    assert group.stdout == short.stdout
    assert group.stdout.startswith("Usage: pipekit [OPTIONS] COMMAND")
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", group.stdout, re.MULTILINE), name
    for name, proc in zip(COMMANDS, commands, strict=True):
        assert proc.stdout.startswith(f"Usage: pipekit {name} "), proc.stdout
    backfill_help = commands[COMMANDS.index("backfill")].stdout
    for option in ("--start", "--end", "--max-active-runs", "--reprocess", "--dry-run"):
        assert option in backfill_help


def test_console_script_reports_version_and_runs_a_dag(home: Path) -> None:
    """The installed ``pipekit`` script answers ``--version`` and runs a DAG like ``-m pipekit``."""
    env = env_for(home)
    version = pipekit("--version", env=env, script=True)
    assert version.returncode == 0
    assert version.stdout.strip() == f"pipekit, version {importlib.metadata.version('pipekit')}"
    run = pipekit("run", DAILY, "-p", "ds=2024-01-05", env=env, script=True)
    assert run.returncode == 0, run.stderr
    assert re.search(r"^state\s+success\s*$", run.stdout, re.MULTILINE)


# -- run -----------------------------------------------------------------------------------


def test_run_succeeds_with_exit_0_and_shows_its_tasks(home: Path, tmp_path: Path) -> None:
    """A successful run exits 0 and prints its id, params and a row per task."""
    log = tmp_path / "calls.txt"
    env = env_for(home, CLI_CALLS=str(log))
    proc = pipekit("run", DAILY, "-p", "ds=2024-01-05", "-p", "region=us", env=env)
    assert proc.returncode == 0, proc.stderr
    assert RUN_ID.fullmatch(run_id_of(proc.stdout))
    assert re.search(r"^params\s+ds=2024-01-05 region=us\s*$", proc.stdout, re.MULTILINE)
    table = rows(proc.stdout)
    for tid in ("extract", "transform", "load", "report", "audit"):
        assert table[tid][1:3] == ["success", "1"], table[tid]
    assert "FAILED" not in proc.stdout
    assert sorted(calls(log)) == sorted(
        (t, "2024-01-05") for t in ("extract", "transform", "load", "report", "audit")
    )


def test_failed_run_exits_1_and_prints_each_failed_task_with_date_and_error(home: Path) -> None:
    """A failed run exits 1 with a ``FAILED <date>: <task>: <error>`` line per failed task."""
    env = env_for(home, CLI_BROKEN="2024-01-06", CLI_AUDIT_BROKEN="2024-01-06")
    proc = pipekit("run", DAILY, "-p", "ds=2024-01-06", env=env)
    assert proc.returncode == 1, proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
    assert sorted(failed) == [
        "FAILED 2024-01-06: audit: LookupError: audit trail missing for 2024-01-06",
        "FAILED 2024-01-06: load: ConnectionError: warehouse unreachable for 2024-01-06",
    ]
    table = rows(proc.stdout)
    assert table["load"][1] == "failed"
    assert table["report"][1:3] == ["upstream_failed", "0"]
    assert table["extract"][1] == "success"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_bad_usage_of_run_exits_2_with_one_line_and_no_traceback(home: Path) -> None:
    """Missing param, unknown DAG, missing file, bad -p, ambiguous file, ...: exit 2, one line."""
    cases = {
        "missing param": (["run", DAILY], ["parameter 'ds'", "-p ds="]),
        "unknown dag name": (
            ["run", f"{DAILY}:nope", "-p", "ds=2024-01-05"],
            ["no DAG named 'nope'", "its DAGs: daily"],
        ),
        "missing file": (["run", DAGS / "missing.py"], ["no such DAG file", "missing.py"]),
        "bad -p syntax": (["run", DAILY, "-p", "ds"], ["-p 'ds' is not key=value"]),
        "several dags": (
            ["run", SEVERAL],
            ["several DAGs (alpha, diamond)", f"{SEVERAL}:alpha"],
        ),
        "bad date value": (["run", DAILY, "-p", "ds=2024-13-45"], ["'ds'", "YYYY-MM-DD"]),
        "unknown param": (["run", DAILY, "-p", "ds=2024-01-05", "-p", "bogus=1"], ["'bogus'"]),
        "unknown module": (["run", "no_such_module:daily"], ["cannot import module"]),
        "empty ref": (["run", ":daily"], ["empty before ':'"]),
        "unknown store scheme": (["--store", "redis://x", "runs"], ["unknown scheme 'redis'"]),
    }
    procs = pipekit_all([args for args, _ in cases.values()], env=env_for(home))
    for (name, (_, fragments)), proc in zip(cases.items(), procs, strict=True):
        assert proc.stdout == "", name
        assert_usage_error(proc, *fragments)


def test_unknown_param_is_not_told_to_pass_itself(home: Path) -> None:
    """An unknown ``-p bogus=1`` is not answered with 'on the command line: -p bogus=VALUE'."""
    proc = pipekit("run", DAILY, "-p", "ds=2024-01-05", "-p", "bogus=1", env=env_for(home))
    line = assert_usage_error(proc, "'bogus'")
    assert "-p bogus=VALUE" not in line


def _package_in(cwd: Path) -> None:
    """Make ``shop.flows`` (a copy of daily.py) importable from ``cwd``."""
    (cwd / "shop").mkdir(parents=True)
    (cwd / "shop" / "__init__.py").write_text("")
    shutil.copy(DAILY, cwd / "shop" / "flows.py")


def test_run_by_module_reference_importable_from_cwd(home: Path, tmp_path: Path) -> None:
    """``package.module:name`` (and a one-DAG module alone) resolves against the cwd."""
    cwd = tmp_path / "project"
    _package_in(cwd)
    env = env_for(home)
    proc = pipekit("run", "shop.flows:daily", "-p", "ds=2024-01-05", env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^dag\s+daily\s*$", proc.stdout, re.MULTILINE)
    graph = pipekit("graph", "shop.flows", env=env, cwd=cwd)
    assert graph.returncode == 0, graph.stderr
    assert graph.stdout.startswith("daily (5 tasks)")


def test_console_script_resolves_module_reference_from_cwd(home: Path, tmp_path: Path) -> None:
    """The ``pipekit`` script finds ``package.module:name`` in the cwd, as ``-m pipekit`` does."""
    cwd = tmp_path / "project"
    _package_in(cwd)
    proc = pipekit(
        "run", "shop.flows:daily", "-p", "ds=2024-01-05", env=env_for(home), cwd=cwd, script=True
    )
    assert proc.returncode == 0, proc.stderr


def test_run_with_processes_executor_from_a_dag_file(home: Path) -> None:
    """``run file.py --executor processes`` runs the file's tasks in worker processes."""
    proc = pipekit(
        "run", DAILY, "-p", "ds=2024-01-05", "--executor", "processes", env=env_for(home)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_store_option_takes_a_path_or_a_sqlite_url(home: Path, tmp_path: Path) -> None:
    """``--store PATH`` and ``--store sqlite:///PATH`` name the same history, not PIPEKIT_HOME's."""
    env = env_for(home)
    db = tmp_path / "elsewhere.db"
    run = pipekit("--store", db, "run", DAILY, "-p", "ds=2024-01-05", env=env)
    assert run.returncode == 0, run.stderr
    run_id = run_id_of(run.stdout)
    by_url, default, shown = pipekit_all(
        [
            ["--store", f"sqlite:///{db}", "runs"],
            ["runs"],
            ["--store", f"sqlite:///{db}", "show", run_id],
        ],
        env=env,
    )
    assert by_url.returncode == 0, by_url.stderr
    assert list(rows(by_url.stdout))[1:] == [run_id]  # the header row, then the run
    assert default.returncode == 0
    assert default.stdout == ""
    assert default.stderr.strip() == "no runs"
    assert shown.returncode == 0, shown.stderr
    assert run_id_of(shown.stdout) == run_id


# -- backfill ------------------------------------------------------------------------------


def test_backfill_failures_exit_1_and_rerunning_redoes_only_failed_tasks(
    home: Path, tmp_path: Path
) -> None:
    """Failed dates exit 1, each shown with task and error; the same command redoes only those."""
    log = tmp_path / "calls.txt"
    args = ["backfill", DAILY, "--start", "2024-02-01", "--end", "2024-02-05"]
    args += ["--max-active-runs", "2"]
    broken = env_for(home, CLI_CALLS=str(log), CLI_BROKEN="2024-02-02,2024-02-04")
    first = pipekit(*args, env=broken)
    assert first.returncode == 1, first.stderr
    out = first.stdout
    assert "5 dates, 3 succeeded, 2 failed, 0 skipped, 0 not run" in out
    for day in ("2024-02-02", "2024-02-04"):
        expected = rf"^  {day}: load failed: ConnectionError: warehouse unreachable for {day}"
        assert re.search(rf"{expected}  \[run {RUN_ID.pattern}\]$", out, re.MULTILINE), out
    assert f"pipekit backfill {DAILY} --start 2024-02-01 --end 2024-02-05" in out
    assert "Traceback" not in out + first.stderr
    assert "%|" not in first.stderr  # no progress bar when stderr is not a terminal
    assert len(calls(log)) == 5 * 4 + 3  # extract, transform, load, audit; report when loaded

    before = len(calls(log))
    second = pipekit(*args, env=env_for(home, CLI_CALLS=str(log)))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "5 dates, 2 succeeded, 0 failed, 3 skipped, 0 not run" in second.stdout
    assert sorted(calls(log)[before:]) == [
        ("load", "2024-02-02"),
        ("load", "2024-02-04"),
        ("report", "2024-02-02"),
        ("report", "2024-02-04"),
    ]


@pytest.mark.parametrize("reprocess", [[], ["--reprocess", "none"], ["--reprocess=all"]])
def test_backfill_rerun_hint_reruns_only_the_failed_tasks(
    home: Path, tmp_path: Path, reprocess: list[str]
) -> None:
    """The command the failure summary suggests re-runs only the failed tasks of that
    backfill, also when the first one was given another --reprocess."""
    log = tmp_path / "calls.txt"
    args = ["backfill", DAILY, "--start", "2024-02-01", "--end", "2024-02-02", "-p", "region=us"]
    args += reprocess
    first = pipekit(*args, env=env_for(home, CLI_CALLS=str(log), CLI_BROKEN="2024-02-02"))
    assert first.returncode == 1
    hint = first.stdout.strip().splitlines()[-1]
    prefix = "re-run only the failed tasks with pipekit "
    assert hint.startswith(prefix), hint
    assert "--reprocess" not in hint
    before = len(calls(log))
    again = pipekit(*shlex.split(hint[len(prefix) :]), env=env_for(home, CLI_CALLS=str(log)))
    assert again.returncode == 0, again.stdout
    assert sorted(calls(log)[before:]) == [("load", "2024-02-02"), ("report", "2024-02-02")]


def test_backfill_prints_every_failed_task_of_a_date(home: Path) -> None:
    """A date with two failed tasks prints both tasks and both errors."""
    env = env_for(home, CLI_BROKEN="2024-02-01", CLI_AUDIT_BROKEN="2024-02-01")
    proc = pipekit("backfill", DAILY, "--start", "2024-02-01", "--end", "2024-02-01", env=env)
    assert proc.returncode == 1
    assert "warehouse unreachable for 2024-02-01" in proc.stdout
    assert "audit trail missing for 2024-02-01" in proc.stdout


def test_backfill_dry_run_exits_0_and_records_nothing(home: Path, tmp_path: Path) -> None:
    """``--dry-run`` lists what would run, exits 0, calls no task and records no run."""
    log = tmp_path / "calls.txt"
    env = env_for(home, CLI_CALLS=str(log), CLI_BROKEN="2024-03-02")
    proc = pipekit(
        "backfill", DAILY, "--start", "2024-03-01", "--end", "2024-03-03", "--dry-run", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "backfill of daily (3 dates, dry run): nothing was run",
        "  2024-03-01: run (no run yet)",
        "  2024-03-02: run (no run yet)",
        "  2024-03-03: run (no run yet)",
    ]
    assert calls(log) == []
    history = pipekit("runs", env=env)
    assert history.returncode == 0
    assert history.stderr.strip() == "no runs"


def test_backfill_reverse_runs_newest_date_first(home: Path, tmp_path: Path) -> None:
    """``--reverse`` (with --delay and one run at a time) starts the newest date first."""
    log = tmp_path / "calls.txt"
    proc = pipekit(
        "backfill",
        DAILY,
        "--start",
        "2024-05-01",
        "--end",
        "2024-05-03",
        "--reverse",
        "--delay",
        "0.001",
        env=env_for(home, CLI_CALLS=str(log)),
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 dates, 3 succeeded" in proc.stdout
    extracted = [day for name, day in calls(log) if name == "extract"]
    assert extracted == ["2024-05-03", "2024-05-02", "2024-05-01"]


def test_backfill_max_failures_stops_launching_dates(home: Path, tmp_path: Path) -> None:
    """``--max-failures 1`` starts no date after the first failure and exits 1 naming the rest."""
    log = tmp_path / "calls.txt"
    proc = pipekit(
        "backfill",
        DAILY,
        "--start",
        "2024-04-01",
        "--end",
        "2024-04-04",
        "--max-failures",
        "1",
        env=env_for(home, CLI_CALLS=str(log), CLI_BROKEN="2024-04-01"),
    )
    assert proc.returncode == 1, proc.stderr
    assert "4 dates, 0 succeeded, 1 failed, 0 skipped, 3 not run" in proc.stdout
    assert "  2024-04-01: load failed: ConnectionError" in proc.stdout
    assert "not run: 2024-04-02, 2024-04-03, 2024-04-04" in proc.stdout
    assert {day for _, day in calls(log)} == {"2024-04-01"}


def test_bad_usage_of_backfill_exits_2(home: Path) -> None:
    """A bad date, start after end, an unknown --reprocess or a missing --start exit 2."""
    base = ["backfill", DAILY]
    bad_date, backwards, reprocess, no_start = pipekit_all(
        [
            [*base, "--start", "2024-03-01", "--end", "2024-03-0x"],
            [*base, "--start", "2024-03-05", "--end", "2024-03-01"],
            [*base, "--start", "2024-03-01", "--end", "2024-03-02", "--reprocess", "sometimes"],
            [*base, "--end", "2024-03-02"],
        ],
        env=env_for(home),
    )
    assert_usage_error(bad_date, "end='2024-03-0x' is not a date", "YYYY-MM-DD")
    assert_usage_error(backwards, "start='2024-03-05' is after end='2024-03-01'")
    assert_click_usage(reprocess, "'--reprocess'", "'sometimes'", "'failed', 'all', 'none'")
    assert_click_usage(no_start, "'--start'")


def test_start_after_end_points_to_the_reverse_option(home: Path) -> None:
    """Start after end is answered with the ``--reverse`` option, not a Python keyword."""
    proc = pipekit(
        "backfill", DAILY, "--start", "2024-03-05", "--end", "2024-03-01", env=env_for(home)
    )
    line = assert_usage_error(proc)
    assert "--reverse" in line


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_backfill_shows_a_progress_bar_on_a_terminal(home: Path) -> None:
    """With stderr on a terminal, backfill draws a progress bar over its dates."""
    import fcntl
    import pty
    import struct
    import termios

    dates = ("--start", "2024-06-01", "--end", "2024-06-03")
    master, slave = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipekit", "backfill", DAILY, *dates],
            env=env_for(home),
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        os.close(slave)
        reader.start()
        out, _ = proc.communicate(timeout=60)
        reader.join(timeout=60)
    finally:
        os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, terminal
    assert "3 dates, 3 succeeded" in out
    assert re.search(r"daily: 100%\|.*\| 3/3", terminal), terminal


# -- rerun ---------------------------------------------------------------------------------


def test_rerun_fails_again_then_succeeds_once_fixed_then_forces_tasks(
    home: Path, tmp_path: Path
) -> None:
    """rerun exits 1 while the cause remains, 0 once fixed (same id), and --task forces tasks."""
    log = tmp_path / "calls.txt"
    broken = env_for(home, CLI_CALLS=str(log), CLI_BROKEN="2024-01-06")
    fixed = env_for(home, CLI_CALLS=str(log))
    run_id = run_id_of(pipekit("run", DAILY, "-p", "ds=2024-01-06", env=broken).stdout)

    again = pipekit("rerun", run_id, env=broken)
    assert again.returncode == 1, again.stderr
    assert run_id_of(again.stdout) == run_id
    assert (
        "FAILED 2024-01-06: load: ConnectionError: warehouse unreachable for 2024-01-06"
        in again.stdout.splitlines()
    )
    assert rows(again.stdout)["load"][1:3] == ["failed", "2"]

    before = len(calls(log))
    ok = pipekit("rerun", run_id, env=fixed)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert run_id_of(ok.stdout) == run_id
    assert re.search(r"^state\s+success\s*$", ok.stdout, re.MULTILINE)
    assert sorted(calls(log)[before:]) == [("load", "2024-01-06"), ("report", "2024-01-06")]
    assert rows(ok.stdout)["load"][1:3] == ["success", "3"]

    before = len(calls(log))
    forced = pipekit("rerun", run_id, "--task", "transform", env=fixed)
    assert forced.returncode == 0, forced.stderr
    assert [name for name, _ in calls(log)[before:]] == ["transform", "load", "report"]
    assert rows(forced.stdout)["transform"][1:3] == ["success", "2"]
    assert rows(forced.stdout)["extract"][1:3] == ["success", "1"]

    unknown_task = pipekit("rerun", run_id, "--task", "nope", env=fixed)
    assert_usage_error(unknown_task, "no task 'nope'", "its tasks are: extract, audit, transform")


def test_rerun_and_show_agree_on_a_task_duration(home: Path) -> None:
    """After a re-run, ``rerun`` and ``show`` print the same duration for the re-run task."""
    broken = env_for(home, CLI_BROKEN="2024-01-06")
    run_id = run_id_of(pipekit("run", DAILY, "-p", "ds=2024-01-06", env=broken).stdout)
    env = env_for(home)
    rerun = pipekit("rerun", run_id, env=env)
    assert rerun.returncode == 0
    shown = pipekit("show", run_id, env=env)
    assert rows(rerun.stdout)["load"][3] == rows(shown.stdout)["load"][3]


def test_unknown_run_id_exits_2(home: Path) -> None:
    """``rerun`` and ``show`` of an id the history lacks exit 2 with a one-line message."""
    unknown = [["rerun", "20240101T000000-000000000000"], ["show", "nope"]]
    for proc in pipekit_all(unknown, env_for(home)):
        assert proc.stdout == ""
        assert_usage_error(proc, "no run")


def test_unknown_run_id_message_points_to_pipekit_runs(home: Path) -> None:
    """An unknown run id is answered by pointing at ``pipekit runs``, not store internals."""
    proc = pipekit("show", "nope", env=env_for(home))
    line = assert_usage_error(proc, "'nope'")
    assert "pipekit runs" in line
    assert "RunStarted" not in line


# -- runs and show -------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """A PIPEKIT_HOME holding three runs, oldest first: ok (daily), failed (daily), diamond."""

    env: dict[str, str]
    ok: str
    failed: str
    diamond: str


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Three runs recorded one after another by the CLI, shared by the read-only tests."""
    env = env_for(tmp_path_factory.mktemp("history") / "home")
    ok = pipekit("run", DAILY, "-p", "ds=2024-01-01", env=env)
    failed = pipekit("run", DAILY, "-p", "ds=2024-01-02", env={**env, "CLI_BROKEN": "2024-01-02"})
    diamond = pipekit("run", f"{SEVERAL}:diamond", "-p", "n=5", env=env)
    assert (ok.returncode, failed.returncode, diamond.returncode) == (0, 1, 0)
    return History(env, run_id_of(ok.stdout), run_id_of(failed.stdout), run_id_of(diamond.stdout))


def test_runs_lists_newest_first_and_filters(history: History) -> None:
    """``runs`` lists id, dag, params, state newest first; --dag, --state and --limit filter."""
    every, by_dag, by_state, limited, none = pipekit_all(
        [
            ["runs"],
            ["runs", "--dag", "daily"],
            ["runs", "--state", "failed"],
            ["runs", "--limit", "1"],
            ["runs", "--dag", "diamond", "--state", "failed"],
        ],
        env=history.env,
    )
    for proc in (every, by_dag, by_state, limited, none):
        assert proc.returncode == 0, proc.stderr
    table = rows(every.stdout)
    header, *ids = table
    assert table[header][:4] == ["run id", "dag", "params", "state"]
    assert ids == [history.diamond, history.failed, history.ok]
    assert table[history.failed][1:4] == ["daily", "ds=2024-01-02 region=eu", "failed"]
    assert table[history.diamond][1:4] == ["diamond", "n=5", "success"]
    assert list(rows(by_dag.stdout))[1:] == [history.failed, history.ok]
    assert list(rows(by_state.stdout))[1:] == [history.failed]
    assert list(rows(limited.stdout))[1:] == [history.diamond]
    assert none.stdout == ""
    assert none.stderr.strip() == "no runs"


def test_bad_usage_of_runs_exits_2(history: History) -> None:
    """An unknown --state or a --limit below 1 is click's usage error, exit 2."""
    state, limit = pipekit_all(
        [["runs", "--state", "broken"], ["runs", "--limit", "0"]], env=history.env
    )
    assert_click_usage(state, "'--state'", "'broken'")
    assert_click_usage(limit, "'--limit'")


def test_narrow_terminal_never_cuts_a_run_id(history: History) -> None:
    """With COLUMNS=40, ``runs`` and ``show`` print every run id whole on one line."""
    narrow = {**history.env, "COLUMNS": "40"}
    listed, shown = pipekit_all([["runs"], ["show", history.failed]], env=narrow)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    for run_id in (history.ok, history.failed, history.diamond):
        assert any(run_id in line for line in lines), listed.stdout
    assert shown.returncode == 0
    assert run_id_of(shown.stdout) == history.failed


def test_show_prints_each_task_and_the_failed_task_error_with_traceback(
    history: History,
) -> None:
    """``show`` prints the run, a row per task (state, attempts), and the failure's traceback."""
    proc = pipekit("show", history.failed, env=history.env)
    assert proc.returncode == 0, proc.stderr
    assert run_id_of(proc.stdout) == history.failed
    assert re.search(r"^state\s+failed\s*$", proc.stdout, re.MULTILINE)
    table = rows(proc.stdout)
    assert table["extract"][1:3] == ["success", "1"]
    assert table["load"][1:3] == ["failed", "1"]
    assert table["load"][4] == "ConnectionError: warehouse unreachable for 2024-01-02"
    assert table["report"][1:3] == ["upstream_failed", "0"]
    assert "load (attempt 1)" in proc.stdout
    after = proc.stdout.split("load (attempt 1)", 1)[1]
    assert "Traceback (most recent call last)" in after
    assert 'raise ConnectionError(f"warehouse unreachable' in after
    assert after.rstrip().endswith("ConnectionError: warehouse unreachable for 2024-01-02")


# -- graph and list ------------------------------------------------------------------------


def test_graph_in_ascii_mermaid_and_dot(home: Path) -> None:
    """``graph`` prints tasks with their upstreams (ascii), mermaid edges, or a dot digraph."""
    diamond = f"{SEVERAL}:diamond"
    ascii_, mermaid, dot, single, bad = pipekit_all(
        [
            ["graph", diamond],
            ["graph", diamond, "--format", "mermaid"],
            ["graph", diamond, "--format", "dot"],
            ["graph", DAILY],
            ["graph", diamond, "--format", "svg"],
        ],
        env=env_for(home),
    )
    for proc in (ascii_, mermaid, dot, single):
        assert proc.returncode == 0, proc.stderr
    lines = [line.rstrip() for line in ascii_.stdout.splitlines()]
    assert lines[0] == "diamond (4 tasks)"
    assert [line.split() for line in lines[1:]] == [
        ["a"],
        ["b", "<-", "a"],
        ["c", "<-", "a"],
        ["d", "<-", "b,", "c"],
    ]
    assert mermaid.stdout.splitlines()[0] == "graph TD"
    edges = {line.strip() for line in mermaid.stdout.splitlines()[1:]}
    assert edges == {"a --> b", "a --> c", "b --> d", "c --> d"}
    assert dot.stdout.startswith('digraph "diamond" {')
    assert dot.stdout.rstrip().endswith("}")
    arrows = set(re.findall(r'"(\w+)" -> "(\w+)";', dot.stdout))
    assert arrows == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert single.stdout.startswith("daily (5 tasks)")
    assert re.search(r"^\s+report\s+<- load$", single.stdout, re.MULTILINE)
    assert_click_usage(bad, "'--format'", "'svg'")


def test_list_shows_the_dags_of_a_file_or_folder(home: Path, tmp_path: Path) -> None:
    """``list`` shows name, schedule and params per DAG; no DAG or no path exits 2."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "helpers.py").write_text("VALUE = 1\n")
    one_file, folder, nothing, missing = pipekit_all(
        [["list", SEVERAL], ["list", DAGS], ["list", empty], ["list", tmp_path / "nowhere"]],
        env=env_for(home),
    )
    assert one_file.returncode == 0, one_file.stderr
    table = rows(one_file.stdout)
    assert table["dag"] == ["dag", "file", "schedule", "tasks", "params"]
    assert table["alpha"] == ["alpha", str(SEVERAL), "@daily", "1", "ds"]
    assert table["diamond"] == ["diamond", str(SEVERAL), "-", "4", "n=3"]
    assert folder.returncode == 0, folder.stderr
    table = rows(folder.stdout)
    assert set(table) - {"dag"} == {"daily", "alpha", "diamond", "latest_only", "three_days"}
    assert table["daily"][2:] == ["-", "5", "ds, region='eu'"]
    assert table["three_days"][1:3] == [str(SCHEDULED / "three_days.py"), "@daily"]
    assert_usage_error(nothing, "no DAG found in", "empty")
    assert_usage_error(missing, "no such file or folder", "nowhere")


# -- serve ---------------------------------------------------------------------------------


def test_serve_once_starts_due_intervals_once(home: Path) -> None:
    """``serve --once`` runs each due interval (exit 1 if one fails); a second pass starts none."""
    today = dt.datetime.now(dt.UTC).date()
    days = [(today - dt.timedelta(days=n)).isoformat() for n in (3, 2, 1)]
    yesterday = days[-1]
    env = env_for(home, CLI_BROKEN=yesterday, COLUMNS="40")
    first = pipekit("serve", SCHEDULED, "--once", env=env)
    second = pipekit("serve", SCHEDULED, "--once", env=env)
    listed = pipekit("runs", "--limit", "100", env=env_for(home))
    if dt.datetime.now(dt.UTC).date() != today:
        pytest.skip("the UTC date changed while serving; the due intervals moved")
    assert first.returncode == 1, first.stderr
    started = set()
    for line in first.stdout.splitlines():
        if RUN_ID.match(line):  # whole ids, even at 40 columns
            run_id, dag_name, params, state = line.split()
            assert RUN_ID.fullmatch(run_id)
            started.add((dag_name, params, state))
    assert started == {
        ("latest_only", f"ds={yesterday}", "success"),
        ("three_days", f"ds={days[0]}", "success"),
        ("three_days", f"ds={days[1]}", "success"),
        ("three_days", f"ds={yesterday}", "failed"),
    }
    failure = f"FAILED {yesterday}: count: ValueError: no rows for {yesterday}"
    assert failure in " ".join(first.stdout.split())  # rich wraps it at 40 columns
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert len(rows(listed.stdout)) - 1 == 4


def test_serve_of_a_missing_path_exits_2(home: Path, tmp_path: Path) -> None:
    """``serve`` of a path that does not exist exits 2 naming it."""
    proc = pipekit("serve", tmp_path / "nowhere", "--once", env=env_for(home))
    assert_usage_error(proc, "no such file or folder", "nowhere")


BRACKETS = """\
from pipekit import dag, task

@task(name="load[us]")
def load(pattern: str) -> None:
    raise ValueError("missing column [amount] in [/data/us.csv] for " + pattern)

@dag
def brackets(pattern: str) -> None:
    load(pattern)
"""


def test_recorded_text_with_brackets_is_printed_as_recorded(home: Path, tmp_path: Path) -> None:
    """Task ids, params and errors are not read as rich markup: brackets stay, and a
    '[/...]' in an error is not taken for a closing tag (which crashed show and run)."""
    dag_file = tmp_path / "brackets.py"
    dag_file.write_text(BRACKETS)
    env = env_for(home)
    ran = pipekit("run", f"{dag_file}:brackets", "-p", "pattern=[a-z]*.csv", env=env)
    assert ran.returncode == 1, ran.stderr
    error = "missing column [amount] in [/data/us.csv] for [a-z]*.csv"
    assert f"FAILED load[us]: ValueError: {error}" in ran.stdout
    run_id = run_id_of(ran.stdout)
    shown = pipekit("show", run_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "pattern=[a-z]*.csv" in shown.stdout
    assert "load[us]" in shown.stdout and "[amount]" in shown.stdout
    listed = pipekit("runs", env=env)
    assert "pattern=[a-z]*.csv" in listed.stdout
    assert "Traceback" not in ran.stderr + shown.stderr + listed.stderr


def test_runs_state_filter_accepts_any_case(home: Path, tmp_path: Path) -> None:
    """--state FAILED lists the failed runs, as --state failed does."""
    dag_file = tmp_path / "brackets.py"
    dag_file.write_text(BRACKETS)
    env = env_for(home)
    ran = pipekit("run", f"{dag_file}:brackets", "-p", "pattern=x", env=env)
    upper = pipekit("runs", "--state", "FAILED", env=env)
    assert upper.returncode == 0, upper.stderr
    assert RUN_ID.findall(upper.stdout) == [run_id_of(ran.stdout)]


def test_list_and_validate_report_a_dag_name_defined_in_two_files(
    home: Path, tmp_path: Path
) -> None:
    """Two files defining the same DAG name: list exits 1 and validate exits 2, naming both."""
    for team in ("sales", "hr"):
        (tmp_path / team).mkdir()
        (tmp_path / team / "daily.yml").write_text("name: daily\ntasks:\n  work: {sh: echo hi}\n")
    env = env_for(home)
    listed = pipekit("list", str(tmp_path), env=env)
    assert listed.returncode == 1, listed.stdout + listed.stderr
    [line] = [x for x in listed.stderr.splitlines() if "defined 2 times" in x]
    assert line.startswith("error: DAG name 'daily' is defined 2 times")
    assert "sales" in line and "hr" in line
    checked = pipekit("validate", str(tmp_path), env=env)
    assert checked.returncode == 2
    assert "DAG name 'daily' is defined 2 times" in checked.stderr


def test_reading_a_store_path_that_does_not_exist_is_an_error_not_a_new_file(
    home: Path, tmp_path: Path
) -> None:
    """A mistyped --store for runs/show/rerun says so, and creates no empty history."""
    env = env_for(home)
    typo = tmp_path / "histroy.db"
    for args in (["runs"], ["show", "20240105T000000-0123456789ab"], ["rerun", "x"]):
        proc = pipekit("--store", typo, *args, env=env)
        assert_usage_error(proc, f"no run history at {str(typo)!r}", "--store")
    assert not typo.exists()


def test_a_sqlite_url_with_two_slashes_says_how_many_it_needs(home: Path) -> None:
    """sqlite://history.db is a known scheme with too few slashes, not an unknown one."""
    proc = pipekit("--store", "sqlite://history.db", "runs", env=env_for(home))
    assert_usage_error(proc, "needs three slashes", "sqlite:///history.db")
