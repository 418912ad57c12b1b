//! Closing what a server left open when it stopped without ending it: a `kill -9`, a power
//! cut, or a stop with agents still logged in (PRODUCT §4: "a call is never lost from these
//! tables, even when … the server is killed"). At the server's next start, once its spool is
//! replayed, the store closes in one transaction, for that server only:
//! - its call journal rows: outcome `interrupted`, hang-up side `system`, ended at the last
//!   time the journal knew;
//! - the queue entries of those calls still open: a caller still waiting gets `ABANDON`, one
//!   talking to an agent `COMPLETECALLER` (what a clean shutdown writes for them), with the
//!   wait or talk time in `data` followed by `|interrupted`, dated the call's last time known;
//! - the session of every agent whose last row from that server is neither a `logout` nor a
//!   change to `logged_out`: a state change to `logged_out` and a `logout`, both with reason
//!   `interrupted`, dated the server's last time known (its latest row).
//!
//! A closing row's id is derived from the row it closes, so a close cut short and run again
//! never writes one twice.

use std::collections::HashMap;

use super::*;
use crate::model::{AgentEventKind, QueueEventKind};

/// What one close found open and closed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed {
    pub(crate) calls: u64,
    pub(crate) queue_entries: u64,
    pub(crate) agent_sessions: u64,
}

/// A queue event of a journaled call, as the close reads it.
#[derive(Debug, Clone)]
struct EventRow {
    id: String,
    at: Timestamp,
    call_id: String,
    queue: String,
    agent_id: Option<String>,
    event: QueueEventKind,
}

/// The last agent session row a server wrote for one agent.
#[derive(Debug, Clone)]
struct SessionLast {
    id: String,
    at: Timestamp,
    agent_id: String,
    event: AgentEventKind,
    state: Option<String>,
}

impl SessionLast {
    /// Whether the agent was still logged in: neither logged out (unregistered) nor set to
    /// `logged_out` (the engine's state change may follow the logout row).
    fn open(&self) -> bool {
        self.event != AgentEventKind::Logout && self.state.as_deref() != Some("logged_out")
    }
}

/// A call's queue entry still open after its last event.
struct Open<'a> {
    /// When it entered the queue (waiting) or was connected (talking).
    since: Timestamp,
    connect: Option<&'a EventRow>,
    queue: &'a str,
}

/// The events that close the queue entries left open by `events` (in write order); each
/// call is dated the later of its journal's last time and its last event.
fn closing_events(
    events: &[EventRow],
    journal_last: &HashMap<String, Timestamp>,
) -> Vec<QueueEvent> {
    let mut open: HashMap<&str, Option<Open<'_>>> = HashMap::new();
    let mut last: HashMap<&str, &EventRow> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for e in events {
        let call = e.call_id.as_str();
        if last.insert(call, e).is_none() {
            order.push(call);
        }
        let state = open.entry(call).or_insert(None);
        match e.event {
            QueueEventKind::EnterQueue => {
                *state = Some(Open {
                    since: e.at,
                    connect: None,
                    queue: &e.queue,
                });
            }
            QueueEventKind::Connect => {
                *state = Some(Open {
                    since: e.at,
                    connect: Some(e),
                    queue: &e.queue,
                });
            }
            QueueEventKind::RingNoAnswer => {}
            QueueEventKind::CompleteCaller
            | QueueEventKind::CompleteAgent
            | QueueEventKind::Abandon
            | QueueEventKind::ExitWithTimeout
            | QueueEventKind::ExitWithKey
            | QueueEventKind::Transfer => *state = None,
        }
    }
    let mut out = Vec::new();
    for call in order {
        let (Some(Some(o)), Some(last)) = (open.get(call), last.get(call)) else {
            continue;
        };
        let at = journal_last.get(call).map_or(last.at, |&j| j.max(last.at));
        let ms = (at - o.since).num_milliseconds().max(0);
        let (event, agent_id) = match o.connect {
            Some(c) => (QueueEventKind::CompleteCaller, c.agent_id.clone()),
            None => (QueueEventKind::Abandon, None),
        };
        out.push(QueueEvent {
            id: format!("{}-closed", last.id),
            at,
            call_id: call.to_owned(),
            queue: o.queue.to_owned(),
            agent_id,
            event,
            data: Some(format!("{ms}|interrupted")),
        });
    }
    out
}

