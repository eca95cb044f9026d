#!/usr/bin/env python3
"""MCP test server: PyPI `mcp` 1.x (FastMCP tools) over WebSocket at /ws.

Uses `mcp.server.websocket.websocket_server` (deprecated in 1.x, removed in 2.x;
WebSocket was never part of the MCP spec). The server accepts the handshake
with subprotocol `mcp`; each text frame is one JSON-RPC message. One MCP
session per WebSocket connection (initialize first).

Run with the py1 venv:
    .deps/py1/bin/python tests/servers/py1_ws_server.py [--port 0]

Prints `LISTENING <port>` on stdout once it accepts connections.
"""

import sys
import warnings

import _common
from mcp.server.fastmcp import Context, FastMCP
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from mcp.server.websocket import websocket_server


def main() -> None:
    p = _common.base_parser(__doc__)
    args = p.parse_args()
    _common.setup_logging(args.log_level)

    mcp = FastMCP("py1-ws-test-server", host="127.0.0.1", log_level=args.log_level.upper())
    _common.register_tools(mcp, Context)
    lowlevel = mcp._mcp_server  # the FastMCP's low-level Server

    async def ws_endpoint(websocket: WebSocket) -> None:
        # Let whoami see the upgrade request's headers (the SDK passes no request to tools here).
        _common.current_headers.set(websocket.headers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            cm = websocket_server(websocket.scope, websocket.receive, websocket.send)
        async with cm as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

    app = Starlette(routes=[WebSocketRoute("/ws", ws_endpoint)])
    _common.serve(app, args)


if __name__ == "__main__":
    sys.exit(main())
