#!/usr/bin/env bash
# Peers the gearmand-rs tests need beyond .ci/run's base list (run as root on a fresh
# Debian machine, after .ci/run's apt step):
#   ss (iproute2)  - server/tests/process.rs and the adapter suites read sockets' keepalive timers
#   kill (procps)  - gearman_tests::ServerProcess::terminate sends SIGTERM
#   strace         - server/tests/store_sync.rs checks each JOB_CREATED follows its fsync
#   python3 gear   - interop scenarios (Debian 12 marks the system Python externally
#                    managed, so plain `pip install` refuses; retry with the override)
set -euo pipefail
missing=()
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v kill >/dev/null 2>&1 || missing+=(procps)
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import gear' 2>/dev/null; then
  pip install -q gear 2>/dev/null || pip install -q --break-system-packages gear
fi
