//! Per-agent figures of a period: time in each state (from the `agent_sessions` state
//! timeline), calls answered and made, no-answers, quality scores, escalations, first login
//! and last logout.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Period, fetch_all};
use crate::db::{BindVals, Db, RowExt, Val};
use crate::model::Timestamp;

/// One agent's raw figures for a period. Durations are milliseconds inside the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentFigures {
    /// The agent.
    pub agent_id: String,
    /// Time logged in: every state except `logged_out` and `absent`.
    pub login_ms: i64,
    /// Time `available`.
    pub available_ms: i64,
    /// Time `on_call` (talking, holds included).
    pub talk_ms: i64,
    /// Time in `wrap_up`.
    pub wrap_up_ms: i64,
    /// Time on `break`.
    pub break_ms: i64,
    /// Time `not_ready` (set after repeated no-answers).
    pub not_ready_ms: i64,
    /// Inbound calls the agent answered (calls that started in the period).
    pub answered: i64,
    /// Offers the agent did not answer (ring timeout or a 486/603/480), `RINGNOANSWER`.
    pub no_answers: i64,
    /// Outbound calls the agent made (call-backs, campaigns, click-to-call).
    pub outbound: i64,
    /// Talk time of the answered inbound calls, from their records.
    pub answered_talk_ms: i64,
    /// Sum and number of the quality scores given to the agent's calls.
    pub quality_sum: i64,
    /// Number of scored calls.
    pub quality_count: i64,
    /// Escalations the agent raised.
    pub escalations: i64,
    /// First login (registration) in the period.
    pub first_login: Option<Timestamp>,
    /// Last logout (unregistration or a switch to `logged_out`) in the period.
    pub last_logout: Option<Timestamp>,
}

fn entry<'a>(map: &'a mut BTreeMap<String, AgentFigures>, agent: &str) -> &'a mut AgentFigures {
    map.entry(agent.to_owned()).or_insert_with(|| AgentFigures {
        agent_id: agent.to_owned(),
        ..AgentFigures::default()
    })
}

struct StateTimes {
    agent: String,
    figures: [i64; 6],
}

fn state_row<R: RowExt>(r: &R) -> Result<StateTimes, sqlx::Error> {
    Ok(StateTimes {
        agent: r.text("agent_id")?,
        figures: [
            r.int("login_ms")?,
            r.int("available_ms")?,
            r.int("talk_ms")?,
            r.int("wrap_up_ms")?,
            r.int("break_ms")?,
            r.int("not_ready_ms")?,
        ],
    })
}

struct CallCounts {
    agent: String,
    answered: i64,
    outbound: i64,
    answered_talk_ms: i64,
    quality_sum: i64,
    quality_count: i64,
}

fn call_row<R: RowExt>(r: &R) -> Result<CallCounts, sqlx::Error> {
    Ok(CallCounts {
        agent: r.text("agent_id")?,
        answered: r.int("answered")?,
        outbound: r.int("outbound")?,
        answered_talk_ms: r.int("answered_talk_ms")?,
        quality_sum: r.int("quality_sum")?,
        quality_count: r.int("quality_count")?,
    })
}

fn count_row<R: RowExt>(r: &R) -> Result<(String, i64), sqlx::Error> {
    Ok((r.text("agent_id")?, r.int("n")?))
}

type Shift = (String, Option<Timestamp>, Option<Timestamp>);

fn shift_row<R: RowExt>(r: &R) -> Result<Shift, sqlx::Error> {
    Ok((
        r.text("agent_id")?,
        r.opt_ts("first_login")?,
        r.opt_ts("last_logout")?,
    ))
}

