#!/usr/bin/env bash
# Makes sure Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres) are installed.
# The tests start their own server on a free 127.0.0.1 port; nothing else is assumed.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "PostgreSQL server binaries are missing: run 'sudo apt-get install -y postgresql' and retry" >&2
  exit 1
fi
echo "==> installing PostgreSQL (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q postgresql postgresql-contrib >/dev/null
