-- The device registry (agent-protocol.md §10-11): named and revocable agent tokens, the token a
-- device was admitted with, and an index of hardware ids so admission finds matching hardware
-- without scanning every row's JSON.

-- Agent tokens can be made in the dashboard for devices installed without an image, so they get
-- a name; `last_used_at` shows whether a token is still in use before it is revoked.
ALTER TABLE agent_tokens ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_tokens ADD COLUMN last_used_at TEXT;
UPDATE agent_tokens SET name = 'Image of ' || original_config_id
    WHERE name = '' AND original_config_id IS NOT NULL;

-- The token a device was last admitted with: log ingestion over HTTP only accepts a device's
-- logs together with that token (upstream trusted any valid token for any claimed key).
ALTER TABLE devices ADD COLUMN agent_token_id TEXT REFERENCES agent_tokens (id) ON DELETE SET NULL;

-- One row per (key, value) of `hardware_devices.hardware_ids`, written together with it.
CREATE TABLE hardware_device_ids (
    key                TEXT NOT NULL,
    value              TEXT NOT NULL,
    hardware_device_id TEXT NOT NULL REFERENCES hardware_devices (id) ON DELETE CASCADE,
    PRIMARY KEY (key, value, hardware_device_id)
) WITHOUT ROWID;
CREATE INDEX hardware_device_ids_device ON hardware_device_ids (hardware_device_id);
INSERT OR IGNORE INTO hardware_device_ids (key, value, hardware_device_id)
    SELECT j.key, j.value, h.id FROM hardware_devices h, json_each(h.hardware_ids) j
    WHERE j.type = 'text';

-- The program filter of the logs view lists a device's distinct program names.
CREATE INDEX device_logs_device_program ON device_logs (device_id, program);
-- Fleet connectivity and availability read every device's connections in a time range.
CREATE INDEX agent_connections_connected_at ON agent_connections (connected_at);
