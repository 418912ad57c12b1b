-- Campaigns: proactive calling lists (dormant clients, client types, explicit numbers) worked
-- through by the progressive dialer; each outbound call record names its campaign.

CREATE TABLE campaigns (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    queue         TEXT NOT NULL,
    -- The request's target, as JSON ({"dormant_days", "types", "numbers"}).
    target        TEXT NOT NULL,
    window_open   TEXT,
    window_close  TEXT,
    max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),
    retry_after_s INTEGER NOT NULL CHECK (retry_after_s >= 1),
    status        TEXT NOT NULL CHECK (status IN ('paused', 'running', 'finished')),
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE campaign_contacts (
    id          TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns (id),
    number      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'dialing', 'done', 'failed', 'dnc')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at     TIMESTAMPTZ,
    last_result TEXT,
    node        TEXT,
    updated_at  TIMESTAMPTZ,
    UNIQUE (campaign_id, number)
);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, status, next_at);

ALTER TABLE calls ADD COLUMN campaign TEXT;
CREATE INDEX calls_campaign ON calls (campaign);
-- Dormant clients: the last answered call of a number.
CREATE INDEX calls_client_answered ON calls (client_number, answered_at);
