-- Crash-safe call records: a call is journaled when it starts and at each phase change (a
-- row whose `journal` names the server that writes it); the final record replaces the
-- journal row, and a server closes its rows left open at its next start as `interrupted`.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with its rows.
CREATE TABLE calls_new (
    id            TEXT NOT NULL UNIQUE,
    sip_call_id   TEXT NOT NULL,
    direction     TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    trunk         TEXT,
    caller        TEXT NOT NULL,
    dialed        TEXT NOT NULL,
    client_number TEXT,
    client_class  TEXT,
    purpose       TEXT,
    queue         TEXT,
    agent_id      TEXT,
    route         TEXT NOT NULL DEFAULT '',
    started_at    TEXT NOT NULL,
    queued_at     TEXT,
    answered_at   TEXT,
    ended_at      TEXT NOT NULL,
    wait_ms       INTEGER NOT NULL CHECK (wait_ms >= 0),
    talk_ms       INTEGER NOT NULL CHECK (talk_ms >= 0),
    outcome       TEXT NOT NULL CHECK (outcome IN ('answered', 'abandoned', 'timeout', 'no_agent', 'rejected', 'transferred', 'failed', 'callback_requested', 'interrupted')),
    hangup_side   TEXT NOT NULL CHECK (hangup_side IN ('caller', 'agent', 'system')),
    recording     TEXT,
    -- Write order, assigned by the database (an alias of the rowid).
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Set while the call is in progress: the server that journals it.
    journal       TEXT
);
INSERT INTO calls_new (id, sip_call_id, direction, trunk, caller, dialed, client_number, client_class, purpose, queue, agent_id, route, started_at, queued_at, answered_at, ended_at, wait_ms, talk_ms, outcome, hangup_side, recording, seq)
    SELECT id, sip_call_id, direction, trunk, caller, dialed, client_number, client_class, purpose, queue, agent_id, route, started_at, queued_at, answered_at, ended_at, wait_ms, talk_ms, outcome, hangup_side, recording, seq FROM calls;
DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;
CREATE INDEX calls_started_at ON calls (started_at DESC);
CREATE INDEX calls_journal ON calls (journal) WHERE journal IS NOT NULL;
