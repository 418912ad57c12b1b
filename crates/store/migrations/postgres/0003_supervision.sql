-- Supervision: quality evaluations of calls, agent session tokens and escalations.

-- A supervisor's evaluation of an answered call (PUT /api/v1/calls/{id}/quality).
ALTER TABLE calls ADD COLUMN quality_score INTEGER CHECK (quality_score BETWEEN 0 AND 100);
ALTER TABLE calls ADD COLUMN quality_reviewer TEXT;
ALTER TABLE calls ADD COLUMN quality_note TEXT;
ALTER TABLE calls ADD COLUMN quality_at TIMESTAMPTZ;
CREATE INDEX calls_agent_started ON calls (agent_id, started_at);

-- Bearer tokens scoped to one agent (POST /api/v1/sessions). Only the token's SHA-256 is kept.
CREATE TABLE agent_tokens (
    token_hash TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_tokens_expiry ON agent_tokens (expires_at);

-- An agent who cannot continue a call asks a supervisor (PRODUCT §2 rule 11).
CREATE TABLE escalations (
    id         TEXT PRIMARY KEY,
    call_id    TEXT NOT NULL,
    agent_id   TEXT,
    note       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    acked_at   TIMESTAMPTZ,
    acked_by   TEXT
);
CREATE INDEX escalations_created ON escalations (created_at);
