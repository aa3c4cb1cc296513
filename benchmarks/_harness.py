"""Plumbing shared by every figure: timing, the Figure record, the table, the machine.

A :class:`Figure` holds the samples of one measured quantity, its target (an upper
limit, absolute or as a ratio to a floor measured in the same run) and the floor it
is compared with. The table and the JSON file are both made from figures.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parent.parent

QUIET_LOGGING = (
    "import logging, structlog\n"
    "structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))\n"
)
"""The same as :func:`quiet_logging`, for the scripts run in fresh processes."""


def quiet_logging() -> None:
    """Drop pipekit's events below WARNING: unconfigured structlog prints every one."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def progress(message: str) -> None:
    """A line on stderr, so that stdout holds only the results."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- timing -------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` took (after a full collection, so earlier garbage is not billed)."""
    gc.collect()
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


@contextlib.contextmanager
def warm_bytecode() -> Iterator[str]:
    """Let child processes cache bytecode in a temp dir (this sandbox forbids .pyc files).

    ``PYTHONDONTWRITEBYTECODE=1`` is set here, so without this every fresh process
    (start-up figures, the processes executor's workers) would compile pipekit from
    source, which an installed package never does. The first, untimed, process of each
    kind fills the cache; later ones read it.
    """
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    with tempfile.TemporaryDirectory(prefix="pipekit-bench-pyc-") as pyc:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = pyc
        try:
            yield pyc
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


# -- figures ------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured quantity: its samples, and what they are compared with.

    ``unit`` is one of "s", "ms", "us", "MB"; samples are in that unit. ``limit`` is an
    absolute upper target; ``ratio_limit`` a target as a multiple of ``floor`` (the
    floor's median, same unit). A figure with neither is information only.
    """

    key: str
    target_no: str
    label: str
    unit: str
    samples: list[float]
    limit: float | None = None
    ratio_limit: float | None = None
    floor: float | None = None
    floor_name: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor <= 0:
            return None
        return self.median / self.floor

    @property
    def verdict(self) -> str:
        if self.ratio_limit is not None:
            ratio = self.ratio
            return "n/a" if ratio is None else ("meets" if ratio <= self.ratio_limit else "misses")
        if self.limit is not None:
            return "meets" if self.median <= self.limit else "misses"
        return "info"

    @property
    def target_text(self) -> str:
        if self.ratio_limit is not None:
            return f"≤ {self.ratio_limit:g}x {self.floor_name}"
        if self.limit is not None:
            return f"≤ {fmt_value(self.limit, self.unit)}"
        return ""

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "target_no": self.target_no,
            "label": self.label,
            "unit": self.unit,
            "samples": self.samples,
            "median": self.median,
            "min": min(self.samples),
            "max": max(self.samples),
            "limit": self.limit,
            "ratio_limit": self.ratio_limit,
            "floor": self.floor,
            "floor_name": self.floor_name,
            "ratio": self.ratio,
            "verdict": self.verdict,
            "note": self.note,
            **self.extra,
        }


_UNIT_TEXT = {"s": "s", "ms": "ms", "us": "µs", "MB": "MB"}


def fmt_value(value: float, unit: str) -> str:
    """Three significant figures or so, with the unit: 4.53 µs, 12.3 µs, 212 ms."""
    if value >= 100:
        text = f"{value:.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    elif value >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {_UNIT_TEXT[unit]}"


def fmt_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A Markdown table with aligned columns (``right``: the right-aligned ones)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(out) + " |"

    sep = "|".join(
        ("-" * (w + 1) + ":" if i in right else "-" * (w + 2)) for i, w in enumerate(widths)
    )
    return "\n".join([line(headers), f"|{sep}|", *(line(r) for r in rows)])


def results_table(figures: list[Figure]) -> str:
    """The one table: figure, target, median, min, max, ratio to floor, verdict."""
    headers = ["#", "figure", "target", "median", "min", "max", "ratio to floor", "verdict"]
    rows = []
    for f in figures:
        ratio = f.ratio
        ratio_text = "" if ratio is None else f"{ratio:.2f}x {f.floor_name}"
        rows.append(
            [
                f.target_no,
                f.label,
                f.target_text,
                fmt_value(f.median, f.unit),
                fmt_value(min(f.samples), f.unit),
                fmt_value(max(f.samples), f.unit),
                ratio_text,
                f.verdict,
            ]
        )
    return fmt_table(headers, rows, right={3, 4, 5})


# -- the machine --------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown cpu"


def machine() -> dict[str, Any]:
    """Where and when the figures were taken: date, cores, Python, SQLite, commit, load."""
    import pipekit

    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "pipekit": pipekit.__version__,
        "commit": commit + (" (src/ modified)" if dirty and dirty != "unknown" else ""),
        "load_at_start": load_average(),
    }


def load_average() -> str:
    """The 1/5/15-minute load averages, as a hint of how noisy the figures are."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"
