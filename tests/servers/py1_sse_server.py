#!/usr/bin/env python3
"""MCP test server: PyPI `mcp` 1.x (FastMCP), legacy HTTP+SSE transport (2024-11-05 style).

GET /sse opens the event stream; its first event is `endpoint` with the URL
(`/messages/?session_id=<hex>`) to POST JSON-RPC messages to. POSTs answer
202 Accepted; responses arrive on the SSE stream as `message` events.

Run with the py1 venv:
    .deps/py1/bin/python tests/servers/py1_sse_server.py [--port 0]

Prints `LISTENING <port>` on stdout once it accepts connections.
"""

import sys

import _common
from mcp.server.fastmcp import Context, FastMCP


def main() -> None:
    p = _common.base_parser(__doc__)
    args = p.parse_args()
    _common.setup_logging(args.log_level)

    mcp = FastMCP(
        "py1-sse-test-server",
        host="127.0.0.1",
        log_level=args.log_level.upper(),
        sse_path="/sse",
        message_path="/messages/",
    )
    _common.register_tools(mcp, Context)
    _common.serve(mcp.sse_app(), args)


if __name__ == "__main__":
    sys.exit(main())
