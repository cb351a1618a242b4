-- Tasks keep their output bounded: how many bytes are stored and how many were dropped from
-- the front to stay under the limit.
ALTER TABLE tasks ADD COLUMN output_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN output_dropped_bytes INTEGER NOT NULL DEFAULT 0;

-- Output chunks belong to one process of their task.
ALTER TABLE task_output ADD COLUMN process_index INTEGER NOT NULL DEFAULT 0;

-- The commands a task ran (http-api.md §6.1 `task_processes`), with their Nix progress and
-- errors. Environment values are never stored: they may hold access tokens.
CREATE TABLE task_processes (
    task_id       TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    process_index INTEGER NOT NULL,
    program       TEXT NOT NULL,
    args          TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    exit_code     INTEGER,
    progress      TEXT,
    errors        TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (task_id, process_index)
);
