#!/usr/bin/env bash
# The README's test command: installs (as root, each step skipped when already done) and
# starts everything the tests talk to, then runs `cargo test --workspace`. Extra
# arguments go to cargo test. Every `.ci/install-*.sh` runs in name order; a feature that
# needs a new peer or service adds its own script there.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh installs Debian packages: run it as root (or with sudo)" >&2
  exit 1
fi
for script in .ci/install-*.sh; do
  echo "== $script (at ${SECONDS}s)"
  bash "$script"
done
echo "== cargo test --workspace (at ${SECONDS}s)"
cargo test --workspace "$@"
