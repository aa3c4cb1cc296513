"""Idempotent outputs: write files atomically, and skip tasks whose output already exists.

Re-runs and backfills are safe only when a task's effect does not depend on how many
times it ran. Two helpers:

* :func:`atomic_path` yields a temporary path next to the target and renames it into
  place only when the block succeeds, so a failed or killed task never leaves a
  half-written file where the next task (or the next run) would trust it;
* ``@task(output="warehouse/sales/{ds}.parquet")`` declares the file a task produces,
  as a template rendered with the run's parameters. When that file exists the task is
  recorded as ``skipped`` (with the reason) and its downstream tasks still run,
  receiving the rendered path as its value; ``rerun(..., tasks=[...])`` and
  ``backfill(..., reprocess="all")`` force it to run again.
"""

from __future__ import annotations

import contextlib
import os
import string
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipekit.errors import DefinitionError, ParamError, PipekitError

if TYPE_CHECKING:
    from pipekit.dag import DAG

__all__ = ["atomic_path", "output_fields", "render_output", "render_outputs"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The rename replaces an existing file in one step (``os.replace``), so readers see
    either the old file or the new one. If the block raises, the temporary file is
    removed and ``path`` is untouched. A directory written at the temporary path
    replaces an existing directory (removing the old one first: not atomic for readers).

    Example:
        >>> with pipekit.atomic_path(f"out/{ds}.csv") as tmp:
        ...     frame.to_csv(tmp)
    """
    import shutil
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; the output gets the usual mode
    tmp = Path(name)
    try:
        yield tmp
        if tmp.is_dir():
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp, target)
        elif tmp.exists():
            os.replace(tmp, target)
        else:
            raise PipekitError(
                f"atomic_path({str(target)!r}): nothing was written at the temporary path "
                f"{str(tmp)!r}; write the output to the path the block receives"
            )
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask (read by setting it, so under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def output_fields(template: str) -> list[str]:
    """The parameter names a template such as ``"out/{ds:%Y}/{region}.csv"`` uses."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise DefinitionError(
            f"output={template!r} is not a valid template ({exc}); write fields as {{param}}"
        ) from exc
    names = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        base = field.split(".", 1)[0].split("[", 1)[0]
        if not base:
            raise DefinitionError(
                f"output={template!r} has a positional field {{}}; name a run parameter, "
                "as in {ds}"
            )
        names.append(base)
    return names


def render_output(template: str, params: Mapping[str, Any]) -> str:
    """Render an output template with run parameters (dates accept strftime specs)."""
    return template.format_map(params)


def render_outputs(dag: DAG, params: Mapping[str, Any]) -> dict[str, str]:
    """Each task's ``output=`` path for one run, rendered before anything runs.

    Raises:
        ParamError: a template that cannot be rendered with these values (a strftime
            spec on a parameter that is not a date, say), naming the task and template.
    """
    out: dict[str, str] = {}
    for tid, node in dag.tasks.items():
        template = node.task.output
        if template is None:
            continue
        try:
            out[tid] = render_output(template, params)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            fields = output_fields(template)
            shown = ", ".join(f"{k}={params[k]!r}" for k in fields if k in params)
            raise ParamError(
                f"DAG {dag.name!r}: output={template!r} of task {tid!r} cannot be rendered "
                f"with {shown or 'no parameters'} ({type(exc).__name__}: {exc}); annotate "
                "date parameters as dates (for strftime specs) or fix the template",
                param=fields[0] if fields else "",
            ) from exc
    return out
