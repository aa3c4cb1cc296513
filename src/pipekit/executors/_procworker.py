"""A worker process of the processes executor: ``python -m pipekit.executors._procworker R W``.

It reads jobs from file descriptor R and writes outcomes to W, one cloudpickled
frame each, so that whatever a task prints to stdout or stderr goes to the
terminal untouched. The first frame is the parent's ``sys.path``, so that modules
the parent can import are importable here too.
"""

from __future__ import annotations

import pickle
import signal
import sys
from typing import Any


def _dump(outcome: Any) -> bytes:
    """The outcome as a frame: plain pickle when it can (cloudpickle costs 10-25 ms to import)."""
    from pipekit.executors.base import Outcome, error_head

    try:
        try:
            data = pickle.dumps(outcome)
        except Exception:  # a lambda, a local class...: cloudpickle sends those by value
            import cloudpickle

            data = bytes(cloudpickle.dumps(outcome))
        if not outcome.ok:  # errors with unusual constructors pickle but fail to load
            pickle.loads(data)
        return data
    except Exception as exc:  # the value or the error cannot cross: report that instead
        import cloudpickle

        what = "result" if outcome.ok else "error"
        error = RuntimeError(
            f"the task's {what} cannot be sent back from the worker process ({error_head(exc)}); "
            "return picklable values (or use the threads executor)"
        )
        text = outcome.error_text if not outcome.ok else f"RuntimeError: {error}"
        return bytes(cloudpickle.dumps(Outcome(outcome.key, False, None, error, text)))


def main(argv: list[str]) -> int:
    """Serve jobs until the parent closes the pipe."""
    from pipekit.executors._wire import read_frame, write_frame
    from pipekit.executors.base import invoke_captured

    # A terminal's Ctrl-C reaches the whole process group, this worker included. The
    # parent decides what it means (let running attempts finish, as a backfill's first
    # Ctrl-C and serve() do, or kill this worker), so the task does not get it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rfd, wfd = int(argv[0]), int(argv[1])
    first = read_frame(rfd)
    if first is None:
        return 0
    sys.path[:] = pickle.loads(first)
    while True:
        frame = read_frame(rfd)
        if frame is None:
            return 0
        key, task_id, payload = pickle.loads(frame)
        try:
            job = pickle.loads(payload)
        except Exception as exc:  # the task's code cannot be rebuilt here: fail the attempt
            from pipekit.executors.base import Outcome, error_head, format_error

            error = RuntimeError(
                f"task {task_id!r} could not be loaded in the worker process "
                f"({error_head(exc)}); define tasks in importable modules or files"
            )
            write_frame(wfd, _dump(Outcome(key, False, None, error, format_error(error))))
            continue
        # Whatever the task raises here is its error (Ctrl-C is the parent's, above).
        write_frame(wfd, _dump(invoke_captured(job)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
