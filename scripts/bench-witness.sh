#!/usr/bin/env bash
# Witness figures of POST /v1/check for docs/benchmarks.md (issue 14): checks/s and latency with
# two real `verdict-witness serve` processes on loopback and `witness_quorum = 2`, with and without
# `?witnessed=true`, alternated A/B/A/B on one server.
#
# Usage: scripts/bench-witness.sh [debug|release]   (default release; debug reuses a dev build)
# Env: CARGO_TARGET_DIR (default ./target), PORT (default 18391; witnesses on PORT+1, PORT+2),
#      DURATION (default 8), CONCURRENCY (default 64).
# Run on an otherwise idle machine: the load generator and both witnesses share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${1:-release}
FLAG=(); [ "$PROFILE" = release ] && FLAG=(--release)
cargo build "${FLAG[@]}" -p verdict-log-server -p verdict-witness -p verdict-bench >&2
T=${CARGO_TARGET_DIR:-$PWD/target}/$([ "$PROFILE" = release ] && echo release || echo debug)
PORT=${PORT:-18391}
DURATION=${DURATION:-8}
CONCURRENCY=${CONCURRENCY:-64}
D=$(mktemp -d)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2> /dev/null || true; wait 2> /dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
healthy() { for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && return; sleep 0.1; done; echo "server not healthy" >&2; exit 1; }

# A first start only to learn the log key.
"$T/verdict-server" --data-dir "$D/log" serve --listen "127.0.0.1:$PORT" --policies testdata/policies > "$D/s0.log" 2>&1 &
S=$!; healthy
LK=$(curl -s "http://127.0.0.1:$PORT/v1/keys" | python3 -c 'import json,sys;print(json.load(sys.stdin)["log"]["verifier_key"])')
kill "$S"; wait "$S" || true

echo "witness_quorum = 2" > "$D/c.toml"
for i in 1 2; do
  WP=$((PORT + i))
  VK=$("$T/verdict-witness" keygen --name "bench.test/w$i" --out "$D/w$i.key")
  "$T/verdict-witness" serve --listen "127.0.0.1:$WP" --data-dir "$D/w$i" --key "$D/w$i.key" --log "$LK" > "$D/w$i.log" 2>&1 &
  PIDS+=($!)
  printf '[[witness]]\nname = "w%s"\nvkey = "%s"\nurl = "http://127.0.0.1:%s"\n' "$i" "$VK" "$WP" >> "$D/c.toml"
done
"$T/verdict-server" --config "$D/c.toml" --data-dir "$D/log" serve --listen "127.0.0.1:$PORT" --policies testdata/policies > "$D/s.log" 2>&1 &
PIDS+=($!); healthy

echo "commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg), $PROFILE build"
for mode in "" "--witnessed" "" "--witnessed"; do
  echo "== verdict-bench --concurrency $CONCURRENCY --duration $DURATION $mode"
  "$T/verdict-bench" --url "http://127.0.0.1:$PORT" --token-file "$D/log/agent.token" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" $mode 2>&1 | grep -v '^bench:' | grep -v '^\s*$'
done
echo "== final /checkpoint (signature lines)"
curl -s "http://127.0.0.1:$PORT/checkpoint" | grep '^—'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
