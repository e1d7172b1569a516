#!/usr/bin/env bash
# For server/tests/http.rs: `promtool check metrics` and a real Prometheus server that
# scrapes gearmand-rs (Debian's prometheus package has both), and curl for the HTTP job
# protocol compared against gearmand 1.1.20.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The package starts a system Prometheus on :9090; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
