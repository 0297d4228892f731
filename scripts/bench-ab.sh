#!/usr/bin/env bash
# A/B load figures of POST /v1/check for two verdict-server binaries (issue 10 acceptance: the
# layered server against the commit before the change). Runs are interleaved A B A B ... in one
# session, each on a fresh data directory, with the same load tool (verdict-bench) for both:
# flat out (512 in flight) and a fixed 2,000 checks/s, 15 s each. Prints one line per run and
# the medians; record them with the load average in docs/benchmarks.md.
#
# Usage: scripts/bench-ab.sh A_SERVER B_SERVER [ROUNDS]      (default 3 rounds)
#   BENCH=path/to/verdict-bench (default <target>/release/verdict-bench), PORT (default 18085)
# Older binaries name the agent token `write.token`; either file is used.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1
B=$2
ROUNDS=${3:-3}
BENCH=${BENCH:-${CARGO_TARGET_DIR:-target}/release/verdict-bench}
PORT=${PORT:-18085}
echo "A=$A"
echo "B=$B"
echo "commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) vCPU, load $(cut -d' ' -f1-3 /proc/loadavg)"

# run LABEL SERVER BENCH-ARGS...: one server on a fresh data directory, one bench run.
run() {
  local label=$1 server=$2
  shift 2
  local d
  d=$(mktemp -d)
  RUST_LOG=warn "$server" serve --data-dir "$d/data" --listen "127.0.0.1:$PORT" \
    --policies testdata/policies > "$d/server.log" 2>&1 &
  local sp=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.1; done
  local token=$d/data/agent.token
  [ -f "$token" ] || token=$d/data/write.token
  local out
  out=$("$BENCH" --url "http://127.0.0.1:$PORT" --token-file "$token" "$@" 2>&1)
  kill -INT "$sp"
  wait "$sp" 2> /dev/null || true
  rm -rf "$d"
  local tput p99 errs
  tput=$(echo "$out" | awk '/^throughput:/{print $2}')
  p99=$(echo "$out" | awk '/^latency/{print $8}')
  errs=$(echo "$out" | awk '/^errors:/{print $2}')
  echo "$label $tput $p99 $errs $(cut -d' ' -f1 /proc/loadavg)"
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
echo "run decisions/s p99_ms errors load1"
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A
    [ "$side" = B ] && bin=$B
    run "flat-$side-$r" "$bin" --concurrency 512 --duration 15 | tee -a "$RESULTS"
  done
done
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A
    [ "$side" = B ] && bin=$B
    run "rate2000-$side-$r" "$bin" --rate 2000 --concurrency 512 --duration 15 | tee -a "$RESULTS"
  done
done
for kind in flat rate2000; do
  for side in A B; do
    t=$(grep "^$kind-$side-" "$RESULTS" | awk '{print $2}' | median)
    p=$(grep "^$kind-$side-" "$RESULTS" | awk '{print $3}' | median)
    echo "median $kind $side: $t decisions/s, p99 $p ms"
  done
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