impl Db {
    /// Every agent with any record in `period`, by id. `now` closes the interval of the
    /// state an agent is still in.
    pub(crate) async fn agent_figures(
        &self,
        period: Period,
        now: Timestamp,
    ) -> Result<Vec<AgentFigures>, sqlx::Error> {
        let mut by_agent = BTreeMap::new();
        let ts = [Val::Ts(Some(period.from)), Val::Ts(Some(period.to))];

        // The state timeline: each `state` row lasts until the agent's next one (or now),
        // clipped to the period; the row before the period gives the state at its start.
        let at = self.millis("at");
        let states = format!(
            "WITH picked AS ( \
               SELECT s.agent_id, s.state, s.at, s.seq FROM agent_sessions s \
               WHERE s.event = 'state' AND s.at < $2 AND (s.at >= $1 OR s.seq = ( \
                 SELECT p.seq FROM agent_sessions p \
                 WHERE p.agent_id = s.agent_id AND p.event = 'state' AND p.at < $1 \
                 ORDER BY p.at DESC, p.seq DESC LIMIT 1))), \
             spans AS ( \
               SELECT agent_id, state, {at} AS t0, \
                 LEAD({at}) OVER (PARTITION BY agent_id ORDER BY at, seq) AS t1 \
               FROM picked), \
             clipped AS ( \
               SELECT agent_id, state, \
                 (CASE WHEN COALESCE(t1, $5) < $4 THEN COALESCE(t1, $5) ELSE $4 END) \
                 - (CASE WHEN t0 > $3 THEN t0 ELSE $3 END) AS ms \
               FROM spans) \
             SELECT agent_id, \
               CAST(SUM(CASE WHEN state NOT IN ('logged_out', 'absent') THEN ms ELSE 0 END) AS BIGINT) AS login_ms, \
               CAST(SUM(CASE WHEN state = 'available' THEN ms ELSE 0 END) AS BIGINT) AS available_ms, \
               CAST(SUM(CASE WHEN state = 'on_call' THEN ms ELSE 0 END) AS BIGINT) AS talk_ms, \
               CAST(SUM(CASE WHEN state = 'wrap_up' THEN ms ELSE 0 END) AS BIGINT) AS wrap_up_ms, \
               CAST(SUM(CASE WHEN state = 'break' THEN ms ELSE 0 END) AS BIGINT) AS break_ms, \
               CAST(SUM(CASE WHEN state = 'not_ready' THEN ms ELSE 0 END) AS BIGINT) AS not_ready_ms \
             FROM clipped WHERE ms > 0 GROUP BY agent_id"
        );
        let vals = [
            Val::Ts(Some(period.from)),
            Val::Ts(Some(period.to)),
            Val::Int(period.start_ms()),
            Val::Int(period.end_ms()),
            Val::Int(now.timestamp_millis()),
        ];
        for s in fetch_all!(self, states, &vals, state_row)? {
            let f = entry(&mut by_agent, &s.agent);
            [
                f.login_ms,
                f.available_ms,
                f.talk_ms,
                f.wrap_up_ms,
                f.break_ms,
                f.not_ready_ms,
            ] = s.figures;
        }

        let calls = "SELECT agent_id, \
               CAST(SUM(CASE WHEN direction = 'inbound' AND answered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
               CAST(SUM(CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END) AS BIGINT) AS outbound, \
               CAST(COALESCE(SUM(CASE WHEN direction = 'inbound' AND answered_at IS NOT NULL THEN talk_ms ELSE 0 END), 0) AS BIGINT) AS answered_talk_ms, \
               CAST(COALESCE(SUM(quality_score), 0) AS BIGINT) AS quality_sum, \
               COUNT(quality_score) AS quality_count \
             FROM calls WHERE agent_id IS NOT NULL AND journal IS NULL AND started_at >= $1 AND started_at < $2 \
             GROUP BY agent_id"
            .to_owned();
        for c in fetch_all!(self, calls, &ts, call_row)? {
            let f = entry(&mut by_agent, &c.agent);
            f.answered = c.answered;
            f.outbound = c.outbound;
            f.answered_talk_ms = c.answered_talk_ms;
            f.quality_sum = c.quality_sum;
            f.quality_count = c.quality_count;
        }

        let no_answers = "SELECT agent_id, COUNT(*) AS n FROM queue_events \
             WHERE event = 'RINGNOANSWER' AND agent_id IS NOT NULL AND at >= $1 AND at < $2 \
             GROUP BY agent_id"
            .to_owned();
        for (agent, n) in fetch_all!(self, no_answers, &ts, count_row)? {
            entry(&mut by_agent, &agent).no_answers = n;
        }

        let escalations = "SELECT agent_id, COUNT(*) AS n FROM escalations \
             WHERE agent_id IS NOT NULL AND created_at >= $1 AND created_at < $2 \
             GROUP BY agent_id"
            .to_owned();
        for (agent, n) in fetch_all!(self, escalations, &ts, count_row)? {
            entry(&mut by_agent, &agent).escalations = n;
        }

        // A shift ends at a logout (unregistration) or a switch to `logged_out`.
        let shifts = "SELECT agent_id, \
               MIN(CASE WHEN event = 'login' THEN at END) AS first_login, \
               MAX(CASE WHEN event = 'logout' OR state = 'logged_out' THEN at END) AS last_logout \
             FROM agent_sessions \
             WHERE (event IN ('login', 'logout') OR state = 'logged_out') \
               AND at >= $1 AND at < $2 GROUP BY agent_id"
            .to_owned();
        for (agent, first, last) in fetch_all!(self, shifts, &ts, shift_row)? {
            let f = entry(&mut by_agent, &agent);
            f.first_login = first;
            f.last_logout = last;
        }
        Ok(by_agent.into_values().collect())
    }
}
