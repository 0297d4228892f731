#!/usr/bin/env bash
# Proof-serving latency and server RSS at a given log size (docs/benchmarks.md, "Scale").
# Fills a fresh log directly (no HTTP, no checker), serves it, runs the same read sequence and
# prints the server's VmRSS after each run. The data directory is deleted at the end.
#
# Usage: scripts/bench-scale.sh ENTRIES [PORT]     e.g. 1000000, then 10000000 (~3.2 GB on disk)
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=${1:?usage: scripts/bench-scale.sh ENTRIES [PORT]}
PORT=${2:-18091}
cargo build --release -p verdict-log-server -p verdict-bench >&2
B=$PWD/target/release/verdict-server
BENCH=$PWD/target/release/verdict-bench
D=$(mktemp -d)
trap 'kill $SPID 2> /dev/null || true; rm -rf "$D" "$D.serve.log"' EXIT
echo "commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $ENTRIES entries, load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f 'fill: %e s wall, max RSS %M KiB' "$B" --data-dir "$D" fill --entries "$ENTRIES" 2>&1 | tail -2
du -sh "$D"
"$B" --data-dir "$D" serve --listen 127.0.0.1:$PORT > "$D.serve.log" 2>&1 &
SPID=$!
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:$PORT/checkpoint > /dev/null && break; sleep 0.5; done
rss() { echo "RSS after $1: $(awk '/VmRSS/{print $2}' /proc/$SPID/status) KiB"; }
run() { echo "== $1"; shift; "$BENCH" proofs --url http://127.0.0.1:$PORT "$@" 2>&1 | grep -E 'throughput|latency|errors'; }
rss "start"
run "inclusion" --kind inclusion --count 20000 --warmup 2000 --concurrency 16; rss "inclusion"
run "inclusion, 2nd" --kind inclusion --count 20000 --warmup 2000 --concurrency 16; rss "inclusion, 2nd"
run "hash tile" --kind hash-tile --count 20000 --warmup 2000 --concurrency 16; rss "hash tile"
run "entry bundle" --kind entry-bundle --count 20000 --warmup 2000 --concurrency 16; rss "entry bundle"
run "mixed tiles 1" --kind tile --count 40000 --warmup 0 --concurrency 16; rss "mixed tiles 1"
run "mixed tiles 2" --kind tile --count 40000 --warmup 0 --concurrency 16; rss "mixed tiles 2"
run "inclusion, 3rd" --kind inclusion --count 20000 --warmup 2000 --concurrency 16; rss "inclusion, 3rd"
kill -INT $SPID
wait $SPID
