"""Property test of the threads executor's pool: random submits, cancels and releases.

The pool wakes workers one at a time and lets a finishing worker take the next queued
job (see ``pipekit/executors/threads.py``), so which thread runs which job, and whether
a cancel finds its job queued or running, depends on timing. What must hold whatever
the timing:

- a job never cancelled gets exactly one outcome, a cancelled one at most one (none if
  the cancel found it queued or running; one if it had already finished);
- no job runs twice, every reported job ran, and no more jobs run at once than
  ``max_workers`` plus those abandoned by a cancel (a thread cannot be killed: it
  finishes its job unreported).
"""

from __future__ import annotations

import queue
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipekit.context import TaskContext
from pipekit.executors import Job, Outcome, ThreadsExecutor

WAIT = 5.0
"""Upper bound, in seconds, on waiting for an outcome; passing examples never wait long."""

# An operation: ("submit", blocks), ("cancel", which), or ("release", which); ``which``
# picks one of the jobs submitted so far (modulo their count).
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("release"), st.integers(0, 50)),
    ),
    max_size=25,
)


class _Jobs:
    """The jobs of one example: their gates, how often each ran, and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: list[threading.Event] = []
        self.runs: dict[int, int] = {}
        self.running = 0
        self.most = 0

    def make(self, key: int, blocks: bool) -> Job:
        gate = threading.Event()
        if not blocks:
            gate.set()
        self.gates.append(gate)

        def body() -> int:
            with self.lock:
                self.runs[key] = self.runs.get(key, 0) + 1
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                gate.wait(WAIT)
                return key
            finally:
                with self.lock:
                    self.running -= 1

        return Job(key, body, (), {}, TaskContext("run", "dag", f"t{key}", 1, {}))

    def wait_idle(self) -> None:
        """Wait until no job body runs (abandoned ones included)."""
        for _ in range(int(WAIT / 0.001)):
            with self.lock:
                if self.running == 0:
                    return
            threading.Event().wait(0.001)
        raise AssertionError("a job body still runs")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS, max_workers=st.integers(1, 4))
def test_every_uncancelled_job_reports_exactly_once_and_no_job_runs_twice(
    ops: list[tuple[str, object]], max_workers: int
) -> None:
    executor = ThreadsExecutor(max_workers)
    outcomes: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    executor.start(outcomes.put)
    jobs = _Jobs()
    cancelled: set[int] = set()
    key = 0
    for op, arg in ops:
        if op == "submit":
            executor.submit(jobs.make(key, bool(arg)))
            key += 1
        elif key and op == "cancel":
            which = int(str(arg)) % key
            executor.cancel(which)
            cancelled.add(which)
        elif key and op == "release":
            jobs.gates[int(str(arg)) % key].set()
    for gate in jobs.gates:
        gate.set()
    expected = set(range(key)) - cancelled
    got: list[int] = []
    while not expected <= set(got):  # a cancelled job that had finished may report too
        got.append(outcomes.get(timeout=WAIT).key)
    executor.shutdown()
    jobs.wait_idle()
    while not outcomes.empty():  # late outcomes: only of jobs that finished before a cancel
        got.append(outcomes.get_nowait().key)

    assert len(got) == len(set(got)), sorted(got)
    assert set(got) >= expected
    assert set(got) - expected <= cancelled
    assert all(n == 1 for n in jobs.runs.values()), jobs.runs
    assert set(jobs.runs) >= set(got)  # every reported job really ran
    assert jobs.most <= max_workers + len(cancelled)
