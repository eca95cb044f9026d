#!/usr/bin/env node
// The upstream of the conformance run: an MCP server, written by us on the official
// TypeScript SDK (`@modelcontextprotocol/sdk`, the copy in .deps/node), that exposes what
// the server scenarios of `@modelcontextprotocol/conformance` call — the tools, resources,
// prompts, logging, completion and subscriptions their descriptions ask for
// (`conformance list --server`; each scenario's description is its spec). The conformance
// package ships only its CLI, no reference server, so this is ours.
//
// Contract (as tests/servers/README.md): binds 127.0.0.1 only, `--port N` (default 0 = a
// free port); once listening, writes exactly `LISTENING <port>\n` to stdout and nothing
// else there (logs go to stderr). Streamable HTTP at /mcp, stateful (Mcp-Session-Id),
// SSE responses with resumability (an event store, priming events, `retry`), and the
// Host/Origin checks against DNS rebinding (403). SIGTERM/SIGINT end it with code 0;
// `--exit-on-stdin-eof` also ends it when stdin closes.
//
// Beyond the scenarios (for tests/conformance/probes.cjs): `resources/subscribe` is
// followed, 50 ms later, by `notifications/resources/updated` for the URI on the session's
// GET stream; `test_reconnection` closes its call's SSE stream after the priming event
// when the session speaks 2025-11-25 (the SDK does so only from that version on).
//
// Server→client requests made by tools (sampling, elicitation) are sent as part of the
// call (`extra.sendRequest`: on the call's own SSE stream), as the spec recommends.
// `--unrelated-requests` sends them with `server.request` instead, which the SDK delivers
// on the session's standalone GET stream.
"use strict";

const http = require("http");
const path = require("path");
const { createRequire } = require("module");

const DEPS = process.env.MCP_DEPS_DIR || path.resolve(__dirname, "../../.deps");
const sdk = createRequire(path.join(DEPS, "node", "package.json"));
const { Server } = sdk("@modelcontextprotocol/sdk/server/index.js");
const { StreamableHTTPServerTransport } = sdk("@modelcontextprotocol/sdk/server/streamableHttp.js");
const T = sdk("@modelcontextprotocol/sdk/types.js");

// ---- arguments ------------------------------------------------------------------------
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const option = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
};
const PORT = Number(option("--port", "0"));
const UNRELATED_REQUESTS = flag("--unrelated-requests");
const VERBOSE = flag("--verbose") || process.env.CONFORMANCE_FIXTURE_VERBOSE === "1";
const log = (...a) => {
  if (VERBOSE) console.error("[fixture]", ...a);
};

// ---- fixed content --------------------------------------------------------------------
// A 1x1 PNG and a 44-byte WAV header with one sample.
const PNG_1X1 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV_TINY = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA==";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (t) => ({ type: "text", text: t });
const noArgs = { type: "object", properties: {} };

