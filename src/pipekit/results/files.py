"""Task results as pickle files, one directory per run, written atomically.

The default beside a SQLite history: ``<history dir>/results/<run id>/<task id>.pkl``.
Each value is pickled (cloudpickle when plain pickle cannot) to a temporary file in
the same directory and renamed into place, so a reader never sees half a value and a
process killed mid-write leaves at most a stray temporary file.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from pipekit.results.base import MISSING
from pipekit.results.store import dumps

__all__ = ["FileResults"]


def _safe(name: str) -> str:
    """A file name for a task id (ids are identifiers with __n suffixes; be safe anyway)."""
    return "".join(c if c.isalnum() or c in "-_." else f"%{ord(c):02x}" for c in name)


class FileResults:
    """Keeps results under ``root``, shared by every process that can read it.

    Args:
        root: the directory holding one sub-directory per run.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        """Show the directory."""
        return f"FileResults({str(self.root)!r})"

    def _path(self, run_id: str, task_id: str) -> Path:
        return self.root / _safe(run_id) / f"{_safe(task_id)}.pkl"

    def save(self, run_id: str, task_id: str, value: Any) -> bool:
        """Write ``value`` atomically; return False if it cannot be pickled."""
        data = dumps(value)
        if data is None:
            return False
        path = self._path(run_id, task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return True

    def load(self, run_id: str, task_id: str) -> Any:
        """Read the value back, or return :data:`MISSING` if there is none (or it is unreadable)."""
        try:
            data = self._path(run_id, task_id).read_bytes()
        except FileNotFoundError:
            return MISSING
        try:
            return pickle.loads(data)
        except Exception:
            return MISSING  # damaged or from an incompatible version: the task runs again

    def delete(self, run_id: str) -> None:
        """Remove the run's directory."""
        shutil.rmtree(self.root / _safe(run_id), ignore_errors=True)

    def prune(self, before: datetime) -> int:
        """Remove the directories of runs not written since ``before``."""
        if not self.root.is_dir():
            return 0
        cutoff = before.timestamp()
        removed = 0
        for entry in self.root.iterdir():
            if not entry.is_dir():
                continue
            newest = max(
                (p.stat().st_mtime for p in entry.iterdir()), default=entry.stat().st_mtime
            )
            if newest < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed
