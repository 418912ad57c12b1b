-- Call-backs are dialed: attempts, the next due time, the last result and the state
-- `expired`; each outbound call record names the call-back it was made for.
-- Times are ISO-8601 UTC text, as in 0001. SQLite cannot change a CHECK, so the table is rebuilt.

CREATE TABLE callbacks_new (
    id          TEXT PRIMARY KEY,
    number      TEXT NOT NULL,
    at          TEXT,
    queue       TEXT,
    created_at  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'dialing', 'done', 'failed', 'cancelled', 'expired')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at     TEXT,
    last_result TEXT,
    updated_at  TEXT,
    node        TEXT
);
INSERT INTO callbacks_new (id, number, at, queue, created_at, status, attempts, next_at)
    SELECT id, number, at, queue, created_at, status, 0, at FROM callbacks;
DROP TABLE callbacks;
ALTER TABLE callbacks_new RENAME TO callbacks;
CREATE INDEX callbacks_due ON callbacks (status, next_at);

ALTER TABLE calls ADD COLUMN callback_id TEXT;
CREATE INDEX calls_callback ON calls (callback_id);

-- The do-not-call list: numbers call-backs, campaigns and click-to-call never dial.
CREATE TABLE dnc (
    number   TEXT PRIMARY KEY,
    reason   TEXT,
    added_at TEXT NOT NULL
);

-- The agent's disposition of a call (POST /api/v1/calls/{id}/disposition).
ALTER TABLE calls ADD COLUMN disposition TEXT;
ALTER TABLE calls ADD COLUMN disposition_note TEXT;
ALTER TABLE calls ADD COLUMN disposition_at TEXT;
