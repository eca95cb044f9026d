// The official TypeScript MCP SDK (`@modelcontextprotocol/sdk`) client doing the full MCP
// authorization flow against an OAuth-protected streamable HTTP server, headlessly:
//
//   .deps/node22/bin/node tests/clients/ts_oauth_client.mjs URL [--tool NAME --args JSON]
//       [--client-id ID [--client-secret S]] [--scope "mcp:read mcp:call"]
//       [--redirect-uri http://127.0.0.1:1/callback] [--timeout SECONDS]
//
// `Client` + `StreamableHTTPClientTransport` with an `authProvider`: the first request gets
// 401, the SDK discovers the protected-resource metadata (RFC 9728) and the authorization
// server (RFC 8414 / OpenID discovery), registers the client dynamically (RFC 7591) unless
// `--client-id` names a pre-registered one, and builds the authorization URL with PKCE. This
// script's `redirectToAuthorization(url)` plays the browser: it follows the URL hop by hop
// with `fetch(..., {redirect: 'manual'})`, carrying cookies, until the Location is the
// redirect URI (which is never fetched, so nothing needs to listen there), takes `code`,
// calls `transport.finishAuth(code)` and connects again. Then `tools/list` (every page) and,
// with `--tool`, `tools/call`. It prints ONE JSON object on stdout:
//
//   {"sdk": "typescript-mcp", "sdkVersion": "1.32.2",
//    "tools": ["whoami", ...], "result": <CallToolResult or null>,
//    "error": null | "message", "errorStage": null | "auth" | "connect" | "list" | "call",
//    "errorType": null | "<class>",
//    "authorizationServer": "<AS URL the SDK used: PRM authorization_servers[0]>",
//    "resource": "<resource parameter of the authorization request, null if none>",
//    "scopes": "<scope parameter of the authorization request, null if none>",
//    "registered": true | false (dynamic registration happened),
//    "clientId": "...", "iss": "<iss of the authorization response>", "hops": N}
//
// `--scope` forces the scope the SDK requests (registration and authorization alike); without
// it the SDK chooses: the WWW-Authenticate `scope`, else the PRM `scopes_supported`, else the
// client metadata (none here). `errorStage` is `auth` for anything that fails after the first
// 401 and before an authorized request succeeds (discovery, registration, the headless
// authorization, the token request, a 401 after authorization). Exit status 0 whenever the
// object was printed. The SDK is imported from `.deps/node/node_modules` (or MCP_TS_SDK_DIR).

import { readFileSync } from 'node:fs';
import crypto from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkDir =
    process.env.MCP_TS_SDK_DIR ??
    path.resolve(here, '../../.deps/node/node_modules/@modelcontextprotocol/sdk');
const sdk = (sub) => import(pathToFileURL(path.join(sdkDir, 'dist/esm', sub)).href);

function usage(message) {
    process.stderr.write(
        `ts_oauth_client.mjs: ${message}\n` +
            'usage: ts_oauth_client.mjs URL [--tool NAME [--args JSON]] [--client-id ID [--client-secret S]]\n' +
            '       [--scope SCOPES] [--redirect-uri URL] [--timeout SECONDS]\n'
    );
    process.exit(2);
}