const TOOLS = [
  { name: "test_simple_text", description: "Returns one text block.", inputSchema: noArgs },
  { name: "test_image_content", description: "Returns one PNG image block.", inputSchema: noArgs },
  { name: "test_audio_content", description: "Returns one WAV audio block.", inputSchema: noArgs },
  { name: "test_embedded_resource", description: "Returns one embedded text resource.", inputSchema: noArgs },
  {
    name: "test_multiple_content_types",
    description: "Returns text, an image and an embedded resource.",
    inputSchema: noArgs,
  },
  {
    name: "test_tool_with_logging",
    description: "Sends three info log notifications, 50 ms apart, during the call.",
    inputSchema: noArgs,
  },
  {
    name: "test_tool_with_progress",
    description: "Reports progress 0, 50, 100 of 100, 50 ms apart, when given a progress token.",
    inputSchema: noArgs,
  },
  { name: "test_error_handling", description: "Always fails with isError: true.", inputSchema: noArgs },
  {
    name: "test_sampling",
    description: "Asks the client for an LLM completion (sampling/createMessage) of the prompt.",
    inputSchema: {
      type: "object",
      properties: { prompt: { type: "string", description: "The prompt to send to the LLM" } },
      required: ["prompt"],
    },
  },
  {
    name: "test_elicitation",
    description: "Asks the client for user input (elicitation/create) with the message.",
    inputSchema: {
      type: "object",
      properties: { message: { type: "string", description: "The message to show the user" } },
      required: ["message"],
    },
  },
  {
    name: "test_elicitation_sep1034_defaults",
    description: "Elicitation whose schema has defaults for every primitive type (SEP-1034).",
    inputSchema: noArgs,
  },
  {
    name: "test_elicitation_sep1330_enums",
    description: "Elicitation whose schema has the five enum forms (SEP-1330).",
    inputSchema: noArgs,
  },
  {
    name: "json_schema_2020_12_tool",
    description: "Tool with JSON Schema 2020-12 features",
    inputSchema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: {
        address: {
          type: "object",
          properties: { street: { type: "string" }, city: { type: "string" } },
        },
      },
      properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
      additionalProperties: false,
    },
  },
  {
    name: "test_reconnection",
    description:
      "Closes the call's SSE stream mid-call (SEP-1699); the result is delivered after the client resumes with Last-Event-ID.",
    inputSchema: noArgs,
  },
];

const RESOURCES = [
  {
    uri: "test://static-text",
    name: "static-text",
    description: "A static text resource",
    mimeType: "text/plain",
    read: () => ({ text: "This is the content of the static text resource." }),
  },
  {
    uri: "test://static-binary",
    name: "static-binary",
    description: "A static binary resource (a PNG)",
    mimeType: "image/png",
    read: () => ({ blob: PNG_1X1 }),
  },
  {
    uri: "test://watched-resource",
    name: "watched-resource",
    description: "A resource clients may subscribe to",
    mimeType: "text/plain",
    read: () => ({ text: "Watched resource content" }),
  },
];

const TEMPLATE = {
  uriTemplate: "test://template/{id}/data",
  name: "template-data",
  description: "JSON data for an id",
  mimeType: "application/json",
};
const TEMPLATE_RE = /^test:\/\/template\/([^/]+)\/data$/;

const PROMPTS = [
  { name: "test_simple_prompt", description: "A prompt without arguments" },
  {
    name: "test_prompt_with_arguments",
    description: "A prompt with two required arguments",
    arguments: [
      { name: "arg1", description: "First test argument", required: true },
      { name: "arg2", description: "Second test argument", required: true },
    ],
  },
  {
    name: "test_prompt_with_embedded_resource",
    description: "A prompt that embeds a resource",
    arguments: [{ name: "resourceUri", description: "URI of the resource to embed", required: true }],
  },
  { name: "test_prompt_with_image", description: "A prompt with an image" },
];

const COMPLETIONS = ["paris", "park", "party", "test", "testValue1", "testing"];

