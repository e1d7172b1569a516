#!/usr/bin/env bash
# store_bench.sh: durable background submits, C gearmand's queue modules against ours on the
# same backend: libsqlite3, postgres (libpq) and redis.
#
#   [BACKENDS="sqlite postgres redis"] [GEARMAND_JOBS=N] server/benches/store_bench.sh [OUR_BINARY] [JOBS_PER_CLIENT] [CLIENT_COUNTS...]
#
# GEARMAND_JOBS: jobs per client for gearmand's runs (default JOBS_PER_CLIENT): gearmand
# commits one job at a time, so fewer jobs give its rate in a fraction of the time.
# OUR_BINARY defaults to $CARGO_TARGET_DIR/release/gearmand-rs (or target/release/gearmand-rs).
# For each client count, runs `gbench -m bg -c C -w 4 -n JOBS -s 64` (libgearman clients, each
# waiting for JOB_CREATED before the next submit; then 4 workers drain) against:
#   gearmand  /usr/sbin/gearmand -q libsqlite3 (one transaction per job)
#   full      ours, -q libsqlite3 (group commit, synchronous=FULL: fsync per commit)
#   normal    ours, --libsqlite3-sync normal (group commit, fsync at checkpoints only)
#   gearmand  /usr/sbin/gearmand -q postgres (one INSERT, one transaction, per job)
#   ours      ours, -q postgres (group commit: one statement per group)
#   gearmand  /usr/sbin/gearmand -q redis (one HMSET per job)
#   ours      ours, -q redis (group commit: one MULTI/EXEC per group)
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
pid=
backends=${BACKENDS:-sqlite postgres redis}
pgbin=; pgdata=$work/pg; pgport=; pgas=(); redis_pid=; redis_port=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  [ -n "$pgport" ] && "${pgas[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1
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

start() { # $1 port, rest: command
  local port=$1; shift
  "$@" >/dev/null 2>&1 & pid=$!
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0; sleep 0.05; done
  echo "store_bench.sh: server did not listen on $port: $*" >&2; exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; }
figure() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
run() { # $1 name, $2 clients, rest: server command with PORT, DB, CONNINFO, REDISP placeholders
  local name=$1 c=$2; shift 2
  local port; port=$(free_port); local db=$work/$name-$c.db conninfo=
  # (run is called in a subshell: the name must not come from a counter of the caller)
  if [ -n "$pgport" ] && [[ "$*" == *CONNINFO* ]]; then conninfo=$(fresh_database "bench_$(date +%s%N)"); fi
  if [ -n "$redis_port" ]; then redis-cli -p "$redis_port" flushall >/dev/null; fi
  local cmd=("${@//PORT/$port}"); cmd=("${cmd[@]//DB/$db}"); cmd=("${cmd[@]//CONNINFO/$conninfo}")
  cmd=("${cmd[@]//REDISP/$redis_port}")
  start "$port" "${cmd[@]}"
  local n=$jobs; [ "${cmd[0]}" = "$ours" ] || n=${GEARMAND_JOBS:-$jobs}
  local out; out=$(timeout 600 "$bin" -p "$port" -m bg -c "$c" -w 4 -n "$n" -s 64 | grep RESULT || true)
  stop
  echo "$(echo "$out" | figure submit_rate) $(echo "$out" | figure drain_rate) $(echo "$out" | figure failures)"
}
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
for b in $backends; do
  for c in "${counts[@]}"; do
    case $b in
      sqlite)
        baseline sqlite "$c" /usr/sbin/gearmand "${common[@]}" -q libsqlite3 --libsqlite3-db DB
        for mode in full normal; do
          ours_row sqlite "$mode" "$c" "${common[@]}" -q libsqlite3 --libsqlite3-db DB --libsqlite3-sync "$mode"
        done ;;
      postgres)
        baseline postgres "$c" /usr/sbin/gearmand "${common[@]}" -q postgres --libpq-conninfo CONNINFO
        ours_row postgres ours "$c" "${common[@]}" -q postgres --libpq-conninfo CONNINFO ;;
      redis)
        baseline redis "$c" /usr/sbin/gearmand "${common[@]}" -q redis --redis-server 127.0.0.1 --redis-port REDISP
        ours_row redis ours "$c" "${common[@]}" -q redis --redis-server 127.0.0.1 --redis-port REDISP ;;
    esac
  done
done
