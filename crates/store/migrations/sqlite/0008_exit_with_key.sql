-- A caller who presses `[callbacks] in_queue_digit` leaves the queue asking to be called back,
-- keeping their place: queue event EXITWITHKEY (as in Asterisk's queue_log; data: key|position).
-- SQLite cannot change a CHECK, so the table is rebuilt (rows and their order kept).

CREATE TABLE queue_events_new (
    id       TEXT NOT NULL UNIQUE,
    at       TEXT NOT NULL,
    call_id  TEXT NOT NULL,
    queue    TEXT NOT NULL,
    agent_id TEXT,
    event    TEXT NOT NULL CHECK (event IN ('ENTERQUEUE', 'RINGNOANSWER', 'CONNECT', 'COMPLETECALLER', 'COMPLETEAGENT', 'ABANDON', 'EXITWITHTIMEOUT', 'EXITWITHKEY', 'TRANSFER')),
    data     TEXT,
    seq      INTEGER PRIMARY KEY AUTOINCREMENT
);
INSERT INTO queue_events_new (id, at, call_id, queue, agent_id, event, data, seq)
    SELECT id, at, call_id, queue, agent_id, event, data, seq FROM queue_events;
DROP TABLE queue_events;
ALTER TABLE queue_events_new RENAME TO queue_events;
CREATE INDEX queue_events_call ON queue_events (call_id, seq);
CREATE INDEX queue_events_at ON queue_events (at);