/// The rows that close the sessions left open, dated `at`: for each agent the state change
/// to `logged_out` (the reports' state timeline ends there) and the `logout` that ends the
/// shift, as an unregistration writes them.
fn closing_logouts(last: &[SessionLast], at: Timestamp) -> Vec<AgentSessionEvent> {
    let row = |s: &SessionLast, id: String, event| AgentSessionEvent {
        id,
        at,
        agent_id: s.agent_id.clone(),
        event,
        state: Some("logged_out".to_owned()),
        reason: Some("interrupted".to_owned()),
    };
    last.iter()
        .filter(|s| s.open())
        .flat_map(|s| {
            [
                row(s, format!("{}-closed-state", s.id), AgentEventKind::State),
                row(s, format!("{}-closed", s.id), AgentEventKind::Logout),
            ]
        })
        .collect()
}

const JOURNAL_CALLS: &str = "SELECT id, ended_at FROM calls WHERE journal = $1 AND started_at < $2";
const JOURNAL_EVENTS: &str = "SELECT q.id, q.at, q.call_id, q.queue, q.agent_id, q.event \
     FROM queue_events q JOIN calls c ON c.id = q.call_id \
     WHERE c.journal = $1 AND c.started_at < $2 ORDER BY q.seq";
const LAST_SESSIONS: &str = "SELECT s.id, s.at, s.agent_id, s.event, s.state FROM agent_sessions s \
     WHERE s.node = $1 AND s.at < $2 AND s.seq = (SELECT MAX(t.seq) FROM agent_sessions t \
     WHERE t.node = $3 AND t.agent_id = s.agent_id AND t.at < $4)";
const CLOSE_JOURNAL: &str = "UPDATE calls SET journal = NULL, outcome = 'interrupted', \
     hangup_side = 'system' WHERE journal = $1 AND started_at < $2";