// ---- one MCP server per session -------------------------------------------------------
function makeServer() {
  const server = new Server(
    { name: "litellm-rs-conformance-fixture", version: "1.0.0" },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
    },
  );
  const subscriptions = new Set();

  // A request to the client: related to the call (its SSE stream), or not (GET stream).
  const ask = (extra, request, schema) =>
    UNRELATED_REQUESTS ? server.request(request, schema) : extra.sendRequest(request, schema);

  const elicit = async (extra, message, requestedSchema) => {
    if (!server.getClientCapabilities()?.elicitation) {
      return { isError: true, content: [text("The client does not support elicitation")] };
    }
    const result = await ask(
      extra,
      { method: "elicitation/create", params: { message, requestedSchema } },
      T.ElicitResultSchema,
    );
    return {
      content: [
        text(`Elicitation completed: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`),
      ],
    };
  };

  const tools = {
    test_simple_text: async () => ({ content: [text("This is a simple text response for testing.")] }),
    test_image_content: async () => ({ content: [{ type: "image", data: PNG_1X1, mimeType: "image/png" }] }),
    test_audio_content: async () => ({ content: [{ type: "audio", data: WAV_TINY, mimeType: "audio/wav" }] }),
    test_embedded_resource: async () => ({
      content: [
        {
          type: "resource",
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
        },
      ],
    }),
    test_multiple_content_types: async () => ({
      content: [
        text("Multiple content types test:"),
        { type: "image", data: PNG_1X1, mimeType: "image/png" },
        {
          type: "resource",
          resource: {
            uri: "test://mixed-content-resource",
            mimeType: "application/json",
            text: JSON.stringify({ test: "data", value: 123 }),
          },
        },
      ],
    }),
    test_tool_with_logging: async (_args, extra) => {
      const steps = ["Tool execution started", "Tool processing data", "Tool execution completed"];
      for (let i = 0; i < steps.length; i++) {
        if (i > 0) await sleep(50);
        await extra.sendNotification({
          method: "notifications/message",
          params: { level: "info", logger: "conformance-fixture", data: steps[i] },
        });
      }
      return { content: [text("Tool with logging executed successfully")] };
    },
    test_tool_with_progress: async (_args, extra) => {
      const token = extra._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (progress > 0) await sleep(50);
        if (token !== undefined) {
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken: token, progress, total: 100, message: `${progress}/100` },
          });
        }
      }
      return { content: [text(`Progress reported for token ${JSON.stringify(token ?? null)}`)] };
    },
    test_error_handling: async () => ({
      isError: true,
      content: [text("This tool intentionally returns an error for testing")],
    }),
    test_sampling: async (args, extra) => {
      if (!server.getClientCapabilities()?.sampling) {
        return { isError: true, content: [text("The client does not support sampling")] };
      }
      const result = await ask(
        extra,
        {
          method: "sampling/createMessage",
          params: {
            messages: [{ role: "user", content: text(String(args.prompt ?? "")) }],
            maxTokens: 100,
          },
        },
        T.CreateMessageResultSchema,
      );
      const reply = Array.isArray(result.content)
        ? result.content.map((c) => c.text ?? "").join("")
        : (result.content?.text ?? "");
      return { content: [text(`LLM response: ${reply}`)] };
    },
    test_elicitation: async (args, extra) =>
      elicit(extra, String(args.message ?? ""), {
        type: "object",
        properties: {
          username: { type: "string", description: "User's response" },
          email: { type: "string", description: "User's email address" },
        },
        required: ["username", "email"],
      }),
    test_elicitation_sep1034_defaults: async (_args, extra) =>
      elicit(extra, "Please review the defaults", {
        type: "object",
        properties: {
          name: { type: "string", description: "Name", default: "John Doe" },
          age: { type: "integer", description: "Age", default: 30 },
          score: { type: "number", description: "Score", default: 95.5 },
          status: {
            type: "string",
            description: "Status",
            enum: ["active", "inactive", "pending"],
            default: "active",
          },
          verified: { type: "boolean", description: "Verified", default: true },
        },
      }),
    test_elicitation_sep1330_enums: async (_args, extra) =>
      elicit(extra, "Please choose", {
        type: "object",
        properties: {
          untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
          titledSingle: {
            type: "string",
            oneOf: [
              { const: "value1", title: "First Option" },
              { const: "value2", title: "Second Option" },
              { const: "value3", title: "Third Option" },
            ],
          },
          legacyEnum: {
            type: "string",
            enum: ["opt1", "opt2", "opt3"],
            enumNames: ["Option One", "Option Two", "Option Three"],
          },
          untitledMulti: { type: "array", items: { type: "string", enum: ["option1", "option2", "option3"] } },
          titledMulti: {
            type: "array",
            items: {
              anyOf: [
                { const: "value1", title: "First Choice" },
                { const: "value2", title: "Second Choice" },
                { const: "value3", title: "Third Choice" },
              ],
            },
          },
        },
      }),
    json_schema_2020_12_tool: async (args) => ({ content: [text(`Called with ${JSON.stringify(args)}`)] }),
    test_reconnection: async (_args, extra) => {
      // Close this call's SSE stream now; the result goes to the event store and
      // reaches the client when it resumes (GET with Last-Event-ID).
      if (extra.closeSSEStream) extra.closeSSEStream();
      await sleep(100);
      return { content: [text("Reconnection test completed: the result arrived after the stream was resumed.")] };
    },
  };

  server.setRequestHandler(T.ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(T.CallToolRequestSchema, async (request, extra) => {
    const tool = tools[request.params.name];
    if (!tool) {
      return { isError: true, content: [text(`Unknown tool: ${request.params.name}`)] };
    }
    log("tools/call", request.params.name, "session", extra.sessionId);
    try {
      return await tool(request.params.arguments ?? {}, extra);
    } catch (e) {
      return { isError: true, content: [text(`${request.params.name} failed: ${e?.message ?? e}`)] };
    }
  });

  server.setRequestHandler(T.ListResourcesRequestSchema, async () => ({
    resources: RESOURCES.map(({ read: _read, ...r }) => r),
  }));
  server.setRequestHandler(T.ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates: [TEMPLATE] }));
  server.setRequestHandler(T.ReadResourceRequestSchema, async (request) => {
    const uri = request.params.uri;
    const fixed = RESOURCES.find((r) => r.uri === uri);
    if (fixed) return { contents: [{ uri, mimeType: fixed.mimeType, ...fixed.read() }] };
    const m = TEMPLATE_RE.exec(uri);
    if (m) {
      const id = decodeURIComponent(m[1]);
      return {
        contents: [
          {
            uri,
            mimeType: "application/json",
            text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
          },
        ],
      };
    }
    throw new T.McpError(-32002, `Resource not found: ${uri}`, { uri });
  });
  server.setRequestHandler(T.SubscribeRequestSchema, async (request) => {
    const uri = request.params.uri;
    subscriptions.add(uri);
    // The resource "changes" right after the subscription: the update goes to the
    // session's standalone GET stream (it belongs to no request).
    setTimeout(() => {
      if (subscriptions.has(uri)) server.sendResourceUpdated({ uri }).catch(() => {});
    }, 50);
    return {};
  });
  server.setRequestHandler(T.UnsubscribeRequestSchema, async (request) => {
    subscriptions.delete(request.params.uri);
    return {};
  });

  server.setRequestHandler(T.ListPromptsRequestSchema, async () => ({ prompts: PROMPTS }));
  server.setRequestHandler(T.GetPromptRequestSchema, async (request) => {
    const args = request.params.arguments ?? {};
    switch (request.params.name) {
      case "test_simple_prompt":
        return { messages: [{ role: "user", content: text("This is a simple prompt for testing.") }] };
      case "test_prompt_with_arguments":
        return {
          messages: [
            { role: "user", content: text(`Prompt with arguments: arg1='${args.arg1}', arg2='${args.arg2}'`) },
          ],
        };
      case "test_prompt_with_embedded_resource":
        return {
          messages: [
            {
              role: "user",
              content: {
                type: "resource",
                resource: {
                  uri: String(args.resourceUri ?? "test://example-resource"),
                  mimeType: "text/plain",
                  text: "Embedded resource content for testing.",
                },
              },
            },
            { role: "user", content: text("Please process the embedded resource above.") },
          ],
        };
      case "test_prompt_with_image":
        return {
          messages: [
            { role: "user", content: { type: "image", data: PNG_1X1, mimeType: "image/png" } },
            { role: "user", content: text("Please analyze the image above.") },
          ],
        };
      default:
        throw new T.McpError(T.ErrorCode.InvalidParams, `Unknown prompt: ${request.params.name}`);
    }
  });

  server.setRequestHandler(T.CompleteRequestSchema, async (request) => {
    const prefix = String(request.params.argument?.value ?? "");
    const values = COMPLETIONS.filter((v) => v.startsWith(prefix));
    return { completion: { values, total: values.length, hasMore: false } };
  });

  return server;
}

