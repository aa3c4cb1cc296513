#!/usr/bin/env bash
# Make sure the PostgreSQL server programs (initdb, pg_ctl) are installed for the tests.
#
# The test suite starts a throwaway server from them on 127.0.0.1 (tests/pg.py); it
# needs no running service and no configuration. `make test` calls this script first.
# Idempotent and quiet: it does nothing when the programs are already there (Debian's
# /usr/lib/postgresql/<version>/bin, or initdb on the PATH) or when
# PIPEKIT_TEST_POSTGRES_DSN names a server to use instead. Otherwise it installs
# Debian's `postgresql` package with apt-get (as root, or through password-less sudo),
# without creating or starting the package's default cluster. Where it cannot install,
# it says so and exits 0: the PostgreSQL tests then skip, naming the reason (set
# PIPEKIT_REQUIRE_POSTGRES=1, as CI does, to make them fail instead).
set -euo pipefail

have_server() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1
}

say() { echo "ensure-postgres: $*" >&2; }

if [[ -n "${PIPEKIT_TEST_POSTGRES_DSN:-}" ]] || have_server; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "no PostgreSQL server programs and no apt-get: install PostgreSQL (initdb, pg_ctl)"
    say "or set PIPEKIT_TEST_POSTGRES_DSN; until then the PostgreSQL tests are skipped"
    exit 0
fi
as_root=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        say "PostgreSQL is not installed and installing it needs root:"
        say "  sudo apt-get install postgresql   (until then the PostgreSQL tests are skipped)"
        exit 0
    fi
fi

say "installing Debian's postgresql package for the tests (a minute, once)"
# The tests make their own throwaway clusters: skip the package's default one.
"${as_root[@]}" mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" |
    "${as_root[@]}" tee /etc/postgresql-common/createcluster.d/pipekit-tests.conf >/dev/null
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get update -qq >/tmp/ensure-postgres.log 2>&1 ||
    ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends postgresql \
        >>/tmp/ensure-postgres.log 2>&1; then
    say "apt-get failed (see /tmp/ensure-postgres.log):"
    tail -n 5 /tmp/ensure-postgres.log >&2
    exit 1
fi
have_server || { say "postgresql installed, but initdb is still missing"; exit 1; }
