#!/usr/bin/env bash
# Benchmarks: what a call through the gateway costs, measured with `litellm-mcp bench`
# against our fixture server (crates/mcp-fixture), each figure next to the same load sent
# straight to the fixture in the same run (the baseline), as a ratio.
#
#   scripts/bench.sh            # full run: 10 s per figure after a 2 s warm-up
#   scripts/bench.sh --quick    # ~1 s per figure, few requests: checks that it all works
#
# Scenarios (every server on 127.0.0.1; every process started here is stopped on exit):
#   1  tools/call echo with a 1 KiB `text`, 1 and 32 client sessions: the gateway's
#      /mcp/<server> and /mcp (aggregated name) over an HTTP upstream vs the fixture's /mcp;
#      also a plain HTTP relay (`mcp-fixture --relay`, no MCP), the floor of any gateway
#   2  the same over the gateway's stdio and WebSocket upstreams vs the fixture over
#      stdio (a process per session) and /ws; also WebSocket end to end (the gateway's
#      /ws/<server> face over the WebSocket upstream)
#   3  tools/list through /mcp over 20 upstreams of 50 tools (cached): p50, and the
#      upstream tools/list count from the fixture's /stats while the cache is fresh
#   4  10,000 idle downstream sessions: the gateway's RSS before and after
#   5  scenario 3 for a key whose policy has 100 rules: p50 next to scenario 3's
#   6  start-up to ready with 20 servers: LISTENING, /ready, first aggregated tools/list
#   7  a fleet: three replicas on one PostgreSQL (started here in $WORK, as the user
#      postgres when run as root) behind HAProxy (round-robin, no stickiness, so a
#      session's requests land on every replica and are resumed from the sealed session
#      id) vs one replica directly, the same load (scenario 1's echo through /mcp/fx-http);
#      the ratio and the p50 HAProxy and the fleet add. Needs postgresql and haproxy
#      (scripts/install-test-deps.sh)
#
# Environment: BENCH_PROFILE (cargo profile to build and run, default release);
# BENCH_SCENARIOS (which to run, default "1 2 3 4 5 6 7"; 5 runs with 3).
# Needs python3 (the report's arithmetic). Exit status 0 only when every run had no
# request errors; the figures themselves are never pass/fail.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument '$arg' (use --quick)" >&2; exit 2 ;;
    esac
done

PROFILE="${BENCH_PROFILE:-release}"
if [[ $QUICK == 1 ]]; then
    RUN=(--requests 300 --duration 1s --warmup 0.2s)
    IDLE_SESSIONS=500
    STARTS=1
else
    RUN=(--duration 10s --warmup 2s)
    IDLE_SESSIONS=10000
    STARTS=5
fi
SCENARIOS=" ${BENCH_SCENARIOS:-1 2 3 4 5 6 7} "
wanted() { [[ $SCENARIOS == *" $1 "* ]]; }
CONCURRENCY=(1 32)
UPSTREAMS=20
TOOLS_PER_UPSTREAM=50

echo "== building ($PROFILE)"
if [[ $PROFILE == release ]]; then
    cargo build --release --workspace --quiet
else
    cargo build --profile "$PROFILE" --workspace --quiet
