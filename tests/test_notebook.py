"""The backfill example notebook runs top to bottom in a real kernel and shows its reports."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("duckdb", reason="the notebook uses the flights example (pipekit[examples])")
nbformat = pytest.importorskip("nbformat", reason="the notebook runner is in pipekit[examples]")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "backfill.ipynb"


def outputs(nb: Any) -> list[Any]:
    """Every output of every code cell, in order."""
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The notebook after running it once in a "python3" kernel started from this interpreter.

    The venv's own "python3" spec runs "python", which jupyter_client maps to
    sys.executable; a spec naming sys.executable outright, first on JUPYTER_PATH, keeps
    that true whatever other Jupyter dirs exist on the machine. The other variables keep
    the kernel's runtime files, config and IPython history (and any pipekit history)
    under a temporary directory instead of ~.
    """
    from nbclient import NotebookClient

    root = tmp_path_factory.mktemp("notebook")
    spec = root / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (pipekit tests)",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    work = root / "work"
    work.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "jupyter"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / "config"))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        mp.setenv("PIPEKIT_HOME", str(root / "pipekit-home"))
        mp.setenv("PIPEKIT_EXAMPLES", str(NOTEBOOK.parents[1] / "dags"))
        mp.setenv("FLIGHTS_HOME", str(root / "flights"))
        mp.delenv("FLIGHTS_BREAK", raising=False)
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(work)}}
        )
        client.execute()
    yield nb


def test_notebook_is_valid_and_stored_without_outputs() -> None:
    """The notebook is valid nbformat v4 and is committed with its outputs cleared."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_notebook_runs_without_errors(executed: Any) -> None:
    """Every cell runs, the final asserts included (report.rerun_failed() ends ok)."""
    errors = [out for out in outputs(executed) if out.output_type == "error"]
    assert errors == [], "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    code = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)


def test_notebook_shows_the_failed_report_then_the_fixed_one(executed: Any) -> None:
    """The backfill and its rerun_failed() each display a pipekit-backfill HTML table."""
    tables = [
        out.data["text/html"]
        for out in outputs(executed)
        if out.output_type in ("execute_result", "display_data")
        and 'class="pipekit-backfill"' in out.data.get("text/html", "")
    ]
    assert len(tables) == 2
    assert "10 dates, 8 succeeded, 2 failed" in tables[0]
    assert "2 dates, 2 succeeded, 0 failed" in tables[1]
    printed = "".join(out.text for out in outputs(executed) if out.output_type == "stream")
    assert (
        "2013-02-04: load failed: ConnectionError: warehouse unavailable while loading "
        "2013-02-04 (FLIGHTS_BREAK)" in printed
    )
    assert "2013-02-08" in printed and "flights" in printed


def test_notebook_with_progress_off_writes_nothing_to_stderr(executed: Any) -> None:
    """With progress=False (and warnings-only logging) the notebook shows no stderr output."""
    stderr = [
        out.text
        for out in outputs(executed)
        if out.output_type == "stream" and out.name == "stderr"
    ]
    assert stderr == []
