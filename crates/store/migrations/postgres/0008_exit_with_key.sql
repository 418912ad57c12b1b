-- A caller who presses `[callbacks] in_queue_digit` leaves the queue asking to be called back,
-- keeping their place: queue event EXITWITHKEY (as in Asterisk's queue_log; data: key|position).
ALTER TABLE queue_events DROP CONSTRAINT IF EXISTS queue_events_event_check;
ALTER TABLE queue_events ADD CONSTRAINT queue_events_event_check CHECK (event IN ('ENTERQUEUE', 'RINGNOANSWER', 'CONNECT', 'COMPLETECALLER', 'COMPLETEAGENT', 'ABANDON', 'EXITWITHTIMEOUT', 'EXITWITHKEY', 'TRANSFER'));