fi
case "$PROFILE" in dev|test) BIN="$ROOT/target/debug" ;; *) BIN="$ROOT/target/$PROFILE" ;; esac
GATEWAY="$BIN/litellm-mcp"
FIXTURE="$BIN/mcp-fixture"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/litellm-bench.XXXXXX")"
PIDS=()
PG_STOP=()
cleanup() {
    local pid
    if [[ ${#PG_STOP[@]} -gt 0 ]]; then "${PG_STOP[@]}" >/dev/null 2>&1 || true; fi
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded wait (10 s), then KILL.
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD…: runs CMD in the background (stdout → $WORK/NAME.out, stderr →
# $WORK/NAME.log) and waits up to 30 s for `LISTENING <port>`; sets PORT and PID.
start() {
    local name="$1"; shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 3000); do
        if PORT="$(awk '/^LISTENING /{print $2; exit}' "$WORK/$name.out" 2>/dev/null)" && [[ -n $PORT ]]; then
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.01
    done
    echo "bench.sh: $name did not report LISTENING <port>; its log:" >&2
    tail -n 20 "$WORK/$name.log" >&2
    exit 1
}

# stop PID: SIGTERM, bounded wait, KILL.
stop() {
    local pid="$1" kept=()
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
    PIDS=("${kept[@]}")
}

# bench OUT ARGS…: runs `litellm-mcp bench --json` into $WORK/OUT.json (progress into
# $WORK/OUT.progress); a failed run stops the script with its output.
bench() {
    local out="$1"; shift
    if ! "$GATEWAY" bench --json "$@" >"$WORK/$out.json" 2>"$WORK/$out.progress"; then
        echo "bench.sh: litellm-mcp bench $* failed:" >&2
        cat "$WORK/$out.json" "$WORK/$out.progress" >&2
        exit 1
    fi
}

# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK="$(getconf CLK_TCK)"

# measured NAME PID OUT ARGS…: `bench OUT ARGS…`, and the CPU time process PID (NAME:
# gateway or fixture) spent meanwhile into $WORK/OUT.cpu.
measured() {
    local name="$1" pid="$2" out="$3"; shift 3
    local before after
    before="$(cpu_ticks "$pid")"
    bench "$out" "$@"
    after="$(cpu_ticks "$pid")"
    echo "$name $((after - before)) $CLK_TCK" >"$WORK/$out.cpu"
}

# row SCENARIO TRANSPORT CONCURRENCY LABEL RESULT [BASELINE]: one line of the report;
# ratios to BASELINE when given. CPU per call: the measured process's CPU time over
# every request of the run, warm-up included.
row() {
    python3 - "$WORK" "$@" <<'PY'
import json, os, sys
work, scenario, transport, concurrency, label, result = sys.argv[1:7]
baseline = sys.argv[7] if len(sys.argv) > 7 else None
def load(name):
    r = json.load(open(f"{work}/{name}.json"))
    r["cpu"] = None
    if os.path.exists(f"{work}/{name}.cpu"):
        who, ticks, hz = open(f"{work}/{name}.cpu").read().split()
        served = r["requests"] + r["errors"] + r["warmup_requests"]
        r["cpu"] = (who, int(ticks) * 1e6 / int(hz) / max(served, 1))
    return r
r = load(result)
b = load(baseline) if baseline else None
def ratio(x, y):
    if b is None:
        return ""
    return f" ({x / y:5.2f}x)" if y else "        "
def lat(key):
    v = r["latency_us"][key]
    return f"{key} {v / 1000:7.3f} ms" + (ratio(v, b["latency_us"][key]) if b else "")
rps = f"{r['requests_per_sec']:7.0f} req/s" + (ratio(r["requests_per_sec"], b["requests_per_sec"]) if b else "")
cpu = f" | cpu {r['cpu'][1]:5.0f} us/call ({r['cpu'][0]})" if r["cpu"] else ""
print(f"scenario {scenario} | {transport:9} | c={concurrency:<3} | {label:26} | {rps} | "
      + " | ".join(lat(k) for k in ("p50", "p90", "p99", "max"))
      + f"{cpu} | errors {r['errors']}")
if r["errors"]:
    print(f"bench.sh: {result}: {r['errors']} errors: {json.dumps(r['errors_by_kind'])}", file=sys.stderr)
    sys.exit(1)
PY
}

# rss_kib PID: resident set size from /proc.
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

stat_count() {  # stat_count PORT METHOD: the fixture's /stats count of METHOD
    python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
port, method = sys.argv[1:3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
print(json.load(opener.open(f"http://127.0.0.1:{port}/stats", timeout=10))["methods"].get(method, 0))
PY
}

KEY="sk-bench-$RANDOM$RANDOM"
export BENCH_KEY="$KEY"
AUTH=(--header "Authorization: Bearer $KEY")
TEXT="$(head -c 1024 /dev/zero | tr '\0' 'x')"
ECHO=(--tool echo --args "{\"text\":\"$TEXT\"}")

echo "== machine: $(nproc) cores, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if COMMIT="$(git rev-parse --short HEAD 2>/dev/null)"; then
    git diff --quiet HEAD -- 2>/dev/null || COMMIT="$COMMIT with local changes"
    echo "== commit: $COMMIT"
fi
echo "== every figure: litellm-mcp bench ${RUN[*]}; ratios are gateway / direct (same run)"

start fixture "$FIXTURE" --port 0
FIXTURE_PORT=$PORT
FIXTURE_PID=$PID

cat >"$WORK/gateway.yaml" <<EOF
listen: 127.0.0.1:0
max_sessions_per_key: $((IDLE_SESSIONS + 1000))
servers:
  - name: fx-http
    url: http://127.0.0.1:$FIXTURE_PORT/mcp
  - name: fx-ws
    url: ws://127.0.0.1:$FIXTURE_PORT/ws
  - name: fx-stdio
    command: $FIXTURE
    args: [--stdio]
api_keys:
  - name: bench
    key: "\${BENCH_KEY}"
EOF
start gateway "$GATEWAY" serve -c "$WORK/gateway.yaml"
GATEWAY_PORT=$PORT
GATEWAY_PID=$PID
GW="http://127.0.0.1:$GATEWAY_PORT"
FX="http://127.0.0.1:$FIXTURE_PORT"
# The floor: a plain HTTP relay (hyper server, reqwest client, no MCP) in front of the
# fixture. What it costs, any HTTP gateway on this machine costs at least.
start relay "$FIXTURE" --port 0 --relay "$FX/mcp"
RELAY="http://127.0.0.1:$PORT"
RELAY_PID=$PID

if wanted 1; then
echo
echo "== scenario 1: tools/call echo (1 KiB text), HTTP upstream"
for c in "${CONCURRENCY[@]}"; do
    measured fixture "$FIXTURE_PID" s1-direct-$c "$FX/mcp" -c "$c" "${RUN[@]}" "${ECHO[@]}"
    measured relay "$RELAY_PID" s1-relay-$c "$RELAY/mcp" -c "$c" "${RUN[@]}" "${ECHO[@]}"
    measured gateway "$GATEWAY_PID" s1-server-$c "$GW/mcp/fx-http" -c "$c" "${RUN[@]}" "${ECHO[@]}" "${AUTH[@]}"
    measured gateway "$GATEWAY_PID" s1-all-$c "$GW/mcp" -c "$c" "${RUN[@]}" --tool fx-http__echo --args "{\"text\":\"$TEXT\"}" "${AUTH[@]}"
    row 1 http "$c" "direct   fixture /mcp" s1-direct-$c
    row 1 http "$c" "floor    plain HTTP relay" s1-relay-$c s1-direct-$c
    row 1 http "$c" "gateway  /mcp/fx-http" s1-server-$c s1-direct-$c
    row 1 http "$c" "gateway  /mcp fx-http__echo" s1-all-$c s1-direct-$c
done

fi

if wanted 2; then
echo
echo "== scenario 2: tools/call echo (1 KiB text), stdio and WebSocket upstreams"
for c in "${CONCURRENCY[@]}"; do
    bench s2-stdio-direct-$c --stdio "$FIXTURE --stdio" -c "$c" "${RUN[@]}" "${ECHO[@]}"
    measured gateway "$GATEWAY_PID" s2-stdio-gw-$c "$GW/mcp/fx-stdio" -c "$c" "${RUN[@]}" "${ECHO[@]}" "${AUTH[@]}"
    row 2 stdio "$c" "direct   fixture --stdio" s2-stdio-direct-$c
    row 2 stdio "$c" "gateway  /mcp/fx-stdio" s2-stdio-gw-$c s2-stdio-direct-$c
done
for c in "${CONCURRENCY[@]}"; do
    measured fixture "$FIXTURE_PID" s2-ws-direct-$c "ws://127.0.0.1:$FIXTURE_PORT/ws" -c "$c" "${RUN[@]}" "${ECHO[@]}"
    measured gateway "$GATEWAY_PID" s2-ws-gw-$c "$GW/mcp/fx-ws" -c "$c" "${RUN[@]}" "${ECHO[@]}" "${AUTH[@]}"
    measured gateway "$GATEWAY_PID" s2-ws-face-$c "ws://127.0.0.1:$GATEWAY_PORT/ws/fx-ws" -c "$c" "${RUN[@]}" "${ECHO[@]}" "${AUTH[@]}"
    row 2 websocket "$c" "direct   fixture /ws" s2-ws-direct-$c
    row 2 websocket "$c" "gateway  /mcp/fx-ws" s2-ws-gw-$c s2-ws-direct-$c
    row 2 websocket "$c" "gateway  /ws/fx-ws (WS face)" s2-ws-face-$c s2-ws-direct-$c
done

fi

# The 20-server config of scenarios 3, 5 and 6. The key `filtered` (scenario 5) has a
# policy of 100 rules: per server, 4 of its own (deny, read, execute, deny by pattern),
# and 20 more that name one tool on every server.
FILTER_KEY="sk-filtered-$RANDOM$RANDOM"
export BENCH_FILTER_KEY="$FILTER_KEY"
{
    echo "listen: 127.0.0.1:0"
    echo "servers:"
    for i in $(seq -w 1 "$UPSTREAMS"); do
        echo "  - {name: up$i, url: \"http://127.0.0.1:\${TOOLS_PORT}/mcp\"}"
    done
    echo "api_keys:"
    echo "  - {name: bench, key: \"\${BENCH_KEY}\"}"
    echo "  - {name: filtered, key: \"\${BENCH_FILTER_KEY}\"}"
    echo "policies:"
    echo "  default_level: execute"
    echo "  keys:"
    echo "    filtered:"
    echo "      default_level: read"
    echo "      rules:"
    for i in $(seq -w 1 "$UPSTREAMS"); do
        echo "        - {server: up$i, tool: \"tool_1*\", level: deny}"
        echo "        - {server: up$i, tool: \"tool_2*\", level: read}"
        echo "        - {server: up$i, tool: \"echo\", level: execute}"
        echo "        - {server: up$i, tool: \"*_4*\", level: deny}"
        echo "        - {server: \"up*\", tool: \"tool_$((10#$i + 29))\", level: execute}"
    done
} >"$WORK/gateway-20.yaml"
if wanted 3 || wanted 5 || wanted 6; then
    start fixture-tools "$FIXTURE" --port 0 --tools "$TOOLS_PER_UPSTREAM" --ttl-ms 600000
    export TOOLS_PORT=$PORT
    TOOLS_PID=$PID
fi

if wanted 3 || wanted 5; then
echo
echo "== scenario 3: tools/list through /mcp, $UPSTREAMS upstreams x $TOOLS_PER_UPSTREAM tools, cached"
start gateway-20 "$GATEWAY" serve -c "$WORK/gateway-20.yaml"
GW20="http://127.0.0.1:$PORT"
GW20_PID=$PID
LISTS_START="$(stat_count "$TOOLS_PORT" tools/list)"
bench s3-fill "$GW20/mcp" -c 1 --requests 1 --warmup 0 --list "${AUTH[@]}"
LISTS_FILLED="$(stat_count "$TOOLS_PORT" tools/list)"
measured gateway "$GW20_PID" s3-gateway "$GW20/mcp" -c 1 "${RUN[@]}" --list "${AUTH[@]}"
LISTS_AFTER="$(stat_count "$TOOLS_PORT" tools/list)"
measured fixture "$TOOLS_PID" s3-direct "http://127.0.0.1:$TOOLS_PORT/mcp" -c 1 "${RUN[@]}" --list
row 3 http 1 "direct   1 server" s3-direct
row 3 http 1 "gateway  /mcp, $UPSTREAMS servers" s3-gateway
python3 - "$WORK" "$LISTS_START" "$LISTS_FILLED" "$LISTS_AFTER" "$UPSTREAMS" <<'PY'
import json, sys
work, start, filled, after, upstreams = sys.argv[1], *map(int, sys.argv[2:])
d = json.load(open(f"{work}/s3-direct.json")); g = json.load(open(f"{work}/s3-gateway.json"))
served = g["requests"] + g["errors"] + g["warmup_requests"]
print(f"scenario 3 | p50 {g['latency_us']['p50'] / 1000:.3f} ms through the gateway (the first page of the "
      f"{upstreams} servers' tools), {d['latency_us']['p50'] / 1000:.3f} ms straight to one server (its whole list)")
print(f"scenario 3 | upstream tools/list (fixture /stats): {filled - start} to fill the caches, "
      f"{after - filled} while the gateway served {served} tools/list from them")
PY
if wanted 5; then
    echo
    echo "== scenario 5: scenario 3 for a key whose policy has 100 rules"
    measured gateway "$GW20_PID" s5-filtered "$GW20/mcp" -c 1 "${RUN[@]}" --list --header "Authorization: Bearer $FILTER_KEY"
    measured gateway "$GW20_PID" s5-plain "$GW20/mcp" -c 1 "${RUN[@]}" --list "${AUTH[@]}"
    row 5 http 1 "gateway  no rules (again)" s5-plain
    row 5 http 1 "gateway  100 rules" s5-filtered s5-plain
fi
stop "$GW20_PID"
fi

if wanted 4; then
echo
echo "== scenario 4: $IDLE_SESSIONS idle downstream sessions (a fresh gateway)"
start gateway-idle "$GATEWAY" serve -c "$WORK/gateway.yaml"
IDLE_PORT=$PORT
IDLE_PID=$PID
# One session and call first, so that the upstream connection and the tool cache exist.
bench s4-warm "http://127.0.0.1:$IDLE_PORT/mcp/fx-http" -c 1 --requests 10 --warmup 0 "${ECHO[@]}" "${AUTH[@]}"
sleep 1
RSS_BEFORE="$(rss_kib "$IDLE_PID")"
bench s4-open "http://127.0.0.1:$IDLE_PORT/mcp/fx-http" -c "$IDLE_SESSIONS" --requests 0 --warmup 0 --keep-sessions --list "${AUTH[@]}"
sleep 1
RSS_AFTER="$(rss_kib "$IDLE_PID")"
OPEN="$(curl -s --noproxy '*' "http://127.0.0.1:$IDLE_PORT/metrics" | awk '/^litellm_mcp_sessions_open /{print $2}')"
python3 - "$WORK/s4-open.json" "$RSS_BEFORE" "$RSS_AFTER" "${OPEN:-?}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); before, after, open_now = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
n = r["sessions_ok"]
print(f"scenario 4 | gateway RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after {n} idle sessions "
      f"(+{(after - before) / 1024:.1f} MiB, {(after - before) * 1024 / max(n, 1):.0f} bytes each; /metrics sessions_open {open_now}); "
      f"set up in {r['setup_secs']:.2f} s ({n / max(r['setup_secs'], 1e-9):.0f} sessions/s, 64 at a time)")
if r["sessions_failed"]:
    print(f"bench.sh: {r['sessions_failed']} sessions failed: {json.dumps(r['errors_by_kind'])}", file=sys.stderr)
    sys.exit(1)
PY
stop "$IDLE_PID"

fi

if wanted 6; then
echo
echo "== scenario 6: start-up to ready with $UPSTREAMS servers ($STARTS starts)"
STARTUP=()
for _ in $(seq "$STARTS"); do
    t0=$(date +%s%N)
    start gateway-start "$GATEWAY" serve -c "$WORK/gateway-20.yaml"
    t1=$(date +%s%N)
    for _ in $(seq 300); do
        code="$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "http://127.0.0.1:$PORT/ready" || true)"
        [[ $code == 200 ]] && break
        sleep 0.01
    done
    [[ $code == 200 ]] || { echo "bench.sh: /ready never answered 200" >&2; exit 1; }
    t2=$(date +%s%N)
    bench s6-first "http://127.0.0.1:$PORT/mcp" -c 1 --requests 1 --warmup 0 --list "${AUTH[@]}"
    t3=$(date +%s%N)
    STARTUP+=("$(( (t1 - t0) / 1000 )) $(( (t2 - t0) / 1000 )) $(( (t3 - t0) / 1000 ))")
    stop "$PID"
done
printf '%s\n' "${STARTUP[@]}" | python3 -c '
import sys, statistics
rows = [list(map(int, l.split())) for l in sys.stdin if l.strip()]
med = [statistics.median(c) / 1000 for c in zip(*rows)]
print(f"scenario 6 | {sys.argv[1]} servers, median of {len(rows)}: LISTENING {med[0]:.1f} ms, /ready 200 {med[1]:.1f} ms, first /mcp tools/list answered {med[2]:.1f} ms (from spawn)")
' "$UPSTREAMS"

fi

if wanted 7; then
echo
echo "== scenario 7: three replicas on PostgreSQL behind HAProxy (round-robin, no stickiness) vs one replica directly"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [[ -z $PG_BIN || ! -x $PG_BIN/initdb ]] || ! command -v haproxy >/dev/null; then
    echo "bench.sh: scenario 7 needs postgresql and haproxy: run scripts/install-test-deps.sh" >&2
    exit 1
fi
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p "$WORK/pg"
if [[ $(id -u) == 0 ]]; then
    # The postgres user may pass through $WORK (0700) to its own folder, no more.
    chmod o+x "$WORK"
    chown postgres:postgres "$WORK/pg"
fi
as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
PG_PORT="$(free_port)"
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK/pg" \
    -l "$WORK/pg/log" -w start >/dev/null
PG_STOP=(as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop)
SEAL="$(head -c 32 /dev/urandom | base64)"
REPLICA_PORTS=()
for r in 1 2 3; do
    cat >"$WORK/replica-$r.yaml" <<EOF
listen: 127.0.0.1:0
max_sessions_per_key: 1000
store: {database_url: "postgres://postgres@127.0.0.1:$PG_PORT/postgres", seal_keys: ["$SEAL"], replica: r$r}
servers:
  - name: fx-http
    url: http://127.0.0.1:$FIXTURE_PORT/mcp
api_keys:
  - name: bench
    key: "\${BENCH_KEY}"
EOF
    start "replica-$r" "$GATEWAY" serve -c "$WORK/replica-$r.yaml"
    REPLICA_PORTS+=("$PORT")
done
LB_PORT="$(free_port)"
{
    printf 'global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n'
    printf 'frontend in\n  bind 127.0.0.1:%s\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n' "$LB_PORT"
    for i in 0 1 2; do printf '  server r%s 127.0.0.1:%s\n' "$i" "${REPLICA_PORTS[$i]}"; done
} >"$WORK/haproxy.cfg"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 500); do
    curl -s -o /dev/null --noproxy '*' "http://127.0.0.1:$LB_PORT/health" && break
    sleep 0.01
done
for c in "${CONCURRENCY[@]}"; do
    bench s7-one-$c "http://127.0.0.1:${REPLICA_PORTS[0]}/mcp/fx-http" -c "$c" "${RUN[@]}" "${ECHO[@]}" "${AUTH[@]}"
    bench s7-fleet-$c "http://127.0.0.1:$LB_PORT/mcp/fx-http" -c "$c" "${RUN[@]}" "${ECHO[@]}" "${AUTH[@]}"
    row 7 http "$c" "one replica directly" s7-one-$c
    row 7 http "$c" "3 replicas via HAProxy" s7-fleet-$c s7-one-$c
    python3 - "$WORK" "$c" <<'PY'
import json, sys
work, c = sys.argv[1:3]
one = json.load(open(f"{work}/s7-one-{c}.json")); fleet = json.load(open(f"{work}/s7-fleet-{c}.json"))
added = (fleet["latency_us"]["p50"] - one["latency_us"]["p50"]) / 1000
print(f"scenario 7 | c={c:<3} | fleet / one replica: {fleet['requests_per_sec'] / max(one['requests_per_sec'], 1e-9):.2f}x req/s, "
      f"p50 added by HAProxy and the fleet {added:+.3f} ms")
PY
done
SERVED=()
for port in "${REPLICA_PORTS[@]}"; do
    SERVED+=("$(curl -s --noproxy '*' "http://127.0.0.1:$port/metrics" | awk '/^litellm_mcp_caller_requests_total\{.*caller="bench"/{n += $2} END {print n + 0}')")
done
echo "scenario 7 | requests served per replica (replica 1 also took the direct runs): ${SERVED[*]}"
"${PG_STOP[@]}" >/dev/null 2>&1 || true
PG_STOP=()
fi

echo
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench.sh: done"
