"""The ``pipekit`` command line: run, backfill, re-run, inspect, check and schedule DAGs.

Every command that takes a DAG takes a Python DAG file or module, or a YAML DAG file.
Exit codes: 0 success; 1 a run (or any backfill date) failed; 2 bad usage (an unknown
DAG, a missing parameter, a bad date, a missing file, a DAG file with problems), with
one line per problem and no traceback. Logs go to stderr (warnings and errors; ``-v``
for every event); results go to stdout as tables.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from pipekit.errors import ParamError, PipekitError

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _configure_logging(verbose: int) -> None:
    import structlog

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def _console() -> Any:
    from rich.console import Console

    return Console()


def _store(ctx: click.Context, *, reading: bool = False) -> Any:
    """The history: ``--store``, else the configured default.

    ``reading``: the command only reads runs (``runs``, ``show``, ``rerun``), so a
    SQLite file named by ``--store`` or ``$PIPEKIT_STORE`` that does not exist is a
    mistyped path, not a history to create. (The default file under
    ``$PIPEKIT_HOME`` may not exist yet: that is a history with no runs.)
    """
    where = ctx.obj.get("store")
    if reading:
        import os

        from pipekit.config import STORE_ENV

        named = where or os.environ.get(STORE_ENV)
        path = _sqlite_path(named) if named else None
        if path is not None and not Path(path).exists():
            _fail(
                f"no run history at {path!r}; check --store (or $PIPEKIT_STORE): a "
                "history file is created by the first run that writes to it"
            )
    if where is None:
        from pipekit.config import default_store

        return default_store()
    from pipekit.stores import open_store

    return open_store(where)


def _sqlite_path(where: str) -> str | None:
    """The file a store URL or path names, when it is a SQLite one."""
    if where.startswith("sqlite:///"):
        return where[len("sqlite:///") :]
    return None if "://" in where else where


def _params(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"-p {pair!r} is not key=value; write it as -p ds=2024-01-05")
        out[key.strip()] = value
    return out


def _guard(fn: F) -> F:
    """Turn pipekit's errors into one-line messages and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ParamError as exc:
            if "has no parameter" in str(exc):
                _fail(str(exc))
            _fail(f"{exc} (on the command line: -p {exc.param}=VALUE)")
        except PipekitError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _date_of(run: Any) -> Any:
    """The run's logical date: its DAG's date parameter (``ds`` when unknown)."""
    from pipekit.dag import registered

    dag = registered(run.dag)
    param = (dag.logical_param if dag is not None else None) or "ds"
    return run.params.get(param)


def _show_run_and_exit(result: Any) -> None:
    """Print a finished run as tables; exit 1 after listing its failures if it failed."""
    from pipekit._render import print_table, run_table, tasks_table

    console = _console()
    print_table(console, run_table(result))
    print_table(console, tasks_table(result.tasks))
    if result.state != "success":
        _print_failures(console, result, _date_of(result))
        sys.exit(1)


def _print_failures(console: Any, run: Any, date: Any = None) -> None:
    from rich.text import Text

    for t in run.tasks.values():
        if t.state == "failed":
            first = (t.error or "").strip().split("\n", 1)[0]
            when = f"{date}: " if date is not None else ""
            line = Text("FAILED", style="bold red")
            line.append(f" {when}{t.task_id}: {first}")  # as recorded: no markup in it
            console.print(line, highlight=False, soft_wrap=True)


