"""The ``sh`` operator: run a command, with run parameters passed where no shell parses them.

* ``sh: "gzip -kf out/$ds.csv"`` runs through ``/bin/sh -c``. The command text is exactly
  what the file says: run parameters reach it only as environment variables named after
  them, which the shell expands as data, so a parameter value cannot add shell syntax.
* ``sh: [gzip, -kf, "out/${ds}.csv"]`` runs the program directly, without a shell; a
  ``${name}`` inside an element becomes the value, within that one argument.

Every command also sees ``PIPEKIT_RUN_ID``, ``PIPEKIT_DAG``, ``PIPEKIT_TASK`` and
``PIPEKIT_ATTEMPT``. Its output lines become ``sh_output`` log events of the task; a
non-zero exit raises :class:`pipekit.declarative.CommandFailed` with the exit code and
the last lines of stderr. The command runs in a process group of its own: when the
task's ``timeout`` passes, the whole group is killed (the command and everything it
started), and so is any group still running when the interpreter exits.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from pipekit.declarative import substitute
from pipekit.declarative.errors import CommandFailed
from pipekit.errors import ContextError, PipekitError, TaskTimeout

__all__ = ["KILL_GRACE", "Shell"]

KILL_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL when a command's time is up."""

STDERR_LINES = 20
"""How many of the last stderr lines a :class:`CommandFailed` keeps."""

_live: set[int] = set()  # process groups of commands still running
_live_lock = threading.Lock()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@atexit.register
def _kill_leftovers() -> None:
    """An interpreter that exits mid-run (Ctrl-C) takes its commands with it."""
    with _live_lock:
        groups = list(_live)
    for pgid in groups:
        _kill_group(pgid, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Shell:
    """An ``sh`` task's command, called by the run loop with the run's parameters.

    Attributes:
        command: a command line for ``/bin/sh -c``, or an argument list run directly.
        cwd: the folder it runs in (absolute).
        env: variables added to the environment (the task's ``env:``).
        constants: the task's ``for_each`` values, passed like parameters.
        timeout: seconds before the process group is killed, or None.
    """

    command: str | tuple[str, ...]
    cwd: str
    env: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    def argv(self, values: Mapping[str, Any]) -> list[str]:
        """The program and arguments to execute, with ``${name}`` filled in (list form)."""
        if isinstance(self.command, str):
            return ["/bin/sh", "-c", self.command]
        return [substitute.render(arg, values) for arg in self.command]

    def environment(self, values: Mapping[str, Any], ids: Mapping[str, str]) -> dict[str, str]:
        """This process's environment, plus ``env:``, the parameters and the PIPEKIT_ ids."""
        env = dict(os.environ)
        env.update(self.env)
        env.update({name: substitute.text_of(v) for name, v in values.items()})
        env.update(ids)
        return env

    def __call__(self, **params: Any) -> str | None:
        """Run the command; return the last non-empty line it printed (or None).

        Raises:
            CommandFailed: it exited with a non-zero code.
            TaskTimeout: it ran past ``timeout`` (its process group was killed).
        """
        import pipekit

        try:
            ctx = pipekit.context()
            task, log = ctx.task, pipekit.get_logger()
            ids = {
                "PIPEKIT_RUN_ID": ctx.run_id,
                "PIPEKIT_DAG": ctx.dag,
                "PIPEKIT_TASK": ctx.task,
                "PIPEKIT_ATTEMPT": str(ctx.attempt),
            }
        except ContextError:  # called directly (a test, a notebook): no run to name
            task, log, ids = "sh", pipekit.get_logger(), {}
        values = {**params, **self.constants}
        argv = self.argv(values)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.environment(values, ids),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as exc:
            raise PipekitError(
                f"task {task!r} could not start {argv[0]!r} in {self.cwd!r}: {exc}"
            ) from exc
        with _live_lock:
            _live.add(proc.pid)
        log.debug("sh_started", pid=proc.pid, argv=argv)
        stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        stdout: list[str] = []
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, "stdout", log, stdout), daemon=True),
            threading.Thread(target=_pump, args=(proc.stderr, "stderr", log, stderr), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            code = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=KILL_GRACE)
            _kill_group(proc.pid, signal.SIGKILL)  # whatever ignored SIGTERM
            proc.wait()
            log.warning("sh_timed_out", timeout=self.timeout)
            assert self.timeout is not None
            raise TaskTimeout(task, self.timeout) from None
        finally:
            with _live_lock:
                _live.discard(proc.pid)
            for reader in readers:  # a background job may hold the pipes: do not wait on it
                reader.join(timeout=1.0)
        log.debug("sh_exited", returncode=code)
        if code != 0:
            raise CommandFailed(task, code, "\n".join(stderr))
        return stdout[-1] if stdout else None


def _pump(pipe: IO[bytes] | None, stream: str, log: Any, keep: Any) -> None:
    """Log each line of ``pipe`` as an ``sh_output`` event; keep lines in ``keep``."""
    if pipe is None:
        return
    with pipe:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            log.info("sh_output", stream=stream, line=line)
            if stream == "stderr":
                keep.append(line)
            elif line.strip():
                keep[:] = [line]
