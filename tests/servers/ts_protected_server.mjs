// A third-party OAuth-protected MCP server: the TypeScript SDK's `McpServer` over streamable
// HTTP (stateful sessions) at `/mcp`, behind the SDK's bearer-auth middleware, validating RS256
// JWT access tokens of an OpenID provider (e.g. tests/idp/provider.mjs) with `jose`.
//
//   .deps/node22/bin/node tests/servers/ts_protected_server.mjs --issuer http://127.0.0.1:<idp port>
//       [--port 0] [--required-scopes "mcp:read"] [--scopes-supported "mcp:read mcp:call"]
//       [--jwks-cooldown-ms 0] [--exit-on-stdin-eof] [--log-level warning]
//
// --scopes-supported: the PRM `scopes_supported` (default "mcp:read mcp:call"; "" leaves it out,
// then the TS SDK client requests no scope and the Python one the AS's `scopes_supported`).
// --required-scopes: scopes every token must carry (else 403 insufficient_scope with
// `scope="…"` in WWW-Authenticate; the SDK clients then request exactly those).
//
// --jwks-cooldown-ms: jose's cool-down between JWKS refetches for an unknown kid (jose's own
// default is 30000; 0 here, so a token signed after /test/rotate of the test IdP verifies at once).
//
// Process contract as in README.md (127.0.0.1 only, one `LISTENING <port>` line on stdout,
// SIGTERM exits 0). At start it fetches the issuer's `/.well-known/oauth-authorization-server`
// (falling back to `/.well-known/openid-configuration`); it exits 1 if that fails.
//
// Routes:
//   POST|GET|DELETE /mcp  requireBearerAuth: a token must verify against the issuer's JWKS
//                         (createRemoteJWKSet on `jwks_uri`), `iss` = --issuer, `aud` =
//                         `http://127.0.0.1:<port>/mcp`, RS256 only, not expired. Otherwise 401 with
//                         `WWW-Authenticate: Bearer error="invalid_token", error_description="…",
//                         resource_metadata="http://127.0.0.1:<port>/.well-known/oauth-protected-resource/mcp"`
//                         (403 insufficient_scope when --required-scopes are missing).
//   GET /.well-known/oauth-protected-resource/mcp   RFC 9728 (mcpAuthMetadataRouter):
//       {"resource":"http://127.0.0.1:<port>/mcp","authorization_servers":["<issuer>"],
//        "scopes_supported":[--scopes-supported],"resource_name":"ts-protected-server"}
//   GET /.well-known/oauth-authorization-server     the issuer's metadata, mirrored (the SDK router does that)
//
// Tools: `whoami` -> text JSON {"sub","aud","act","scope","client_id","team","org","iss"} of the
// verified token; `echo {text}` -> the text. The same JSON as the resource `whoami://me` and
// the prompt `whoami`.

import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import { randomUUID } from 'node:crypto';

console.log = console.error;
console.info = console.error;

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.MCP_TEST_NODE_MODULES ?? path.resolve(here, '../../.deps/node/node_modules');
const load = (rel) => import(pathToFileURL(path.join(nodeModules, rel)).href);
const sdk = (sub) => load(path.join('@modelcontextprotocol/sdk/dist/esm', sub));

