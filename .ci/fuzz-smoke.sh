#!/usr/bin/env bash
# Bounded fuzz smoke: build every target and run each for a few seconds. Long runs are
# done by hand: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> -- -max_total_time=600
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-10}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "fuzz $target for ${secs}s"
  log=$(mktemp)
  if ! cargo fuzz run "$target" -O -- -max_total_time="$secs" -dict=gearman.dict >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed" >&2
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" || tail -n 3 "$log"
  rm -f "$log"
done
