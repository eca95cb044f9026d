#!/usr/bin/env bash
# Runs the gateway on examples/gateway.yaml: builds the workspace (release), installs the
# reference MCP server it uses, and serves on 127.0.0.1:4000 until Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-test-deps.sh
cargo build --release --workspace --quiet
export LITELLM_MCP_DEMO_KEY="${LITELLM_MCP_DEMO_KEY:-sk-demo-admin}"
export LITELLM_MCP_DEMO_VIEWER_KEY="${LITELLM_MCP_DEMO_VIEWER_KEY:-sk-demo-viewer}"
exec target/release/litellm-mcp serve -c examples/gateway.yaml "$@"