impl Db {
    /// Closes, in one transaction, what `node` left open before `before` (when this store
    /// was opened): its journaled calls, their open queue entries and its agents' sessions.
    pub(crate) async fn close_left_open(
        &self,
        node: &str,
        before: Timestamp,
    ) -> Result<Closed, sqlx::Error> {
        let journal = [Val::Text(Some(node)), Val::Ts(Some(before))];
        let sessions = [
            Val::Text(Some(node)),
            Val::Ts(Some(before)),
            Val::Text(Some(node)),
            Val::Ts(Some(before)),
        ];
        let shape = self.insert_shape();
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let calls = sqlx::query(JOURNAL_CALLS)
                .bind_vals(&journal)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.text("id")?, r.ts("ended_at")?)))
                .collect::<Result<HashMap<_, _>, sqlx::Error>>()?;
            let events = sqlx::query(JOURNAL_EVENTS)
                .bind_vals(&journal)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| {
                    Ok(EventRow {
                        id: r.text("id")?,
                        at: r.ts("at")?,
                        call_id: r.text("call_id")?,
                        queue: r.text("queue")?,
                        agent_id: r.opt_text("agent_id")?,
                        event: r.parsed("event")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let last = sqlx::query(LAST_SESSIONS)
                .bind_vals(&sessions)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| {
                    Ok(SessionLast {
                        id: r.text("id")?,
                        at: r.ts("at")?,
                        agent_id: r.text("agent_id")?,
                        event: r.parsed("event")?,
                        state: r.opt_text("state")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let queue_close = closing_events(&events, &calls);
            // The server's last time known: its latest row in any of the three tables.
            let node_last = calls
                .values()
                .copied()
                .chain(events.iter().map(|e| e.at))
                .chain(last.iter().map(|s| s.at))
                .max();
            let logouts = node_last.map_or_else(Vec::new, |at| closing_logouts(&last, at));
            insert_rows!(tx, shape, queue_close.as_slice(), "queue_events", QUEUE_EVENT_COLS, queue_event_vals);
            let stamped: Vec<SessionRow<'_>> = logouts.iter().map(|l| (l, Some(node))).collect();
            insert_rows!(tx, shape, stamped.as_slice(), "agent_sessions", AGENT_SESSION_COLS, agent_session_vals);
            let done = sqlx::query(CLOSE_JOURNAL).bind_vals(&journal).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Closed {
                calls: done.rows_affected(),
                queue_entries: queue_close.len() as u64,
                agent_sessions: (logouts.len() / 2) as u64,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn ev(id: &str, s: i64, call: &str, event: QueueEventKind, agent: Option<&str>) -> EventRow {
        EventRow {
            id: id.to_owned(),
            at: t(s),
            call_id: call.to_owned(),
            queue: "orders".to_owned(),
            agent_id: agent.map(str::to_owned),
            event,
        }
    }

    #[test]
    fn open_entries_are_closed_as_a_clean_shutdown_would() {
        use QueueEventKind::*;
        let events = [
            ev("1", 0, "waiting", EnterQueue, None),
            ev("2", 1, "talking", EnterQueue, None),
            ev("3", 2, "waiting", RingNoAnswer, Some("ana")),
            ev("4", 4, "talking", Connect, Some("ivan")),
            ev("5", 5, "done", EnterQueue, None),
            ev("6", 6, "done", Abandon, None),
        ];
        let journal = HashMap::from([
            ("waiting".to_owned(), t(10)),
            ("talking".to_owned(), t(3)),
            ("done".to_owned(), t(6)),
        ]);
        let out = closing_events(&events, &journal);
        assert_eq!(out.len(), 2, "{out:?}");
        let (w, k) = (&out[0], &out[1]);
        assert_eq!(
            (w.id.as_str(), w.event, w.at, w.agent_id.as_deref()),
            ("3-closed", Abandon, t(10), None)
        );
        assert_eq!(w.data.as_deref(), Some("10000|interrupted"));
        // The journal's last time (3 s) is older than the CONNECT (4 s): the event wins.
        assert_eq!(
            (k.id.as_str(), k.event, k.at, k.agent_id.as_deref()),
            ("4-closed", CompleteCaller, t(4), Some("ivan"))
        );
        assert_eq!(k.data.as_deref(), Some("0|interrupted"));
    }

    #[test]
    fn only_sessions_not_logged_out_are_closed() {
        let last = [
            SessionLast {
                id: "a".into(),
                at: t(1),
                agent_id: "ana".into(),
                event: AgentEventKind::Login,
                state: None,
            },
            SessionLast {
                id: "b".into(),
                at: t(2),
                agent_id: "ivan".into(),
                event: AgentEventKind::Logout,
                state: None,
            },
            SessionLast {
                id: "d".into(),
                at: t(4),
                agent_id: "olga".into(),
                event: AgentEventKind::State,
                state: Some("logged_out".into()),
            },
            SessionLast {
                id: "c".into(),
                at: t(3),
                agent_id: "marko".into(),
                event: AgentEventKind::State,
                state: Some("on_call".into()),
            },
        ];
        let out = closing_logouts(&last, t(9));
        let who: Vec<_> = out
            .iter()
            .map(|l| (l.agent_id.as_str(), l.id.as_str(), l.event))
            .collect();
        assert_eq!(
            who,
            [
                ("ana", "a-closed-state", AgentEventKind::State),
                ("ana", "a-closed", AgentEventKind::Logout),
                ("marko", "c-closed-state", AgentEventKind::State),
                ("marko", "c-closed", AgentEventKind::Logout),
            ]
        );
        assert!(
            out.iter()
                .all(|l| l.at == t(9) && l.state.as_deref() == Some("logged_out"))
        );
    }
}
