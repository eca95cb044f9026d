"""The PyPI `mcp` SDK 2.x client doing the full MCP authorization flow, headlessly.

    .deps/py2/bin/python tests/clients/py_oauth_client.py URL [--tool NAME --args JSON]
        [--client-id ID [--client-secret S]] [--scope "mcp:read mcp:call"]
        [--redirect-uri http://127.0.0.1:1/callback] [--mode auto|legacy|2026-07-28] [--timeout SECONDS]

`mcp.client.auth.OAuthClientProvider` (an httpx2 auth) on the streamable HTTP client: the
first request gets 401, the SDK discovers the protected-resource metadata (RFC 9728) and the
authorization server metadata (RFC 8414 / OpenID discovery), registers the client dynamically
(RFC 7591) unless `--client-id` names a pre-registered one, and builds the authorization URL
with PKCE. This script's `redirect_handler` plays the browser: it follows the URL with httpx2
(no automatic redirects, cookies kept in the client's jar) until the Location is the redirect
URI (never fetched, so nothing needs to listen there) and hands `code`, `state` and `iss` to
the `callback_handler`. Then `tools/list` (every page) and, with `--tool`, `tools/call`.
Prints ONE JSON object on stdout:

    {"sdk": "python-mcp", "sdkVersion": "2.3.0", "tools": [...], "result": <CallToolResult or null>,
     "error": null | "message", "errorStage": null | "auth" | "connect" | "list" | "call",
     "errorType": null | "<class>",
     "authorizationServer": "<PRM authorization_servers[0] the SDK used>",
     "resource": "<resource parameter of the authorization request, null if none>",
     "scopes": "<scope parameter of the authorization request, null if none>",
     "registered": true | false, "clientId": "...", "iss": "<iss of the authorization response>",
     "hops": N, "protocolVersion": "...", "serverName": "..."}

`--scope` forces the scope the SDK requests (it replaces the SDK's selection: WWW-Authenticate
`scope`, else PRM `scopes_supported`, else the AS `scopes_supported`, plus `offline_access`
when the AS lists it). `errorStage` is `auth` for anything that fails after the first 401 and
before an authorized request succeeds. Exit status 0 whenever the object was printed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import traceback
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2

SDK_VERSION = importlib.metadata.version("mcp")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="the protected MCP server (streamable HTTP)")
    p.add_argument("--tool", help="a tool to call after tools/list")
    p.add_argument("--args", default="{}", help="its arguments, a JSON object")
    p.add_argument("--client-id", help="a pre-registered client (no dynamic registration)")
    p.add_argument("--client-secret", help="its secret (client_secret_basic)")
    p.add_argument("--scope", help="force the requested scope")
    p.add_argument("--redirect-uri", default="http://127.0.0.1:1/callback")
    p.add_argument("--mode", default="auto", help="Client(mode=...): auto, legacy or a modern version")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for each stage (4x for the whole run)")
    args = p.parse_args()
    if args.client_secret and not args.client_id:
        p.error("--client-secret needs --client-id")
    return args


def leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: dict[str, Any] = {
            "sdk": "python-mcp",
            "sdkVersion": SDK_VERSION,
            "tools": None,
            "result": None,
            "error": None,
            "errorStage": None,
            "errorType": None,
            "authorizationServer": None,
            "resource": None,
            "scopes": None,
            "registered": False,
            "clientId": args.client_id,
            "iss": None,
            "hops": 0,
            "protocolVersion": None,
            "serverName": None,
        }
        self.stage = "connect"
        self.code: dict[str, str | None] | None = None
        self.provider: Any = None

    # ---- the browser ---------------------------------------------------------------------
    async def redirect_handler(self, authorization_url: str) -> None:
        a = self.args
        query = parse_qs(urlparse(authorization_url).query)
        self.out["resource"] = query.get("resource", [None])[0]
        self.out["scopes"] = query.get("scope", [None])[0]
        if self.provider is not None:
            self.out["authorizationServer"] = self.provider.context.auth_server_url
        target = urlparse(a.redirect_uri)
        url = authorization_url
        async with httpx2.AsyncClient(follow_redirects=False, timeout=a.timeout) as browser:
            for _ in range(30):
                response = await browser.get(url)
                self.out["hops"] += 1
                location = response.headers.get("location")
                if 300 <= response.status_code < 400 and location:
                    url = urljoin(str(response.url), location)
                    parsed = urlparse(url)
                    if (parsed.scheme, parsed.netloc, parsed.path) == (target.scheme, target.netloc, target.path):
                        q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                        self.out["iss"] = q.get("iss")
                        if "error" in q:
                            raise RuntimeError(f"authorization error {q['error']}: {q.get('error_description', '')}")
                        self.code = {"code": q.get("code"), "state": q.get("state"), "iss": q.get("iss")}
                        return
                    continue
                raise RuntimeError(
                    f"authorization stopped at {response.url} with HTTP {response.status_code}: {response.text[:500]}"
                )
        raise RuntimeError("authorization did not reach the redirect URI within 30 hops")

    async def callback_handler(self) -> Any:
        from mcp.client.auth import AuthorizationCodeResult

        if self.code is None or not self.code.get("code"):
            raise RuntimeError("no authorization code")
        return AuthorizationCodeResult(code=self.code["code"], state=self.code["state"], iss=self.code["iss"])

    # ---- the run -------------------------------------------------------------------------
    async def run(self) -> None:
        import mcp.client.auth.oauth2 as oauth2
        from mcp.client import Client
        from mcp.client.auth import OAuthClientProvider
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client
        from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

        a = self.args
        run = self
        if a.scope:
            # The SDK recomputes client_metadata.scope on every 401 (Step 3): pin it.
            oauth2.get_client_metadata_scopes = lambda *_args, **_kwargs: a.scope  # type: ignore[assignment]

        class MemoryStorage:
            def __init__(self) -> None:
                self.tokens: OAuthToken | None = None
                self.client_info: OAuthClientInformationFull | None = None
                if a.client_id:
                    self.client_info = OAuthClientInformationFull(
                        client_id=a.client_id,
                        client_secret=a.client_secret,
                        redirect_uris=[a.redirect_uri],
                        token_endpoint_auth_method="client_secret_basic" if a.client_secret else "none",
                        grant_types=["authorization_code", "refresh_token"],
                    )

            async def get_tokens(self) -> OAuthToken | None:
                return self.tokens

            async def set_tokens(self, tokens: OAuthToken) -> None:
                self.tokens = tokens

            async def get_client_info(self) -> OAuthClientInformationFull | None:
                return self.client_info

            async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
                if not a.client_id:
                    run.out["registered"] = True
                run.out["clientId"] = client_info.client_id
                self.client_info = client_info

        metadata = OAuthClientMetadata(
            client_name="py-oauth-client",
            redirect_uris=[a.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope=a.scope,
        )
        self.provider = OAuthClientProvider(
            server_url=a.url,
            client_metadata=metadata,
            storage=MemoryStorage(),
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
        )

        async def track(response: httpx2.Response) -> None:
            if response.status_code == 401:
                self.stage = "auth"
            elif self.stage == "auth" and response.is_success and "authorization" in response.request.headers:
                self.stage = "connect"

        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(create_mcp_http_client(auth=self.provider))
            http.event_hooks["response"].append(track)
            client = await stack.enter_async_context(
                Client(streamable_http_client(a.url, http_client=http), mode=a.mode)
            )
            self.out["authorizationServer"] = self.provider.context.auth_server_url
            self.out["protocolVersion"] = client.protocol_version
            info = client.server_info
            self.out["serverName"] = info.name if info is not None else None

            self.stage = "list"
            names: list[str] = []
            cursor = None
            for _ in range(1000):
                with anyio.fail_after(a.timeout):
                    page = await client.list_tools(cursor=cursor)
                names += [t.name for t in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    break
            self.out["tools"] = names

            if a.tool:
                self.stage = "call"
                with anyio.fail_after(a.timeout):
                    result = await client.call_tool(a.tool, json.loads(a.args))
                self.out["result"] = dump(result)
            self.stage = "close"

    async def main(self) -> None:
        try:
            with anyio.fail_after(self.args.timeout * 4):
                await self.run()
        except Exception as exc:  # reported, not raised
            if self.out["authorizationServer"] is None and self.provider is not None:
                self.out["authorizationServer"] = self.provider.context.auth_server_url
            if self.out["error"] is None:
                inner = leaf(exc)
                error = getattr(inner, "error", None)
                message = getattr(error, "message", None) or str(inner) or repr(inner)
                if isinstance(inner, TimeoutError):
                    message = f"timed out: {message}"
                self.out["error"] = message
                self.out["errorType"] = type(inner).__name__
                self.out["errorStage"] = self.stage
                print(f"[py_oauth_client] {self.stage} failed:", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)


def main() -> None:
    run = Run(parse_args())
    anyio.run(run.main)
    sys.stdout.write(json.dumps(run.out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
