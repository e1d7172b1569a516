#!/usr/bin/env bash
# Bounded fuzz smoke: build every target of fuzz/ and run each for a few seconds
# (FUZZ_SECONDS, default 5). New targets are picked up automatically (`cargo fuzz list`).
# Long runs are done by hand, e.g.
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run frame_decode -O -- -max_total_time=300 -dict=gearman.dict
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-5}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
# cargo-fuzz needs nightly flags (-Zsanitizer); only a stable toolchain is installed.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
targets=$(cargo fuzz list)
[ -n "$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }
for target in $targets; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if ! cargo fuzz run "$target" -O -- -max_total_time="$secs" -dict=gearman.dict >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed; the input is under fuzz/artifacts/$target/" >&2
    rm -f "$log"
    exit 1
  fi
  echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$log" || tail -n 1 "$log")"
  rm -f "$log"
done
