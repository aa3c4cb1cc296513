"""The Dask executor's side on a worker: run one attempt, return its value or raise.

:func:`attempt` is what each Dask task calls (by reference, so workers import this
small module, not the executor). Its failures travel as :class:`Failed`, which
carries the task's exception and traceback text back to the submitting process.
"""

from __future__ import annotations

import pickle
import sys
import threading
from dataclasses import replace
from typing import Any

from pipekit.errors import TaskTimeout
from pipekit.executors.base import Job, Outcome, error_head, format_error, invoke_captured

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
    outcome = (
        invoke_captured(job) if job.timeout is None else _invoke_with_timeout(job, job.timeout)
    )
    if outcome.ok:
        return outcome.value
    assert outcome.error is not None
    raise Failed(_sendable(outcome.error), outcome.error_text or repr(outcome.error)) from None


def _invoke_with_timeout(job: Job, timeout: float) -> Outcome:
    """Run ``job`` in a helper thread; give up on it after ``timeout`` seconds."""
    box: list[Outcome] = []
    helper = threading.Thread(
        target=lambda: box.append(invoke_captured(job)),
        name=f"pipekit-{job.context.task}",
        daemon=True,
    )
    helper.start()
    helper.join(timeout)
    if box:
        return box[0]
    exc = TaskTimeout(job.context.task, timeout)  # the thread is abandoned, as threads does
    return Outcome(job.key, False, None, exc, format_error(exc))


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
