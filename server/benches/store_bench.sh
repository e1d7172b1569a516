#!/usr/bin/env bash
# store_bench.sh: durable background submits, C gearmand's queue modules against ours on the
# same backend: libsqlite3, postgres (libpq) and redis.
#
#   [BACKENDS="sqlite postgres redis"] [GEARMAND_JOBS=N] server/benches/store_bench.sh [OUR_BINARY] [JOBS_PER_CLIENT] [CLIENT_COUNTS...]
#
# GEARMAND_JOBS: jobs per client for gearmand's runs (default JOBS_PER_CLIENT): gearmand
# commits one job at a time, so fewer jobs give its rate in a fraction of the time.
# REPEAT=N: each row N times, gearmand and ours alternating (a shared disk's fsync latency
# can change several-fold within minutes: a ratio is only fair between adjacent runs); a
# summary at the end gives the median of the N paired ratios.
# OUR_BINARY defaults to $CARGO_TARGET_DIR/release/gearmand-rs (or target/release/gearmand-rs).
# WINDOW=W: pipelined submitters instead of lockstep ones: each client keeps W background
# submissions in flight (`gearman-bench -m bg --window W`, built next to OUR_BINARY), as PHP's
# addTaskBackground + runTasks or any batch producer does. gearmand still commits one job at a
# time; ours puts up to C x W jobs in a commit. The db-C and C*db-1 rows are not printed then
# (they describe lockstep submitters).
# For each client count, runs `gbench -m bg -c C -w 4 -n JOBS -s 64` (libgearman clients, each
# waiting for JOB_CREATED before the next submit; then 4 workers drain) against:
#   gearmand  /usr/sbin/gearmand -q libsqlite3 (one transaction per job)
#   full      ours, -q libsqlite3 (group commit, synchronous=FULL: fsync per commit)
#   normal    ours, --libsqlite3-sync normal (group commit, fsync at checkpoints only)
#   gearmand  /usr/sbin/gearmand -q postgres (one INSERT, one transaction, per job)
#   ours      ours, -q postgres (group commit: one statement per group)
#   gearmand  /usr/sbin/gearmand -q redis (one HMSET per job)
#   ours      ours, -q redis (group commit: one MULTI/EXEC per group)
#   db-1      the database alone, one client committing one row at a time (pgbench -c 1 with
#             a one-row INSERT; redis-benchmark -c 1 HSET): about what gearmand can reach,
#             since it commits one job at a time
#   db-C      the same with C clients at once (the database's own group commit)
#   C*db-1    C times db-1: about the most C submitters that each wait for their commit can
#             reach on this database (one commit per submitter per round), whatever groups
#             them; its submit_x is the ratio over gearmand that is physically possible
# After each of our rows, "profile" shows where the time went until the last submission
# (from /api/status): commits and inserts per commit, the time an insert waited queued, and
# per commit its duration, the time until durable, the runner's gathering and sync time.
# PostgreSQL (initdb from /usr/lib/postgresql/*/bin, fsync and synchronous_commit on, as
# installed) and Redis (appendonly yes, appendfsync always: every reply after an fsync) run
# from throwaway data directories for the script, both servers of a row on the same one.
# Each run gets a fresh queue file, a fresh database, or an emptied Redis; everything is on
# 127.0.0.1 and bounded (timeout 600 s per run).
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
window=${WINDOW:-}; piped=$(dirname "$ours")/gearman-bench
if [ -n "$window" ] && [ ! -x "$piped" ]; then
  echo "store_bench.sh: WINDOW needs $piped (cargo build --release -p gearman-bench)" >&2; exit 2
fi
pid=
backends=${BACKENDS:-sqlite postgres redis}
pgbin=; pgdata=$work/pg; pgport=; pgas=(); redis_pid=; redis_port=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  [ -n "$pgport" ] && "${pgas[@]}" "$pgbin/pg_ctl" -D "$pgdata/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { echo $((20000 + RANDOM % 20000)); }

start_postgres() { # a cluster of its own; PostgreSQL refuses to run as root
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$pgbin/initdb" ] || { echo "store_bench.sh: PostgreSQL missing (.ci/install-20-postgres-redis.sh)" >&2; exit 2; }
  mkdir -p "$pgdata"
  if [ "$(id -u)" = 0 ]; then chown postgres "$work" "$pgdata"; chmod 755 "$work"; pgas=(runuser -u postgres --); fi
  "${pgas[@]}" "$pgbin/initdb" -D "$pgdata/data" -U gearman -A trust -E UTF8 >/dev/null
  pgport=$(free_port)
  "${pgas[@]}" "$pgbin/pg_ctl" -D "$pgdata/data" -l "$pgdata/log" -w \
    -o "-p $pgport -c listen_addresses=127.0.0.1 -k $pgdata" start >/dev/null
}
fresh_database() { # $1 name: an empty database, and its conninfo
  "$pgbin/psql" -X -q -d "host=127.0.0.1 port=$pgport user=gearman dbname=postgres" -c "CREATE DATABASE $1" >/dev/null
  echo "host=127.0.0.1 port=$pgport user=gearman dbname=$1"
}
start_redis() {
  command -v redis-server >/dev/null || { echo "store_bench.sh: redis-server missing (.ci/install-20-postgres-redis.sh)" >&2; exit 2; }
  redis_port=$(free_port); mkdir -p "$work/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --appendonly yes \
    --appendfsync always --save '' --daemonize no --logfile "$work/redis/log" & redis_pid=$!
  for _ in $(seq 200); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.05; done
  echo "store_bench.sh: redis-server did not start" >&2; exit 1
}

