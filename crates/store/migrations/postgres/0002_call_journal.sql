-- Crash-safe call records: a call is journaled when it starts and at each phase change (a
-- row whose `journal` names the server that writes it); the final record replaces the
-- journal row, and a server closes its rows left open at its next start as `interrupted`.
ALTER TABLE calls DROP CONSTRAINT IF EXISTS calls_outcome_check;
ALTER TABLE calls ADD CONSTRAINT calls_outcome_check CHECK (outcome IN ('answered', 'abandoned', 'timeout', 'no_agent', 'rejected', 'transferred', 'failed', 'callback_requested', 'interrupted'));
ALTER TABLE calls ADD COLUMN journal TEXT;
CREATE INDEX calls_journal ON calls (journal) WHERE journal IS NOT NULL;
