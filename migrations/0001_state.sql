-- The gateway's run-time state (issue 13). One set of migrations for SQLite and
-- PostgreSQL: only types and statements both accept (TEXT, BIGINT, ON CONFLICT).

-- The configuration the admin API changes, one row an entity, in the settings file's
-- shape as JSON text: kind is server | alias | api_key | key_policy | team_policy |
-- organization_policy | setting. A server's spec is sealed (it may hold credentials).
CREATE TABLE config_entities (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);

-- One row: the version of the configuration (each committed change adds one; replicas
-- compare it with theirs) and whether the settings file has seeded the store.
CREATE TABLE config_version (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    seeded BIGINT NOT NULL
);
INSERT INTO config_version (id, version, seeded) VALUES (1, 0, 0);

-- The audit trail: admin changes and tool calls. Never arguments, results or secrets.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    replica TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at_ms);

-- Per-user upstream tokens (the OAuth issue): opaque bytes, sealed; never plaintext.
CREATE TABLE user_tokens (
    subject TEXT NOT NULL,
    server TEXT NOT NULL,
    sealed TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (subject, server)
);