start() { # $1 port, rest: command; fails (status 1) if the server exits or does not listen
  local port=$1; shift
  "$@" >/dev/null 2>&1 & pid=$!
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; pid=; return 1; }
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      # Something else may hold a random port: ours then exits at once.
      sleep 0.2; kill -0 "$pid" 2>/dev/null && return 0
      wait "$pid" 2>/dev/null; pid=; return 1
    fi
    sleep 0.05
  done
  echo "store_bench.sh: server did not listen on $port: $*" >&2; exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }
figure() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
run() { # $1 name, $2 clients, rest: server command with PORT, DB, CONNINFO, REDISP placeholders
  local name=$1 c=$2; shift 2
  local db=$work/$name-$c.db conninfo= port cmd n http attempt
  # (run is called in a subshell: the name must not come from a counter of the caller)
  if [ -n "$pgport" ] && [[ "$*" == *CONNINFO* ]]; then conninfo=$(fresh_database "bench_$(date +%s%N)"); fi
  if [ -n "$redis_port" ]; then redis-cli -p "$redis_port" flushall >/dev/null; fi
  for attempt in 1 2 3 4 5; do # a random port may be taken: try another
    port=$(free_port); rm -f "$db"
    cmd=("${@//PORT/$port}"); cmd=("${cmd[@]//DB/$db}"); cmd=("${cmd[@]//CONNINFO/$conninfo}")
    cmd=("${cmd[@]//REDISP/$redis_port}")
    n=$jobs http=
    if [ "${cmd[0]}" = "$ours" ]; then http=$(free_port); cmd+=(--http-port "$http"); else n=${GEARMAND_JOBS:-$jobs}; fi
    start "$port" "${cmd[@]}" && break
    [ "$attempt" = 5 ] && { echo "store_bench.sh: cannot start ${cmd[*]}" >&2; exit 1; }
  done
  if [ -n "$window" ]; then
    timeout 600 "$piped" -p "$port" -m bg -c "$c" -w 4 -n "$n" -s 64 --window "$window" --json \
      2>/dev/null | python3 "$work/piped.py" > "$work/out" &
  else
    timeout 600 "$bin" -p "$port" -m bg -c "$c" -w 4 -n "$n" -s 64 > "$work/out" &
  fi
  local g=$!
  rm -f "$work/status"
  if [ -n "$http" ]; then # the runner's profile at the end of the submissions
    # (polled with curl and grep alone: a python start per poll took ~20% of a core from
    # the server being measured, on a 2-core machine)
    local inserts
    while kill -0 "$g" 2>/dev/null; do
      curl -s "http://127.0.0.1:$http/api/status" > "$work/poll" || true
      inserts=$(grep -o '"inserts":[0-9]*' "$work/poll" | head -1 | cut -d: -f2)
      if [ "${inserts:-0}" -ge "$((c * n))" ]; then mv "$work/poll" "$work/status"; break; fi
      sleep 0.1
    done
  fi
  wait "$g" || true
  local out; out=$(grep RESULT "$work/out" || true)
  stop
  echo "$(echo "$out" | figure submit_rate) $(echo "$out" | figure drain_rate) $(echo "$out" | figure failures)"
}
cat > "$work/piped.py" <<'PY'
import json, sys
r = json.load(sys.stdin)
print("RESULT mode=bg submit_rate=%.0f drain_rate=%.0f failures=%d"
      % (r["rate"], r["drain"]["rate"], r["failures"] + r["jobs"] - r["drain"]["drained"]))
PY
cat > "$work/profile.py" <<'PY'
import json, sys
s = json.load(sys.stdin)["store"]; r = s["runner"]; c = s["commit_seconds"]
g, i = max(r["groups"], 1), max(r["inserts"], 1)
print("  profile: %d commits, %.1f inserts each; an insert waited %.0f us queued; a commit took %.0f us, "
      "%.0f us until durable, after %.0f us gathering; %.0f us syncing per commit"
      % (r["groups"], r["inserts"] / g, r["queued_seconds"] / i * 1e6, c["sum"] / max(c["count"], 1) * 1e6,
         r["durable_seconds"] / g * 1e6, r["gather_seconds"] / g * 1e6, r["sync_seconds"] / g * 1e6))
PY
ratio() { awk -v x="${1:-0}" -v y="${2:-0}" 'BEGIN { if (x > 0) printf "%.1f", y / x; else print "-" }'; }

