#!/usr/bin/env bash
# For server/tests/dashboard.rs: headless Chromium loads the dashboard and screenshots it.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