// ---- an in-memory event store (resumability, SEP-1699) --------------------------------
function makeEventStore() {
  const events = []; // {id, streamId, message}
  let seq = 0;
  return {
    async storeEvent(streamId, message) {
      const id = `${streamId}::${String(++seq).padStart(10, "0")}`;
      events.push({ id, streamId, message });
      return id;
    },
    async getStreamIdForEventId(eventId) {
      return events.find((e) => e.id === eventId)?.streamId;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const last = events.find((e) => e.id === lastEventId);
      if (!last) throw new Error(`unknown event id ${lastEventId}`);
      for (const e of events) {
        if (e.streamId === last.streamId && e.id > lastEventId && Object.keys(e.message).length > 0) {
          await send(e.id, e.message);
        }
      }
      return last.streamId;
    },
  };
}

// ---- HTTP -----------------------------------------------------------------------------
function localAuthority(authority) {
  if (!authority) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(authority);
  return !!m && ["localhost", "127.0.0.1", "[::1]"].includes(m[1].toLowerCase());
}

function jsonError(res, status, code, message) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code, message } }));
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString("utf8");
  return raw.length ? JSON.parse(raw) : undefined;
}

const sessions = new Map(); // session id -> transport

const httpServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname !== "/mcp") return jsonError(res, 404, -32600, "Not found: use /mcp");
    // DNS rebinding protection: a loopback server answers only local Host and Origin.
    const origin = req.headers.origin;
    let originOk = origin === undefined || origin === "null";
    if (!originOk) {
      try {
        originOk = localAuthority(new URL(origin).host);
      } catch {
        originOk = false;
      }
    }
    if (!localAuthority(req.headers.host) || !originOk) {
      log("refused Host", req.headers.host, "Origin", origin);
      return jsonError(res, 403, -32600, "Forbidden: Host or Origin is not local");
    }
    const sid = req.headers["mcp-session-id"];
    if (req.method === "POST") {
      let body;
      try {
        body = await readJson(req);
      } catch (e) {
        return jsonError(res, 400, -32700, `Parse error: ${e.message}`);
      }
      if (sid) {
        const transport = sessions.get(sid);
        if (!transport) return jsonError(res, 404, -32001, "Session not found");
        return await transport.handleRequest(req, res, body);
      }
      if (!body || Array.isArray(body) || body.method !== "initialize") {
        return jsonError(res, 400, -32000, "Bad Request: no Mcp-Session-Id (send initialize first)");
      }
      const server = makeServer();
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => require("crypto").randomUUID(),
        eventStore: makeEventStore(),
        retryInterval: 500,
        onsessioninitialized: (id) => {
          sessions.set(id, transport);
          log("session", id, "opened");
        },
        onsessionclosed: (id) => {
          sessions.delete(id);
          log("session", id, "closed");
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await server.connect(transport);
      return await transport.handleRequest(req, res, body);
    }
    if (req.method === "GET" || req.method === "DELETE") {
      if (!sid) return jsonError(res, 400, -32000, "Bad Request: Mcp-Session-Id header is required");
      const transport = sessions.get(sid);
      if (!transport) return jsonError(res, 404, -32001, "Session not found");
      return await transport.handleRequest(req, res);
    }
    res.writeHead(405, { allow: "GET, POST, DELETE" }).end();
  } catch (e) {
    console.error("[fixture] error:", e);
    if (!res.headersSent) jsonError(res, 500, -32603, "Internal error");
    else res.end();
  }
});

httpServer.listen(PORT, "127.0.0.1", () => {
  process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
});
httpServer.on("error", (e) => {
  console.error("[fixture] cannot listen:", e.message);
  process.exit(1);
});

function shutdown() {
  for (const transport of sessions.values()) transport.close().catch(() => {});
  httpServer.close(() => process.exit(0));
  httpServer.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
if (flag("--exit-on-stdin-eof")) {
  process.stdin.on("end", shutdown);
  process.stdin.on("close", shutdown);
  process.stdin.resume();
}
