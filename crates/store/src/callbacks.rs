//! Call-backs (table `callbacks`): stored by the API, worked through by the server's dialer.
//!
//! A call-back moves `pending` → `dialing` → `done` | `failed` (or back to `pending` for a
//! retry); `cancelled` and `expired` only from `pending`. Each move is one conditional
//! `UPDATE`, so a cancel and the dialer never both win. A node holds what it is dialing under
//! a lease (`node`, `lease_until`) that it renews; a lease that ran out goes back to
//! `pending`.

use crate::db::{BindVals, Db, RowExt, Val};
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

fn claim_row<R: RowExt>(r: &R) -> Result<(String, Option<String>), sqlx::Error> {
    Ok((r.text("id")?, r.opt_text("node")?))
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

/// The end of one attempt, as the dialer decided it (on a call-back; on a campaign contact,
/// [`crate::ContactEnd`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd<S = CallbackStatus> {
    /// `pending` (retry at `next_at`), `done` or `failed`.
    pub status: S,
    pub attempts: u32,
    pub next_at: Option<Timestamp>,
    pub last_result: String,
}

impl<S> AttemptEnd<S> {
    /// `$1` to `$6` of the UPDATE that records it: `status` (the stored word for
    /// `self.status`), attempts, next_at, last_result, updated_at, the row's id.
    pub(crate) fn binds<'a>(
        &'a self,
        status: &'a str,
        now: Timestamp,
        id: &'a str,
    ) -> Vec<Val<'a>> {
        vec![
            Val::Text(Some(status)),
            Val::Int(i64::from(self.attempts)),
            Val::Ts(self.next_at),
            Val::Text(Some(&self.last_result)),
            Val::Ts(Some(now)),
            Val::Text(Some(id)),
        ]
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
            .execute(
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
        self.changed("UPDATE callbacks SET status = $1 WHERE id = $2", &vals)
            .await
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
    /// [`crate::StoreOptions::journal_node`]) under a lease until `lease_until`; false when
    /// it is no longer pending (cancelled meanwhile, or taken by another node's dialer).
    pub async fn claim_callback(
        &self,
        id: &str,
        node: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let vals = [
            Val::Text(Some(node)),
            Val::Ts(Some(now)),
            Val::Ts(Some(lease_until)),
            Val::Text(Some(id)),
        ];
        self.changed(
            "UPDATE callbacks SET status = 'dialing', node = $1, updated_at = $2, \
                 lease_until = $3 WHERE id = $4 AND status = 'pending'",
            &vals,
        )
        .await
    }

    /// Renews `node`'s lease on every call-back it is dialing until `until`; returns how
    /// many it still holds.
    pub async fn renew_callback_claims(
        &self,
        node: &str,
        until: Timestamp,
    ) -> Result<u64, StoreError> {
        let vals = [Val::Ts(Some(until)), Val::Text(Some(node))];
        self.execute(
            "UPDATE callbacks SET lease_until = $1 WHERE status = 'dialing' AND node = $2",
            &vals,
        )
        .await
    }

    /// Puts back to `pending` every call-back whose node's lease ran out before `now` (the
    /// node stopped renewing: it died or lost the database); the interrupted attempt is not
    /// counted (`last_result` `interrupted`). The caller's own rows (`me`) are left alone: it
    /// is alive, and puts its own back at its next start. Returns each one's id and the node
    /// that held it.
    pub async fn reclaim_lapsed_callbacks(
        &self,
        me: &str,
        now: Timestamp,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        // The holders are read first (for the log); each UPDATE re-checks the lease, so a
        // renewal or another node's reclaim meanwhile wins.
        let sql = "SELECT id, node FROM callbacks \
                   WHERE status = 'dialing' AND lease_until < $1 AND node <> $2";
        let vals = [Val::Ts(Some(now)), Val::Text(Some(me))];
        let db = self.ready_db().await?;
        let lapsed = fetch_all!(db, sql, &vals, claim_row)?;
        let mut taken = Vec::new();
        for (id, node) in lapsed {
            let vals = [Val::Ts(Some(now)), Val::Text(Some(&id))];
            let n = db
                .execute(
                    "UPDATE callbacks SET status = 'pending', node = NULL, lease_until = NULL, \
                     last_result = 'interrupted', updated_at = $1 \
                     WHERE id = $2 AND status = 'dialing' AND lease_until < $1",
                    &vals,
                )
                .await?;
            if n > 0 {
                taken.push((id, node));
            }
        }
        Ok(taken)
    }

    /// Moves a pending call-back to `expired` (not dialed within its validity); false when it
    /// was not pending.
    pub async fn expire_callback(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.move_pending(id, CallbackStatus::Expired, now).await
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
        self.changed(&sql, &vals).await
    }

    /// Records how `node`'s attempt ended; false when the call-back is no longer that node's
    /// (its lease ran out and another node took it back).
    pub async fn end_callback_attempt(
        &self,
        id: &str,
        node: &str,
        end: &AttemptEnd,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut vals = end.binds(end.status.as_str(), now, id);
        vals.push(Val::Text(Some(node)));
        self.changed(
            "UPDATE callbacks SET status = $1, attempts = CAST($2 AS INTEGER), next_at = $3, \
                 last_result = $4, updated_at = $5, node = NULL, lease_until = NULL \
                 WHERE id = $6 AND status = 'dialing' AND node = $7",
            &vals,
        )
        .await
    }

    /// Puts call-backs `node` left `dialing` (it stopped mid-attempt) back to `pending`, the
    /// interrupted attempt not counted; returns how many. Called once at start; other nodes'
    /// attempts are left alone (their leases say when they are abandoned).
    pub async fn requeue_dialing_callbacks(
        &self,
        node: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let release = ", lease_until = NULL, last_result = 'interrupted'";
        self.requeue_dialing("callbacks", release, node, now).await
    }

    /// Puts the rows of `table` (call-backs or campaign contacts) that `node` left `dialing`
    /// back to `pending`, no longer held by it; `release` adds `SET` items (each with a
    /// leading comma). Returns how many.
    pub(crate) async fn requeue_dialing(
        &self,
        table: &'static str,
        release: &'static str,
        node: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "UPDATE {table} SET status = 'pending', node = NULL{release}, updated_at = $1 \
             WHERE status = 'dialing' AND node = $2"
        );
        let vals = [Val::Ts(Some(now)), Val::Text(Some(node))];
        self.execute(&sql, &vals).await
    }

    /// How many call-backs are in each status.
    pub async fn callback_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = "SELECT status, COUNT(*) AS n FROM callbacks GROUP BY status";
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &[], count_row)?)
    }
}
