"""A throwaway PostgreSQL server for the tests, started once per test process.

:func:`dsn` returns the address of a database on a server that listens only on
127.0.0.1: the one named by ``PIPEKIT_TEST_POSTGRES_DSN`` if that is set (a CI
service, say), else a new server made with the system's ``initdb`` and ``pg_ctl``
(Debian keeps them in ``/usr/lib/postgresql/<version>/bin``; ``scripts/ensure-postgres.sh``
installs them). The server runs as the ``postgres`` user when the tests run as root
(``initdb`` refuses root), trusts local connections, skips fsync (a test server need
not survive a power cut), and is stopped when the process exits. When no server can
be had, :func:`dsn` raises :class:`Unavailable` saying why, and :func:`dsn_or_skip`
(what the fixtures call) skips the test with that reason, or fails it when
``PIPEKIT_REQUIRE_POSTGRES=1`` (CI sets it: there the server must start).

Tests isolate themselves with a schema each (``PostgresStore(dsn, schema=...)``), so
one server and one database serve the whole run.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

__all__ = ["Unavailable", "drop_schema", "dsn", "dsn_or_skip", "new_schema"]

ENV = "PIPEKIT_TEST_POSTGRES_DSN"
"""Use this server instead of starting one (it must allow CREATE SCHEMA)."""

REQUIRE_ENV = "PIPEKIT_REQUIRE_POSTGRES"
"""When "1", a server that cannot be started fails the tests instead of skipping them."""

_lock = threading.Lock()
_state: dict[str, str | Exception] = {}


class Unavailable(Exception):
    """No PostgreSQL server could be started; the message says why."""


def dsn() -> str:
    """The DSN of the test database, starting the server on first use.

    Raises:
        Unavailable: no server binaries, or the server would not start (once known,
            every later call raises the same at once).
    """
    with _lock:
        if "dsn" not in _state and "error" not in _state:
            try:
                _state["dsn"] = os.environ.get(ENV) or _start()
            except Unavailable as exc:
                _state["error"] = exc
        error = _state.get("error")
        if isinstance(error, Exception):
            raise Unavailable(str(error))
        found = _state["dsn"]
        assert isinstance(found, str)
        return found


def dsn_or_skip() -> str:
    """:func:`dsn`, or skip the calling test with the reason (fail it under REQUIRE_ENV)."""
    import pytest

    try:
        return dsn()
    except Unavailable as exc:
        reason = f"no PostgreSQL server could be started: {exc}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
        pytest.skip(reason)


def new_schema(prefix: str = "t") -> str:
    """A fresh schema name (the store creates the schema itself)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_schema(schema: str) -> None:
    """Drop ``schema`` and everything in it, if it exists."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _bindir() -> Path:
    """The folder of initdb and pg_ctl: the newest Debian version, else the PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise Unavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): run `bash scripts/ensure-postgres.sh` "
        f"(installs Debian's postgresql package), or set {ENV} to a server's DSN"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start() -> str:
    try:
        import psycopg
    except ImportError as exc:
        raise Unavailable("psycopg is not installed: pip install 'pipekit[postgres]'") from exc
    bindir = _bindir()
    as_root = os.geteuid() == 0
    prefix: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root and shutil.which("runuser") is None:
        raise Unavailable("running as root, but no runuser to start PostgreSQL as postgres")
    base = Path(tempfile.mkdtemp(prefix="pipekit-pg-"))
    try:
        port = _init_and_start(prefix, bindir, base, as_root)
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE pipekit_test")
    except BaseException as exc:
        _stop(prefix, bindir, base / "data", base)
        if isinstance(exc, psycopg.Error):
            raise Unavailable(f"the test server does not answer: {exc}") from exc
        raise
    atexit.register(_stop, prefix, bindir, base / "data", base)
    return f"postgresql://postgres@127.0.0.1:{port}/pipekit_test"


def _init_and_start(prefix: list[str], bindir: Path, base: Path, as_root: bool) -> int:
    """initdb a cluster in ``base``/data and start it on a free port; return the port."""
    if as_root:
        try:
            shutil.chown(base, user="postgres", group=None)
        except (LookupError, OSError) as exc:
            raise Unavailable(f"cannot hand {base} to the postgres user: {exc}") from exc

    def run(*argv: str) -> None:
        try:
            subprocess.run([*prefix, *argv], check=True, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = str(getattr(exc, "stderr", "") or "").strip()
            raise Unavailable(f"{Path(argv[0]).name} failed: {exc} {detail}") from exc

    data = base / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
    run(*initdb, "--encoding=UTF8", "--no-locale", "--no-sync")
    failure: Unavailable | None = None
    for _ in range(3):  # another process may take the free port first: try another
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = base / "server.log"
        try:
            run(
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "start",
            )
            return port
        except Unavailable as exc:
            tail = log.read_text()[-2000:] if log.exists() else ""
            failure = Unavailable(f"{exc}\n{tail}")
    assert failure is not None
    raise failure


def _stop(prefix: list[str], bindir: Path, data: Path, base: Path) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    shutil.rmtree(base, ignore_errors=True)
