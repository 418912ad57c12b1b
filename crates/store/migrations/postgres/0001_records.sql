-- Switchboard records: call-detail records, queue events, agent sessions,
-- the client directory and call-back requests. Times are UTC (timestamptz).

CREATE TABLE calls (
    id            TEXT PRIMARY KEY,
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
    started_at    TIMESTAMPTZ NOT NULL,
    queued_at     TIMESTAMPTZ,
    answered_at   TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ NOT NULL,
    wait_ms       BIGINT NOT NULL CHECK (wait_ms >= 0),
    talk_ms       BIGINT NOT NULL CHECK (talk_ms >= 0),
    outcome       TEXT NOT NULL CHECK (outcome IN ('answered', 'abandoned', 'timeout', 'no_agent', 'rejected', 'transferred', 'failed')),
    hangup_side   TEXT NOT NULL CHECK (hangup_side IN ('caller', 'agent', 'system')),
    recording     TEXT,
    -- Write order, assigned by the database.
    seq           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX calls_started_at ON calls (started_at DESC);

CREATE TABLE queue_events (
    id       TEXT PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL,
    call_id  TEXT NOT NULL,
    queue    TEXT NOT NULL,
    agent_id TEXT,
    event    TEXT NOT NULL CHECK (event IN ('ENTERQUEUE', 'RINGNOANSWER', 'CONNECT', 'COMPLETECALLER', 'COMPLETEAGENT', 'ABANDON', 'EXITWITHTIMEOUT', 'TRANSFER')),
    data     TEXT,
    seq      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX queue_events_call ON queue_events (call_id, seq);
CREATE INDEX queue_events_at ON queue_events (at);

CREATE TABLE agent_sessions (
    id       TEXT PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL,
    agent_id TEXT NOT NULL,
    event    TEXT NOT NULL CHECK (event IN ('login', 'logout', 'state')),
    state    TEXT,
    reason   TEXT,
    seq      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX agent_sessions_agent ON agent_sessions (agent_id, at);

CREATE TABLE clients (
    number       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    type         TEXT NOT NULL CHECK (type IN ('key', 'regional', 'retail', 'marketer', 'own_outlet', 'new', 'wholesale')),
    manager      TEXT,
    region       TEXT,
    overdue_debt NUMERIC(16, 2) NOT NULL DEFAULT 0 CHECK (overdue_debt >= 0),
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Bumped in the same transaction as every directory change, so caches know when to reload.
CREATE TABLE directory_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO directory_version (id, version) VALUES (1, 0);

CREATE TABLE callbacks (
    id         TEXT PRIMARY KEY,
    number     TEXT NOT NULL,
    at         TIMESTAMPTZ,
    queue      TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'dialing', 'done', 'failed', 'cancelled'))
);
CREATE INDEX callbacks_due ON callbacks (status, at);
