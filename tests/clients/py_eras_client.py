"""A real MCP client (the PyPI `mcp` SDK, 1.x or 2.x) that answers what a server asks.

Used by `tests/eras.rs`: connects over streamable HTTP (1.x: `initialize`; 2.x:
`Client(mode=...)`, `legacy` or `2026-07-28`), declaring sampling, elicitation and roots
with callbacks that answer as below, then calls each `--call NAME=JSON_ARGS` in order with
a progress callback, and prints ONE JSON object on stdout:

    {"sdkVersion": "2.3.0", "protocolVersion": "...",
     "calls": [{"name": ..., "result": {<CallToolResult>}, "progress": [<params>...],
                "asked": [<method>...]}, ...],
     "error": null}

The callbacks: sampling answers text "Paris"; elicitation accepts with
`{"name": "Ada", "username": "ada", "email": "ada@example.com", "ok": true,
"color": "blue", "context": "tests"}` minus nothing (the server keeps what it asked for);
roots answers one root `file:///work`. `asked` lists, per call, the methods the server
asked, in order. The run stops at the first error (`error` says which call and why).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import traceback
from contextlib import AsyncExitStack
from typing import Any

import anyio
import mcp.types as types

SDK_VERSION = importlib.metadata.version("mcp")
MAJOR = int(SDK_VERSION.split(".")[0])
ANSWER = {
    "name": "Ada",
    "username": "ada",
    "email": "ada@example.com",
    "ok": True,
    "color": "blue",
    "context": "tests",
}


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def main(args: argparse.Namespace, out: dict[str, Any]) -> None:
    asked: list[str] = []

    async def sampling(context: Any, params: Any) -> Any:
        asked.append("sampling/createMessage")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="Paris"), model="test-model"
        )

    async def elicitation(context: Any, params: Any) -> Any:
        asked.append("elicitation/create")
        schema = getattr(params, "requested_schema", None) or getattr(params, "requestedSchema", None) or {}
        wanted = schema.get("properties", {}) if isinstance(schema, dict) else {}
        content = {k: v for k, v in ANSWER.items() if k in wanted} or dict(ANSWER)
        return types.ElicitResult(action="accept", content=content)

    async def roots(context: Any) -> Any:
        asked.append("roots/list")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work", name="work")])

    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    async with AsyncExitStack() as stack:
        if MAJOR < 2:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
            read, write, _ = await stack.enter_async_context(streamable_http_client(args.url, http_client=http))
            session = await stack.enter_async_context(
                ClientSession(
                    read, write, sampling_callback=sampling, elicitation_callback=elicitation, list_roots_callback=roots
                )
            )
            init = await session.initialize()
            out["protocolVersion"] = init.protocolVersion

            async def call(name: str, arguments: dict[str, Any], progress: Any) -> Any:
                return await session.call_tool(name, arguments, progress_callback=progress)

        else:
            from mcp.client.client import Client
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
            client = await stack.enter_async_context(
                Client(
                    streamable_http_client(args.url, http_client=http),
                    mode=args.mode,
                    sampling_callback=sampling,
                    elicitation_callback=elicitation,
                    list_roots_callback=roots,
                )
            )
            out["protocolVersion"] = client.protocol_version

            async def call(name: str, arguments: dict[str, Any], progress: Any) -> Any:
                return await client.call_tool(name, arguments, progress_callback=progress)

        for spec in args.call:
            name, _, raw = spec.partition("=")
            asked.clear()
            seen: list[Any] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append({"progress": progress, "total": total, "message": message})

            out["stage"] = name
            with anyio.fail_after(args.timeout):
                result = await call(name, json.loads(raw or "{}"), on_progress)
            await anyio.sleep(0.2)  # progress notifications that race the response
            out["calls"].append({"name": name, "result": dump(result), "progress": seen, "asked": list(asked)})


def run() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--key")
    p.add_argument("--mode", default="legacy", help="2.x: Client(mode=...): legacy or 2026-07-28")
    p.add_argument("--call", action="append", default=[], help="NAME=JSON_ARGS, in order")
    p.add_argument("--timeout", type=float, default=15.0)
    args = p.parse_args()
    out: dict[str, Any] = {"sdkVersion": SDK_VERSION, "protocolVersion": None, "calls": [], "error": None}

    async def bounded() -> None:
        try:
            with anyio.fail_after(args.timeout * (len(args.call) + 2)):
                await main(args, out)
        except Exception as exc:  # reported, not raised: the test asserts on it
            out["error"] = f"{out.get('stage', 'connect')}: {type(exc).__name__}: {exc}"
            traceback.print_exception(exc, file=sys.stderr)

    anyio.run(bounded)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    run()