row() { printf '%-9s %-8s %-8s %10s %10s %8s %10s %8s\n' "$@"; }
baseline() { # $1 backend, $2 clients, rest: gearmand command; prints the row, sets gs gd
  local b=$1 c=$2; shift 2
  read -r gs gd gf < <(run "gearmand-$b" "$c" "$@")
  row "$b" "$c" gearmand "$gs" "$gd" "$gf" 1.0 1.0
}
ours_row() { # $1 backend, $2 label, $3 clients, rest: our command
  local b=$1 label=$2 c=$3; shift 3
  read -r s d f < <(run "$label-$b" "$c" "$ours" "$@")
  row "$b" "$c" "$label" "$s" "$d" "$f" "$(ratio "$gs" "$s")" "$(ratio "$gd" "$d")"
  echo "$b $c $label $(ratio "$gs" "$s")" >> "$work/ratios"
  if [ -s "$work/status" ]; then python3 "$work/profile.py" < "$work/status" || true; fi
}
floor_rows() { # $1 backend, $2 clients: the database's own commit rates (see the header)
  local b=$1 c=$2 one many
  case $b in
    postgres)
      local conninfo; conninfo=$(fresh_database "floor_$(date +%s%N)")
      "$pgbin/psql" -X -q -d "$conninfo" -c "CREATE TABLE t (id bigserial PRIMARY KEY, data bytea)" >/dev/null
      echo "INSERT INTO t (data) VALUES (decode(repeat('ab', 64), 'hex'));" > "$work/insert.sql"
      local pgb=("$pgbin/pgbench" -h 127.0.0.1 -p "$pgport" -U gearman -n -f "$work/insert.sql" -T 5)
      one=$("${pgb[@]}" -c 1 "${conninfo##*dbname=}" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
      many=$("${pgb[@]}" -c "$c" -j 2 "${conninfo##*dbname=}" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p') ;;
    redis)
      local rb=(redis-benchmark -p "$redis_port" --csv -t hset -d 64)
      one=$("${rb[@]}" -c 1 -n 1500 | awk -F'"' '/HSET/ { print $4 }')
      many=$("${rb[@]}" -c "$c" -n $((c * 1500)) | awk -F'"' '/HSET/ { print $4 }') ;;
    *) return 0 ;;
  esac
  one=${one%.*}; many=${many%.*}
  row "$b" "$c" db-1 "$one" - - "$(ratio "$gs" "$one")" -
  [ -z "$window" ] || return 0
  row "$b" "$c" "db-$c" "$many" - - "$(ratio "$gs" "$many")" -
  row "$b" "$c" "$c*db-1" "$((c * ${one:-0}))" - - "$(ratio "$gs" "$((c * ${one:-0}))")" -
}
common=(-L 127.0.0.1 -p PORT --log-file none)
for b in $backends; do
  case $b in
    postgres) start_postgres ;;
    redis) start_redis ;;
    sqlite) ;;
    *) echo "store_bench.sh: unknown backend $b (sqlite, postgres, redis)" >&2; exit 2 ;;
  esac
done
row backend clients server submit/s drain/s failures submit_x drain_x
: > "$work/ratios"
for b in $backends; do
  for c in "${counts[@]}"; do
   for rep in $(seq "${REPEAT:-1}"); do
    last=; [ "$rep" = "${REPEAT:-1}" ] && last=1
    case $b in
      sqlite)
        baseline sqlite "$c" /usr/sbin/gearmand "${common[@]}" -q libsqlite3 --libsqlite3-db DB
        for mode in full normal; do
          ours_row sqlite "$mode" "$c" "${common[@]}" -q libsqlite3 --libsqlite3-db DB --libsqlite3-sync "$mode"
        done ;;
      postgres)
        baseline postgres "$c" /usr/sbin/gearmand "${common[@]}" -q postgres --libpq-conninfo CONNINFO
        ours_row postgres ours "$c" "${common[@]}" -q postgres --libpq-conninfo CONNINFO
        [ -z "$last" ] || floor_rows postgres "$c" ;;
      redis)
        baseline redis "$c" /usr/sbin/gearmand "${common[@]}" -q redis --redis-server 127.0.0.1 --redis-port REDISP
        ours_row redis ours "$c" "${common[@]}" -q redis --redis-server 127.0.0.1 --redis-port REDISP
        redis-cli -p "$redis_port" flushall >/dev/null
        [ -z "$last" ] || floor_rows redis "$c" ;;
    esac
   done
  done
done
if [ "${REPEAT:-1}" -gt 1 ]; then
  echo "median of the paired submit ratios (ours / gearmand in adjacent runs):"
  sort -k1,1 -k2,2n -k3,3 -k4,4g "$work/ratios" | awk '
    function flush() { if (n) { m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2;
      printf "  %-9s %-8s %-8s %6.1f  (%s)\n", pb, pc, pl, m, all } n = 0; all = "" }
    { if ($1 != pb || $2 != pc || $3 != pl) { flush(); pb = $1; pc = $2; pl = $3 }
      v[++n] = $4; all = all (all ? " " : "") $4 }
    END { flush() }'
fi
