#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance, server
# scenarios, on Node 22) twice against our fixture server (tests/conformance/fixture-server.cjs):
# once directly, once through the gateway's /mcp/conf, and compares them. Prints a table
# scenario -> direct / gateway and exits non-zero when a scenario does worse through the
# gateway than directly (pass > warn > fail). Every scenario of the package runs: the
# active suite and the pending one (marked "pending" in the table), then our own probes
# (tests/conformance/probes.cjs, marked "extra") for what the scenarios leave out.
#
#   bash tests/conformance/run.sh
#
# Environment:
#   LITELLM_MCP_BIN     the gateway binary to use (default: `cargo build --quiet`, then
#                       target/debug/litellm-mcp)
#   CONFORMANCE_OUT     where results go (default target/conformance; emptied first):
#                       direct/, gateway/ (one checks.json per scenario), the logs, gateway.yaml
#   CONFORMANCE_SCENARIO  run this one scenario only
#   CONFORMANCE_UNRELATED=1  the fixture sends sampling/elicitation requests on the session's
#                       GET stream instead of the call's own stream
#   CONFORMANCE_TIMEOUT seconds allowed for each suite run (default 45; a normal run of
#                       the whole script takes about 10 s). A run cut short leaves its
#                       remaining scenarios "not run", which counts as failing.
#   CONFORMANCE_PROBES=0  skip the extra probes
#
# Needs scripts/install-test-deps.sh to have run (.deps/node22, the conformance package,
# the TypeScript SDK). Stops every process it starts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/conformance"
DEPS="$ROOT/.deps"
NODE="$DEPS/node22/bin/node"
CLI="$DEPS/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
OUT="${CONFORMANCE_OUT:-$ROOT/target/conformance}"
SUITE_TIMEOUT="${CONFORMANCE_TIMEOUT:-45}"
START=$(date +%s)

say() { printf '[conformance] %s\n' "$*" >&2; }
die() { printf '[conformance] ERROR: %s\n' "$*" >&2; exit 2; }

for f in "$NODE" "$CLI" "$DEPS/node/node_modules/@modelcontextprotocol/sdk/package.json"; do
  [ -e "$f" ] || die "$f is missing: run scripts/install-test-deps.sh"
done

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Up to 3 s for a graceful exit, then KILL.
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOG CMD... : starts CMD in the background (stdout -> $OUT/NAME.stdout,
# stderr -> LOG), waits up to 60 s for `LISTENING <port>`, sets PORT.
start() {
  local name="$1" log="$2"; shift 2
  local stdout="$OUT/$name.stdout"
  : > "$stdout"
  "$@" > "$stdout" 2> "$log" < /dev/null &
  local pid=$!
  PIDS+=("$pid")
  PORT=""
  for _ in $(seq 600); do
    PORT="$(sed -n 's/^LISTENING \([0-9][0-9]*\)$/\1/p' "$stdout" | head -n1)"
    [ -n "$PORT" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "$name exited before listening"; }
    sleep 0.1
  done
  [ -n "$PORT" ] || { tail -n 30 "$log" >&2; die "$name did not print LISTENING <port> within 60 s"; }
  say "$name listening on 127.0.0.1:$PORT (pid $pid)"
}

# suite URL DIR: runs the server scenarios (active, then pending) against URL; checks.json
# files go to DIR/active and DIR/pending. The CLI's own exit status is ignored here: the
# comparison reads the checks.
suite() {
  local url="$1" dir="$2" s
  mkdir -p "$dir"
  if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then
    timeout -k 5 "$SUITE_TIMEOUT" "$NODE" "$CLI" server --url "$url" \
      --scenario "$CONFORMANCE_SCENARIO" -o "$dir/active" > "$dir/cli.log" 2>&1 || true
    return
  fi
  for s in active pending; do
    timeout -k 5 "$SUITE_TIMEOUT" "$NODE" "$CLI" server --url "$url" --suite "$s" \
      -o "$dir/$s" >> "$dir/cli.log" 2>&1 || true
  done
  [ "${CONFORMANCE_PROBES:-1}" = 1 ] || return 0
  timeout -k 5 20 "$NODE" "$HERE/probes.cjs" "$url" "$dir/extra" >> "$dir/cli.log" 2>&1 || true
}

rm -rf "$OUT"
mkdir -p "$OUT"

# ---- the fixture, directly --------------------------------------------------------------
FIXTURE_ARGS=()
[ "${CONFORMANCE_UNRELATED:-0}" = 1 ] && FIXTURE_ARGS+=(--unrelated-requests)
start fixture "$OUT/fixture.log" "$NODE" "$HERE/fixture-server.cjs" --port 0 "${FIXTURE_ARGS[@]}"
FIXTURE_URL="http://127.0.0.1:$PORT/mcp"

# ---- the gateway ------------------------------------------------------------------------
if [ -z "${LITELLM_MCP_BIN:-}" ]; then
  say "cargo build --quiet"
  (cd "$ROOT" && cargo build --quiet)
  LITELLM_MCP_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/litellm-mcp"
fi
[ -x "$LITELLM_MCP_BIN" ] || die "gateway binary $LITELLM_MCP_BIN not found"
cat > "$OUT/gateway.yaml" <<EOF
# Generated by tests/conformance/run.sh: one upstream, no API keys, loopback only.
listen: 127.0.0.1:0
servers:
  - name: conf
    url: $FIXTURE_URL
EOF
RUST_LOG="${RUST_LOG:-info}" start gateway "$OUT/gateway.log" "$LITELLM_MCP_BIN" serve -c "$OUT/gateway.yaml"
GATEWAY_URL="http://127.0.0.1:$PORT/mcp/conf"

# ---- the two runs -----------------------------------------------------------------------
say "suite -> $FIXTURE_URL (direct)"
suite "$FIXTURE_URL" "$OUT/direct"
say "suite -> $GATEWAY_URL (gateway)"
suite "$GATEWAY_URL" "$OUT/gateway"

# ---- the comparison ---------------------------------------------------------------------
set +e
"$NODE" "$HERE/compare.cjs" "$OUT/direct" "$OUT/gateway"
status=$?
set -e
say "results in $OUT; took $(( $(date +%s) - START )) s"
exit "$status"
