#!/usr/bin/env node
// probes.cjs URL OUTDIR
//
// Checks the conformance scenarios do not make (or make in a way that hides the
// gateway's behaviour), written in the suite's own result format so compare.cjs reports
// them next to the scenarios, as "(extra)": OUTDIR/server-<name>-<timestamp>/checks.json.
// Uses the official TypeScript SDK client (the copy in .deps/node), protocol 2025-11-25.
//
//   tools-call-reconnection   The suite's server-sse-polling sends its call with
//                             MCP-Protocol-Version 2025-03-26, so an SDK server never
//                             closes the stream and the scenario only reports INFO. Here the
//                             call runs at 2025-11-25: the fixture's test_reconnection closes
//                             the call's SSE stream after the priming event (SEP-1699) and
//                             the result must still arrive (the client resumes with GET +
//                             Last-Event-ID).
//   resources-updated-notification  After resources/subscribe the fixture sends
//                             notifications/resources/updated for the URI; it must reach
//                             the subscriber.
"use strict";

const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const DEPS = process.env.MCP_DEPS_DIR || path.resolve(__dirname, "../../.deps");
const sdk = createRequire(path.join(DEPS, "node", "package.json"));
const { Client } = sdk("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = sdk("@modelcontextprotocol/sdk/client/streamableHttp.js");
const T = sdk("@modelcontextprotocol/sdk/types.js");

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error("usage: probes.cjs URL OUTDIR");
  process.exit(2);
}

const check = (id, status, description, errorMessage, details) => ({
  id,
  name: id,
  description,
  status,
  timestamp: new Date().toISOString(),
  ...(errorMessage ? { errorMessage } : {}),
  ...(details ? { details } : {}),
});

async function connect() {
  const client = new Client(
    { name: "litellm-rs-conformance-probe", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: {} } },
  );
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    reconnectionOptions: {
      initialReconnectionDelay: 100,
      maxReconnectionDelay: 1000,
      reconnectionDelayGrowFactor: 1.5,
      maxRetries: 3,
    },
  });
  await client.connect(transport);
  return client;
}

const withTimeout = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
  ]);

const PROBES = {
  async "tools-call-reconnection"() {
    const description = "A call whose SSE stream the server closes mid-call (SEP-1699) still gets its result";
    const client = await connect();
    try {
      const result = await withTimeout(
        client.callTool({ name: "test_reconnection", arguments: {} }, undefined, { timeout: 10000 }),
        12000,
        "tools/call test_reconnection",
      );
      const textOut = (result.content ?? []).map((c) => c.text ?? "").join("");
      const ok = result.isError !== true && textOut.includes("Reconnection test completed");
      return [
        check(
          "tools-call-reconnection",
          ok ? "SUCCESS" : "FAILURE",
          description,
          ok ? undefined : `unexpected result: ${JSON.stringify(result).slice(0, 300)}`,
          { result },
        ),
      ];
    } catch (e) {
      return [check("tools-call-reconnection", "FAILURE", description, `Failed: ${e?.message ?? e}`)];
    } finally {
      await client.close().catch(() => {});
    }
  },

  async "resources-updated-notification"() {
    const description = "notifications/resources/updated reaches a client subscribed to the resource";
    const client = await connect();
    try {
      const updated = new Promise((resolve) =>
        client.setNotificationHandler(T.ResourceUpdatedNotificationSchema, (n) => resolve(n)),
      );
      await client.subscribeResource({ uri: "test://watched-resource" });
      const n = await withTimeout(updated, 2000, "notifications/resources/updated");
      const ok = n.params?.uri === "test://watched-resource";
      return [
        check(
          "resources-updated-notification",
          ok ? "SUCCESS" : "FAILURE",
          description,
          ok ? undefined : `unexpected uri ${JSON.stringify(n.params?.uri)}`,
          { notification: n },
        ),
      ];
    } catch (e) {
      return [check("resources-updated-notification", "FAILURE", description, `Failed: ${e?.message ?? e}`)];
    } finally {
      await client.close().catch(() => {});
    }
  },
};

(async () => {
  fs.mkdirSync(outDir, { recursive: true });
  const only = process.env.CONFORMANCE_PROBE;
  for (const [name, probe] of Object.entries(PROBES)) {
    if (only && only !== name) continue;
    let checks;
    try {
      checks = await probe();
    } catch (e) {
      checks = [check(name, "FAILURE", "probe crashed", String(e?.stack ?? e))];
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const dir = path.join(outDir, `server-${name}-${stamp}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "checks.json"), JSON.stringify(checks, null, 2));
    console.log(`${name}: ${checks.map((c) => c.status).join(", ")}`);
  }
  process.exit(0);
})();
