"""`import pipekit` stays light: heavy dependencies load only where they are used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = [
    "networkx",
    "pendulum",
    "structlog",
    "tenacity",
    "cloudpickle",
    "sqlite3",
    "yaml",
    "jsonschema",
]


def test_import_pipekit_loads_no_heavy_dependency() -> None:
    """None of networkx, pendulum, structlog, tenacity, cloudpickle, sqlite3, yaml, jsonschema."""
    code = f"import sys, pipekit; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_subpackages_load_on_attribute_access() -> None:
    """pipekit.stores and pipekit.testing are reachable as attributes after a bare import."""
    code = (
        "import pipekit; "
        "print(pipekit.stores.MemoryStore.__name__, pipekit.testing.FakeClock.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["MemoryStore", "FakeClock"]
