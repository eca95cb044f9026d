"""A real MCP client (the PyPI `mcp` SDK, 1.x or 2.x) driven from the command line.

Used by `tests/service_clients.rs` to prove that clients we did not write work through
the gateway. Runs: connect (initialize, or the 2.x era negotiation) -> tools/list (every
page) -> call `--tool` with `--args` -> optionally call `--progress-tool` with a progress
callback (`--progress-repeat N` times: `progressRuns` are the update counts of each
call, `progress` the fewest, `progressMessages` those of that call), and prints ONE
JSON object on stdout:

    {"sdk": "python-mcp", "sdkVersion": "1.30.0", "transport": "http",
     "protocolVersion": "2025-11-25", "serverName": "...",
     "tools": ["fx__echo", ...], "pages": 1,
     "result": {<CallToolResult>}, "progress": 3, "progressRuns": [3],
     "progressMessages": [...], "progressResult": {<CallToolResult>},
     "error": null, "errorStage": null, "errorType": null, "errorCode": null}

The first stage that raises stops the run: `error` is its message, `errorStage` one of
`connect`, `list`, `call`, `progress`, `close` (leaving the session), `errorType`
the exception's class and `errorCode` the JSON-RPC code when the SDK raised an MCP error. The exit status is 0
whenever that object was printed; non-zero only for a crash of this script itself.

Run it with the venv of the SDK version to test:

    .deps/py1/bin/python tests/clients/py_client.py --transport http URL --key KEY \
        --tool fx__echo --args '{"text":"hi"}' --progress-tool fx__progress --progress-args '{"steps":3}'
    .deps/py1/bin/python tests/clients/py_client.py --transport stdio \
        --command "litellm-mcp stdio -c gw.yaml" --env LITELLM_MCP_API_KEY=KEY --tool fx__echo --args '{"text":"hi"}'

Transports: `http` (streamable HTTP; both SDKs), `sse` (legacy HTTP+SSE) and `ws`
(WebSocket) with 1.x only (2.x dropped WebSocket; its SSE client is not wired here),
`stdio` (both). The key goes
in `Authorization: Bearer <key>` on every HTTP request (for `ws`, on the upgrade).
With 2.x, `--mode` is the `Client(mode=...)`: `auto` (default: probe `server/discover`,
fall back to `initialize`), `legacy`, or a modern version such as `2026-07-28`.
Nothing but the final JSON goes to stdout; logs and the stdio child's stderr go to stderr.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shlex
import sys
import traceback
import warnings
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio

SDK_VERSION = importlib.metadata.version("mcp")
MAJOR = int(SDK_VERSION.split(".")[0])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="?", help="the server URL (http, sse, ws)")
    p.add_argument("--transport", choices=["http", "sse", "ws", "stdio"], default="http")
    p.add_argument("--command", help="stdio: the server's command line (split like a shell)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="stdio: child environment")
    p.add_argument("--key", help="API key, sent as Authorization: Bearer <key>")
    p.add_argument("--tool", required=True, help="the tool to call")
    p.add_argument("--args", default="{}", help="its arguments, a JSON object")
    p.add_argument("--progress-tool", help="a tool to call with a progress callback")
    p.add_argument("--progress-args", default="{}", help="its arguments, a JSON object")
    p.add_argument(
        "--progress-repeat", type=int, default=1, help="call the progress tool this many times (progress: the fewest)"
    )
    p.add_argument("--mode", default="auto", help="2.x only: Client(mode=...): auto, legacy or a modern version")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for each stage (4x for the whole run)")
    args = p.parse_args()
    if args.transport == "stdio":
        if not args.command:
            p.error("--transport stdio needs --command")
    elif not args.url:
        p.error(f"--transport {args.transport} needs a URL")
    if MAJOR >= 2 and args.transport in ("sse", "ws"):
        p.error(f"--transport {args.transport} is only offered with mcp 1.x")
    return args


def leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def describe(exc: BaseException) -> dict[str, Any]:
    exc = leaf(exc)
    code = None
    error = getattr(exc, "error", None)
    if error is not None and isinstance(getattr(error, "code", None), int):
        code = error.code
        message = error.message
    else:
        message = str(exc) or repr(exc)
    if type(exc).__name__ == "HTTPStatusError":
        response = getattr(exc, "response", None)
        if response is not None:
            message = f"HTTP {response.status_code}: {message}"
    if isinstance(exc, TimeoutError):
        message = f"timed out: {message}"
    return {"error": message, "errorType": type(exc).__name__, "errorCode": code}


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def child_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--env wants NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


class Run:
    """What the client saw, filled stage by stage."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: dict[str, Any] = {
            "sdk": "python-mcp",
            "sdkVersion": SDK_VERSION,
            "transport": args.transport,
            "protocolVersion": None,
            "serverName": None,
            "tools": None,
            "pages": 0,
            "result": None,
            "progress": None,
            "progressRuns": None,
            "progressMessages": None,
            "progressResult": None,
            "error": None,
            "errorStage": None,
            "errorType": None,
            "errorCode": None,
        }
        self.stage = "connect"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.args.key}"} if self.args.key else {}

    def stdio_params(self, cls: Any) -> Any:
        argv = shlex.split(self.args.command)
        return cls(command=argv[0], args=argv[1:], env=child_env(self.args.env) or None)

    async def stages(self, list_tools: Any, call_tool: Any) -> None:
        a = self.args
        self.stage = "list"
        names: list[str] = []
        cursor = None
        while True:
            with anyio.fail_after(a.timeout):
                page = await list_tools(cursor)
            self.out["pages"] += 1
            names += [t.name for t in page.tools]
            cursor = page.nextCursor if MAJOR < 2 else page.next_cursor
            if not cursor or self.out["pages"] >= 1000:
                break
        self.out["tools"] = names

        self.stage = "call"
        with anyio.fail_after(a.timeout):
            result = await call_tool(a.tool, json.loads(a.args), None)
        self.out["result"] = dump(result)

        if a.progress_tool:
            self.stage = "progress"
            self.out["progress"] = 0
            self.out["progressRuns"] = runs = []
            for _ in range(max(1, a.progress_repeat)):
                messages: list[Any] = []

                async def on_progress(
                    progress: float, total: float | None, message: str | None, messages: list[Any] = messages
                ) -> None:
                    messages.append({"progress": progress, "total": total, "message": message})

                with anyio.fail_after(a.timeout):
                    result = await call_tool(a.progress_tool, json.loads(a.progress_args), on_progress)
                # The SDK 2.x dispatcher runs each progress callback as a task of its own, so
                # call_tool can return before the callbacks of notifications that arrived just
                # ahead of the response have run: let them finish (until 100 ms pass quietly).
                seen = -1
                for _ in range(20):
                    if seen == len(messages):
                        break
                    seen = len(messages)
                    await anyio.sleep(0.1)
                runs.append(len(messages))
                if len(runs) == 1 or len(messages) < self.out["progress"]:
                    self.out["progress"] = len(messages)
                    self.out["progressMessages"] = messages
                self.out["progressResult"] = dump(result)
        self.stage = "close"

    async def run_v1(self) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.sse import sse_client
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        a = self.args
        async with AsyncExitStack() as stack:
            if a.transport == "http":
                http = await stack.enter_async_context(create_mcp_http_client(headers=self.headers()))
                read, write, _ = await stack.enter_async_context(streamable_http_client(a.url, http_client=http))
            elif a.transport == "sse":
                read, write = await stack.enter_async_context(sse_client(a.url, headers=self.headers()))
            elif a.transport == "ws":
                import mcp.client.websocket as ws_module

                if self.headers():
                    # The SDK's websocket_client takes no headers: give its connect() ours.
                    ws_module.ws_connect = partial(ws_module.ws_connect, additional_headers=self.headers())
                with warnings.catch_warnings():  # "deprecated in 1.x": known, and why we test it
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ws = ws_module.websocket_client(a.url)
                read, write = await stack.enter_async_context(ws)
            else:
                read, write = await stack.enter_async_context(
                    stdio_client(self.stdio_params(StdioServerParameters), errlog=sys.stderr)
                )
            session = await stack.enter_async_context(ClientSession(read, write))
            with anyio.fail_after(a.timeout):
                init = await session.initialize()
            self.out["protocolVersion"] = init.protocolVersion
            self.out["serverName"] = init.serverInfo.name

            async def list_tools(cursor: str | None) -> Any:
                return await session.list_tools(cursor)

            async def call_tool(name: str, arguments: dict[str, Any], progress: Any) -> Any:
                return await session.call_tool(name, arguments, progress_callback=progress)

            await self.stages(list_tools, call_tool)

    async def run_v2(self) -> None:
        from mcp.client import Client
        from mcp.client.stdio import StdioServerParameters
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        a = self.args
        async with AsyncExitStack() as stack:
            if a.transport == "http":
                http = await stack.enter_async_context(create_mcp_http_client(headers=self.headers()))
                server: Any = streamable_http_client(a.url, http_client=http)
            else:
                server = self.stdio_params(StdioServerParameters)
            # Connecting negotiates the era inside Client.__aenter__ (bounded by main's deadline).
            client = await stack.enter_async_context(Client(server, mode=a.mode))
            self.out["protocolVersion"] = client.protocol_version
            info = client.server_info
            self.out["serverName"] = info.name if info is not None else None

            async def list_tools(cursor: str | None) -> Any:
                return await client.list_tools(cursor=cursor)

            async def call_tool(name: str, arguments: dict[str, Any], progress: Any) -> Any:
                return await client.call_tool(name, arguments, progress_callback=progress)

            await self.stages(list_tools, call_tool)

    async def main(self) -> None:
        try:
            # One deadline for everything, entering and leaving the transports included
            # (their task groups cannot sit inside a per-stage cancel scope).
            with anyio.fail_after(self.args.timeout * 4):
                await (self.run_v1() if MAJOR < 2 else self.run_v2())
        except Exception as exc:  # reported, not raised: the caller asserts on it
            if self.out["error"] is None:
                self.out.update(describe(exc))
                self.out["errorStage"] = self.stage
                print(f"[py_client] {self.stage} failed:", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)


def main() -> None:
    args = parse_args()
    run = Run(args)
    anyio.run(run.main)
    sys.stdout.write(json.dumps(run.out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
