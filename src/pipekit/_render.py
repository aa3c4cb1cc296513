"""Drawing runs, reports and DAGs for the command line (rich tables, plain text graphs).

Run ids are never shortened, whatever the terminal's width: tables that hold them are
printed at their natural width, so an id can always be pasted into the next command.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from pipekit.dag import DAG
    from pipekit.run import Run, TaskRun

__all__ = ["graph_text", "plain", "print_table", "run_table", "runs_table", "tasks_table"]

_STYLES = {
    "success": "green",
    "failed": "bold red",
    "upstream_failed": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "queued": "white",
}


def _state(state: str) -> Text:
    from rich.text import Text

    return Text(state, style=_STYLES.get(state, "white"))


def plain(value: str) -> Text:
    """Recorded text (ids, params, errors) as rich shows it: as is, never read as markup.

    A task ``load[eu]`` or an error ``missing column [amount]`` keeps its brackets, and
    ``[/data/x.csv]`` is not taken for a closing tag.
    """
    from rich.text import Text

    return Text(value)


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.2f}s"


def _params(params: Mapping[str, Any]) -> str:
    def show(v: Any) -> str:
        return str(v) if isinstance(v, str | date) else json.dumps(v, default=str)

    return " ".join(f"{k}={show(v)}" for k, v in params.items())


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` no narrower than it needs, so no cell (no run id) is cut."""
    from rich.measure import Measurement

    needed = Measurement.get(console, console.options.update(max_width=100_000), table).maximum
    console.width = max(console.width, needed)  # wider than the terminal: never cut a cell
    console.print(table, crop=False)


def runs_table(runs: list[Run]) -> Table:
    """Runs, newest first: id, dag, params, state, start, duration."""
    from rich.table import Table

    table = Table(title=None, show_edge=False, header_style="bold")
    table.add_column("run id", no_wrap=True)
    table.add_column("dag", no_wrap=True)
    table.add_column("params")
    table.add_column("state", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for r in runs:
        table.add_row(
            plain(r.id),
            plain(r.dag),
            plain(_params(r.params)),
            _state(str(r.state)),
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            _seconds(r.started_at, r.ended_at) or ("running" if r.state == "running" else ""),
        )
    return table


def tasks_table(tasks: Mapping[str, TaskRun]) -> Table:
    """Each task: state, attempts, duration, error (first line)."""
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("task", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("error")
    for t in tasks.values():
        first = (t.error or "").strip().split("\n", 1)[0]
        table.add_row(
            plain(t.task_id),
            _state(str(t.state)),
            str(t.attempts),
            _seconds(t.started_at, t.ended_at),
            plain(first),
        )
    return table


def run_table(run: Run) -> Table:
    """A run's header (id, dag, params, state, duration) above its tasks."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_row("run", plain(run.id))
    grid.add_row("dag", plain(run.dag))
    grid.add_row("params", plain(_params(run.params)))
    grid.add_row("state", _state(str(run.state)))
    grid.add_row("started", f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC")
    grid.add_row("duration", _seconds(run.started_at, run.ended_at) or "not ended")
    if run.error:
        grid.add_row("error", plain(run.error))
    return grid


def _mermaid(tid: str) -> str:
    """A task as a Mermaid node: its id, or a safe id and its label (``t[eu]`` has brackets)."""
    if re.fullmatch(r"\w+", tid, re.ASCII):
        return tid
    word = re.sub(r"\W", "_", tid, flags=re.ASCII)
    safe = f"{word}_{zlib.crc32(tid.encode()):08x}"  # unique: a-b and a.b differ
    label = tid.replace('"', "#quot;")
    return f'{safe}["{label}"]'


def graph_text(dag: DAG, fmt: str) -> str:
    """The DAG as ``ascii`` (one line per task with its upstreams), ``mermaid`` or ``dot``."""
    if fmt == "mermaid":
        lines = ["graph TD"]
        for tid, node in dag.tasks.items():
            if not node.upstream and not dag.downstream[tid]:
                lines.append(f"    {_mermaid(tid)}")
            lines += [f"    {_mermaid(u)} --> {_mermaid(tid)}" for u in node.upstream]
        return "\n".join(lines)
    if fmt == "dot":
        lines = [f"digraph {json.dumps(dag.name)} {{", "    rankdir=LR;"]
        for tid, node in dag.tasks.items():
            lines.append(f"    {json.dumps(tid)};")
            lines += [f"    {json.dumps(u)} -> {json.dumps(tid)};" for u in node.upstream]
        lines.append("}")
        return "\n".join(lines)
    depth: dict[str, int] = {}
    for tid in dag.order:
        ups = dag.tasks[tid].upstream
        depth[tid] = 1 + max((depth[u] for u in ups), default=-1)
    width = max((len(t) + 2 * depth[t] for t in dag.order), default=0)
    lines = [f"{dag.name} ({len(dag.order)} tasks)"]
    for tid in dag.order:
        ups = dag.tasks[tid].upstream
        label = "  " * depth[tid] + tid
        lines.append(f"{label.ljust(width)}  <- {', '.join(ups)}" if ups else label)
    return "\n".join(lines)