_executor_option = click.option(
    "--executor",
    type=click.Choice(["sequential", "threads", "processes", "dask"]),
    default="threads",
    help="Where tasks run (dask: $PIPEKIT_DASK_ADDRESS, else a local cluster).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    metavar="PATH|URL",
    help=(
        "Run history: a SQLite path, sqlite:///path, postgresql://user@host/db or memory:// "
        "(default: $PIPEKIT_STORE, else $PIPEKIT_HOME/history.db)."
    ),
)
@click.option("-v", "--verbose", count=True, help="Log pipekit's events to stderr (-vv: debug).")
@click.version_option(package_name="pipekit")
@click.pass_context
def cli(ctx: click.Context, store: str | None, verbose: int) -> None:
    """pipekit: batch data pipelines as decorated Python functions."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store
    _configure_logging(verbose)


@cli.command()
@click.argument("dagref")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A run parameter."
)
@_executor_option
@click.option("--max-workers", type=click.IntRange(min=1), default=None)
@click.pass_context
@_guard
def run(
    ctx: click.Context, dagref: str, params: tuple[str, ...], executor: str, max_workers: int | None
) -> None:
    """Run a DAG once: DAGREF is file.py:name, package.module:name, or file.py."""
    from pipekit.loader import resolve

    dag = resolve(dagref)
    result = dag.run(
        executor=executor,
        max_workers=max_workers,
        store=_store(ctx),
        raise_on_failure=False,
        **_params(params),
    )
    _show_run_and_exit(result)


@cli.command()
@click.argument("dagref")
@click.option("--start", required=True, help="First logical date (YYYY-MM-DD).")
@click.option("--end", required=True, help="Last logical date, included.")
@click.option("--param", "date_param", default=None, help="The parameter receiving the date.")
@click.option("--max-active-runs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--retries/--no-retries", default=False, help="Keep the tasks' retry policies.")
@click.option(
    "--reprocess", type=click.Choice(["failed", "all", "none"]), default="failed", show_default=True
)
@click.option("--reverse", is_flag=True, help="Newest date first.")
@click.option("--dry-run", is_flag=True, help="Show what would run; run and record nothing.")
@click.option("--delay", type=click.FloatRange(min=0), default=0, help="Seconds between dates.")
@click.option("--max-failures", type=click.IntRange(min=1), default=None)
@click.option(
    "-p", "--param-value", "params", multiple=True, metavar="KEY=VALUE", help="Other parameters."
)
@_executor_option
@click.option("--max-workers", type=click.IntRange(min=1), default=None)
@click.pass_context
@_guard
def backfill(
    ctx: click.Context,
    dagref: str,
    start: str,
    end: str,
    date_param: str | None,
    max_active_runs: int,
    retries: bool,
    reprocess: str,
    reverse: bool,
    dry_run: bool,
    delay: float,
    max_failures: int | None,
    params: tuple[str, ...],
    executor: str,
    max_workers: int | None,
) -> None:
    """Run a DAG once per logical date from --start to --end."""
    from pipekit.backfill import backfill as run_backfill
    from pipekit.loader import resolve

    dag = resolve(dagref)
    report = run_backfill(
        dag,
        start,
        end,
        param=date_param,
        max_active_runs=max_active_runs,
        retries=retries,
        reprocess=reprocess,
        reverse=reverse,
        dry_run=dry_run,
        delay=delay,
        max_failures=max_failures,
        store=_store(ctx),
        executor=executor,
        max_workers=max_workers,
        **_params(params),
    )
    again = shlex.join(["pipekit", *_redo_failures(sys.argv[1:])])
    click.echo(str(report).replace("report.rerun_failed()", again))
    if not report.ok and not dry_run:
        sys.exit(1)


def _redo_failures(args: list[str]) -> list[str]:
    """The backfill command line that redoes only the failures.

    That is ``args`` without ``--reprocess`` (its default, failed, is what redoes
    them) and without ``--dry-run``.
    """
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--reprocess":
            skip = True  # and its value
        elif not arg.startswith("--reprocess=") and arg != "--dry-run":
            out.append(arg)
    return out


@cli.command()
@click.argument("run_id")
@click.option("--task", "tasks", multiple=True, help="Also run this task (repeatable).")
@click.option("--downstream/--no-downstream", default=True, show_default=True)
@click.option("--retries/--no-retries", default=True, show_default=True)
@_executor_option
@click.pass_context
@_guard
def rerun(
    ctx: click.Context,
    run_id: str,
    tasks: tuple[str, ...],
    downstream: bool,
    retries: bool,
    executor: str,
) -> None:
    """Re-run the unfinished (or --task) tasks of a recorded run, under the same id."""
    from pipekit.recovery import rerun as do_rerun

    result = do_rerun(
        run_id,
        tasks=list(tasks) or None,
        downstream=downstream,
        store=_store(ctx, reading=True),
        executor=executor,
        retries=retries,
        raise_on_failure=False,
    )
    _show_run_and_exit(result)


@cli.command()
@click.option("--dag", "dag_name", default=None, help="Only runs of this DAG.")
@click.option(
    "--state",
    type=click.Choice(
        ["queued", "running", "success", "failed", "upstream_failed", "skipped"],
        case_sensitive=False,  # FAILED works too; the choice arrives lower-case
    ),
    default=None,
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_context
@_guard
def runs(ctx: click.Context, dag_name: str | None, state: str | None, limit: int) -> None:
    """List runs, newest first: id, dag, params, state, start, duration."""
    from pipekit._render import print_table, runs_table

    found = _store(ctx, reading=True).list_runs(dag=dag_name, state=state, limit=limit)
    if not found:
        click.echo("no runs", err=True)
        return
    print_table(_console(), runs_table(found))


@cli.command()
@click.argument("run_id")
@click.pass_context
@_guard
def show(ctx: click.Context, run_id: str) -> None:
    """Show one run: each task's state, attempts, duration and error."""
    from pipekit._render import print_table, run_table, tasks_table

    found = _store(ctx, reading=True).get_run(run_id)
    console = _console()
    print_table(console, run_table(found))
    print_table(console, tasks_table(found.tasks))
    for t in found.tasks.values():
        if t.state == "failed" and t.error:
            from rich.text import Text

            console.rule(Text(f"{t.task_id} (attempt {t.attempts})"), style="red")
            console.print(t.error, markup=False, highlight=False, soft_wrap=True)


@cli.command()
@click.argument("dagref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ascii", "mermaid", "dot"]),
    default="ascii",
    show_default=True,
)
@_guard
def graph(dagref: str, fmt: str) -> None:
    """Print a DAG's tasks and dependencies."""
    from pipekit._render import graph_text
    from pipekit.loader import resolve

    click.echo(graph_text(resolve(dagref), fmt))