function usage(message) {
    process.stderr.write(
        `ts_protected_server.mjs: ${message}\n` +
            'usage: ts_protected_server.mjs --issuer URL [--port N] [--required-scopes "a b"] [--jwks-cooldown-ms 0]\n' +
            '       [--scopes-supported "mcp:read mcp:call" (PRM scopes_supported; "" omits it)]\n' +
            '       [--exit-on-stdin-eof] [--log-level debug|info|warning|error]\n'
    );
    process.exit(2);
}
const opts = { port: 0, requiredScopes: [], scopesSupported: ['mcp:read', 'mcp:call'], exitOnStdinEof: false, logLevel: 'warning', jwksCooldownMs: 0 };
{
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${arg} needs a value`);
            return argv[++i];
        };
        switch (arg) {
            case '--port': opts.port = Number(value()); break;
            case '--issuer': opts.issuer = value(); break;
            case '--required-scopes': opts.requiredScopes = value().split(' ').filter(Boolean); break;
            case '--jwks-cooldown-ms': opts.jwksCooldownMs = Number(value()); break;
            case '--scopes-supported': opts.scopesSupported = value().split(' ').filter(Boolean); break;
            case '--exit-on-stdin-eof': opts.exitOnStdinEof = true; break;
            case '--log-level': opts.logLevel = value(); break;
            case '--graceful-timeout': value(); break;
            default: usage(`unexpected argument ${arg}`);
        }
    }
    if (!opts.issuer) usage('--issuer is required');
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('bad --port');
}
const LEVELS = { debug: 0, info: 1, warning: 2, error: 3 };
const log = (level, ...args) => {
    if ((LEVELS[level] ?? 3) >= (LEVELS[opts.logLevel] ?? 2)) console.error(`[ts-protected] ${level}:`, ...args);
};

const jose = await load('jose/dist/webapi/index.js');
const { z } = await load('zod/v4/index.js');
const { McpServer } = await sdk('server/mcp.js');
const { StreamableHTTPServerTransport } = await sdk('server/streamableHttp.js');
const { createMcpExpressApp } = await sdk('server/express.js');
const { isInitializeRequest } = await sdk('types.js');
const { requireBearerAuth } = await sdk('server/auth/middleware/bearerAuth.js');
const { mcpAuthMetadataRouter, getOAuthProtectedResourceMetadataUrl } = await sdk('server/auth/router.js');
const { InvalidTokenError } = await sdk('server/auth/errors.js');

// ---- the authorization server's metadata ----------------------------------------------------------
async function fetchAsMetadata(issuer) {
    const base = issuer.replace(/\/$/, '');
    let lastError;
    for (const wk of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
        try {
            const r = await fetch(base + wk, { signal: AbortSignal.timeout(10_000) });
            if (r.ok) return await r.json();
            lastError = new Error(`${base + wk}: HTTP ${r.status}`);
        } catch (e) {
            lastError = e;
        }
    }
    throw lastError;
}
let asMetadata;
try {
    asMetadata = await fetchAsMetadata(opts.issuer);
} catch (e) {
    console.error(`[ts-protected] cannot load the authorization server metadata of ${opts.issuer}: ${e.message}`);
    process.exit(1);
}
// jose refetches the JWKS for an unknown kid only after a cool-down (its default is 30 s).
const jwks = jose.createRemoteJWKSet(new URL(asMetadata.jwks_uri), { cooldownDuration: opts.jwksCooldownMs });

// ---- the MCP server -------------------------------------------------------------------------------
function newMcpServer() {
    const server = new McpServer({ name: 'ts-protected-server', version: '1.0.0' });
    const whoOf = (extra) => {
        const c = extra.authInfo?.extra?.claims ?? {};
        return JSON.stringify({
            sub: c.sub ?? null,
            aud: c.aud ?? null,
            act: c.act ?? null,
            scope: c.scope ?? null,
            client_id: c.client_id ?? null,
            team: c.team ?? null,
            org: c.org ?? null,
            iss: c.iss ?? null,
        });
    };
    server.registerTool('whoami', { description: 'The claims of the verified access token.' }, async (extra) => ({
        content: [{ type: 'text', text: whoOf(extra) }],
    }));
    // The same claims as a resource and as a prompt, so a test can tell whose token
    // each kind of request carried.
    server.registerResource('whoami', 'whoami://me', { mimeType: 'application/json' }, async (uri, extra) => ({
        contents: [{ uri: uri.href, mimeType: 'application/json', text: whoOf(extra) }],
    }));
    server.registerPrompt('whoami', { description: 'The claims of the verified access token.' }, async (extra) => ({
        messages: [{ role: 'user', content: { type: 'text', text: whoOf(extra) } }],
    }));
    server.registerTool(
        'echo',
        { description: 'Echo the text back.', inputSchema: { text: z.string() } },
        async ({ text }) => ({ content: [{ type: 'text', text }] })
    );
    return server;
}

const app = createMcpExpressApp({ host: '127.0.0.1' });
const transports = new Map();
let resourceUrl;

const verifier = {
    async verifyAccessToken(token) {
        let payload;
        try {
            ({ payload } = await jose.jwtVerify(token, jwks, {
                issuer: asMetadata.issuer,
                audience: resourceUrl.href,
                algorithms: ['RS256'],
            }));
        } catch (e) {
            log('info', `token rejected: ${e.code ?? e.name}: ${e.message}`);
            // The SDK puts this text in a quoted WWW-Authenticate parameter: no double quotes.
            throw new InvalidTokenError(`${e.code ?? e.name}: ${e.message}`.replace(/["\\]/g, "'"));
        }
        return {
            token,
            clientId: payload.client_id ?? payload.act?.sub ?? '',
            scopes: typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
            expiresAt: payload.exp,
            resource: new URL(Array.isArray(payload.aud) ? payload.aud[0] : payload.aud),
            extra: { claims: payload },
        };
    },
};

// Routes are added once the port (and so the resource URL) is known.
function mountRoutes(port) {
    resourceUrl = new URL(`http://127.0.0.1:${port}/mcp`);
    app.use(
        mcpAuthMetadataRouter({
            oauthMetadata: asMetadata,
            resourceServerUrl: resourceUrl,
            scopesSupported: opts.scopesSupported.length ? opts.scopesSupported : undefined,
            resourceName: 'ts-protected-server',
        })
    );
    const bearer = requireBearerAuth({
        verifier,
        requiredScopes: opts.requiredScopes,
        resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(resourceUrl),
    });
    app.post('/mcp', bearer, async (req, res) => {
        try {
            const sid = req.headers['mcp-session-id'];
            let transport = sid ? transports.get(sid) : undefined;
            if (!transport) {
                if (sid || !isInitializeRequest(req.body)) {
                    res.status(sid ? 404 : 400).json({
                        jsonrpc: '2.0',
                        error: { code: -32000, message: sid ? 'Session not found' : 'Bad Request: No valid session ID provided' },
                        id: null,
                    });
                    return;
                }
                transport = new StreamableHTTPServerTransport({
                    sessionIdGenerator: () => randomUUID(),
                    onsessioninitialized: (id) => transports.set(id, transport),
                });
                transport.onclose = () => {
                    if (transport.sessionId) transports.delete(transport.sessionId);
                };
                await newMcpServer().connect(transport);
            }
            await transport.handleRequest(req, res, req.body);
        } catch (e) {
            log('error', 'POST /mcp', e);
            if (!res.headersSent) res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal server error' }, id: null });
        }
    });
    const bySession = async (req, res) => {
        const transport = transports.get(req.headers['mcp-session-id']);
        if (!transport) {
            res.status(400).send('Invalid or missing session ID');
            return;
        }
        await transport.handleRequest(req, res);
    };
    app.get('/mcp', bearer, bySession);
    app.delete('/mcp', bearer, bySession);
}

const httpServer = app.listen(opts.port, '127.0.0.1');
httpServer.on('error', (err) => {
    console.error(`[ts-protected] cannot listen on 127.0.0.1:${opts.port}: ${err.message}`);
    process.exit(1);
});
httpServer.on('listening', () => {
    const { port } = httpServer.address();
    mountRoutes(port);
    log('info', `resource ${resourceUrl.href}, issuer ${asMetadata.issuer}`);
    process.stdout.write(`LISTENING ${port}\n`);
});

let stopping = false;
async function shutdown(why) {
    if (stopping) return;
    stopping = true;
    log('info', `shutting down (${why})`);
    setTimeout(() => process.exit(0), 1000).unref();
    for (const t of transports.values()) await t.close().catch(() => {});
    httpServer.close(() => process.exit(0));
    httpServer.closeAllConnections?.();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (opts.exitOnStdinEof) {
    process.stdin.on('end', () => shutdown('stdin EOF'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
}
