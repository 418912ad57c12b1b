//! Call-backs (table `callbacks`): stored by the API, worked through by the server's dialer.
//!
//! A call-back moves `pending` → `dialing` → `done` | `failed` (or back to `pending` for a
//! retry); `cancelled` only from `pending`. Each move is one conditional `UPDATE`, so a
//! cancel and the dialer never both win.

use crate::db::{BindVals, Db, RowExt, Val, on_db};
use crate::model::{Callback, CallbackStatus, Timestamp, normalize_number};
use crate::reports::fetch_all;
use crate::{Store, StoreError};

const CALLBACK_SELECT: &str = "SELECT id, number, at, queue, created_at, status, \
     CAST(attempts AS BIGINT) AS attempts, next_at, last_result, updated_at FROM callbacks";

fn callback_row<R: RowExt>(r: &R) -> Result<Callback, sqlx::Error> {
    Ok(Callback {
        id: r.text("id")?,
        number: r.text("number")?,
        at: r.opt_ts("at")?,
        queue: r.opt_text("queue")?,
        created_at: r.ts("created_at")?,
        status: r.parsed("status")?,
        attempts: u32::try_from(r.int("attempts")?).unwrap_or(0),
        next_at: r.opt_ts("next_at")?,
        last_result: r.opt_text("last_result")?,
        updated_at: r.opt_ts("updated_at")?,
        call_ids: Vec::new(),
    })
}

fn text_row<R: RowExt>(r: &R) -> Result<String, sqlx::Error> {
    r.text("id")
}

fn count_row<R: RowExt>(r: &R) -> Result<(String, i64), sqlx::Error> {
    Ok((r.text("status")?, r.int("n")?))
}

/// Why a cancel did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelRefused {
    /// No call-back has that id.
    NotFound,
    /// It is past `pending` (being dialed, or finished) and stays as it is.
    NotPending(CallbackStatus),
}

/// The end of one attempt, as the dialer decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    /// `pending` (retry at `next_at`), `done` or `failed`.
    pub status: CallbackStatus,
    pub attempts: u32,
    pub next_at: Option<Timestamp>,
    pub last_result: String,
}

impl Db {
    async fn callback_update(&self, sql: &str, vals: &[Val<'_>]) -> Result<u64, sqlx::Error> {
        on_db!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind_vals(vals)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
    }
}

impl Store {
    /// Stores a "call me back" request (its number is normalised; due at its `at`).
    pub async fn insert_callback(&self, callback: &Callback) -> Result<(), StoreError> {
        let number = normalize_number(&callback.number)?;
        let vals = [
            Val::Text(Some(&callback.id)),
            Val::Text(Some(&number)),
            Val::Ts(callback.at),
            Val::Text(callback.queue.as_deref()),
            Val::Ts(Some(callback.created_at)),
            Val::Text(Some(callback.status.as_str())),
            Val::Ts(callback.next_at.or(callback.at)),
        ];
        self.ready_db()
            .await?
            .callback_update(
                "INSERT INTO callbacks (id, number, at, queue, created_at, status, next_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &vals,
            )
            .await?;
        Ok(())
    }

