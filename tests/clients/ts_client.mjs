// A real MCP client (the official TypeScript SDK, `@modelcontextprotocol/sdk`) driven
// from the command line. Used by `tests/service_clients.rs` to prove that clients we did
// not write work through the gateway.
//
// Runs: connect (initialize) -> tools/list (every page) -> call `--tool` with `--args`
// -> optionally call `--progress-tool` with an `onprogress` callback (`--progress-repeat N`
// times: `progressRuns` are the update counts of each call, `progress` the fewest,
// `progressMessages` those of that call), and prints ONE JSON object on stdout:
//
//   {"sdk": "typescript-mcp", "sdkVersion": "1.32.2", "transport": "http",
//    "protocolVersion": "2025-11-25", "serverName": "...",
//    "tools": ["fx__echo", ...], "pages": 1,
//    "result": {<CallToolResult>}, "progress": 3, "progressRuns": [3],
//    "progressMessages": [...], "progressResult": {<CallToolResult>},
//    "error": null, "errorStage": null, "errorType": null, "errorCode": null}
//
// The first stage that throws stops the run: `error` is its message, `errorStage` one of
// `connect`, `list`, `call`, `progress`, `close`, `errorType` the error's class
// (`McpError`, `StreamableHTTPError`, ...) and `errorCode` its `code` (a JSON-RPC code,
// or the HTTP status for `StreamableHTTPError`). The exit status is 0 whenever that object
// was printed; non-zero only for a crash of this script itself.
//
//   .deps/node22/bin/node tests/clients/ts_client.mjs URL --key KEY \
//       --tool fx__echo --args '{"text":"hi"}' --progress-tool fx__progress --progress-args '{"steps":3}'
//   .deps/node22/bin/node tests/clients/ts_client.mjs --stdio --command "litellm-mcp stdio -c gw.yaml" \
//       --env LITELLM_MCP_API_KEY=KEY --tool fx__echo --args '{"text":"hi"}'
//
// Transports: streamable HTTP (`StreamableHTTPClientTransport`; the key goes in
// `Authorization: Bearer <key>` through `requestInit.headers`) and, with `--stdio`
// (or `--transport stdio`), `StdioClientTransport` launching `--command` (split like a
// shell, without expansion) with `--env NAME=VALUE` merged over the SDK's default
// environment. The SDK is imported from `.deps/node/node_modules` of this repository
// (`scripts/install-test-deps.sh`), or from the directory in `MCP_TS_SDK_DIR`.
// Nothing but the final JSON goes to stdout; the stdio child's stderr goes to stderr.

import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkDir =
    process.env.MCP_TS_SDK_DIR ??
    path.resolve(here, '../../.deps/node/node_modules/@modelcontextprotocol/sdk');
const sdk = (sub) => import(pathToFileURL(path.join(sdkDir, 'dist/esm', sub)).href);

function usage(message) {
    process.stderr.write(
        `ts_client.mjs: ${message}\n` +
            'usage: ts_client.mjs [URL] [--transport http|stdio | --stdio --command CMD] [--env NAME=VALUE]...\n' +
            '       [--key KEY] --tool NAME [--args JSON] [--progress-tool NAME] [--progress-args JSON]\n' +
            '       [--progress-repeat N] [--timeout SECONDS]\n'
    );
    process.exit(2);
}

