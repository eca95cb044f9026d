// A real OpenID provider for the OAuth tests: npm `oidc-provider` (panva) with a headless
// login, a few test-only control endpoints, and RFC 8693 token exchange. Run with Node 22:
//
//   .deps/node22/bin/node tests/idp/provider.mjs [--port 0] [--no-registration]
//       [--client JSON]... [--user alice] [--access-token-ttl 600] [--default-scope "mcp:read mcp:call"]
//       [--exit-on-stdin-eof] [--log-level debug|info|warning|error]
//
// Process contract (the same as tests/servers/README.md): binds 127.0.0.1 only; prints exactly
// one line `LISTENING <port>` on stdout once it accepts connections, everything else goes to
// stderr; SIGTERM/SIGINT (and stdin EOF with --exit-on-stdin-eof) exit 0. The issuer is exactly
// `http://127.0.0.1:<port>` (no trailing slash).
//
// oidc-provider endpoints (paths under the issuer):
//   GET  /.well-known/openid-configuration, /.well-known/oauth-authorization-server (same document)
//   GET  /auth (authorization; code + PKCE S256, required for every client), GET /auth/:uid (resume)
//   POST /token       authorization_code, refresh_token, client_credentials,
//                     urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693, implemented here)
//   POST /reg         dynamic client registration (open; off with --no-registration)
//   POST /token/introspection (RFC 7662; opaque tokens only: oidc-provider refuses JWTs there)
//   POST /token/revocation    (RFC 7009)
//   GET  /jwks, GET /me (userinfo), /session/end
// An access token requested with `resource=<http://127.0.0.1:…|http://localhost:…>` is an RS256
// JWT (`typ: at+jwt`, `kid`) whose `aud` is the resource and whose `scope` holds the granted
// `mcp:*` scopes; without a resource it is opaque (userinfo only).
//
// Headless login: /auth redirects to /interaction/<uid>, which this harness answers itself:
// the "login" round logs in the current user (default alice; see POST /test/login-as), the
// "consent" round grants every requested scope and resource; each answers 303 back to
// /auth/<uid>. A user agent that follows the redirects (and keeps cookies) ends at
// `redirect_uri?code=…&state=…&iss=…`.
//
// Test control endpoints (JSON in, JSON out):
//   POST /test/login-as   {"sub":"bob"}                 -> {"sub":"bob"}
//   POST /test/mint       {kind, aud, sub?, team?, org?, scope?, exp_in?, client_id?} -> {"token", "kind", "kid", "claims"}
//   POST /test/jwks-mode  {"mode":"ok"|"down"|"slow"}   -> {"mode"}
//   GET  /test/stats      -> {"jwks_fetches", "introspections", "token_exchanges", "jwks_mode", "user"}
//   POST /test/stats/reset
//   POST /test/rotate     -> {"kid": <new current kid>, "kids": [all kids in the JWKS, newest first]}
//   GET  /test/keys       -> {"kid", "kids", "public_pem", "jwks"}
// See tests/idp/README.md for the details of each.

import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// Nothing but the LISTENING line may reach stdout.
console.log = console.error;
console.info = console.error;

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeModules = process.env.MCP_TEST_NODE_MODULES ?? path.resolve(here, '../../.deps/node/node_modules');
const load = (rel) => import(pathToFileURL(path.join(nodeModules, rel)).href);

const { default: Provider, interactionPolicy, errors } = await load('oidc-provider/lib/index.js');
const jose = await load('jose/dist/webapi/index.js');

// ---- command line ---------------------------------------------------------------------------
function usage(message) {
    process.stderr.write(
        `provider.mjs: ${message}\n` +
            'usage: provider.mjs [--port N] [--no-registration] [--client JSON]... [--user NAME]\n' +
            '       [--access-token-ttl SECONDS] [--default-scope "mcp:read mcp:call"] [--exit-on-stdin-eof]\n' +
            '       [--log-level debug|info|warning|error]\n'
    );
    process.exit(2);
}

