"""A run whose process is killed with SIGKILL leaves an accurate record in SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipekit.stores import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_mid_run_leaves_the_history_up_to_the_last_change(tmp_path: Path) -> None:
    """After SIGKILL: the run is 'running', done tasks 'success', the killed one 'running'."""
    db = tmp_path / "history.db"
    code = (
        "from pipekit.stores import SQLiteStore\n"
        "from tests.dags.killable import killable\n"
        f"killable.run(store=SQLiteStore({str(db)!r}), executor='sequential')\n"
    )
    env = {**os.environ, "KILLABLE_HANG": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env
    )
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # structlog's default output shares stdout with the task
            seen.append(line)
            if "HANGING" in line:
                # History is group-committed within 50 ms: give it that, as documented.
                time.sleep(0.08)
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert any("HANGING" in line for line in seen), seen
    assert proc.returncode == -signal.SIGKILL

    store = SQLiteStore(db)
    try:
        (run,) = store.list_runs(dag="killable")
        assert run.state == "running"
        assert run.ended_at is None
        states = {t: r.state for t, r in run.tasks.items()}
        assert states == {
            "first": "success",
            "side": "success",
            "hang": "running",
            "after": "queued",
        }
        assert run.tasks["hang"].attempts == 1
        (attempt,) = store.attempts(run.id, "hang")
        assert attempt.state == "running" and attempt.ended_at is None

        # The killed run is recovered: only the unfinished tasks run, under the same id.
        import pipekit
        from tests.dags.killable import killable

        again = pipekit.rerun(run.id, store=store, executor="sequential")
        assert again.id == run.id and again.state == "success"
        assert killable.name == again.dag
        assert again.tasks["hang"].attempts == 2 and again.tasks["hang"].result == 1
        assert again.tasks["first"].attempts == 1 and again.tasks["side"].attempts == 1
        first, second = store.attempts(run.id, "hang")
        assert (first.number, first.state, second.number, second.state) == (
            1,
            "failed",
            2,
            "success",
        )
        assert first.error is not None and "abandoned" in first.error
        assert store.get_run(run.id).state == "success"
    finally:
        store.close()
