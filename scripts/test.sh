#!/usr/bin/env bash
# The project's test command (README "Quick start", step 2; `.ci/run` runs it too).
# Runs every test of the workspace, then checks that the cargo-fuzz targets still compile.
set -euo pipefail
cd "$(dirname "$0")/.."

# Z3 is the only system package the build needs (the `z3` crate links the system libz3).
if [ ! -f /usr/include/z3.h ]; then
  echo "error: libz3-dev is missing; install it with: sudo apt-get install -y libz3-dev" >&2
  exit 2
fi

# The PostgreSQL storage tests (issue 18) start a throwaway cluster of the real server binaries
# (Debian `postgresql`): install them when missing and we may (root), as for libz3-dev.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v pg_config >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "postgresql is missing; installing it (apt-get install -y postgresql)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "error: the postgresql server binaries are missing; install them with: sudo apt-get install -y postgresql" >&2
    exit 2
  fi
fi

# The audit report's browser test (tests/tests/report_chromium.rs, issue 16) opens the report in
# Debian's headless `chromium`: install it when missing and we may (root), as for postgresql.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "chromium is missing; installing it (apt-get install -y chromium)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "error: chromium is missing (the report test needs it); install it with: sudo apt-get install -y chromium" >&2
    exit 2
  fi
fi

# The gateway's end-to-end tests drive real MCP implementations this project did not write: the
# reference filesystem server (npm) and the Python `mcp` SDK client (PyPI). Install them into
# <target>/gateway-test-deps, where the tests look (they also install them when missing, and skip
# with a loud notice only when that is impossible).
GATEWAY_DEPS="${CARGO_TARGET_DIR:-target}/gateway-test-deps"
if command -v npm >/dev/null; then
  if [ ! -f "$GATEWAY_DEPS/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" ]; then
    npm install --no-audit --no-fund --prefix "$GATEWAY_DEPS/npm" @modelcontextprotocol/server-filesystem >/dev/null
  fi
else
  echo "warning: npm is missing (sudo apt-get install -y nodejs npm); the gateway e2e tests will skip" >&2
fi
if command -v python3 >/dev/null; then
  if ! "$GATEWAY_DEPS/venv/bin/python" -c "import mcp.client.streamable_http" 2>/dev/null; then
    python3 -m venv "$GATEWAY_DEPS/venv" && "$GATEWAY_DEPS/venv/bin/python" -m pip install -q mcp
  fi
else
  echo "warning: python3 is missing (sudo apt-get install -y python3-venv); the Python MCP client test will skip" >&2
fi

cargo test --workspace

# Interop and format vectors: print how many cases each suite ran (cargo hides passing tests'
# output, so re-run just those tests with --nocapture; they take a few seconds).
echo "== vector suites =="
cargo test -q -p verdict-core --test integration -- --nocapture \
  merkle_vectors tessera note_vectors receipts 2>/dev/null | grep -E "cases|vectors:" | sed 's/^[.i]*//'

# Bad input and abuse (issue 6): the per-endpoint case counts, the framing cases on the wire and
# the slow-client outcome, printed the same way.
echo "== bad input and abuse =="
cargo test -q -p verdict-log-server --test server -- --nocapture bad_input wire_input slow_client \
  2>&1 | grep -E "^[.]*(bad_input|wire_input|slow_client)|^  (GET|POST|\(no route|total)" | sed 's/^[.]*//'

# fuzz/ is outside the workspace (cargo-fuzz wants nightly); compiling it on stable proves the
# targets still build against the current parsers. Its corpora also run in the stable test suite.
if [ -f fuzz/Cargo.toml ]; then
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/fuzz-check" cargo check --manifest-path fuzz/Cargo.toml --bins
fi