const opts = {
    port: 0,
    registration: true,
    clients: [],
    user: 'alice',
    ttl: 600,
    defaultScope: 'mcp:read mcp:call',
    exitOnStdinEof: false,
    logLevel: 'warning',
};
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
            case '--no-registration': opts.registration = false; break;
            case '--client': {
                const text = value();
                try {
                    opts.clients.push(JSON.parse(text));
                } catch (e) {
                    usage(`--client is not JSON: ${e.message}`);
                }
                break;
            }
            case '--user': opts.user = value(); break;
            case '--access-token-ttl': opts.ttl = Number(value()); break;
            case '--default-scope': opts.defaultScope = value(); break;
            case '--exit-on-stdin-eof': opts.exitOnStdinEof = true; break;
            case '--log-level': opts.logLevel = value(); break;
            default: usage(`unexpected argument ${arg}`);
        }
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) usage('bad --port');
    if (!(opts.ttl > 0)) usage('bad --access-token-ttl');
    if (!['debug', 'info', 'warning', 'error'].includes(opts.logLevel)) usage('bad --log-level');
}
const LEVELS = { debug: 0, info: 1, warning: 2, error: 3 };
const log = (level, ...args) => {
    if (LEVELS[level] >= LEVELS[opts.logLevel]) console.error(`[idp] ${level}:`, ...args);
};
if (LEVELS[opts.logLevel] > LEVELS.warning) {
    // oidc-provider's "you should change this" notices go through console.warn.
    console.warn = () => {};
}

// ---- accounts ---------------------------------------------------------------------------------
const ACCOUNTS = {
    alice: { team: 'blue', org: 'acme' },
    bob: { team: 'red', org: 'acme' },
    carol: { org: 'globex' },
};
/** `team`/`org` of an account (any other sub is a valid user without them). */
const accountClaims = (sub) => ({ ...(ACCOUNTS[sub] ?? {}) });
let currentUser = opts.user;

// ---- signing keys -----------------------------------------------------------------------------
let keyCounter = 0;
function newRsaKey(prefix = 'k') {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = `${prefix}${++keyCounter}-${crypto.randomBytes(6).toString('hex')}`;
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
    const { kty, n, e } = jwk;
    return {
        kid,
        privateKey,
        publicKey,
        jwk,
        publicJwk: { kty, n, e, kid, alg: 'RS256', use: 'sig' },
        publicPem: publicKey.export({ type: 'spki', format: 'pem' }),
    };
}
/** keys[0] signs everything new; the JWKS lists all of them (newest first). */
const keys = [newRsaKey()];
let localJwks = jose.createLocalJWKSet({ keys: keys.map((k) => k.publicJwk) });

// ---- state ------------------------------------------------------------------------------------
const stats = { jwks_fetches: 0, introspections: 0, token_exchanges: 0 };
let jwksMode = 'ok';
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const SCOPES = ['openid', 'offline_access', 'mcp:read', 'mcp:call', 'mcp:admin'];
const RESOURCE_SCOPES = 'mcp:read mcp:call mcp:admin';
const DEFAULT_REDIRECT = 'http://127.0.0.1:1/callback';
const now = () => Math.floor(Date.now() / 1000);
const resourceAllowed = (r) => typeof r === 'string' && (r.startsWith('http://127.0.0.1:') || r.startsWith('http://localhost:'));

/** Static clients: a built-in public `test-client`, then --client ones (same id replaces it). */
function staticClients() {
    const byId = new Map();
    byId.set('test-client', {
        client_id: 'test-client',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [DEFAULT_REDIRECT],
    });
    for (const c of opts.clients) {
        const meta = { ...c };
        if (!meta.redirect_uris || meta.redirect_uris.length === 0) {
            // A machine client: no front channel.
            meta.redirect_uris = [];
            meta.response_types ??= [];
            meta.grant_types ??= ['client_credentials'];
        }
        if (meta.client_secret === undefined) meta.token_endpoint_auth_method ??= 'none';
        byId.set(meta.client_id, meta);
    }
    return [...byId.values()];
}

