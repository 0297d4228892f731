#!/usr/bin/env bash
# Load figures of POST /v1/check for docs/benchmarks.md (issues 4 and 6): maximum sustained rate,
# check-to-proof latency at fixed rates, `?wait=false`, and pushback past saturation. Each run
# with --verify fetches every acknowledged bundle afterwards and fails on any loss.
#
# Usage: scripts/bench-load.sh [RATE ...]   (fixed rates; default 2000 3000 6000 10800)
# Run on an otherwise idle machine: the load generator shares its cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p verdict-log-server -p verdict-bench >&2
B=$PWD/target/release/verdict-server
BENCH=$PWD/target/release/verdict-bench
PORT=${PORT:-18085}
RATES=("$@")
[ ${#RATES[@]} -eq 0 ] && RATES=(2000 3000 6000 10800)
echo "commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg)"
start() {
  D=$(mktemp -d)
  env "$@" "$B" serve --data-dir "$D" --listen 127.0.0.1:$PORT --policies testdata/policies > "$D.log" 2>&1 &
  SP=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:$PORT/health > /dev/null && break; sleep 0.1; done
  U=(--url http://127.0.0.1:$PORT --token-file "$D/agent.token")
}
stop() { kill "$SP"; wait "$SP" 2> /dev/null || true; rm -rf "$D" "$D.log"; }
run() {
  echo "== verdict-bench $*"
  local t0 t1 out n
  t0=$(awk '{print $14+$15}' /proc/$SP/stat)
  out=$("$BENCH" "${U[@]}" "$@" 2>&1)
  t1=$(awk '{print $14+$15}' /proc/$SP/stat)
  echo "$out" | grep -v '^bench:' | grep -v '^\s*$'
  n=$(echo "$out" | awk '/requests ok/{print $3}')
  echo "server CPU per request (incl. any --verify reads): $(( (t1 - t0) * 10000 / (n > 0 ? n : 1) )) us"
}
trap 'stop' EXIT
start VERDICT_LOG=warn
run --concurrency 512 --duration 15 --verify
for r in "${RATES[@]}"; do
  c=512
  [ "$r" -ge 8000 ] && c=1024   # enough workers that the fixed schedule is never short of them
  run --rate "$r" --concurrency $c --duration 15
done
run --concurrency 512 --duration 10 --no-wait --verify
stop
# Past saturation: a small pending limit makes the server push back with 503 + Retry-After.
start VERDICT_MAX_PENDING=256
run --concurrency 1024 --duration 15 --verify
