#!/usr/bin/env bash
# Evidence-package export at scale (issue 16, "Scale"; docs/benchmarks.md, "evidence packages").
#
# For each size: `verdict-server fill --package` a fresh benchmark log (one policy statement,
# then real decisions with their private records), serve it, export the whole period by time
# into a directory and into a .tar, and run `verdict audit verify-package` on both. Each client
# run is timed with /usr/bin/time -v (wall time, max RSS); the server's VmHWM (peak RSS) is read
# from /proc before and after each export. Prints one table row per size.
#
# Usage: scripts/bench-package.sh SIZE...          e.g. scripts/bench-package.sh 100000 1000000
# Environment:
#   CARGO_TARGET_DIR  where the release binaries are built (default: target)
#   NO_BUILD=1        use the release binaries already built
#   BENCH_DIR         work directory (default: a new temporary directory, deleted at the end)
#   KEEP=1            keep the work directory (logs, packages, time -v outputs)
#   PORT              server port (default 18093)
#   CONCURRENCY       fill submitters (default 256)
#   FILL_ONLY=1       only fill the stores (into BENCH_DIR, kept), for a later run with REUSE=1
#   REUSE=1           reuse a store of BENCH_DIR already filled for that size (FILL_ONLY=1 first)
#   VERDICT           the `verdict` binary to measure (default: the release build), e.g. another
#                     commit's build for an A/B on the same stores
#   FORMS             package forms to export and verify (default "dir tar")
# Disk, per million entries: about 1.3 GB for the store and 0.8 GB for each package form (dir, tar).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/bench-package.sh SIZE..." >&2; exit 2; }
PORT=${PORT:-18093}
CONCURRENCY=${CONCURRENCY:-256}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --bins -p verdict-log-server -p verdict-verifier >&2
fi
SERVER=$TARGET/release/verdict-server
VERDICT=${VERDICT:-$TARGET/release/verdict}
FORMS=${FORMS:-dir tar}
W=${BENCH_DIR:-$(mktemp -d)}
mkdir -p "$W/no-policies"
SPID=
cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2> /dev/null || true; fi
  if [ -z "${KEEP:-}" ] && [ -z "${FILL_ONLY:-}" ]; then rm -rf "$W"; fi
}
trap cleanup EXIT

# `/usr/bin/time -v` output file -> "wall_seconds max_rss_kib"
timed() {
  [ -f "$1" ] || { echo "- -"; return; }
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
    /Maximum resident set size/ { m = $2 }
    END { printf "%.1f %d\n", s, m }' "$1"
}
hwm() { awk '/VmHWM/{print $2}' "/proc/$SPID/status"; }
mib() { case $1 in '' | *[!0-9]*) echo "-" ;; *) echo $(( $1 / 1024 )) ;; esac; }

echo "client $VERDICT, commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg)"
ROWS=()
for N in "$@"; do
  D=$W/log-$N
  if [ -n "${REUSE:-}" ] && [ -e "$W/fill-$N.done" ]; then
    echo "== $N entries: reusing the store filled in $W"
  else
    echo "== $N entries: fill (load $(cut -d' ' -f1-3 /proc/loadavg))"
    rm -rf "$D"
    RUST_LOG=warn /usr/bin/time -v -o "$W/fill-$N.time" "$SERVER" --data-dir "$D" fill --package --entries "$N" \
      --concurrency "$CONCURRENCY" --report-every 100000 2>&1 | grep -E '^fill' || true
    touch "$W/fill-$N.done"
  fi
  if [ -n "${FILL_ONLY:-}" ]; then continue; fi
  rm -rf "$W/pkg-$N" "$W/pkg-$N.tar" "$W"/export-*-"$N".time "$W"/verify-*-"$N".time
  read -r FILL_S FILL_KIB < <(timed "$W/fill-$N.time")
  STORE=$(du -sm "$D" | cut -f1)
  RUST_LOG=warn "$SERVER" --data-dir "$D" serve --listen "127.0.0.1:$PORT" --policies "$W/no-policies" \
    > "$W/serve-$N.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 1200); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.5; done
  curl -sf "http://127.0.0.1:$PORT/health" > /dev/null || { echo "server did not start:"; cat "$W/serve-$N.log"; exit 1; }
  KEYS=$(curl -sf "http://127.0.0.1:$PORT/v1/keys")
  LOG_KEY=$(jq -r .log.verifier_key <<< "$KEYS")
  CHECKER_KEY=$(jq -r '.checkers[0].verifier_key' <<< "$KEYS")
  SIZE=$(curl -sf "http://127.0.0.1:$PORT/checkpoint" | sed -n 2p)
  H0=$(hwm)
  HWM_dir=-; HWM_tar=-
  for FORM in $FORMS; do
    OUT=$W/pkg-$N; [ "$FORM" = tar ] && OUT=$W/pkg-$N.tar
    echo "== $N entries: export $FORM (tree size $SIZE, load $(cut -d' ' -f1-3 /proc/loadavg))"
    /usr/bin/time -v -o "$W/export-$FORM-$N.time" "$VERDICT" audit export --log "http://127.0.0.1:$PORT" \
      --token-file "$D/auditor.token" --log-key "$LOG_KEY" --checker-key "$CHECKER_KEY" \
      --from 2000-01-01T00:00:00Z --to 2100-01-01T00:00:00Z --out "$OUT"
    declare "HWM_$FORM=$(hwm)"
  done
  kill -INT "$SPID"; wait "$SPID" || true; SPID=
  PKG=$(du -sm "$W/pkg-$N" | cut -f1)
  for FORM in $FORMS; do
    OUT=$W/pkg-$N; [ "$FORM" = tar ] && OUT=$W/pkg-$N.tar
    echo "== $N entries: verify-package $FORM (load $(cut -d' ' -f1-3 /proc/loadavg))"
    /usr/bin/time -v -o "$W/verify-$FORM-$N.time" "$VERDICT" audit verify-package "$OUT" \
      --log-key "$LOG_KEY" --checker-key "$CHECKER_KEY"
  done
  read -r ED_S ED_KIB < <(timed "$W/export-dir-$N.time")
  read -r ET_S ET_KIB < <(timed "$W/export-tar-$N.time")
  read -r VD_S VD_KIB < <(timed "$W/verify-dir-$N.time")
  read -r VT_S VT_KIB < <(timed "$W/verify-tar-$N.time")
  ROWS+=("| $N | $SIZE | ${FILL_S} s, $STORE MB | $PKG MB | ${ED_S} s / $(mib "$ED_KIB") MiB | ${ET_S} s / $(mib "$ET_KIB") MiB | ${VD_S} s / $(mib "$VD_KIB") MiB | ${VT_S} s / $(mib "$VT_KIB") MiB | $(mib "$H0") → $(mib "$HWM_dir") → $(mib "$HWM_tar") MiB |")
  if [ -z "${KEEP:-}" ]; then rm -rf "$D" "$W/pkg-$N" "$W/pkg-$N.tar"; fi
done
echo
echo "| decisions filled | tree size | fill: wall, store | package | export (dir): wall / max RSS | export (tar): wall / max RSS | verify-package (dir): wall / max RSS | verify-package (tar): wall / max RSS | server VmHWM: start → after dir → after tar |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
