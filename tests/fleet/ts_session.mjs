// One whole MCP session through a load balancer with the official TypeScript SDK
// (`@modelcontextprotocol/sdk`, `.deps/node/node_modules`), for tests/fleet_sessions.rs:
// initialize -> resources/list + resources/subscribe (when there is a resource) ->
// ROUNDS x (tools/list, tools/call echo, tools/call progress with onprogress) -> DELETE.
// Halfway it writes DIR/NAME.halfway and waits for DIR/NAME.go (the test kills a replica
// meanwhile). Prints ONE JSON object on stdout: {sessionId, protocolVersion, rounds,
// progress: [per call], subscribed, errors: [..], closed}.
//
//   node tests/fleet/ts_session.mjs URL KEY DIR NAME ROUNDS

import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkDir = path.resolve(here, '../../.deps/node/node_modules/@modelcontextprotocol/sdk');
const sdk = (sub) => import(pathToFileURL(path.join(sdkDir, 'dist/esm', sub)).href);
const [url, key, dir, name, roundsText] = process.argv.slice(2);
const rounds = Number(roundsText);
const out = { sessionId: null, protocolVersion: null, rounds: 0, progress: [], subscribed: null, errors: [], closed: false };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const client = new Client({ name: 'fleet-ts', version: '1.0.0' }, { capabilities: {} });
const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const options = { timeout: 20000 };
try {
    await client.connect(transport, options);
    out.sessionId = transport.sessionId ?? null;
    out.protocolVersion = transport.protocolVersion ?? null;
    try {
        const resources = await client.listResources({}, options);
        if (resources.resources.length > 0) {
            await client.subscribeResource({ uri: resources.resources[0].uri }, options);
            out.subscribed = resources.resources[0].uri;
        }
    } catch (error) {
        out.errors.push(`subscribe: ${error?.message ?? error}`);
    }
    for (let round = 1; round <= rounds; round++) {
        try {
            const tools = await client.listTools({}, options);
            if (!tools.tools.some((t) => t.name === 'fx__echo')) throw new Error('fx__echo not listed');
            const echo = await client.callTool({ name: 'fx__echo', arguments: { text: `round ${round}` } }, undefined, options);
            if (!JSON.stringify(echo).includes(`round ${round}`)) throw new Error(`echo answered ${JSON.stringify(echo)}`);
            let updates = 0;
            await client.callTool({ name: 'fx__progress', arguments: { steps: 3 } }, undefined, {
                ...options,
                onprogress: () => {
                    updates += 1;
                },
            });
            out.progress.push(updates);
            out.rounds += 1;
        } catch (error) {
            out.errors.push(`round ${round}: ${error?.message ?? error}`);
        }
        if (round === Math.floor(rounds / 2)) {
            writeFileSync(path.join(dir, `${name}.halfway`), '');
            for (let i = 0; i < 600 && !existsSync(path.join(dir, `${name}.go`)); i++) await sleep(50);
        }
    }
    await transport.terminateSession();
    out.closed = true;
    await client.close();
} catch (error) {
    out.errors.push(`session: ${error?.message ?? error}`);
}
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
