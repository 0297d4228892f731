#!/usr/bin/env bash
# Figures of issue 18 for docs/benchmarks.md: POST /v1/check throughput and latency with one and
# with two verdict-server frontends on one PostgreSQL database (spec/storage-postgres.md §5),
# A/B in one run, plus one sled server as the reference. Release builds, a throwaway PostgreSQL
# cluster of the machine's binaries (apt-get install -y postgresql) on loopback.
#
# Usage: scripts/bench-frontends.sh [DURATION_S] [RATE]   (defaults 15 and 1000)
# Every server, both load generators and PostgreSQL share this machine's cores: the figures show
# what one machine does, not what N machines would.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-15}
RATE=${2:-1000}
cargo build --release -p verdict-log-server -p verdict-bench >&2
T=${CARGO_TARGET_DIR:-$PWD/target}/release
B=$T/verdict-server
BENCH=$T/verdict-bench
PGBIN=${VERDICT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
W=$(mktemp -d)
RUN=()
if [ "$(id -u)" = 0 ]; then RUN=(runuser -u postgres --); chown postgres "$W"; fi
PGPORT=$((20000 + RANDOM % 20000))
"${RUN[@]}" "$PGBIN/initdb" -D "$W/pg" -U verdict --auth=trust -E UTF8 --no-sync > /dev/null
"${RUN[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg.log" -w -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W -c max_connections=60" start > /dev/null
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
  "${RUN[@]}" "$PGBIN/pg_ctl" -D "$W/pg" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
echo "commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg), $("$PGBIN/postgres" --version)"
# start NAME PORT [ENV...]: a server with data directory $W/NAME.
start() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$W/$name"
  env VERDICT_LOG=warn "$@" "$B" --data-dir "$W/$name" serve --listen 127.0.0.1:$port --policies testdata/policies > "$W/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do curl -sf http://127.0.0.1:$port/health > /dev/null && return; sleep 0.1; done
  echo "server $name did not start" >&2; cat "$W/$name.log" >&2; exit 1
}
# bench LABEL URL... -- ARGS: one verdict-bench per URL at the same time, each with ARGS, with
# the agent token of $TOKEN (default: server a's).
bench() {
  local label=$1
  shift
  local urls=()
  while [ "$1" != "--" ]; do urls+=("$1"); shift; done
  shift
  echo "== $label: verdict-bench $* (one per frontend: ${#urls[@]})"
  local outs=() pids=()
  for u in "${urls[@]}"; do
    local o; o=$(mktemp -p "$W")
    outs+=("$o")
    "$BENCH" --url "$u" --token-file "${TOKEN:-$W/a/agent.token}" "$@" > "$o" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || echo "(verdict-bench exited with $?)"; done
  for o in "${outs[@]}"; do grep -v '^bench:' "$o" | grep -v '^\s*$'; done
}
PG=(VERDICT_STORAGE=postgres "VERDICT_POSTGRES_URL=postgresql://verdict@127.0.0.1:$PGPORT/postgres")
start a 18181 "${PG[@]}"
half=$((RATE / 2))
bench "one frontend, flat out" http://127.0.0.1:18181 -- --concurrency 256 --duration "$DUR"
bench "one frontend, fixed $RATE/s" http://127.0.0.1:18181 -- --rate "$RATE" --concurrency 256 --duration "$DUR"
# The second frontend shares the first one's keys and tokens (a copy of its data directory).
mkdir -p "$W/b"
cp -r "$W/a/." "$W/b/"
start b 18182 "${PG[@]}"
grep -h -e "as a frontend" "$W/b.log" | head -1
bench "two frontends, flat out" http://127.0.0.1:18181 http://127.0.0.1:18182 -- --concurrency 128 --duration "$DUR"
bench "two frontends, fixed $RATE/s in total" http://127.0.0.1:18181 http://127.0.0.1:18182 -- --rate "$half" --concurrency 128 --duration "$DUR"
bench "two frontends, flat out, --verify" http://127.0.0.1:18181 http://127.0.0.1:18182 -- --concurrency 128 --duration "$DUR" --verify
start s 18183
TOKEN=$W/s/agent.token bench "reference: one server on sled, flat out" http://127.0.0.1:18183 -- --concurrency 256 --duration "$DUR"
