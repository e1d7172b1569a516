#!/usr/bin/env bash
# Databases for the -q postgres and -q redis tests and benchmarks: Debian's PostgreSQL
# (initdb/pg_ctl under /usr/lib/postgresql/*/bin) and redis-server. The tests start their
# own throwaway servers on free loopback ports with temporary data directories, so the
# system services are neither needed nor started here. runuser (util-linux) lets the tests
# run PostgreSQL as an unprivileged user when they run as root (postgres refuses root).
set -euo pipefail
missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian starts the services it installs; the tests do not use them.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
