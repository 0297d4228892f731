#!/usr/bin/env bash
# The README quick start, step 1: build, start verdict-server with the example policies, run an
# allowed, a denied and an escalated check, save a proof bundle and verify it with `verdict`.
#
# Usage: scripts/demo.sh [--keep-running]
#   --keep-running   leave the server running in the foreground at the end (Ctrl-C stops it
#                    cleanly); by default the demo stops it with SIGTERM, which flushes the log.
# Environment: VERDICT_DEMO_PORT (default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
for arg in "$@"; do
  case "$arg" in
    --keep-running) KEEP=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
PORT="${VERDICT_DEMO_PORT:-8080}"
BASE="http://127.0.0.1:${PORT}"

say()  { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# --- 0. Prerequisites ------------------------------------------------------------------------
say "Checking prerequisites"
if ! dpkg -s libz3-dev >/dev/null 2>&1 && [ ! -f /usr/include/z3.h ]; then
  die "the system Z3 library is missing. Install it with: sudo apt-get install -y libz3-dev"
fi
info "libz3-dev: found (the checker decides policies with the system Z3)"
command -v cargo >/dev/null || die "cargo not found; install Rust from https://rustup.rs"
command -v curl  >/dev/null || die "curl not found; install it with: sudo apt-get install -y curl"
if curl -s -o /dev/null "$BASE/health" 2>/dev/null; then
  die "something already listens on port $PORT; set VERDICT_DEMO_PORT to a free port"
fi

# --- 1. Build --------------------------------------------------------------------------------
say "Building the release binaries (verdict-server, verdict); the first build takes a few minutes"
cargo build --release -p verdict-log-server -p verdict-verifier
TARGET="${CARGO_TARGET_DIR:-target}/release"
SERVER="$TARGET/verdict-server"
VERDICT="$TARGET/verdict"

# --- 2. Start the server ---------------------------------------------------------------------
DATA="$(mktemp -d "${TMPDIR:-/tmp}/verdict-demo.XXXXXX")"
say "Starting verdict-server on $BASE with a fresh data directory $DATA"
"$SERVER" serve --data-dir "$DATA/data" --listen "127.0.0.1:$PORT" --policies testdata/policies \
  >"$DATA/server.out" 2>"$DATA/server.err" &
PID=$!
stop_server() {
  if kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
}
trap stop_server EXIT
for _ in $(seq 1 100); do
  if curl -sf "$BASE/health" >/dev/null 2>&1; then break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$DATA/server.err" >&2; die "the server exited during start"; }
  sleep 0.1
done
curl -sf "$BASE/health" >/dev/null || die "the server did not become healthy; see $DATA/server.err"
sed 's/^/    /' "$DATA/server.out"
LOG_KEY="$(sed -n 's/^ *log verifier key: *//p' "$DATA/server.out")"
CHECKER_KEY="$(sed -n 's/^ *checker verifier key: *//p' "$DATA/server.out")"
TOKEN="$(cat "$DATA/data/agent.token")"
info "The log key signs checkpoints; the checker key signs receipts. Both are public."

# --- 3. Checks -------------------------------------------------------------------------------
check() { # $1 = label, $2 = action JSON
  curl -sS -X POST "$BASE/v1/check" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d "{\"policy\":\"customer-data-egress\",\"action\":$2}"
}
field() { grep -o "\"$1\":\(\"[^\"]*\"\|[0-9]*\|\[[^]]*\]\)" | head -1 | cut -d: -f2-; }

say "Check 1: an internal transfer of 120 public records, every variable given"
A1='{"destination":"internal","classification":"public","record_count":120,"transfers_in_session":0,"is_privileged":false}'
R1="$(check allow "$A1")"
info "action:   $A1"
info "decision: $(echo "$R1" | field decision)  (every rule holds whatever the unstated details are)"
INDEX1="$(echo "$R1" | field index)"
info "logged at index $INDEX1"

say "Check 2: the same transfer with 10,001 records"
A2='{"destination":"internal","classification":"internal","record_count":10001,"transfers_in_session":0,"is_privileged":false}'
R2="$(check deny "$A2")"
info "decision: $(echo "$R2" | field decision)  violated: $(echo "$R2" | field violated_rule_ids)"
info "(no completion of the action satisfies the session record cap)"

say "Check 3: an external transfer that does not say whether it carries an authorization token"
A3='{"destination":"external","classification":"public","record_count":10,"transfers_in_session":0,"is_privileged":false}'
R3="$(check escalate "$A3")"
info "decision: $(echo "$R3" | field decision)  undetermined: $(echo "$R3" | field undetermined_variables)"
info "(the outcome depends on what the action leaves unsaid, so a human decides)"

# --- 4. Proof bundle and offline verification ------------------------------------------------
say "Saving the proof bundle of check 1 (C2SP tlog-proof: receipt, inclusion proof, checkpoint)"
BUNDLE="$DATA/allow.bundle"
curl -sSf "$BASE/v1/bundle/$INDEX1" -o "$BUNDLE"
info "wrote $BUNDLE ($(wc -c <"$BUNDLE") bytes)"

say "Verifying it offline with verdict (no server, no policy, no Z3 needed)"
"$VERDICT" verify "$BUNDLE" --log-key "$LOG_KEY" --checker-key "$CHECKER_KEY"
info "verified: the checkpoint is signed by the log key, the receipt is included in that"
info "checkpoint's tree, and the receipt is signed by the checker key."

say "Tampering with the bundle (changing its index) must make verification fail"
sed 's/^index .*/index 999/' "$BUNDLE" >"$DATA/tampered.bundle"
if "$VERDICT" verify "$DATA/tampered.bundle" --log-key "$LOG_KEY" --checker-key "$CHECKER_KEY" >/dev/null 2>&1; then
  die "the tampered bundle verified; this is a bug"
fi
info "rejected, as it must be."

say "The public log"
info "checkpoint: $BASE/checkpoint"
curl -sS "$BASE/checkpoint" | sed 's/^/      /'
info "tiles:      $BASE/tile/0/000.p/<size>, entries: $BASE/tile/entries/000.p/<size>"
info "metrics:    $BASE/metrics   API: $BASE/openapi.json"

if [ "$KEEP" = 1 ]; then
  say "The server keeps running in the foreground (data: $DATA/data). Ctrl-C stops it cleanly."
  info "agent token: $DATA/data/agent.token   admin token: $DATA/data/admin.token   auditor token: $DATA/data/auditor.token"
  trap - EXIT
  trap 'kill -TERM "$PID" 2>/dev/null || true' INT TERM
  wait "$PID" || true
else
  say "Stopping the server (SIGTERM flushes the pending batch and exits cleanly)"
  stop_server
  trap - EXIT
  info "done. Data left in $DATA; run again with --keep-running to explore the API."
fi
