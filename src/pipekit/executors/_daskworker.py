"""The Dask executor's side on a worker: run one attempt, return its value or raise.

:func:`attempt` is what each Dask task calls (by reference, so workers import this
small module, not the executor). Its failures travel as :class:`Failed`, which
carries the task's exception and traceback text back to the submitting process.
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import replace
from typing import Any

from pipekit.executors.base import (
    Job,
    error_head,
    format_error,
    invoke_captured,
    invoke_with_timeout,
)

__all__ = ["Failed", "attempt"]


class Failed(Exception):
    """Carries a failed attempt's exception and traceback text from the worker.

    Its message is the text's first line: that is what Dask's worker log shows.
    """

    def __init__(self, error: BaseException, text: str) -> None:
        super().__init__(text.split("\n", 1)[0])
        self.error = error
        self.text = text

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the exception and the text, not just the message."""
        return (Failed, (self.error, self.text))


def attempt(payload: bytes, paths: list[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one attempt on a worker: return its value, or raise :class:`Failed`."""
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)
    try:
        shell: Job = pickle.loads(payload)
    except Exception as exc:  # the task's code cannot be rebuilt on this worker
        error = RuntimeError(
            f"the task could not be loaded on the Dask worker ({error_head(exc)}); "
            "install its module on the workers or share the DAG files' folder with them"
        )
        raise Failed(error, format_error(error)) from None
    job = replace(shell, args=tuple(args), kwargs=kwargs)
    # A worker thread: whatever the task raises is its error (invoke_captured).
    outcome = invoke_captured(job) if job.timeout is None else invoke_with_timeout(job, job.timeout)
    if outcome.ok:
        return outcome.value
    assert outcome.error is not None
    raise Failed(_sendable(outcome.error), outcome.error_text or repr(outcome.error)) from None


def _sendable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a RuntimeError that says it could not."""
    import cloudpickle

    try:
        pickle.loads(cloudpickle.dumps(error))
    except Exception as exc:
        return RuntimeError(
            f"the task's error cannot be sent back from the Dask worker ({error_head(exc)}): "
            f"{error_head(error)}"
        )
    return error