// ---- the provider (rebuilt on /test/rotate, sharing the module-level memory adapter) ----------
let issuer;
let provider;
let providerCallback;

function buildProvider() {
    const policy = interactionPolicy.base();
    // A session of another user than the current one must log in again.
    policy.get('login').checks.push(
        new interactionPolicy.Check('test_user_changed', 'the current test user changed', (ctx) =>
            ctx.oidc.session.accountId && ctx.oidc.session.accountId !== currentUser
                ? interactionPolicy.Check.REQUEST_PROMPT
                : interactionPolicy.Check.NO_NEED_TO_PROMPT
        )
    );
    const ttl = (_ctx, token) => token?.resourceServer?.accessTokenTTL || opts.ttl;
    const p = new Provider(issuer, {
        clients: staticClients(),
        jwks: { keys: keys.map((k) => k.jwk) },
        cookies: { keys: cookieKeys },
        scopes: SCOPES,
        responseTypes: ['code'],
        async findAccount(_ctx, id) {
            return { accountId: id, claims: async () => ({ sub: id, ...accountClaims(id) }) };
        },
        async extraTokenClaims(_ctx, token) {
            return token.accountId ? accountClaims(token.accountId) : undefined;
        },
        async issueRefreshToken(_ctx, client) {
            return client.grantTypeAllowed('refresh_token');
        },
        pkce: { required: () => true },
        clientBasedCORS: () => true,
        features: {
            devInteractions: { enabled: false },
            registration: { enabled: opts.registration, initialAccessToken: false },
            introspection: { enabled: true },
            revocation: { enabled: true },
            clientCredentials: { enabled: true },
            resourceIndicators: {
                enabled: true,
                defaultResource: async (_ctx, _client, oneOf) => oneOf,
                useGrantedResource: async () => true,
                async getResourceServerInfo(_ctx, resource) {
                    if (!resourceAllowed(resource)) {
                        throw new errors.InvalidTarget('resource must start with http://127.0.0.1: or http://localhost:');
                    }
                    return {
                        scope: RESOURCE_SCOPES,
                        audience: resource,
                        accessTokenTTL: opts.ttl,
                        accessTokenFormat: 'jwt',
                        jwt: { sign: { alg: 'RS256', kid: keys[0].kid } },
                    };
                },
            },
        },
        interactions: { policy, url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
        ttl: {
            AccessToken: ttl,
            ClientCredentials: ttl,
            AuthorizationCode: 120,
            IdToken: 3600,
            Interaction: 600,
            Grant: 86400,
            Session: 86400,
            RefreshToken: 86400,
        },
        renderError(ctx, out, error) {
            log('info', 'error page', out, error?.message);
            ctx.type = 'json';
            ctx.body = out;
        },
    });
    p.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
        'subject_token',
        'subject_token_type',
        'actor_token',
        'actor_token_type',
        'requested_token_type',
        'resource',
        'audience',
        'scope',
    ]);
    p.on('server_error', (_ctx, err) => log('error', 'server_error', err));
    for (const ev of ['grant.error', 'authorization.error', 'registration_create.error', 'introspection.error']) {
        p.on(ev, (_ctx, err) => log('info', ev, err?.message, err?.error_description ?? ''));
    }
    provider = p;
    providerCallback = p.callback();
}

