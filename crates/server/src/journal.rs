//! Crash-safe call records (PRODUCT §4: "a call is journaled when it starts"). Call control
//! sends a journal row of each call when it starts and at each phase change; the row carries
//! this server's name and reads as `interrupted`, ended at the time it was written, until the
//! call's final record replaces it. At the next start the store closes the rows this name left
//! open (a `kill -9` with calls up) — see `switchboard_store::StoreOptions::journal_node`.

use switchboard_store::{CallRecord, HangupSide, Outcome};

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
