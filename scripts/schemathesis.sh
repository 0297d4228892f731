#!/usr/bin/env bash
# OpenAPI exactness (docs/operator-guide.md "API"): Schemathesis generates requests from the
# document the server serves and runs every check (`--checks all`) against a real server on
# loopback, with the agent, admin, auditor and metrics tokens for the operations that need them. It must
# find no 5xx, no response outside the schema and no schema-valid request rejected.
#
#   scripts/schemathesis.sh                 # 40 examples per operation, seed 1
#   MAX_EXAMPLES=200 SEED=7 scripts/schemathesis.sh
#
# Exit: Schemathesis's own (0 nothing found, 1 failures found); 2 when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null; then
  echo "error: schemathesis is missing; install it with: python3 -m pip install schemathesis" >&2
  exit 2
fi

TARGET="${CARGO_TARGET_DIR:-target}"
cargo build -q -p verdict-log-server --bin verdict-server
SERVER="$TARGET/debug/verdict-server"

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
"$SERVER" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --policies testdata/policies \
  >"$WORK/server.out" 2>"$WORK/server.err" &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
  if curl -fsS "$BASE/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "error: verdict-server exited; its log:" >&2
    cat "$WORK/server.err" >&2
    exit 2
  fi
  sleep 0.1
done

# One bearer token per security scheme of the document (components.securitySchemes).
cat >"$WORK/schemathesis.toml" <<EOF
[auth.openapi.agentToken]
bearer = "$(cat "$WORK/data/agent.token")"

[auth.openapi.adminToken]
bearer = "$(cat "$WORK/data/admin.token")"

[auth.openapi.auditorToken]
bearer = "$(cat "$WORK/data/auditor.token")"

[auth.openapi.metricsToken]
bearer = "$(cat "$WORK/data/metrics.token")"

# The semantic rules no JSON schema can state. (1) Whether a policy text compiles and passes its
# analysis: such a text is answered 422 (documented on the operation). (2) Relations between two
# query parameters of the evidence-package reads (spec evidence-package.md §3, §5): `from <= to`
# for /v1/private/period, `start <= end <= tree size` and `end - start <= 100000` for
# /v1/private/records; a request that breaks them is answered 400 (documented). Every other
# positive-data expectation is Schemathesis's default.
[[operations]]
include-path = "/v1/policies"
include-method = "POST"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-path = "/v1/private/period"
include-method = "GET"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404"]

[[operations]]
include-path = "/v1/private/records"
include-method = "GET"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404"]
EOF

schemathesis --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
  --checks all \
  --max-examples "${MAX_EXAMPLES:-40}" \
  --seed "${SEED:-1}" \
  --workers 1 \
  --report junit --report-dir "$TARGET/schemathesis"