// ---- RFC 8693 token exchange ------------------------------------------------------------------
async function tokenExchange(ctx) {
    stats.token_exchanges += 1;
    const { params, client } = ctx.oidc;
    const fail = (error, description) => {
        ctx.status = 400;
        ctx.body = { error, error_description: description };
    };
    if (!params.subject_token) return fail('invalid_request', 'missing required parameter subject_token');
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
        return fail('invalid_request', `subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
    }
    if (params.requested_token_type && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
        return fail('invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
    }
    let subject;
    try {
        ({ payload: subject } = await jose.jwtVerify(params.subject_token, localJwks, {
            issuer,
            algorithms: ['RS256'],
            clockTolerance: 5,
        }));
    } catch (e) {
        return fail('invalid_grant', `subject_token is invalid: ${e.code ?? e.name}: ${e.message}`);
    }
    const audience = params.resource ?? params.audience;
    if (!audience) return fail('invalid_request', 'resource or audience is required');
    if (params.resource !== undefined && !resourceAllowed(params.resource)) {
        return fail('invalid_target', 'resource must start with http://127.0.0.1: or http://localhost:');
    }
    const subjectScopes = typeof subject.scope === 'string' ? subject.scope.split(' ').filter(Boolean) : [];
    let scope = subject.scope;
    if (params.scope) {
        const extra = params.scope.split(' ').filter((s) => s && !subjectScopes.includes(s));
        if (extra.length) return fail('invalid_scope', `scope exceeds the subject token's: ${extra.join(' ')}`);
        scope = params.scope;
    }
    const iat = now();
    const expiresIn = 600;
    const claims = {
        iss: issuer,
        sub: subject.sub,
        aud: audience,
        iat,
        exp: iat + expiresIn,
        jti: crypto.randomUUID(),
        client_id: client.clientId,
        ...(scope ? { scope } : {}),
        ...(subject.team !== undefined ? { team: subject.team } : {}),
        ...(subject.org !== undefined ? { org: subject.org } : {}),
        act: subject.act ? { sub: client.clientId, act: subject.act } : { sub: client.clientId },
    };
    const accessToken = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: keys[0].kid })
        .sign(keys[0].privateKey);
    ctx.status = 200;
    ctx.body = {
        access_token: accessToken,
        issued_token_type: ACCESS_TOKEN_TYPE,
        token_type: 'Bearer',
        expires_in: expiresIn,
        ...(scope ? { scope } : {}),
    };
}

// ---- /test/mint -------------------------------------------------------------------------------
const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

async function mint(body) {
    const kind = body.kind;
    const sub = body.sub ?? 'alice';
    const t = now();
    const expIn = body.exp_in ?? 300;
    const account = accountClaims(sub);
    const claims = {
        iss: issuer,
        sub,
        aud: body.aud,
        iat: t,
        exp: t + expIn,
        jti: crypto.randomUUID(),
        client_id: body.client_id ?? 'test-client',
        scope: body.scope ?? 'mcp:read mcp:call',
    };
    const team = body.team !== undefined ? body.team : account.team;
    const org = body.org !== undefined ? body.org : account.org;
    if (team !== undefined && team !== null) claims.team = team;
    if (org !== undefined && org !== null) claims.org = org;
    const key = keys[0];
    const header = { alg: 'RS256', typ: 'at+jwt', kid: key.kid };
    const rs256 = (payload, hdr = header, privateKey = key.privateKey) =>
        new jose.SignJWT(payload).setProtectedHeader(hdr).sign(privateKey);

    if (kind !== 'opaque' && (typeof body.aud !== 'string' || !body.aud) && kind !== 'wrong_audience') {
        throw Object.assign(new Error('aud (a string) is required'), { status: 400 });
    }
    switch (kind) {
        case 'valid':
            return { token: await rs256(claims), kid: key.kid, claims };
        case 'expired': {
            Object.assign(claims, { iat: t - 7200, exp: t - 3600 });
            return { token: await rs256(claims), kid: key.kid, claims };
        }
        case 'not_yet_valid': {
            Object.assign(claims, { iat: t + 3600, nbf: t + 3600, exp: t + 3600 + expIn });
            return { token: await rs256(claims), kid: key.kid, claims };
        }
        case 'wrong_issuer':
            claims.iss = 'http://127.0.0.1:1/other';
            return { token: await rs256(claims), kid: key.kid, claims };
        case 'wrong_audience':
            claims.aud = 'https://elsewhere.example/mcp';
            return { token: await rs256(claims), kid: key.kid, claims };
        case 'alg_none': {
            const hdr = { alg: 'none', typ: 'JWT' };
            return { token: `${b64(hdr)}.${b64(claims)}.`, kid: null, claims, header: hdr };
        }
        case 'hs256_public_key': {
            const hdr = { alg: 'HS256', typ: 'at+jwt', kid: key.kid };
            const input = `${b64(hdr)}.${b64(claims)}`;
            const sig = crypto.createHmac('sha256', Buffer.from(key.publicPem)).update(input).digest('base64url');
            return { token: `${input}.${sig}`, kid: key.kid, claims, header: hdr };
        }
        case 'unknown_kid': {
            const stray = newRsaKey('stray');
            const hdr = { alg: 'RS256', typ: 'at+jwt', kid: stray.kid };
            return { token: await rs256(claims, hdr, stray.privateKey), kid: stray.kid, claims, header: hdr };
        }
        case 'tampered': {
            const [h, , s] = (await rs256(claims)).split('.');
            const forged = { ...claims, sub: 'mallory' };
            return { token: `${h}.${b64(forged)}.${s}`, kid: key.kid, claims: forged };
        }
        case 'no_kid': {
            const hdr = { alg: 'RS256', typ: 'at+jwt' };
            return { token: await rs256(claims, hdr), kid: null, claims, header: hdr };
        }
        case 'opaque': {
            const clientId = body.client_id ?? 'test-client';
            if (!(await provider.Client.find(clientId))) {
                throw Object.assign(new Error(`unknown client_id ${clientId}`), { status: 400 });
            }
            const at = new provider.AccessToken({
                accountId: sub,
                clientId,
                scope: claims.scope,
                ...(body.aud ? { aud: body.aud } : {}),
                expiresIn: expIn,
                gty: 'test_mint',
            });
            const token = await at.save();
            return { token, kid: null, claims: { sub, aud: body.aud, scope: claims.scope, client_id: clientId, iat: t, exp: t + expIn } };
        }
        default:
            throw Object.assign(new Error(`unknown kind ${JSON.stringify(kind)}`), { status: 400 });
    }
}

