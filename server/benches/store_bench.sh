#!/usr/bin/env bash
# store_bench.sh: durable background submits, C gearmand's libsqlite3 queue against ours.
#
#   server/benches/store_bench.sh [OUR_BINARY] [JOBS_PER_CLIENT] [CLIENT_COUNTS...]
#
# OUR_BINARY defaults to $CARGO_TARGET_DIR/release/gearmand-rs (or target/release/gearmand-rs).
# For each client count, runs `gbench -m bg -c C -w 4 -n JOBS -s 64` (libgearman clients, each
# waiting for JOB_CREATED before the next submit; then 4 workers drain) against:
#   gearmand  /usr/sbin/gearmand -q libsqlite3 (one transaction per job)
#   full      ours, -q libsqlite3 (group commit, synchronous=FULL: fsync per commit)
#   normal    ours, --libsqlite3-sync normal (group commit, fsync at checkpoints only)
# Each run gets a fresh queue file under a temporary directory; everything is on 127.0.0.1
# and bounded (timeout 600 s per run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
ours=${1:-${CARGO_TARGET_DIR:-$root/target}/release/gearmand-rs}
jobs=${2:-2500}
shift $(( $# > 2 ? 2 : $# ))
counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(4 16)
[ -x "$ours" ] || { echo "store_bench.sh: no server binary at $ours (cargo build --release -p gearman-server)" >&2; exit 2; }
work=$(mktemp -d); bin=$work/gbench
gcc -O2 -o "$bin" "$root/../shared/bench/gbench.c" -lgearman -lpthread 2>/dev/null \
  || gcc -O2 -o "$bin" /work/shared/bench/gbench.c -lgearman -lpthread
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

start() { # $1 port, rest: command
  local port=$1; shift
  "$@" >/dev/null 2>&1 & pid=$!
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0; sleep 0.05; done
  echo "store_bench.sh: server did not listen on $port: $*" >&2; exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }
figure() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
run() { # $1 name, $2 clients, rest: server command with PORT placeholder
  local name=$1 c=$2; shift 2
  local port=$((20000 + RANDOM % 20000)) db=$work/$name-$c.db
  local cmd=("${@//PORT/$port}"); cmd=("${cmd[@]//DB/$db}")
  start "$port" "${cmd[@]}"
  local out; out=$(timeout 600 "$bin" -p "$port" -m bg -c "$c" -w 4 -n "$jobs" -s 64 | grep RESULT || true)
  stop
  echo "$(echo "$out" | figure submit_rate) $(echo "$out" | figure drain_rate) $(echo "$out" | figure failures)"
}
ratio() { awk -v x="${1:-0}" -v y="${2:-0}" 'BEGIN { if (x > 0) printf "%.1f", y / x; else print "-" }'; }

printf '%-8s %-8s %10s %10s %8s %10s %8s\n' clients server submit/s drain/s failures submit_x drain_x
for c in "${counts[@]}"; do
  read -r gs gd gf < <(run gearmand "$c" /usr/sbin/gearmand -L 127.0.0.1 -p PORT --log-file none \
    -q libsqlite3 --libsqlite3-db DB)
  printf '%-8s %-8s %10s %10s %8s %10s %8s\n' "$c" gearmand "$gs" "$gd" "$gf" 1.0 1.0
  for mode in full normal; do
    read -r s d f < <(run "$mode" "$c" "$ours" -L 127.0.0.1 -p PORT --log-file none \
      -q libsqlite3 --libsqlite3-db DB --libsqlite3-sync "$mode")
    printf '%-8s %-8s %10s %10s %8s %10s %8s\n' "$c" "$mode" "$s" "$d" "$f" "$(ratio "$gs" "$s")" "$(ratio "$gd" "$d")"
  done
done
