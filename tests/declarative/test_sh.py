"""The sh operator: real commands, params only as data, exit codes, logs and timeouts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pipekit import TaskTimeout
from pipekit.declarative import CommandFailed, from_yaml
from pipekit.stores import MemoryStore
from tests.declarative.conftest import Write

INJECTIONS = [
    'x"; touch pwned; echo "',
    "$(touch pwned)",
    "`touch pwned`",
    "x; touch pwned",
    "x' && touch pwned && echo '",
    "${IFS}touch${IFS}pwned",
]


def run_one(path: Path, **params: object) -> object:
    """Run the DAG at ``path`` in this process and return its Run."""
    return from_yaml(path).run(store=MemoryStore(), raise_on_failure=False, **params)


@pytest.mark.parametrize("value", INJECTIONS)
def test_string_form_passes_params_only_as_environment_variables(
    value: str, write: Write, tmp_path: Path
) -> None:
    """A param value full of shell syntax is data: echoed back as is, nothing else runs."""
    path = write(
        """
        params: {name: {type: str}}
        tasks:
          greet: {sh: 'printf "[%s]" "$name"'}
        """
    )
    run = run_one(path, name=value)
    assert run.state == "success", run.tasks["greet"].error  # type: ignore[attr-defined]
    assert run.tasks["greet"].result == f"[{value}]"  # type: ignore[attr-defined]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", INJECTIONS)
def test_list_form_passes_a_param_as_one_argument_without_a_shell(
    value: str, write: Write, tmp_path: Path
) -> None:
    """${name} in an argument list is replaced by the value, inside that one argument."""
    path = write(
        """
        params: {name: {type: str}}
        tasks:
          args: {sh: [printf, "%s|", "--name=${name}", "${name}", "$${name}", "$name"]}
        """
    )
    run = run_one(path, name=value)
    result = run.tasks["args"].result  # type: ignore[attr-defined]
    assert result == f"--name={value}|{value}|${{name}}|$name|"  # $${ and $name stay literal
    assert not (tmp_path / "pwned").exists()


def test_commands_see_params_ids_and_env_and_run_in_the_file_folder_or_cwd(
    write: Write, tmp_path: Path
) -> None:
    """Dates as ISO text, bools as true/false, PIPEKIT_ ids, env:, and cwd: relative to the file."""
    (tmp_path / "sub").mkdir()
    path = write(
        """
        params:
          ds: {type: date}
          full: {type: bool, default: true}
          n: {type: int, default: 3}
        defaults:
          env: {GREETING: hello, LEVEL: 2}
        tasks:
          show:
            sh: 'echo "$ds $full $n $GREETING $LEVEL $PIPEKIT_DAG $PIPEKIT_TASK $PIPEKIT_ATTEMPT"'
            env: {LEVEL: 5}
          ids: {sh: 'echo "$PIPEKIT_RUN_ID"'}
          here: {sh: pwd}
          there: {sh: pwd, cwd: sub}
        """
    )
    run = run_one(path, ds="2024-01-05")
    tasks = run.tasks  # type: ignore[attr-defined]
    assert tasks["show"].result == "2024-01-05 true 3 hello 5 dag show 1"
    assert tasks["ids"].result == run.id  # type: ignore[attr-defined]
    assert tasks["here"].result == str(tmp_path)
    assert tasks["there"].result == str(tmp_path / "sub")


def test_a_non_zero_exit_fails_with_the_code_and_the_last_stderr_lines(write: Write) -> None:
    """CommandFailed holds the exit code and stderr's tail; the run records it."""
    path = write(
        """
        tasks:
          fail:
            sh: |
              for i in $(seq 1 30); do echo "line $i" >&2; done
              exit 7
        """
    )
    run = run_one(path)
    error = run.tasks["fail"].error or ""  # type: ignore[attr-defined]
    first = error.splitlines()[0]
    assert first == "CommandFailed: command of task 'fail' exited with code 7; stderr ends: line 30"
    assert "line 11" in error and "line 30" in error and "line 10\n" not in error
    dag = from_yaml(path)
    with pytest.raises(CommandFailed) as caught:
        dag.tasks["fail"].task.fn()
    assert caught.value.returncode == 7
    assert caught.value.stderr.splitlines()[-1] == "line 30"
    assert len(caught.value.stderr.splitlines()) == 20


def test_output_lines_become_log_events_of_the_task(write: Write) -> None:
    """Each stdout and stderr line is an sh_output event bound to dag, run, task and attempt."""
    path = write(
        """
        tasks:
          talk: {sh: 'echo out1; echo err1 >&2; echo out2'}
        """
    )
    with capture_logs() as logs:
        run = from_yaml(path).run(store=MemoryStore(), executor="sequential")
    lines = [
        (e["stream"], e["line"], e["task"], e["attempt"], e["run_id"])
        for e in logs
        if e["event"] == "sh_output"
    ]
    assert sorted(lines) == sorted(
        [
            ("stdout", "out1", "talk", 1, run.id),
            ("stdout", "out2", "talk", 1, run.id),
            ("stderr", "err1", "talk", 1, run.id),
        ]
    )
    assert run.tasks["talk"].result == "out2"


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (reaped, or a zombie waiting to be)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "State:\tZ" in status.read_text()


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_a_timeout_kills_the_whole_process_group(
    executor: str, write: Write, tmp_path: Path
) -> None:
    """At the timeout the command and what it started die; the attempt fails with TaskTimeout."""
    pids = tmp_path / "pids"
    path = write(
        f"""
        tasks:
          slow:
            sh: 'sleep 30 & echo $! > {pids}; sleep 30 & wait'
            timeout: 0.5
        """
    )
    began = time.monotonic()
    run = from_yaml(path).run(store=MemoryStore(), raise_on_failure=False, executor=executor)
    took = time.monotonic() - began
    error = run.tasks["slow"].error or ""
    assert error.startswith("TaskTimeout: task 'slow' timed out after 0.5s"), error
    assert took < 5
    child = int(pids.read_text())
    deadline = time.monotonic() + 2
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(child)


def test_a_timeout_called_directly_raises_task_timeout(write: Write) -> None:
    """Outside a run the operator enforces its timeout itself."""
    path = write("tasks:\n  slow: {sh: 'sleep 30', timeout: 0.2}\n")
    fn = from_yaml(path).tasks["slow"].task.fn
    with pytest.raises(TaskTimeout):
        fn()


def test_a_missing_program_fails_the_attempt_with_a_clear_error(write: Write) -> None:
    """A program that does not exist is reported by name."""
    path = write("tasks:\n  t: {sh: [no-such-program-xyz, --help]}\n")
    error = run_one(path).tasks["t"].error or ""  # type: ignore[attr-defined]
    assert error.startswith("PipekitError: task 't' could not start 'no-such-program-xyz'")