function parseArgs(argv) {
    const a = { args: '{}', timeout: 30, redirectUri: 'http://127.0.0.1:1/callback' };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${arg} needs a value`);
            return argv[++i];
        };
        switch (arg) {
            case '--tool': a.tool = value(); break;
            case '--args': a.args = value(); break;
            case '--client-id': a.clientId = value(); break;
            case '--client-secret': a.clientSecret = value(); break;
            case '--scope': a.scope = value(); break;
            case '--redirect-uri': a.redirectUri = value(); break;
            case '--timeout': a.timeout = Number(value()); break;
            default:
                if (arg.startsWith('--') || a.url) usage(`unexpected argument ${arg}`);
                a.url = arg;
        }
    }
    if (!a.url) usage('URL is required');
    if (a.clientSecret && !a.clientId) usage('--client-secret needs --client-id');
    return a;
}

const a = parseArgs(process.argv.slice(2));
const sdkVersion = JSON.parse(readFileSync(path.join(sdkDir, 'package.json'), 'utf8')).version;
const out = {
    sdk: 'typescript-mcp',
    sdkVersion,
    tools: null,
    result: null,
    error: null,
    errorStage: null,
    errorType: null,
    authorizationServer: null,
    resource: null,
    scopes: null,
    registered: false,
    clientId: a.clientId ?? null,
    iss: null,
    hops: 0,
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
        process.stderr.write(`[ts_oauth_client] ${stage} failed: ${error?.stack ?? error}\n`);
    }
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
}

const deadline = setTimeout(() => finish(new Error(`timed out after ${a.timeout * 4} s`)), a.timeout * 4000);
deadline.unref();

/** The browser: follows `start` until the redirect URI, keeping cookies; returns its query. */
async function followHeadless(start) {
    const target = new URL(a.redirectUri);
    const isRedirectUri = (u) => u.origin === target.origin && u.pathname === target.pathname;
    const jar = new Map();
    let url = new URL(start);
    for (let hop = 0; hop < 30; hop++) {
        const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
        const response = await fetch(url, {
            redirect: 'manual',
            headers: cookie ? { cookie } : {},
            signal: AbortSignal.timeout(a.timeout * 1000),
        });
        out.hops += 1;
        for (const line of response.headers.getSetCookie()) {
            const [pair, ...attrs] = line.split(';');
            const eq = pair.indexOf('=');
            const name = pair.slice(0, eq).trim();
            const value = pair.slice(eq + 1).trim();
            const expired = attrs.some((x) => /^\s*max-age=0\s*$/i.test(x) || /^\s*expires=Thu, 01 Jan 1970/i.test(x));
            if (expired || value === '') jar.delete(name);
            else jar.set(name, value);
        }
        const location = response.headers.get('location');
        if (response.status >= 300 && response.status < 400 && location) {
            await response.body?.cancel();
            url = new URL(location, url);
            if (isRedirectUri(url)) return url.searchParams;
            continue;
        }
        const body = (await response.text()).slice(0, 500);
        throw new Error(`authorization stopped at ${url.origin}${url.pathname} with HTTP ${response.status}: ${body}`);
    }
    throw new Error('authorization did not reach the redirect URI within 30 hops');
}

const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { UnauthorizedError } = await sdk('client/auth.js');

class HeadlessAuthProvider {
    constructor() {
        this._client = a.clientId
            ? { client_id: a.clientId, ...(a.clientSecret ? { client_secret: a.clientSecret } : {}) }
            : undefined;
        this._tokens = undefined;
        this._verifier = undefined;
        this._discovery = undefined;
        this._state = undefined;
        this.code = undefined;
    }
    get redirectUrl() {
        return a.redirectUri;
    }
    get clientMetadata() {
        return {
            client_name: 'ts-oauth-client',
            redirect_uris: [a.redirectUri],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none',
            ...(a.scope ? { scope: a.scope } : {}),
        };
    }
    state() {
        this._state = crypto.randomBytes(16).toString('base64url');
        return this._state;
    }
    clientInformation() {
        return this._client;
    }
    saveClientInformation(info) {
        // Called after a dynamic registration, or to stamp pre-registered info with the issuer.
        if (!a.clientId) out.registered = true;
        out.clientId = info.client_id;
        this._client = info;
    }
    tokens() {
        return this._tokens;
    }
    saveTokens(tokens) {
        this._tokens = tokens;
    }
    saveCodeVerifier(verifier) {
        this._verifier = verifier;
    }
    codeVerifier() {
        return this._verifier;
    }
    saveDiscoveryState(state) {
        this._discovery = state;
        out.authorizationServer = state.authorizationServerUrl;
    }
    discoveryState() {
        return this._discovery;
    }
    invalidateCredentials(scope) {
        if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
        if (scope === 'all' || scope === 'client') this._client = a.clientId ? this._client : undefined;
        if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
        if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
    }
    async redirectToAuthorization(authorizationUrl) {
        out.resource = authorizationUrl.searchParams.get('resource');
        out.scopes = authorizationUrl.searchParams.get('scope');
        const query = await followHeadless(authorizationUrl);
        out.iss = query.get('iss');
        if (query.get('error')) {
            throw new Error(`authorization error ${query.get('error')}: ${query.get('error_description') ?? ''}`);
        }
        if (this._state !== undefined && query.get('state') !== this._state) {
            throw new Error(`state mismatch: sent ${this._state}, got ${query.get('state')}`);
        }
        if (!query.get('code')) throw new Error('no code in the authorization response');
        this.code = query.get('code');
    }
}

const authProvider = new HeadlessAuthProvider();
// The transport's fetch: a 401 means the auth stage has begun; an authorized 2xx ends it.
const trackingFetch = async (input, init) => {
    const response = await fetch(input, init);
    if (response.status === 401) stage = 'auth';
    else if (stage === 'auth' && response.ok && new Headers(init?.headers).has('authorization')) stage = 'connect';
    return response;
};
function newTransport() {
    const transport = new StreamableHTTPClientTransport(new URL(a.url), { authProvider, fetch: trackingFetch });
    if (a.scope) {
        // The SDK resolves the scope as WWW-Authenticate scope || PRM scopes_supported ||
        // clientMetadata.scope, and the transport keeps the first in `_scope`: pin it.
        Object.defineProperty(transport, '_scope', { get: () => a.scope, set: () => {}, configurable: true });
    }
    return transport;
}

const timeoutMs = a.timeout * 1000;
let client = new Client({ name: 'ts-oauth-client', version: '1.0.0' }, { capabilities: {} });
try {
    const first = newTransport();
    try {
        await client.connect(first, { timeout: timeoutMs });
    } catch (error) {
        if (!(error instanceof UnauthorizedError) || authProvider.code === undefined) throw error;
        stage = 'auth';
        await first.finishAuth(authProvider.code);
        await client.close().catch(() => {});
        stage = 'connect';
        client = new Client({ name: 'ts-oauth-client', version: '1.0.0' }, { capabilities: {} });
        await client.connect(newTransport(), { timeout: timeoutMs });
    }
    stage = 'list';
    const names = [];
    let cursor;
    let pages = 0;
    do {
        const page = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: timeoutMs });
        pages += 1;
        names.push(...page.tools.map((t) => t.name));
        cursor = page.nextCursor;
    } while (cursor && pages < 1000);
    out.tools = names;
    if (a.tool) {
        stage = 'call';
        out.result = await client.callTool({ name: a.tool, arguments: JSON.parse(a.args) }, undefined, {
            timeout: timeoutMs,
        });
    }
    await client.close().catch(() => {});
    finish();
} catch (error) {
    await client.close().catch(() => {});
    finish(error);
}
