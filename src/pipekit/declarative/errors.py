"""The errors of DAG files: problems found at load, and shell and SQL tasks that fail.

Where they sit in pipekit's tree (see :mod:`pipekit.errors`)::

    PipekitError
    ├── DefinitionError
    │   ├── DagFileError       a DAG file breaks a rule (file, line, task and key named)
    │   └── CycleError         also raised for a DAG file's cycle, its message located
    ├── CommandFailed          an ``sh`` task's command exited non-zero
    └── SqlFailed              an ``sql``/``sql_file`` task's statement failed
"""

from __future__ import annotations

from pathlib import Path

from pipekit.errors import DefinitionError, PipekitError

__all__ = ["CommandFailed", "DagFileError", "SqlFailed", "locate"]


def locate(file: Path | str, line: int | None, task: str | None, key: str | None) -> str:
    """``file:line: task 't', key 'k'``: the prefix of every DAG file message."""
    where = f"{file}:{line}" if line is not None else str(file)
    parts = []
    if task is not None:
        parts.append(f"task {task!r}")
    if key is not None:
        parts.append(f"key {key!r}")
    return f"{where}: {', '.join(parts)}" if parts else where


class DagFileError(DefinitionError):
    """A DAG file breaks a rule of the format; found when it is loaded, before anything runs.

    The message starts ``file:line: task 'name', key 'key':`` (the parts that apply),
    then says what is wrong and what is allowed, on one line.

    Attributes:
        file: the file as the user named it.
        line: the 1-based line the parser gives for the problem, or None.
        task: the task the problem is in, or None.
        key: the key the problem is about, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Path | str,
        line: int | None = None,
        task: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = str(file)
        self.line = line
        self.task = task
        self.key = key
        self.reason = message
        super().__init__(f"{locate(file, line, task, key)}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the constructor's arguments."""
        return (_rebuild_file_error, (self.reason, self.file, self.line, self.task, self.key))


def _rebuild_file_error(
    message: str, file: str, line: int | None, task: str | None, key: str | None
) -> DagFileError:
    return DagFileError(message, file=file, line=line, task=task, key=key)


class CommandFailed(PipekitError):
    """An ``sh`` task's command exited with a non-zero code (or was killed by a signal).

    Attributes:
        task: the task's id.
        returncode: the exit code (negative: killed by that signal number).
        stderr: the last lines the command wrote to stderr.
    """

    def __init__(self, task: str, returncode: int, stderr: str) -> None:
        self.task = task
        self.returncode = returncode
        self.stderr = stderr
        if returncode < 0:
            import signal

            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        tail = stderr.rstrip().splitlines()
        last = f"; stderr ends: {tail[-1].strip()}" if tail else "; it wrote nothing to stderr"
        text = f"command of task {task!r} {how}{last}"
        if len(tail) > 1:
            text += "\nlast lines of stderr:\n" + "\n".join(f"  {t}" for t in tail)
        super().__init__(text)

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the constructor's arguments (errors cross process boundaries)."""
        return (CommandFailed, (self.task, self.returncode, self.stderr))


class SqlFailed(PipekitError):
    """A statement of an ``sql``/``sql_file`` task failed; the transaction was rolled back.

    Attributes:
        task: the task's id.
        where: the SQL's origin and the statement's line (``sql/daily.sql:4``).
        error: the database's own message (``Type: message``).
    """

    def __init__(self, task: str, where: str, error: str) -> None:
        self.task = task
        self.where = where
        self.error = error
        super().__init__(
            f"SQL of task {task!r} failed at {where} and its transaction was rolled back "
            f"(nothing it wrote was kept): {error}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the constructor's arguments."""
        return (SqlFailed, (self.task, self.where, self.error))