function parseArgs(argv) {
    const a = { transport: 'http', env: {}, args: '{}', progressArgs: '{}', progressRepeat: 1, timeout: 30 };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${arg} needs a value`);
            return argv[++i];
        };
        switch (arg) {
            case '--transport': a.transport = value(); break;
            case '--stdio': a.transport = 'stdio'; break;
            case '--command': a.command = value(); break;
            case '--env': {
                const pair = value();
                const eq = pair.indexOf('=');
                if (eq <= 0) usage(`--env wants NAME=VALUE, got ${pair}`);
                a.env[pair.slice(0, eq)] = pair.slice(eq + 1);
                break;
            }
            case '--key': a.key = value(); break;
            case '--tool': a.tool = value(); break;
            case '--args': a.args = value(); break;
            case '--progress-tool': a.progressTool = value(); break;
            case '--progress-args': a.progressArgs = value(); break;
            case '--progress-repeat': a.progressRepeat = Number(value()); break;
            case '--timeout': a.timeout = Number(value()); break;
            default:
                if (arg.startsWith('--') || a.url) usage(`unexpected argument ${arg}`);
                a.url = arg;
        }
    }
    if (!a.tool) usage('--tool is required');
    if (!['http', 'stdio'].includes(a.transport)) usage(`unknown transport ${a.transport}`);
    if (a.transport === 'stdio' && !a.command) usage('--stdio needs --command');
    if (a.transport === 'http' && !a.url) usage('HTTP needs a URL');
    return a;
}

/** Splits a command line into words like a POSIX shell (quotes and backslashes; no expansion). */
function shellSplit(line) {
    const words = [];
    let word = null;
    let quote = null;
    for (let i = 0; i < line.length; i++) {
        const c = line[i];
        if (quote === "'") {
            if (c === "'") quote = null;
            else word += c;
        } else if (quote === '"') {
            if (c === '"') quote = null;
            else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) word += line[++i];
            else word += c;
        } else if (c === "'" || c === '"') {
            quote = c;
            word ??= '';
        } else if (c === '\\' && i + 1 < line.length) {
            word = (word ?? '') + line[++i];
        } else if (/\s/.test(c)) {
            if (word !== null) words.push(word);
            word = null;
        } else {
            word = (word ?? '') + c;
        }
    }
    if (quote) usage(`unterminated quote in --command ${line}`);
    if (word !== null) words.push(word);
    return words;
}

const a = parseArgs(process.argv.slice(2));
const sdkVersion = JSON.parse(readFileSync(path.join(sdkDir, 'package.json'), 'utf8')).version;
const out = {
    sdk: 'typescript-mcp',
    sdkVersion,
    transport: a.transport,
    protocolVersion: null,
    serverName: null,
    tools: null,
    pages: 0,
    result: null,
    progress: null,
    progressRuns: null,
    progressMessages: null,
    progressResult: null,
    error: null,
    errorStage: null,
    errorType: null,
    errorCode: null,
};
let stage = 'connect';
let printed = false;

function finish(error) {
    if (printed) return;
    printed = true;
    if (error !== undefined && out.error === null) {
        out.error = error?.message ?? String(error);
        out.errorStage = stage;
        out.errorType = error?.constructor?.name ?? typeof error;
        out.errorCode = typeof error?.code === 'number' ? error.code : null;
        process.stderr.write(`[ts_client] ${stage} failed: ${error?.stack ?? error}\n`);
    }
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

// One deadline for the whole run (each request also has its own timeout).
const deadline = setTimeout(() => finish(new Error(`timed out after ${a.timeout * 4} s`)), a.timeout * 4000);
deadline.unref();

const { Client } = await sdk('client/index.js');
const timeoutMs = a.timeout * 1000;
const client = new Client({ name: 'ts-client', version: '1.0.0' }, { capabilities: {} });
let transport;
try {
    if (a.transport === 'http') {
        const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
        const headers = a.key ? { Authorization: `Bearer ${a.key}` } : {};
        transport = new StreamableHTTPClientTransport(new URL(a.url), { requestInit: { headers } });
    } else {
        const { StdioClientTransport } = await sdk('client/stdio.js');
        const [command, ...args] = shellSplit(a.command);
        transport = new StdioClientTransport({ command, args, env: a.env, stderr: 'inherit' });
    }
    // Client.connect hands the negotiated version to the transport when it can take it
    // (HTTP sends it as MCP-Protocol-Version); record it on the way, for stdio too.
    const setVersion = transport.setProtocolVersion?.bind(transport);
    transport.setProtocolVersion = (version) => {
        out.protocolVersion = version;
        setVersion?.(version);
    };
    await client.connect(transport, { timeout: timeoutMs });
    out.serverName = client.getServerVersion()?.name ?? null;

    stage = 'list';
    const names = [];
    let cursor;
    do {
        const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: timeoutMs });
        out.pages += 1;
        names.push(...page.tools.map((t) => t.name));
        cursor = page.nextCursor;
    } while (cursor && out.pages < 1000);
    out.tools = names;

    stage = 'call';
    out.result = await client.callTool({ name: a.tool, arguments: JSON.parse(a.args) }, undefined, {
        timeout: timeoutMs,
    });

    if (a.progressTool) {
        stage = 'progress';
        out.progress = 0;
        out.progressRuns = [];
        for (let run = 0; run < Math.max(1, a.progressRepeat); run++) {
            const messages = [];
            out.progressResult = await client.callTool(
                { name: a.progressTool, arguments: JSON.parse(a.progressArgs) },
                undefined,
                { timeout: timeoutMs, onprogress: (p) => messages.push(p) }
            );
            out.progressRuns.push(messages.length);
            if (run === 0 || messages.length < out.progress) {
                out.progress = messages.length;
                out.progressMessages = messages;
            }
        }
    }

    stage = 'close';
    await client.close();
    finish();
} catch (error) {
    try {
        await client.close();
    } catch {
        // already failing; the first error is the one reported
    }
    finish(error);
}
