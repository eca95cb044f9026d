"""Shared helpers for the Python MCP test servers in this folder.

Works with both mcp 1.x (FastMCP) and mcp 2.x (MCPServer): the caller passes
in the server object and the SDK's `Context` class.

Contract with the Rust tests:
  * the server binds 127.0.0.1 only (port from --port, 0 = a free port);
  * once uvicorn has finished its startup (lifespan) and is accepting on the
    socket, exactly one line `LISTENING <port>` is written to stdout and
    flushed; nothing else is ever written to stdout (all logging -> stderr);
  * SIGTERM / SIGINT shut the server down cleanly (exit code 0), open
    streams are cut after --graceful-timeout seconds (default 1);
  * with --exit-on-stdin-eof the server also exits when its stdin reaches EOF,
    so a test that dies without killing its child doesn't leave it running.
"""

import argparse
import asyncio
import contextvars
import logging
import signal
import socket
import sys
import threading
from typing import Any, Callable, Mapping, Optional

# Keep the real stdout for the LISTENING line only; everything else that
# prints (uvicorn's access log, stray print()s, rich) goes to stderr.
_REAL_STDOUT = sys.stdout
sys.stdout = sys.stderr

log = logging.getLogger("mcp-test-server")

# Headers of the current HTTP/WebSocket request, for transports where the SDK
# does not hand the request to tools (the 1.x WebSocket transport).
current_headers: contextvars.ContextVar[Optional[Mapping[str, str]]] = contextvars.ContextVar(
    "current_headers", default=None
)


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one; default 0)")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error", "critical"],
        help="log level for uvicorn and the SDK (stderr); default warning",
    )
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=1.0,
        help="seconds to wait for open connections/streams on shutdown (default 1)",
    )
    p.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin is closed")
    return p


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def authorization_from_ctx(ctx: Any) -> Optional[str]:
    """The incoming request's Authorization header, or None.

    2.x: `ctx.headers`. 1.x streamable HTTP / SSE: the Starlette request the
    SDK attaches to the request context (for SSE that is the POST to
    /messages/, not the GET /sse). 1.x WebSocket: the SDK gives no request, so
    the WebSocket endpoint stores the upgrade request's headers in
    `current_headers` (a contextvar inherited by the handler tasks).
    """
    headers = getattr(ctx, "headers", None)  # 2.x
    if headers is None:
        try:
            request = ctx.request_context.request  # 1.x
        except Exception:
            request = None
        headers = getattr(request, "headers", None)
    if headers is None:
        headers = current_headers.get()
    return None if headers is None else headers.get("authorization")


def register_tools(mcp: Any, Context: Any, authorization: Callable[[Any], Optional[str]] = authorization_from_ctx) -> None:
    """Register the uniform tool set on a FastMCP (1.x) / MCPServer (2.x).

    `authorization(ctx)` returns the incoming Authorization header or None.
    Annotations are real objects (no `from __future__ import annotations`) so
    the SDK can see the `Context` parameter.
    """

    @mcp.tool(description="Add two integers and return the sum.")
    def add(a: int, b: int) -> int:
        return a + b

    @mcp.tool(description="Return the given text unchanged.")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Greet someone: 'Hello, <name><punctuation>'.")
    def greet(name: str, punctuation: str = "!") -> str:
        return f"Hello, {name}{punctuation}"

    @mcp.tool(
        description="Send `steps` progress notifications (progress=i, total=steps), "
        "optionally sleeping delay_ms between them, then return 'done'."
    )
    async def progress(steps: int, ctx: Context, delay_ms: int = 0) -> str:
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps, f"step {i}/{steps}")
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000)
        return "done"

    @mcp.tool(description="Always fails: the result comes back with isError: true.")
    def fail():  # no return annotation -> no outputSchema
        raise RuntimeError("intentional failure from the fail tool")

    @mcp.tool(description="Return the Authorization header of the incoming request ('' if none).")
    def whoami(ctx: Context) -> str:
        return authorization(ctx) or ""

    @mcp.tool(description="Sleep for `ms` milliseconds, then return 'slept <ms>ms' (for timeout/cancel tests).")
    async def sleep(ms: int) -> str:
        await asyncio.sleep(ms / 1000)
        return f"slept {ms}ms"


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def serve(app: Any, args: argparse.Namespace, ws: str = "auto") -> None:
    """Serve an ASGI app on 127.0.0.1:args.port with uvicorn; print LISTENING."""
    import uvicorn

    sock = _bind(args.port)
    port = sock.getsockname()[1]

    log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": args.log_level.upper(), "propagate": False},
            "uvicorn.error": {"level": args.log_level.upper()},
            "uvicorn.access": {"handlers": ["stderr"], "level": args.log_level.upper(), "propagate": False},
        },
    }
    config = uvicorn.Config(
        app,
        log_config=log_config,
        log_level=args.log_level,
        access_log=args.log_level in ("debug", "info"),
        timeout_graceful_shutdown=args.graceful_timeout,
        lifespan="on",
        ws=ws,
    )

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.should_exit:  # startup failed (e.g. lifespan error)
                return
            _REAL_STDOUT.write(f"LISTENING {port}\n")
            _REAL_STDOUT.flush()

    server = _Server(config)

    if args.exit_on_stdin_eof:

        def _watch_stdin() -> None:
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except Exception:
                pass
            log.info("stdin closed; shutting down")
            server.should_exit = True

        threading.Thread(target=_watch_stdin, daemon=True).start()

    # uvicorn installs its own SIGINT/SIGTERM handlers inside serve() and, after
    # its graceful shutdown, re-raises the captured signal to the handler that
    # was there before. Install one that just asks for shutdown, so a SIGTERM
    # ends the process with exit code 0 instead of 143.
    def _on_signal(signum: int, frame: Any) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    asyncio.run(server.serve(sockets=[sock]))
    if not server.started:
        log.error("server did not start")
        sys.exit(1)
