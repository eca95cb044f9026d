#!/usr/bin/env python3
"""Dual-era MCP server for the conformance suite: PyPI `mcp` 2.x (MCPServer), streamable HTTP /mcp.

Run with the py2 venv:
    .deps/py2/bin/python tests/servers/py2_conformance_server.py [--port 0] [--stateless]

It exposes what the server scenarios of npm `@modelcontextprotocol/conformance` call (the
tools, resources, prompts, completion, logging and subscriptions their descriptions name),
on ONE URL that speaks both protocol eras, as the SDK routes them: requests without a
2026-07-28 `MCP-Protocol-Version` header are the initialize/session era (sampling and
elicitation are requests to the client during the call), requests with it are the stateless
2026-07-28 era (`server/discover`, per-request `_meta`, `input_required` results whose
`requestState` the SDK seals). The behaviour of each tool is the one its scenario's
description asks for; the code is ours. `--stateless` serves the session era without sessions
(no server-to-client requests there), for a "stateless-only" upstream.

Contract as tests/servers/README.md: 127.0.0.1 only, `LISTENING <port>` on stdout, SIGTERM
ends it with code 0.
"""

import asyncio
import base64
import json
from typing import Any

import _common
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import (
    AudioContent,
    CallToolResult,
    Completion,
    CreateMessageRequest,
    CreateMessageRequestParams,
    ElicitRequest,
    ElicitRequestFormParams,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequiredResult,
    ListRootsRequest,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_TINY = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA=="
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021


def text(t: str) -> TextContent:
    return TextContent(type="text", text=t)


def elicit_req(message: str, props: dict[str, Any], required: list[str]) -> ElicitRequest:
    return ElicitRequest(
        params=ElicitRequestFormParams(
            message=message,
            requested_schema={"type": "object", "properties": props, "required": required},
        )
    )


def sample_req(prompt: str, max_tokens: int) -> CreateMessageRequest:
    return CreateMessageRequest(
        params=CreateMessageRequestParams(
            messages=[SamplingMessage(role="user", content=text(prompt))], max_tokens=max_tokens
        )
    )


NAME_REQ = {"user_name": elicit_req("What is your name?", {"name": {"type": "string"}}, ["name"])}


def responses(ctx: Context) -> dict[str, Any]:
    return dict(ctx.input_responses or {})


def dump(value: Any) -> Any:
    return value.model_dump(by_alias=True, mode="json", exclude_none=True) if hasattr(value, "model_dump") else value


async def elicit_report(ctx: Context, label: str, message: str, schema: dict[str, Any]) -> str:
    """Asks the client (session era: an elicitation/create request during the call) and
    reports its answer as the scenarios expect: `<label>: action=…, content={…}`."""
    r = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return f"{label}: action={r.action}, content={json.dumps(r.content or {})}"


def register(mcp: MCPServer) -> None:  # noqa: C901 - one flat list of what the scenarios call
    subscriptions: set[str] = set()

    # ---- content tools --------------------------------------------------------------
    @mcp.tool()
    def test_simple_text() -> str:
        """Returns simple text content."""
        return "This is a simple text response for testing."

    @mcp.tool()
    def test_image_content() -> list[ImageContent]:
        """Returns an image."""
        return [ImageContent(type="image", data=PNG_1X1, mime_type="image/png")]

    @mcp.tool()
    def test_audio_content() -> list[AudioContent]:
        """Returns audio."""
        return [AudioContent(type="audio", data=WAV_TINY, mime_type="audio/wav")]

    @mcp.tool()
    def test_embedded_resource() -> list[EmbeddedResource]:
        """Returns an embedded resource."""
        return [
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
                ),
            )
        ]

    @mcp.tool()
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Returns text, an image and a resource."""
        return [
            text("Multiple content types test:"),
            ImageContent(type="image", data=PNG_1X1, mime_type="image/png"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
                ),
            ),
        ]

    @mcp.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three log messages during the call."""
        for msg in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.log("info", msg)
            await asyncio.sleep(0.05)
        return "Tool with logging executed successfully"

    @mcp.tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50, 100 of 100."""
        for p in (0, 50, 100):
            await ctx.report_progress(p, 100, f"Completed step {p} of 100")
            await asyncio.sleep(0.05)
        return "Progress tool completed"

    @mcp.tool()
    def test_error_handling() -> str:
        """Fails on purpose."""
        raise RuntimeError("This tool intentionally returns an error for testing")

    # ---- session-era server-to-client requests ----------------------------------------
    @mcp.tool()
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Asks the client for an LLM completion (sampling/createMessage)."""
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=text(prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        content = result.content
        return f"LLM response: {getattr(content, 'text', 'No response')}"

    @mcp.tool()
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user (elicitation/create) for a username and an email."""
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        return await elicit_report(ctx, "User response", message, schema)

    @mcp.tool()
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Elicits with a default for every primitive type (SEP-1034)."""
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "default": True},
            },
        }
        return await elicit_report(ctx, "Elicitation completed", "Please provide user information", schema)

    @mcp.tool()
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Elicits with the five enum shapes of SEP-1330."""
        schema = {
            "type": "object",
            "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {
                    "type": "string",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"},
                    ],
                },
                "legacyEnum": {
                    "type": "string",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"],
                },
                "untitledMulti": {
                    "type": "array",
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                },
                "titledMulti": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]
                    },
                },
            },
        }
        return await elicit_report(ctx, "Elicitation completed", "Please select options", schema)

    # ---- 2026-07-28: capabilities and input_required rounds ---------------------------
    @mcp.tool()
    async def test_missing_capability(ctx: Context) -> str:
        """Needs the client's sampling capability; without it: -32021."""
        caps = ctx.client_capabilities
        if caps is None or caps.sampling is None:
            raise MCPError(
                code=MISSING_REQUIRED_CLIENT_CAPABILITY,
                message="Missing required client capability: sampling",
                data={"requiredCapabilities": {"sampling": {}}},
            )
        return "client declared sampling"

    @mcp.tool()
    async def test_logging_tool(ctx: Context) -> str:
        """Logs one message (a 2026-07-28 client gets it only with a `logLevel` in `_meta`)."""
        await ctx.log("info", "test_logging_tool ran")
        return "logged"

    @mcp.tool()
    async def test_streaming_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Asks for a name: in 2026-07-28 as an input_required result, never as a request on the stream."""
        answer = responses(ctx).get("user_name")
        if answer is None:
            return InputRequiredResult(input_requests=NAME_REQ)
        return CallToolResult(content=[text("thanks")])

    @mcp.tool()
    async def test_input_required_result_elicitation(ctx: Context) -> CallToolResult | InputRequiredResult:
        """One elicitation round under the key `user_name`."""
        answer = responses(ctx).get("user_name")
        content = getattr(answer, "content", None) if answer is not None else None
        if not isinstance(content, dict) or "name" not in content:
            return InputRequiredResult(input_requests=NAME_REQ)
        return CallToolResult(content=[text(f"Hello, {content['name']}!")])

    @mcp.tool()
    async def test_input_required_result_sampling(ctx: Context) -> CallToolResult | InputRequiredResult:
        """One sampling round under the key `capital_question`."""
        answer = responses(ctx).get("capital_question")
        if answer is None:
            return InputRequiredResult(
                input_requests={"capital_question": sample_req("What is the capital of France?", 100)}
            )
        return CallToolResult(content=[text(f"LLM said: {getattr(answer.content, 'text', '')}")])

    @mcp.tool()
    async def test_input_required_result_list_roots(ctx: Context) -> CallToolResult | InputRequiredResult:
        """One roots/list round under the key `client_roots`."""
        answer = responses(ctx).get("client_roots")
        if answer is None:
            return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})
        roots = [str(r.uri) for r in getattr(answer, "roots", [])]
        return CallToolResult(content=[text(f"Roots: {', '.join(roots)}")])

    @mcp.tool()
    async def test_input_required_result_request_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        """One round with a requestState the retry must echo."""
        if ctx.request_state != "round-1" or "confirm" not in responses(ctx):
            return InputRequiredResult(
                input_requests={
                    "confirm": elicit_req("Please confirm", {"ok": {"type": "boolean"}}, ["ok"]),
                },
                request_state="round-1",
            )
        return CallToolResult(content=[text("state-ok: confirmed")])

    @mcp.tool()
    async def test_input_required_result_multiple_inputs(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Three questions in one round: elicitation, sampling and roots."""
        got = responses(ctx)
        keys = {"user_name", "greeting", "client_roots"}
        if ctx.request_state != "multi" or not keys <= got.keys():
            return InputRequiredResult(
                input_requests={
                    **NAME_REQ,
                    "greeting": sample_req("Generate a greeting", 50),
                    "client_roots": ListRootsRequest(),
                },
                request_state="multi",
            )
        return CallToolResult(content=[text("all inputs received")])

    @mcp.tool()
    async def test_input_required_result_multi_round(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Two rounds (step1, step2) with an evolving requestState."""
        got = responses(ctx)
        if ctx.request_state == "round-2" and "step2" in got:
            return CallToolResult(content=[text("multi-round complete")])
        if ctx.request_state == "round-1" and "step1" in got:
            return InputRequiredResult(
                input_requests={
                    "step2": elicit_req(
                        "Step 2: What is your favorite color?", {"color": {"type": "string"}}, ["color"]
                    )
                },
                request_state="round-2",
            )
        return InputRequiredResult(
            input_requests={
                "step1": elicit_req("Step 1: What is your name?", {"name": {"type": "string"}}, ["name"])
            },
            request_state="round-1",
        )

    @mcp.tool()
    async def test_input_required_result_tampered_state(ctx: Context) -> CallToolResult | InputRequiredResult:
        """A round whose requestState is sealed by the SDK; a tampered echo is refused there."""
        if ctx.request_state != "sealed" or "confirm" not in responses(ctx):
            return InputRequiredResult(
                input_requests={"confirm": elicit_req("Please confirm", {"ok": {"type": "boolean"}}, ["ok"])},
                request_state="sealed",
            )
        return CallToolResult(content=[text("state verified")])

    @mcp.tool()
    async def test_input_required_result_capabilities(ctx: Context) -> CallToolResult | InputRequiredResult:
        """Asks only what the client declared it can answer."""
        got = responses(ctx)
        if got:
            return CallToolResult(content=[text("inputs received")])
        caps = ctx.client_capabilities
        wanted: dict[str, Any] = {}
        if caps is not None and caps.elicitation is not None:
            wanted.update(NAME_REQ)
        if caps is not None and caps.sampling is not None:
            wanted["greeting"] = sample_req("Generate a greeting", 50)
        if caps is not None and caps.roots is not None:
            wanted["client_roots"] = ListRootsRequest()
        if not wanted:
            return CallToolResult(content=[text("no capability to ask with")])
        return InputRequiredResult(input_requests=wanted)

    # ---- resources ------------------------------------------------------------------
    @mcp.resource("test://static-text", mime_type="text/plain")
    def static_text() -> str:
        """A static text resource."""
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        """A static binary resource (a PNG)."""
        return base64.b64decode(PNG_1X1)

    @mcp.resource("test://template/{id}/data", mime_type="application/json")
    def template(id: str) -> str:
        """A resource template."""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @mcp.resource("test://watched-resource", mime_type="text/plain")
    def watched() -> str:
        """A resource clients may subscribe to."""
        return "Watched resource content"

    # ---- prompts --------------------------------------------------------------------
    @mcp.prompt()
    def test_simple_prompt() -> list[dict[str, Any]]:
        """A prompt without arguments."""
        return [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]

    @mcp.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[dict[str, Any]]:
        """A prompt with two arguments."""
        t = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
        return [{"role": "user", "content": {"type": "text", "text": t}}]

    @mcp.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:  # noqa: N803 - the scenario's name
        """A prompt with an embedded resource."""
        return [
            {
                "role": "user",
                "content": {
                    "type": "resource",
                    "resource": {
                        "uri": resourceUri,
                        "mimeType": "text/plain",
                        "text": "Embedded resource content for testing.",
                    },
                },
            },
            {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
        ]

    @mcp.prompt()
    def test_prompt_with_image() -> list[dict[str, Any]]:
        """A prompt with an image."""
        return [
            {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
            {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}},
        ]

    @mcp.prompt()
    async def test_input_required_result_prompt(ctx: Context) -> Any:
        """A prompt that first asks the user for context (input_required)."""
        answer = responses(ctx).get("user_context")
        content = getattr(answer, "content", None) if answer is not None else None
        if not isinstance(content, dict):
            return InputRequiredResult(
                input_requests={
                    "user_context": elicit_req(
                        "What context should the prompt use?", {"context": {"type": "string"}}, ["context"]
                    )
                }
            )
        return [{"role": "user", "content": {"type": "text", "text": f"Context: {content.get('context', '')}"}}]

    # ---- completion, logging, subscriptions (session era) ----------------------------
    @mcp.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        return Completion(values=[], total=0, has_more=False)

    low = mcp._lowlevel_server  # the SDK's public hooks for these three live on the low-level server

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        subscriptions.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        subscriptions.discard(str(params.uri))
        return EmptyResult()

    low.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


def main() -> None:
    p = _common.base_parser(__doc__)
    p.add_argument("--stateless", action="store_true", help="serve the session era without sessions")
    args = p.parse_args()
    _common.setup_logging(args.log_level)
    mcp = MCPServer("py2-conformance-server", version="1.0.0", log_level=args.log_level.upper())
    register(mcp)
    app = mcp.streamable_http_app(streamable_http_path="/mcp", stateless_http=args.stateless, host="127.0.0.1")
    _common.serve(app, args)


if __name__ == "__main__":
    main()
