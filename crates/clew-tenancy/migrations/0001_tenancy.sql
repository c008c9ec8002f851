-- Tenancy: users, top-level namespaces and their projects, memberships, tokens, sessions,
-- per-namespace limits and usage. Written to run unchanged on SQLite and PostgreSQL: integer
-- columns are BIGINT, times are Unix seconds, IDs are allocated by Clew (no SERIAL or
-- AUTOINCREMENT), secrets are stored only as hex SHA-256 digests.

CREATE TABLE users (
    id BIGINT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    -- An argon2id PHC string; NULL for users who sign in with tokens only.
    password_hash TEXT,
    -- 1 or 0 (booleans differ between SQLite and PostgreSQL drivers).
    admin BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE namespaces (
    id BIGINT PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- NULL: no limit.
    ingest_bytes_per_second BIGINT,
    retention_days BIGINT NOT NULL,
    -- NULL: no quota.
    storage_quota_bytes BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id BIGINT PRIMARY KEY,
    namespace_id BIGINT NOT NULL REFERENCES namespaces (id),
    path TEXT NOT NULL,
    -- The storage tenant the project's spans are written to.
    tenant TEXT NOT NULL UNIQUE,
    -- 1 or 0.
    tracing_enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (namespace_id, path)
);

CREATE TABLE namespace_members (
    namespace_id BIGINT NOT NULL REFERENCES namespaces (id),
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role BIGINT NOT NULL,
    PRIMARY KEY (namespace_id, user_id)
);

CREATE TABLE project_members (
    project_id BIGINT NOT NULL REFERENCES projects (id),
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);

-- Personal tokens have user_id; project tokens have project_id and role.
CREATE TABLE tokens (
    id BIGINT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    project_id BIGINT REFERENCES projects (id),
    role BIGINT,
    -- Space-separated.
    scopes TEXT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    digest TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Per namespace and UTC day (days since the Unix epoch).
CREATE TABLE usage_days (
    namespace_id BIGINT NOT NULL REFERENCES namespaces (id),
    day BIGINT NOT NULL,
    ingested_bytes BIGINT NOT NULL,
    ingested_spans BIGINT NOT NULL,
    PRIMARY KEY (namespace_id, day)
);

CREATE TABLE refusal_days (
    namespace_id BIGINT NOT NULL REFERENCES namespaces (id),
    day BIGINT NOT NULL,
    reason TEXT NOT NULL,
    requests BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (namespace_id, day, reason)
);
