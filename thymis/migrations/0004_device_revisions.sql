-- Device revisions: a number that changes whenever anything a device list shows about a
-- device changes, except its last-seen times (touched by every keep-alive). Lists cache each
-- device's JSON by (id, revision) and only re-read devices whose revision moved.
--
-- Revisions come from one counter for all devices, so a deleted and re-created id never
-- meets its old revision. The triggers below are the only writers: every write path, present
-- or future, bumps the revision without having to remember to.

CREATE TABLE device_revision_counter (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    value    INTEGER NOT NULL
);
INSERT INTO device_revision_counter (only_row, value) VALUES (1, 0);

ALTER TABLE devices ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

-- Existing devices start with distinct revisions too.
UPDATE devices SET revision = rowid;
UPDATE device_revision_counter SET value = (SELECT coalesce(max(revision), 0) FROM devices);

CREATE TRIGGER devices_revision_insert AFTER INSERT ON devices
BEGIN
    UPDATE device_revision_counter SET value = value + 1;
    UPDATE devices SET revision = (SELECT value FROM device_revision_counter) WHERE id = NEW.id;
END;

-- Keep-alives rewrite `archived = 0` and `last_seen_at`; only a real change of a shown column
-- counts (`IS NOT` treats NULLs as values).
CREATE TRIGGER devices_revision_update AFTER UPDATE ON devices
WHEN OLD.id IS NOT NEW.id
    OR OLD.ssh_public_key IS NOT NEW.ssh_public_key
    OR OLD.name IS NOT NEW.name
    OR OLD.notes IS NOT NEW.notes
    OR OLD.location IS NOT NEW.location
    OR OLD.deployed_config_id IS NOT NEW.deployed_config_id
    OR OLD.deployed_config_commit IS NOT NEW.deployed_config_commit
    OR OLD.pending_config_id IS NOT NEW.pending_config_id
    OR OLD.reachable_deployed_host IS NOT NEW.reachable_deployed_host
    OR OLD.network_interfaces IS NOT NEW.network_interfaces
    OR OLD.ram_bytes IS NOT NEW.ram_bytes
    OR OLD.archived IS NOT NEW.archived
    OR OLD.first_seen_at IS NOT NEW.first_seen_at
BEGIN
    UPDATE device_revision_counter SET value = value + 1;
    UPDATE devices SET revision = (SELECT value FROM device_revision_counter) WHERE id = NEW.id;
END;

-- A device's list entry shows its hardware (without its last-seen time): linking, unlinking
-- and editing hardware changes the devices on both sides.
CREATE TRIGGER hardware_revision_insert AFTER INSERT ON hardware_devices
WHEN NEW.device_id IS NOT NULL
BEGIN
    UPDATE device_revision_counter SET value = value + 1;
    UPDATE devices SET revision = (SELECT value FROM device_revision_counter)
        WHERE id = NEW.device_id;
END;

CREATE TRIGGER hardware_revision_update AFTER UPDATE ON hardware_devices
WHEN OLD.id IS NOT NEW.id
    OR OLD.device_id IS NOT NEW.device_id
    OR OLD.hardware_ids IS NOT NEW.hardware_ids
BEGIN
    UPDATE device_revision_counter SET value = value + 1;
    UPDATE devices SET revision = (SELECT value FROM device_revision_counter)
        WHERE id IN (OLD.device_id, NEW.device_id);
END;

CREATE TRIGGER hardware_revision_delete AFTER DELETE ON hardware_devices
WHEN OLD.device_id IS NOT NULL
BEGIN
    UPDATE device_revision_counter SET value = value + 1;
    UPDATE devices SET revision = (SELECT value FROM device_revision_counter)
        WHERE id = OLD.device_id;
END;
