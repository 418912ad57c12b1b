-- Agent sessions say which server wrote them (the same name as `calls.journal`), so that a
-- server killed with agents logged in closes their sessions at its next start, and only
-- its own: several nodes may share one database.
ALTER TABLE agent_sessions ADD COLUMN node TEXT;
CREATE INDEX agent_sessions_node ON agent_sessions (node, agent_id, seq) WHERE node IS NOT NULL;
