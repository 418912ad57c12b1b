//! Supervisors' reports, computed in SQL from the stored records: one module per report,
//! each a few aggregate statements of the same shape on PostgreSQL and SQLite (only the
//! "timestamp as epoch milliseconds" expression differs, `Db::millis`).
//! Reports count ended calls: rows still open in the journal (calls in progress) are left
//! out, and a call interrupted by a crash counts with what its journal knew.
//!
//! The store returns raw figures (counts and millisecond sums); the derived ratios (service
//! level, averages) are defined once, where the API presents them.

mod abandoned;
mod agents;
mod queues;

pub use abandoned::AbandonedCall;
pub use agents::AgentFigures;
pub use queues::{QueueFigures, QueueReportQuery};

use crate::model::Timestamp;

/// A half-open report period `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant included.
    pub from: Timestamp,
    /// First instant after the period.
    pub to: Timestamp,
}

impl Period {
    pub(crate) fn start_ms(self) -> i64 {
        self.from.timestamp_millis()
    }

    pub(crate) fn end_ms(self) -> i64 {
        self.to.timestamp_millis()
    }
}

/// SQL for the queue a call (`calls` row `c`) waited in: the record's own, else the last
/// queue it entered by its `queue_events` (call control names the queue on a CDR only once
/// an agent was offered the call; a caller who left before that still entered the queue).
pub(crate) const CALL_QUEUE: &str = "COALESCE(c.queue, (SELECT e.queue FROM queue_events e \
     WHERE e.call_id = c.id AND e.event = 'ENTERQUEUE' AND e.queue <> 'none' \
     ORDER BY e.seq DESC LIMIT 1))";

/// Runs `$sql` with `$vals` on either backend and maps every row with the generic function
/// `$map` (instantiated for the backend's row type).
macro_rules! fetch_all {
    ($db:expr, $sql:expr, $vals:expr, $map:path) => {
        $crate::db::on_db!($db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe($sql))
                .bind_vals($vals)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| $map(r)).collect::<Result<Vec<_>, sqlx::Error>>()
        })
    };
}
pub(crate) use fetch_all;

impl crate::Store {
    /// Per-agent figures of `period` (see [`AgentFigures`]), by agent id; `now` closes the
    /// interval of the state each agent is still in.
    pub async fn agent_report(
        &self,
        period: Period,
        now: Timestamp,
    ) -> Result<Vec<AgentFigures>, crate::StoreError> {
        Ok(self.ready_db().await?.agent_figures(period, now).await?)
    }

    /// Per-queue, per-interval figures (see [`QueueFigures`]).
    pub async fn queue_report(
        &self,
        query: QueueReportQuery,
    ) -> Result<Vec<QueueFigures>, crate::StoreError> {
        Ok(self.ready_db().await?.queue_figures(query).await?)
    }

    /// Abandoned calls that started in `period`, oldest first.
    pub async fn abandoned_report(
        &self,
        period: Period,
    ) -> Result<Vec<AbandonedCall>, crate::StoreError> {
        Ok(self.ready_db().await?.abandoned_calls(period).await?)
    }
}