// ---- headless interaction ---------------------------------------------------------------------
async function finishInteraction(req, res) {
    const p = provider;
    const details = await p.interactionDetails(req, res);
    const { prompt, params, session, grantId } = details;
    let result;
    if (prompt.name === 'login') {
        result = { login: { accountId: currentUser } };
    } else if (prompt.name === 'consent') {
        const grant = grantId
            ? await p.Grant.find(grantId)
            : new p.Grant({ accountId: session.accountId, clientId: params.client_id });
        const d = prompt.details ?? {};
        if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
        if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
        if (d.missingResourceScopes) {
            for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
                grant.addResourceScope(indicator, scopes.join(' '));
            }
        }
        result = { consent: { grantId: await grant.save() } };
    } else {
        result = { error: 'access_denied', error_description: `the test IdP cannot answer prompt ${prompt.name}` };
    }
    log('info', `interaction ${details.uid}: ${prompt.name} (${prompt.reasons.join(',')}) as ${session?.accountId ?? currentUser}`);
    await p.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

// ---- HTTP front -------------------------------------------------------------------------------
function sendJson(res, status, body, headers = {}) {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
    res.end(text);
}

async function readJson(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text.trim()) return {};
    try {
        return JSON.parse(text);
    } catch (e) {
        throw Object.assign(new Error(`body is not JSON: ${e.message}`), { status: 400 });
    }
}

function keysInfo() {
    return {
        kid: keys[0].kid,
        kids: keys.map((k) => k.kid),
        public_pem: keys[0].publicPem,
        jwks: { keys: keys.map((k) => k.publicJwk) },
    };
}

