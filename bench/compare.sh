#!/usr/bin/env bash
# compare.sh: run the same libgearman load (gbench) against the reference gearmand and against
# a server of ours, one after the other in one run, and print each figure with the ratio ours/gearmand.
#
#   bench/compare.sh ['COMMAND THAT STARTS OUR SERVER ON PORT $PORT'] [quick]
#
# From the repository root (the default command is the release gearmand-rs, built first):
#   bench/compare.sh
#   bench/compare.sh 'target/release/gearmand-rs --port $PORT' quick
#
# Besides rate and latency, each load reports the server's CPU time per job (every thread,
# from /proc/PID/task/*/schedstat, over the whole load) and gbench's own (user + system),
# both in microseconds: where the client's CPU per job nears the time per job, the clients
# are the limit. Environment:
#   REPEAT=N     run every load N times, the two servers alternating (default 1)
#   LOADS='fg1 bg'  only these loads (default: all)
#   SYSCALLS=1   also count the server's system calls per job (strace -c -f attached for
#                the load: its rates are then strace's, not the server's)
#
# gearman-bench --compare (tools/bench) runs the same kind of comparison without libgearman
# in the way: pipelined loads, mixed payloads, p999.
#
# Needs: apt-get install -y gearman-job-server libgearman-dev gcc (it installs them when missing and root).
# Everything stays on 127.0.0.1; every load is bounded in jobs and time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [ $# -eq 0 ]; then
  (cd "$root" && cargo build --release -q -p gearman-server)
  ours_cmd="$root/target/release/gearmand-rs --port \$PORT"
else
  ours_cmd=$1
fi
scale=${2:-full}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need gearmand && [ ! -x /usr/sbin/gearmand ] || [ ! -e /usr/include/libgearman-1.0/gearman.h ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gearman-job-server libgearman-dev gcc) >/dev/null
  else
    echo "compare.sh: needs gearman-job-server and libgearman-dev" >&2; exit 2
  fi
fi
bin=${TMPDIR:-/tmp}/gbench.$$
gcc -O2 -o "$bin" "$here/gbench.c" -lgearman -lpthread
trap 'rm -f "$bin"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

if [ "$scale" = quick ]; then n_fg=2000 n_batch=4000 n_bg=10000; else n_fg=10000 n_batch=20000 n_bg=50000; fi
loads=(
  "fg1   -m fg    -c 1 -w 1 -n $n_fg -s 64"
  "fg4   -m fg    -c 4 -w 4 -n $n_fg -s 64"
  "batch -m batch -c 4 -w 4 -n $n_batch -s 64 -b 100"
  "bg    -m bg    -c 4 -w 4 -n $n_bg -s 64"
  "fg4k  -m fg    -c 4 -w 4 -n $((n_fg / 2)) -s 4096"
)

cpu_ns() { # CPU time of process $1 so far, every thread, in ns
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}
# Runs gbench against port $1 with args $2..; sets out, server_us, client_us, syscalls.
measure() {
  local port=$1; shift
  local before after jobs tfile sfile spid=
  tfile=$(mktemp); sfile=$(mktemp)
  if [ "${SYSCALLS:-0}" = 1 ]; then
    strace -c -f -p "$pid" -o "$sfile" 2>/dev/null & spid=$!
    sleep 0.5
  fi
  before=$(cpu_ns "$pid")
  out=$( { TIMEFORMAT='%3U %3S'; time timeout 300 "$bin" -p "$port" "$@"; } 2>"$tfile" | grep RESULT || true)
  after=$(cpu_ns "$pid")
  if [ -n "$spid" ]; then kill -INT "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; fi
  jobs=$(echo "$out" | sed -n 's/.* jobs=\([0-9]*\).*/\1/p')
  jobs=${jobs:-0}
  server_us=$(awk -v a="$before" -v b="$after" -v j="$jobs" 'BEGIN { if (j > 0) printf "%.2f", (b - a) / j / 1000 }')
  client_us=$(tail -1 "$tfile" | awk -v j="$jobs" '{ if (j > 0) printf "%.2f", ($1 + $2) * 1e6 / j }')
  syscalls=
  if [ -n "$spid" ]; then
    syscalls=$(awk -v j="$jobs" '$NF == "total" { if (j > 0) printf "%.2f", $(NF-2) / j }' "$sfile")
  fi
  rm -f "$tfile" "$sfile"
}

start_server() { # $1 = command with $PORT; sets port (retried: a port may be taken)
  for _ in 1 2 3 4 5; do
    # Below the usual ephemeral range, so no outgoing connection holds it.
    port=$((20000 + RANDOM % 12000))
    PORT=$port bash -c "exec $1" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 100); do
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    stop_server
  done
  echo "compare.sh: server did not listen: $1" >&2; return 1
}
stop_server() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }
figure() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }

gd=$( [ -x /usr/sbin/gearmand ] && echo /usr/sbin/gearmand || command -v gearmand )
row() { # name figure gearmand ours
  local r
  r=$(awk -v x="${3:-0}" -v y="${4:-0}" 'BEGIN { if (x > 0) printf "%.2f", y / x; else print "-" }')
  printf '%-6s %-13s %12s %12s %8s\n' "$1" "$2" "${3:-none}" "${4:-none}" "$r"
}
printf '%-6s %-13s %12s %12s %8s\n' load figure gearmand ours ratio
for spec in "${loads[@]}"; do
  read -r name args <<<"$spec"
  if [ -n "${LOADS:-}" ] && [[ " $LOADS " != *" $name "* ]]; then continue; fi
  for _ in $(seq "${REPEAT:-1}"); do
    start_server "$gd -L 127.0.0.1 -p \$PORT --log-file none"
    measure "$port" $args; stop_server
    a=$out a_server=$server_us a_client=$client_us a_sys=$syscalls
    start_server "$ours_cmd"
    measure "$port" $args; stop_server
    b=$out b_server=$server_us b_client=$client_us b_sys=$syscalls
    if [[ $args == "-m bg "* ]]; then figs="submit_rate drain_rate"; else figs="rate p50_us p99_us"; fi
    for f in $figs failures; do
      row "$name" "$f" "$(echo "$a" | figure "$f")" "$(echo "$b" | figure "$f")"
    done
    row "$name" server_cpu_us "$a_server" "$b_server"
    row "$name" client_cpu_us "$a_client" "$b_client"
    if [ "${SYSCALLS:-0}" = 1 ]; then row "$name" syscalls/job "$a_sys" "$b_sys"; fi
  done
done