@cli.command(name="list")
@click.argument("path", type=click.Path())
@_guard
def list_dags(path: str) -> None:
    """List the DAGs found in a file or folder.

    In a folder, a file that cannot be loaded is named on stderr with its error and the
    other files' DAGs are still listed; the exit code is then 1.
    """
    from rich.table import Table

    from pipekit._render import plain, print_table
    from pipekit.loader import dags_in, find_files, load_file

    table = Table(show_edge=False, header_style="bold")
    for column in ("dag", "file", "schedule", "tasks", "params"):
        table.add_column(column, no_wrap=column in ("dag", "file"))
    count = 0
    files = find_files(path)
    broken: list[str] = []
    files_of: dict[str, list[str]] = {}  # DAG name -> the files defining it
    for file in files:
        try:
            found = dags_in(load_file(file))
        except PipekitError as exc:
            if len(files) == 1 and Path(path).is_file():
                raise
            broken.append(f"error: {exc}")
            continue
        for d in found:
            schedule = d.schedule.text if d.schedule is not None else "-"
            params = ", ".join(
                n if p.required else f"{n}={p.default!r}" for n, p in d.params.items()
            )
            cells = (d.name, str(file), schedule, str(len(d.tasks)), params)
            table.add_row(*(plain(c) for c in cells))
            count += 1
            files_of.setdefault(d.name, []).append(str(file))
    broken.extend(f"error: {clash}" for clash in _name_clashes(files_of))
    if not count and not broken:
        _fail(
            f"no DAG found in {path!r}; DAG files are Python files defining functions "
            "decorated with @dag, or YAML files with a tasks: key"
        )
    if count:
        print_table(_console(), table)
    for line in broken:
        click.echo(line, err=True)
    if broken:
        sys.exit(1)


def _name_clashes(files_of: dict[str, list[str]]) -> list[str]:
    """A message for each DAG name defined in more than one file.

    Runs are recorded by DAG name, so ``serve`` runs neither of them.
    """
    return [
        f"DAG name {name!r} is defined {len(where)} times ({', '.join(where)}); rename all "
        "but one (@dag(name=...), or name: in YAML): serve runs none of them"
        for name, where in files_of.items()
        if len(where) > 1
    ]


def _shown(arg: str, file: Path) -> str:
    """``file`` as the user would write it: under the argument they gave."""
    given = Path(arg)
    if given.is_file():
        return arg
    try:
        return str(given / file.relative_to(given.resolve()))
    except ValueError:
        return str(file)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def validate(paths: tuple[str, ...]) -> None:
    """Check DAG files (YAML and Python) and folders of them, running nothing.

    Prints one line per file that is fine; exits 2 with one line per problem
    (``file:line: task 'name', key 'key': what is wrong``), for pre-commit hooks and CI.
    """
    from pipekit.declarative import problems
    from pipekit.loader import dags_in, find_files, is_yaml, load_file

    found: list[str] = []
    files_of: dict[str, list[str]] = {}  # DAG name -> the files defining it
    for arg in paths:
        try:
            files = find_files(arg)
        except PipekitError as exc:
            found.append(str(exc))
            continue
        for file in files:
            shown = _shown(arg, file)
            if is_yaml(file):
                issues = problems(shown)
                found.extend(str(p) for p in issues)
                if issues:
                    continue
            try:
                names = [d.name for d in dags_in(load_file(file))]
            except PipekitError as exc:
                found.append(f"{shown}: {exc}")
                continue
            for name in names:
                files_of.setdefault(name, []).append(shown)
            if is_yaml(file):
                click.echo(f"{shown}: ok")
            else:
                click.echo(f"{shown}: ok ({len(names)} DAG{'s' if len(names) != 1 else ''})")
    found.extend(_name_clashes(files_of))
    for line in found:
        click.echo(" ".join(line.split()), err=True)  # one line per problem, whatever it holds
    if found:
        sys.exit(2)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of YAML DAG files (for editors: see the README)."""
    import json

    from pipekit.declarative import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--once", is_flag=True, help="One pass: start every due run, wait, exit.")
@_executor_option
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=30.0,
    show_default=True,
    help="Seconds between passes.",
)
@click.pass_context
@_guard
def serve(
    ctx: click.Context, paths: tuple[str, ...], once: bool, executor: str, poll: float
) -> None:
    """Schedule the DAGs in these files or folders (Ctrl-C or SIGTERM stops cleanly)."""
    from pipekit.serve import serve as run_serve

    started = run_serve(*paths, store=_store(ctx), once=once, executor=executor, poll=poll)
    failed = [r for r in started if r.state != "success"]
    console = _console()
    from rich.text import Text

    for r in started:
        console.print(
            Text(
                f"{r.id}  {r.dag}  {' '.join(f'{k}={v}' for k, v in r.params.items())}  {r.state}"
            ),
            highlight=False,
            soft_wrap=True,
        )
        _print_failures(console, r, _date_of(r))
    if failed:
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``pipekit`` console script and ``python -m pipekit``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="pipekit")
