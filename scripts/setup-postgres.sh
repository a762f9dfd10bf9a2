#!/usr/bin/env bash
# Installs what the team-database tests need: Debian's PostgreSQL server (initdb, pg_ctl, postgres).
# The tests start a throwaway cluster of their own (tests/rig/postgres.py); nothing is started here
# and no system cluster is used. Idempotent: does nothing when the server binaries are there.
set -euo pipefail

log() { echo "setup-postgres: $*" >&2; }

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && id postgres >/dev/null 2>&1; then
  log "PostgreSQL server already installed ($(ls /usr/lib/postgresql | sort -n | tail -1))"
  exit 0
fi

log "installing Debian's postgresql package"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
# The package's post-install creates a default cluster and may try to start it (no init system in a
# container): the tests never use it, so a failed start is not an error here.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null || true
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  log "the postgresql package did not install initdb; see apt-get's output above"
  exit 1
fi
log "done"
