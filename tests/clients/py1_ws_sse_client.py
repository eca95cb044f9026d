"""The Python SDK 1.x clients against the gateway's WebSocket and legacy SSE faces.

Usage: py1_ws_sse_client.py --base http://127.0.0.1:<port> --key <api key>

Connects with `mcp.client.websocket.websocket_client` to `<base>/ws` and with
`mcp.client.sse.sse_client` to `<base>/sse`, and over each: initializes, lists the
tools, calls `fx__echo`, and calls `fx__progress` with a progress callback. Prints one
JSON object on stdout, `{"ws": {...}, "sse": {...}}`, and exits 0; any failure is a
traceback on stderr and exit status 1.

The SDK's `websocket_client(url)` takes no headers, so the script wraps the
`websockets` `connect` it uses to add `Authorization: Bearer <key>` to the upgrade
request (and to record the subprotocol the server chose). Everything else is the SDK's.
"""

import argparse
import asyncio
import json
import sys
import warnings

import mcp.client.websocket as sdk_websocket
from mcp import ClientSession
from mcp.client.sse import sse_client

# websocket_client is deprecated in 1.x (WebSocket is not in the MCP specification).
warnings.filterwarnings("ignore", category=DeprecationWarning)

TIMEOUT_S = 30


async def exercise(read, write):
    """One session over a transport: what the gateway answered."""
    progress = []

    async def on_progress(value, total, message):
        progress.append({"progress": value, "total": total, "message": message})

    async with ClientSession(read, write) as session:
        init = await session.initialize()
        tools = await session.list_tools()
        echo = await session.call_tool("fx__echo", {"text": "hello from py1"})
        done = await session.call_tool(
            "fx__progress", {"steps": 3}, progress_callback=on_progress
        )
        return {
            "protocolVersion": init.protocolVersion,
            "server": init.serverInfo.name,
            "tools": sorted(tool.name for tool in tools.tools),
            "echo": echo.content[0].text,
            "echo_is_error": bool(echo.isError),
            "progress": progress,
            "progress_result": done.content[0].text,
        }


async def over_websocket(base, key):
    seen = {}
    real_connect = sdk_websocket.ws_connect

    class Connect:
        """The SDK's own `websockets` connect, unchanged, recording the chosen subprotocol.
        The SDK's websocket_client cannot send headers, so the key rides in the URL."""

        def __init__(self, *args, **kwargs):
            self.inner = real_connect(*args, **kwargs)

        async def __aenter__(self):
            ws = await self.inner.__aenter__()
            seen["subprotocol"] = ws.subprotocol
            return ws

        async def __aexit__(self, *exc):
            return await self.inner.__aexit__(*exc)

    sdk_websocket.ws_connect = Connect
    try:
        url = base.replace("http://", "ws://", 1) + "/ws?api_key=" + key
        async with sdk_websocket.websocket_client(url) as (read, write):
            summary = await exercise(read, write)
    finally:
        sdk_websocket.ws_connect = real_connect
    summary["subprotocol"] = seen.get("subprotocol")
    return summary


async def over_sse(base, key):
    headers = {"Authorization": f"Bearer {key}"}
    async with sse_client(base + "/sse", headers=headers) as (read, write):
        return await exercise(read, write)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="http://127.0.0.1:<port>")
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    ws = await asyncio.wait_for(over_websocket(args.base, args.key), TIMEOUT_S)
    sse = await asyncio.wait_for(over_sse(args.base, args.key), TIMEOUT_S)
    json.dump({"ws": ws, "sse": sse}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main())
