#!/usr/bin/env bash
# Runs the official MCP conformance suite (npm @modelcontextprotocol/conformance
# 0.2.0-alpha.12, server scenarios, on Node 22) against a third-party upstream, once
# directly and once through the gateway's /mcp/conf, under each requirement set
# (`--requirements 2025-11-25`, then `--requirements 2026-07-28`). A requirement set fixes
# which scenarios run (the scored ones and the "run and reported, never scored" ones,
# e.g. pending and extension scenarios), so the CLI refuses `--suite` beside it: a set
# runs everything it names. For each set the script prints a table scenario -> direct /
# gateway and the scored counts, and it exits non-zero when any scenario does worse
# through the gateway than directly (pass > warn > fail).
#
#   bash tests/conformance/run.sh
#
# Environment:
#   CONFORMANCE_UPSTREAM  which upstream (default py2):
#                       py2            tests/servers/py2_conformance_server.py on the Python
#                                      SDK 2.x: ONE URL that speaks both eras (sessions for
#                                      initialize-era clients, stateless 2026-07-28)
#                       py2-stateless  the same with --stateless: no sessions in either era
#                       fixture        tests/conformance/fixture-server.cjs on the TS SDK
#                                      1.x: session era only (+ our probes.cjs)
#   CONFORMANCE_REQUIREMENTS  the requirement sets, space-separated
#                       (default "2025-11-25 2026-07-28")
#   LITELLM_MCP_BIN     the gateway binary to use (default: `cargo build --quiet`, then
#                       target/debug/litellm-mcp)
#   CONFORMANCE_OUT     where results go (default target/conformance; emptied first):
#                       <set>/direct, <set>/gateway (one checks.json per scenario),
#                       <set>/scored.txt, the logs, gateway.yaml
#   CONFORMANCE_SCENARIO  run this one scenario only (in each requirement set)
#   CONFORMANCE_TIMEOUT seconds allowed for each suite run (default 60). A run cut short
#                       leaves its remaining scenarios "not run", which counts as failing.
#   CONFORMANCE_SCENARIO_TIMEOUT_MS  the CLI's per-scenario timeout (default 10000)
#
# Needs scripts/install-test-deps.sh to have run (.deps/node22, the conformance package,
# the TypeScript SDK, the .deps/py2 venv). Stops every process it starts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/conformance"
DEPS="$ROOT/.deps"
NODE="$DEPS/node22/bin/node"
CLI="$DEPS/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
PY2="$DEPS/py2/bin/python"
OUT="${CONFORMANCE_OUT:-$ROOT/target/conformance}"
SUITE_TIMEOUT="${CONFORMANCE_TIMEOUT:-60}"
SCENARIO_TIMEOUT_MS="${CONFORMANCE_SCENARIO_TIMEOUT_MS:-10000}"
UPSTREAM="${CONFORMANCE_UPSTREAM:-py2}"
REQUIREMENTS="${CONFORMANCE_REQUIREMENTS:-2025-11-25 2026-07-28}"
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

# suite URL DIR REQ: runs the server scenarios of requirement set REQ against URL; one
# checks.json per scenario goes under DIR. The CLI's own exit status is ignored here: the
# comparison reads the checks.
suite() {
  local url="$1" dir="$2" req="$3"
  mkdir -p "$dir"
  local args=(server --url "$url" --requirements "$req" --timeout "$SCENARIO_TIMEOUT_MS" -o "$dir")
  if [ -n "${CONFORMANCE_SCENARIO:-}" ]; then args+=(--scenario "$CONFORMANCE_SCENARIO"); fi
  timeout -k 5 "$SUITE_TIMEOUT" "$NODE" "$CLI" "${args[@]}" > "$dir.cli.log" 2>&1 || true
  if [ "$UPSTREAM" = fixture ] && [ -z "${CONFORMANCE_SCENARIO:-}" ]; then
    timeout -k 5 20 "$NODE" "$HERE/probes.cjs" "$url" "$dir/extra" >> "$dir.cli.log" 2>&1 || true
  fi
}

rm -rf "$OUT"
mkdir -p "$OUT"

# ---- the upstream -----------------------------------------------------------------------
case "$UPSTREAM" in
  py2 | py2-stateless)
    [ -x "$PY2" ] || die "$PY2 is missing: run scripts/install-test-deps.sh"
    UPSTREAM_ARGS=(--port 0)
    if [ "$UPSTREAM" = py2-stateless ]; then UPSTREAM_ARGS+=(--stateless); fi
    start upstream "$OUT/upstream.log" "$PY2" "$ROOT/tests/servers/py2_conformance_server.py" "${UPSTREAM_ARGS[@]}"
    ;;
  fixture) start upstream "$OUT/upstream.log" "$NODE" "$HERE/fixture-server.cjs" --port 0 ;;
  *) die "unknown CONFORMANCE_UPSTREAM=$UPSTREAM (py2, py2-stateless, fixture)" ;;
esac
UPSTREAM_URL="http://127.0.0.1:$PORT/mcp"

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
    url: $UPSTREAM_URL
EOF
RUST_LOG="${RUST_LOG:-info}" start gateway "$OUT/gateway.log" "$LITELLM_MCP_BIN" serve -c "$OUT/gateway.yaml"
GATEWAY_URL="http://127.0.0.1:$PORT/mcp/conf"

# ---- per requirement set: directly, through the gateway, the comparison ------------------
status=0
for req in $REQUIREMENTS; do
  mkdir -p "$OUT/$req"
  # The scored scenarios of the set: the "Server scenarios" section of `conformance list`.
  "$NODE" "$CLI" list --server --requirements "$req" 2> /dev/null \
    | sed -n '/^Server scenarios/,/^$/s/^  - \([^ ]*\)$/\1/p' > "$OUT/$req/scored.txt"
  [ -s "$OUT/$req/scored.txt" ] || die "conformance list named no server scenarios for $req"
  say "[$req] suite -> $UPSTREAM_URL (direct)"
  suite "$UPSTREAM_URL" "$OUT/$req/direct" "$req"
  say "[$req] suite -> $GATEWAY_URL (gateway)"
  suite "$GATEWAY_URL" "$OUT/$req/gateway" "$req"
  echo "== requirement set $req, upstream $UPSTREAM =="
  set +e
  # Known gaps of this upstream and set: lines `<upstream> <set> <scenario>` of known-gaps.txt.
  awk -v u="$UPSTREAM" -v r="$req" '$1 == u && $2 == r { print $3 }' "$HERE/known-gaps.txt" > "$OUT/$req/known.txt"
  "$NODE" "$HERE/compare.cjs" "$OUT/$req/direct" "$OUT/$req/gateway" "$OUT/$req/scored.txt" "$OUT/$req/known.txt"
  s=$?
  set -e
  if [ "$s" -ne 0 ]; then status=$s; fi
  echo
done
say "results in $OUT; took $(( $(date +%s) - START )) s"
exit "$status"