    /// Pending call-backs due at `now` (or as soon as possible), oldest first.
    pub async fn due_callbacks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Callback>, StoreError> {
        let sql = format!(
            "{CALLBACK_SELECT} WHERE status = 'pending' AND (next_at IS NULL OR next_at <= $1) \
             ORDER BY COALESCE(next_at, created_at), created_at LIMIT $2"
        );
        let vals = [Val::Ts(Some(now)), Val::Int(i64::from(limit))];
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &vals, callback_row)?)
    }

    /// Call-backs, newest first, of `status` only when given.
    pub async fn list_callbacks(
        &self,
        status: Option<CallbackStatus>,
        limit: u32,
    ) -> Result<Vec<Callback>, StoreError> {
        let status = status.map(CallbackStatus::as_str);
        let sql = format!(
            "{CALLBACK_SELECT} WHERE ($1 IS NULL OR status = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let vals = [
            Val::Text(status),
            Val::Text(status),
            Val::Int(i64::from(limit)),
        ];
        let db = self.ready_db().await?;
        let mut list = fetch_all!(db, sql, &vals, callback_row)?;
        for cb in &mut list {
            cb.call_ids = self.callback_calls(db, &cb.id).await?;
        }
        Ok(list)
    }

    /// One call-back with the records of the calls it produced.
    pub async fn callback(&self, id: &str) -> Result<Option<Callback>, StoreError> {
        let sql = format!("{CALLBACK_SELECT} WHERE id = $1");
        let vals = [Val::Text(Some(id))];
        let db = self.ready_db().await?;
        let Some(mut cb) = fetch_all!(db, sql, &vals, callback_row)?.pop() else {
            return Ok(None);
        };
        cb.call_ids = self.callback_calls(db, id).await?;
        Ok(Some(cb))
    }

    async fn callback_calls(&self, db: &Db, id: &str) -> Result<Vec<String>, sqlx::Error> {
        let sql = "SELECT id FROM calls WHERE callback_id = $1 ORDER BY started_at, seq";
        let vals = [Val::Text(Some(id))];
        fetch_all!(db, sql, &vals, text_row)
    }

    /// Sets a call-back's status; returns false when there is no such call-back.
    pub async fn set_callback_status(
        &self,
        id: &str,
        status: CallbackStatus,
    ) -> Result<bool, StoreError> {
        let vals = [Val::Text(Some(status.as_str())), Val::Text(Some(id))];
        let n = self
            .ready_db()
            .await?
            .callback_update("UPDATE callbacks SET status = $1 WHERE id = $2", &vals)
            .await?;
        Ok(n > 0)
    }

    /// Cancels a pending call-back: it is never dialed.
    pub async fn cancel_callback(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<Result<Callback, CancelRefused>, StoreError> {
        let moved = self
            .move_pending(id, CallbackStatus::Cancelled, now)
            .await?;
        Ok(match self.callback(id).await? {
            None => Err(CancelRefused::NotFound),
            Some(cb) if moved => Ok(cb),
            Some(cb) => Err(CancelRefused::NotPending(cb.status)),
        })
    }

    /// Takes a pending call-back for dialing by `node` (the server's name, as in
    /// [`crate::StoreOptions::journal_node`]); false when it is no longer pending (cancelled
    /// meanwhile, or taken by another node's dialer).
    pub async fn claim_callback(
        &self,
        id: &str,
        node: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_pending(id, "status = 'dialing', node = $1", node, now)
            .await
    }

    /// Moves a call-back from `pending` to `to`; false when it was not pending.
    async fn move_pending(
        &self,
        id: &str,
        to: CallbackStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_pending(id, "status = $1", to.as_str(), now)
            .await
    }

    /// `UPDATE … SET <set>` (where `$1` is `value`) on a call-back still `pending`, with
    /// `updated_at = now`; false when it was not pending.
    async fn update_pending(
        &self,
        id: &str,
        set: &'static str,
        value: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let vals = [
            Val::Text(Some(value)),
            Val::Ts(Some(now)),
            Val::Text(Some(id)),
        ];
        let sql = format!(
            "UPDATE callbacks SET {set}, updated_at = $2 WHERE id = $3 AND status = 'pending'"
        );
        let n = self.ready_db().await?.callback_update(&sql, &vals).await?;
        Ok(n > 0)
    }

    /// Records how an attempt ended.
    pub async fn end_callback_attempt(
        &self,
        id: &str,
        end: &AttemptEnd,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let vals = [
            Val::Text(Some(end.status.as_str())),
            Val::Int(i64::from(end.attempts)),
            Val::Ts(end.next_at),
            Val::Text(Some(&end.last_result)),
            Val::Ts(Some(now)),
            Val::Text(Some(id)),
        ];
        let n = self
            .ready_db()
            .await?
            .callback_update(
                "UPDATE callbacks SET status = $1, attempts = CAST($2 AS INTEGER), next_at = $3, \
                 last_result = $4, updated_at = $5 WHERE id = $6 AND status = 'dialing'",
                &vals,
            )
            .await?;
        Ok(n > 0)
    }

    /// Puts call-backs `node` left `dialing` (it stopped mid-attempt) back to `pending`;
    /// returns how many. Called once at start; other nodes' attempts are left alone.
    pub async fn requeue_dialing_callbacks(
        &self,
        node: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let vals = [Val::Ts(Some(now)), Val::Text(Some(node))];
        Ok(self
            .ready_db()
            .await?
            .callback_update(
                "UPDATE callbacks SET status = 'pending', node = NULL, updated_at = $1 \
                 WHERE status = 'dialing' AND node = $2",
                &vals,
            )
            .await?)
    }

    /// How many call-backs are in each status.
    pub async fn callback_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) AS n FROM callbacks GROUP BY status";
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &[], count_row)?)
    }
}
