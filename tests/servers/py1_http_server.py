#!/usr/bin/env python3
"""MCP test server: PyPI `mcp` 1.x (FastMCP), streamable HTTP at /mcp.

Run with the py1 venv:
    .deps/py1/bin/python tests/servers/py1_http_server.py [--port 0] [--stateless] [--json-response]

Prints `LISTENING <port>` on stdout once it accepts connections.
"""

import sys

import _common
from mcp.server.fastmcp import Context, FastMCP


def main() -> None:
    p = _common.base_parser(__doc__)
    p.add_argument("--stateless", action="store_true", help="no sessions: no Mcp-Session-Id (stateless_http=True)")
    p.add_argument("--json-response", action="store_true", help="answer POSTs with application/json, not SSE")
    args = p.parse_args()
    _common.setup_logging(args.log_level)

    mcp = FastMCP(
        "py1-http-test-server",
        host="127.0.0.1",
        log_level=args.log_level.upper(),
        streamable_http_path="/mcp",
        stateless_http=args.stateless,
        json_response=args.json_response,
    )
    _common.register_tools(mcp, Context)
    _common.serve(mcp.streamable_http_app(), args)


if __name__ == "__main__":
    sys.exit(main())
