-- Thymis controller database, schema version 1.
--
-- Conventions (relied on by thymis::store):
-- * ids are UUIDs as lowercase hyphenated text;
-- * timestamps are RFC 3339 UTC text with exactly six fractional digits and a `Z`
--   (e.g. 2024-05-01T12:00:00.000000Z), so that text comparison orders them correctly;
-- * JSON columns hold serialised JSON text;
-- * booleans are INTEGER 0/1;
-- * tokens are never stored, only their SHA-256 hex digest (`token_hash`).
--
-- Tables without store methods yet (devices onwards) are laid out now so that later work
-- adds methods, not migrations that rebuild tables.

-- Web sessions (http-api.md §4.2). The cookie secret is stored hashed.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    token_hash  TEXT NOT NULL,
    username    TEXT NOT NULL,
    given_name  TEXT,
    family_name TEXT,
    email       TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
-- Expired-session cleanup scans by expiry.
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Bearer tokens for automation, looked up by hash on every request.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

-- Secrets, age-encrypted at rest (http-api.md §7; state-and-modules.md §7).
-- `delete_at` set = soft-deleted.
CREATE TABLE secrets (
    id               TEXT PRIMARY KEY NOT NULL,
    display_name     TEXT NOT NULL,
    type             TEXT NOT NULL,
    value_enc        BLOB NOT NULL,
    value_size       INTEGER NOT NULL,
    filename         TEXT,
    include_in_image INTEGER NOT NULL DEFAULT 0,
    processing_type  TEXT NOT NULL DEFAULT 'none',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    delete_at        TEXT
);

-- Who did what, newest last; AUTOINCREMENT so ids are never reused and order is stable.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Controller settings (http-api.md §8.3) as one JSON value per key, so new settings need no migration.
CREATE TABLE controller_settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- Devices, one per SSH host key (upstream `deployment_info`, agent-protocol.md §10).
CREATE TABLE devices (
    id                      TEXT PRIMARY KEY NOT NULL,
    ssh_public_key          TEXT NOT NULL UNIQUE,
    name                    TEXT,
    notes                   TEXT,
    location                TEXT,
    deployed_config_id      TEXT,
    deployed_config_commit  TEXT,
    pending_config_id       TEXT,
    reachable_deployed_host TEXT,
    network_interfaces      TEXT,
    ram_bytes               INTEGER,
    archived                INTEGER NOT NULL DEFAULT 0,
    first_seen_at           TEXT,
    last_seen_at            TEXT,
    created_at              TEXT NOT NULL
);
-- Deploy targets are selected by config id.
CREATE INDEX devices_deployed_config_id ON devices (deployed_config_id);

-- Hardware identities (JSON map) seen by agents; re-pointed to a device on admission.
CREATE TABLE hardware_devices (
    id           TEXT PRIMARY KEY NOT NULL,
    device_id    TEXT REFERENCES devices (id) ON DELETE SET NULL,
    hardware_ids TEXT NOT NULL,
    last_seen_at TEXT
);
CREATE INDEX hardware_devices_device_id ON hardware_devices (device_id);

-- Agent tokens baked into images; one per image build, shared by devices flashed from it.
CREATE TABLE agent_tokens (
    id                     TEXT PRIMARY KEY NOT NULL,
    token_hash             TEXT NOT NULL UNIQUE,
    original_config_id     TEXT,
    original_config_commit TEXT,
    created_at             TEXT NOT NULL,
    revoked_at             TEXT,
    device_id              TEXT REFERENCES devices (id) ON DELETE SET NULL
);
CREATE INDEX agent_tokens_device_id ON agent_tokens (device_id);

-- Tasks (http-api.md §6). `parent_id` links children to a composite parent.
CREATE TABLE tasks (
    id              TEXT PRIMARY KEY NOT NULL,
    parent_id       TEXT REFERENCES tasks (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    state           TEXT NOT NULL,
    submitted_by    TEXT,
    submission_data TEXT NOT NULL,
    submitted_at    TEXT NOT NULL,
    started_at      TEXT,
    ended_at        TEXT,
    exception       TEXT,
    progress        TEXT
);
CREATE INDEX tasks_parent_id ON tasks (parent_id);
-- Restart recovery looks up running/pending tasks; lists page by submission time.
CREATE INDEX tasks_state ON tasks (state);
CREATE INDEX tasks_submitted_at ON tasks (submitted_at);

-- Task output chunks in order; `stream` is e.g. 'stdout', 'stderr', 'log'.
CREATE TABLE task_output (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    stream  TEXT NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Tunnel tokens for access clients, bound to one device (agent-protocol.md §9.4).
CREATE TABLE access_client_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    task_id    TEXT REFERENCES tasks (id) ON DELETE SET NULL,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX access_client_tokens_device_id ON access_client_tokens (device_id);

-- Agent connection history; `disconnected_at` NULL = still open.
CREATE TABLE agent_connections (
    id              TEXT PRIMARY KEY NOT NULL,
    device_id       TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    connected_at    TEXT NOT NULL,
    disconnected_at TEXT,
    ip              TEXT
);
CREATE INDEX agent_connections_device_connected ON agent_connections (device_id, connected_at);
-- Startup/shutdown closes every open connection row.
CREATE INDEX agent_connections_open ON agent_connections (device_id) WHERE disconnected_at IS NULL;

-- Device metrics. `bucket` is the aggregation width in seconds (0 = raw sample), so raw
-- samples and downsampled rows share the table; one row per (device, bucket, time).
-- "values" is an SQL keyword and must be quoted in queries.
CREATE TABLE device_metrics (
    device_id TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    at        TEXT NOT NULL,
    bucket    INTEGER NOT NULL DEFAULT 0,
    "values"  TEXT NOT NULL,
    PRIMARY KEY (device_id, bucket, at)
);
-- Retention cleanup deletes by time across devices.
CREATE INDEX device_metrics_at ON device_metrics (at);

-- Device logs shipped by agents (agent-protocol.md §8). `id` is the sender's uuid (upsert key);
-- the host key is always kept so logs of a not-yet-known device can be attached later.
CREATE TABLE device_logs (
    id             TEXT PRIMARY KEY NOT NULL,
    device_id      TEXT REFERENCES devices (id) ON DELETE CASCADE,
    ssh_public_key TEXT,
    hostname       TEXT,
    at             TEXT NOT NULL,
    severity       INTEGER,
    facility       INTEGER,
    program        TEXT,
    syslogtag      TEXT,
    message        TEXT NOT NULL
);
CREATE INDEX device_logs_device_at ON device_logs (device_id, at);
CREATE INDEX device_logs_ssh_public_key_at ON device_logs (ssh_public_key, at);
CREATE INDEX device_logs_at ON device_logs (at);
