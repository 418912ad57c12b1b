//! Crash-safe call records (PRODUCT §4: "a call is journaled when it starts"). Call control
//! sends a journal row of each call when it starts and when it is answered; the row carries
//! this server's name and reads as `interrupted`, ended at the time it was written, until the
//! call's final record replaces it. At the next start the store closes the rows this name left
//! open (a `kill -9` with calls up) — see `switchboard_store::StoreOptions::journal_node`.
//! A clean stop logs out the agents still logged in, so their sessions end when the server
//! did; what a crash leaves open is closed at the next start by the store.

use switchboard_engine::{AgentStateKind, Engine};
use switchboard_store::{
    AgentEventKind, AgentSessionEvent, CallRecord, HangupSide, Outcome, RecordSink,
};
use tracing::{info, warn};

use crate::config::Config;

/// The name this server journals its calls under: the host and the first SIP listener, so
/// that nodes sharing one database (and several servers on one host) close only their own
/// rows.
pub fn node_name(config: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".to_owned());
    let listen = config.sip.listen.first().map_or("", String::as_str);
    format!("{host}/{listen}")
}

/// The journal row of a call in progress, made from what its record would say now.
pub fn journal_row(mut record: CallRecord, node: &str) -> CallRecord {
    record.outcome = Outcome::Interrupted;
    record.hangup_side = HangupSide::System;
    record.journal = Some(node.to_owned());
    record
}

/// At a clean stop, once the last call ended and the API is closed: a change to `logged_out`
/// and a `logout` (reason `server stopped`) for every agent the engine does not hold as logged
/// out, dated now.
pub fn log_out_at_stop(engine: &Engine, records: &RecordSink) {
    let at = switchboard_store::now_utc();
    let mut n = 0usize;
    for agent in engine.agents() {
        if agent.state.kind() == AgentStateKind::LoggedOut {
            continue;
        }
        // The state change ends the agent's state in the reports' timeline; the logout ends
        // the shift (an unregistration writes both).
        for event in [AgentEventKind::State, AgentEventKind::Logout] {
            let record = AgentSessionEvent {
                id: switchboard_store::new_record_id(),
                at,
                agent_id: agent.id.clone(),
                event,
                state: Some("logged_out".to_owned()),
                reason: Some("server stopped".to_owned()),
            };
            if let Err(e) = records.send(record) {
                warn!(agent = %agent.id, "agent session record not accepted: {e}");
            }
        }
        n += 1;
    }
    if n > 0 {
        info!(
            agents = n,
            "agents still logged in are logged out at the stop"
        );
    }
}
