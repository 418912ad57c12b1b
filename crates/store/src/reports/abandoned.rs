//! Abandoned calls of a period: who, when, how long they waited, and whether an agent
//! called them back afterwards.

use serde::Serialize;

use super::{CALL_QUEUE, Period, fetch_all};
use crate::db::{BindVals, Db, RowExt, Val};
use crate::model::Timestamp;

/// One abandoned call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AbandonedCall {
    /// The call's record id.
    pub call_id: String,
    /// When the call arrived.
    pub started_at: Timestamp,
    /// When the caller hung up.
    pub ended_at: Timestamp,
    /// The calling number as received.
    pub caller: String,
    /// The normalised number the directory was searched with.
    pub client_number: Option<String>,
    /// The client's name in the directory, when known.
    pub client_name: Option<String>,
    /// The queue the caller waited in, if any.
    pub queue: Option<String>,
    /// How long the caller waited, milliseconds.
    pub wait_ms: i64,
    /// The first answered outbound call to the same number after this one ended.
    pub called_back_at: Option<Timestamp>,
}

fn abandoned_row<R: RowExt>(r: &R) -> Result<AbandonedCall, sqlx::Error> {
    Ok(AbandonedCall {
        call_id: r.text("id")?,
        started_at: r.ts("started_at")?,
        ended_at: r.ts("ended_at")?,
        caller: r.text("caller")?,
        client_number: r.opt_text("client_number")?,
        client_name: r.opt_text("client_name")?,
        queue: r.opt_text("queue")?,
        wait_ms: r.int("wait_ms")?,
        called_back_at: r.opt_ts("called_back_at")?,
    })
}

impl Db {
    /// Abandoned calls that started in `period`, oldest first.
    pub(crate) async fn abandoned_calls(
        &self,
        period: Period,
    ) -> Result<Vec<AbandonedCall>, sqlx::Error> {
        let sql = format!(
            "SELECT c.id, c.started_at, c.ended_at, c.caller, c.client_number, \
               cl.name AS client_name, {CALL_QUEUE} AS queue, c.wait_ms, \
               (SELECT MIN(o.started_at) FROM calls o \
                WHERE o.direction = 'outbound' AND o.answered_at IS NOT NULL \
                  AND o.started_at >= c.ended_at \
                  AND (o.client_number = c.client_number OR o.dialed = c.client_number)) \
                 AS called_back_at \
             FROM calls c LEFT JOIN clients cl ON cl.number = c.client_number \
             WHERE c.outcome = 'abandoned' AND c.started_at >= $1 AND c.started_at < $2 \
             ORDER BY c.started_at, c.seq"
        );
        let vals = [Val::Ts(Some(period.from)), Val::Ts(Some(period.to))];
        fetch_all!(self, sql, &vals, abandoned_row)
    }
}
