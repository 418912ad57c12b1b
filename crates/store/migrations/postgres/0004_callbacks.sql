-- Call-backs are dialed: attempts, the next due time, the last result and the state
-- `expired`; each outbound call record names the call-back it was made for.

ALTER TABLE callbacks DROP CONSTRAINT IF EXISTS callbacks_status_check;
ALTER TABLE callbacks ADD CONSTRAINT callbacks_status_check
    CHECK (status IN ('pending', 'dialing', 'done', 'failed', 'cancelled', 'expired'));
ALTER TABLE callbacks ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0);
ALTER TABLE callbacks ADD COLUMN next_at TIMESTAMPTZ;
ALTER TABLE callbacks ADD COLUMN last_result TEXT;
ALTER TABLE callbacks ADD COLUMN updated_at TIMESTAMPTZ;
ALTER TABLE callbacks ADD COLUMN node TEXT;
UPDATE callbacks SET next_at = at;
DROP INDEX IF EXISTS callbacks_due;
CREATE INDEX callbacks_due ON callbacks (status, next_at);

ALTER TABLE calls ADD COLUMN callback_id TEXT;
CREATE INDEX calls_callback ON calls (callback_id);

-- The do-not-call list: numbers call-backs, campaigns and click-to-call never dial.
CREATE TABLE dnc (
    number   TEXT PRIMARY KEY,
    reason   TEXT,
    added_at TIMESTAMPTZ NOT NULL
);

-- The agent's disposition of a call (POST /api/v1/calls/{id}/disposition).
ALTER TABLE calls ADD COLUMN disposition TEXT;
ALTER TABLE calls ADD COLUMN disposition_note TEXT;
ALTER TABLE calls ADD COLUMN disposition_at TIMESTAMPTZ;