async function testRoute(req, res, url) {
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
        case 'POST /test/login-as': {
            const { sub } = await readJson(req);
            if (typeof sub !== 'string' || !sub) throw Object.assign(new Error('sub (a string) is required'), { status: 400 });
            currentUser = sub;
            return sendJson(res, 200, { sub });
        }
        case 'POST /test/mint': {
            const body = await readJson(req);
            return sendJson(res, 200, { kind: body.kind, ...(await mint(body)) });
        }
        case 'POST /test/jwks-mode': {
            const { mode } = await readJson(req);
            if (!['ok', 'down', 'slow'].includes(mode)) throw Object.assign(new Error('mode must be ok, down or slow'), { status: 400 });
            jwksMode = mode;
            return sendJson(res, 200, { mode });
        }
        case 'GET /test/stats':
            return sendJson(res, 200, { ...stats, jwks_mode: jwksMode, user: currentUser });
        case 'POST /test/stats/reset':
            stats.jwks_fetches = stats.introspections = stats.token_exchanges = 0;
            return sendJson(res, 200, { ...stats });
        case 'POST /test/rotate': {
            keys.unshift(newRsaKey());
            localJwks = jose.createLocalJWKSet({ keys: keys.map((k) => k.publicJwk) });
            buildProvider();
            return sendJson(res, 200, { kid: keys[0].kid, kids: keys.map((k) => k.kid) });
        }
        case 'GET /test/keys':
            return sendJson(res, 200, keysInfo());
        default:
            return sendJson(res, 404, { error: 'not_found', error_description: `no test route ${route}` });
    }
}

const pendingSlow = new Set();

async function handle(req, res) {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname.startsWith('/test/')) return testRoute(req, res, url);
    if (url.pathname.startsWith('/interaction/') && req.method === 'GET') return finishInteraction(req, res);
    if (url.pathname === '/auth' && req.method === 'GET' && !url.searchParams.get('scope') && opts.defaultScope) {
        // RFC 6749 §3.3 default scope: oidc-provider refuses to finish an authorization that grants no scope.
        url.searchParams.set('scope', opts.defaultScope);
        req.url = url.pathname + url.search;
    }
    if (url.pathname === '/jwks') {
        stats.jwks_fetches += 1;
        if (jwksMode === 'down') return sendJson(res, 503, { error: 'temporarily_unavailable' });
        if (jwksMode === 'slow') {
            await new Promise((resolve) => {
                const timer = setTimeout(done, 30_000);
                function done() {
                    clearTimeout(timer);
                    pendingSlow.delete(done);
                    resolve();
                }
                pendingSlow.add(done);
                res.on('close', done);
            });
            if (res.destroyed || res.writableEnded) return undefined;
        }
    }
    if (url.pathname === '/token/introspection' && req.method === 'POST') stats.introspections += 1;
    return providerCallback(req, res);
}

const server = http.createServer((req, res) => {
    if (LEVELS.info >= LEVELS[opts.logLevel]) {
        res.on('finish', () => log('info', `${req.method} ${req.url} -> ${res.statusCode}`));
    }
    handle(req, res).catch((err) => {
        const status = err.status ?? err.statusCode ?? 500;
        if (status >= 500) log('error', `${req.method} ${req.url}:`, err);
        if (res.headersSent) {
            res.destroy();
            return;
        }
        sendJson(res, status, { error: status >= 500 ? 'server_error' : 'invalid_request', error_description: err.message });
    });
});

let stopping = false;
function shutdown(why) {
    if (stopping) return;
    stopping = true;
    log('info', `shutting down (${why})`);
    for (const done of [...pendingSlow]) done();
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (opts.exitOnStdinEof) {
    process.stdin.on('end', () => shutdown('stdin EOF'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
}

server.on('error', (err) => {
    console.error(`[idp] cannot listen on 127.0.0.1:${opts.port}: ${err.message}`);
    process.exit(1);
});
server.listen(opts.port, '127.0.0.1', () => {
    const { port } = server.address();
    issuer = `http://127.0.0.1:${port}`;
    try {
        buildProvider();
    } catch (err) {
        console.error('[idp] cannot configure oidc-provider:', err);
        process.exit(1);
    }
    log('info', `issuer ${issuer}; registration ${opts.registration ? 'on' : 'off'}; user ${currentUser}`);
    process.stdout.write(`LISTENING ${port}\n`);
});
