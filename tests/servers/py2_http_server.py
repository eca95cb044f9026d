#!/usr/bin/env python3
"""MCP test server: PyPI `mcp` 2.x (MCPServer), streamable HTTP at /mcp.

Run with the py2 venv:
    .deps/py2/bin/python tests/servers/py2_http_server.py [--port 0] [--stateless] [--json-response]

Prints `LISTENING <port>` on stdout once it accepts connections. See README.md
for which protocol versions/eras each mode answers.
"""

import sys

from typing import Annotated

import _common
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from pydantic import BaseModel


class Who(BaseModel):
    name: str


def ask_who() -> Elicit[Who]:
    return Elicit("Who are you?", Who)


def main() -> None:
    p = _common.base_parser(__doc__)
    p.add_argument(
        "--stateless",
        action="store_true",
        help="legacy (initialize-era) requests are served without sessions: no Mcp-Session-Id, "
        "every POST stands alone (stateless_http=True). 2026-07-28 requests are stateless anyway.",
    )
    p.add_argument(
        "--json-response",
        action="store_true",
        help="answer POSTs with application/json instead of an SSE stream (json_response=True)",
    )
    args = p.parse_args()
    _common.setup_logging(args.log_level)

    mcp = MCPServer("py2-test-server", version="1.0.0", log_level=args.log_level.upper())

    _common.register_tools(mcp, Context)

    @mcp.tool()
    def welcome(who: Annotated[Who, Resolve(ask_who)]) -> str:
        """Asks the caller's name and welcomes them: an elicitation, sent as an input_required
        result in 2026-07-28 and as a request during the call in earlier revisions."""
        return f"Welcome, {who.name}!"
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=args.stateless,
        json_response=args.json_response,
        host="127.0.0.1",
    )
    _common.serve(app, args)


if __name__ == "__main__":
    sys.exit(main())
