//! Per-queue, per-interval figures of the calls that entered a queue, from `calls` (and
//! `queue_events` for the queue of a caller who left before any agent was offered the call).

use serde::Serialize;

use super::{CALL_QUEUE, Period, fetch_all};
use crate::db::{BindVals, Db, RowExt, Val};

/// What to aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueReportQuery {
    /// Calls that started in this period.
    pub period: Period,
    /// Interval length (an hour or a day), milliseconds.
    pub interval_ms: i64,
    /// Offset added to UTC before cutting intervals (the report's UTC offset), milliseconds,
    /// so that days start at local midnight.
    pub offset_ms: i64,
    /// Answered within this wait counts towards the service level, milliseconds.
    pub service_level_ms: i64,
    /// Abandoned before this wait is a short abandon, milliseconds.
    pub short_abandon_ms: i64,
}

/// One queue's raw figures in one interval. Only intervals with calls are returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueFigures {
    /// The queue.
    pub queue: String,
    /// Start of the interval, milliseconds since the UNIX epoch.
    pub interval_start_ms: i64,
    /// Calls that entered the queue.
    pub offered: i64,
    /// Calls an agent answered.
    pub answered: i64,
    /// Callers who hung up before an agent answered (short abandons included).
    pub abandoned: i64,
    /// Abandons before [`QueueReportQuery::short_abandon_ms`].
    pub short_abandoned: i64,
    /// Calls that left after the queue's maximum wait (`timeout`).
    pub timeout: i64,
    /// Callers who left the queue asking to be called back (`callback_requested`).
    pub callbacks: i64,
    /// Calls answered within [`QueueReportQuery::service_level_ms`].
    pub answered_in_sl: i64,
    /// Wait of the answered calls, summed.
    pub answered_wait_ms: i64,
    /// Talk time of the answered calls, summed.
    pub answered_talk_ms: i64,
    /// Longest wait of any call.
    pub max_wait_ms: i64,
}

fn figures_row<R: RowExt>(r: &R) -> Result<(QueueFigures, i64), sqlx::Error> {
    Ok((
        QueueFigures {
            queue: r.text("queue")?,
            interval_start_ms: 0,
            offered: r.int("offered")?,
            answered: r.int("answered")?,
            abandoned: r.int("abandoned")?,
            short_abandoned: r.int("short_abandoned")?,
            timeout: r.int("timeout")?,
            callbacks: r.int("callbacks")?,
            answered_in_sl: r.int("answered_in_sl")?,
            answered_wait_ms: r.int("answered_wait_ms")?,
            answered_talk_ms: r.int("answered_talk_ms")?,
            max_wait_ms: r.int("max_wait_ms")?,
        },
        r.int("bucket")?,
    ))
}

impl Db {
    /// Figures per queue and interval, ordered by queue then interval.
    pub(crate) async fn queue_figures(
        &self,
        q: QueueReportQuery,
    ) -> Result<Vec<QueueFigures>, sqlx::Error> {
        let started = self.millis("started_at");
        let sql = format!(
            "WITH q AS ( \
               SELECT {CALL_QUEUE} AS queue, c.started_at, c.answered_at, c.outcome, c.wait_ms, \
                 c.talk_ms \
               FROM calls c \
               WHERE c.direction = 'inbound' AND c.journal IS NULL AND c.started_at >= $1 AND c.started_at < $2) \
             SELECT queue, CAST(({started} + $3) / $4 AS BIGINT) AS bucket, \
               COUNT(*) AS offered, \
               CAST(SUM(CASE WHEN answered_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
               CAST(SUM(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END) AS BIGINT) AS abandoned, \
               CAST(SUM(CASE WHEN outcome = 'abandoned' AND wait_ms < $5 THEN 1 ELSE 0 END) AS BIGINT) AS short_abandoned, \
               CAST(SUM(CASE WHEN outcome = 'timeout' THEN 1 ELSE 0 END) AS BIGINT) AS timeout, \
               CAST(SUM(CASE WHEN outcome = 'callback_requested' THEN 1 ELSE 0 END) AS BIGINT) AS callbacks, \
               CAST(SUM(CASE WHEN answered_at IS NOT NULL AND wait_ms <= $6 THEN 1 ELSE 0 END) AS BIGINT) AS answered_in_sl, \
               CAST(SUM(CASE WHEN answered_at IS NOT NULL THEN wait_ms ELSE 0 END) AS BIGINT) AS answered_wait_ms, \
               CAST(SUM(CASE WHEN answered_at IS NOT NULL THEN talk_ms ELSE 0 END) AS BIGINT) AS answered_talk_ms, \
               CAST(MAX(wait_ms) AS BIGINT) AS max_wait_ms \
             FROM q WHERE queue IS NOT NULL \
             GROUP BY queue, bucket ORDER BY queue, bucket"
        );
        let vals = [
            Val::Ts(Some(q.period.from)),
            Val::Ts(Some(q.period.to)),
            Val::Int(q.offset_ms),
            Val::Int(q.interval_ms.max(1)),
            Val::Int(q.short_abandon_ms),
            Val::Int(q.service_level_ms),
        ];
        let rows = fetch_all!(self, sql, &vals, figures_row)?;
        Ok(rows
            .into_iter()
            .map(|(mut f, bucket)| {
                f.interval_start_ms = bucket
                    .saturating_mul(q.interval_ms)
                    .saturating_sub(q.offset_ms);
                f
            })
            .collect())
    }
}
