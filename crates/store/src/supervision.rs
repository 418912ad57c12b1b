//! What supervisors add to the records: quality evaluations of calls, bearer tokens scoped to
//! one agent, and escalations (an agent asking a supervisor for help on a call).
//!
//! These are written by the API directly (not through the record writer): the person who
//! asked gets the answer, or an error, at once.

use serde::{Deserialize, Serialize};

use crate::db::{BindVals, CALL_SELECT, Db, RowExt, Val, call_from_row, on_db};
use crate::model::{CallRecord, Timestamp};
use crate::reports::fetch_all;

/// A supervisor's evaluation of a call (columns `quality_*` of `calls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quality {
    /// 0..=100.
    pub score: i64,
    /// Who evaluated.
    pub reviewer: String,
    /// Remarks.
    pub note: Option<String>,
    /// When the evaluation was stored.
    pub at: Timestamp,
}

/// The agent's disposition of a call (columns `disposition*` of `calls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    /// `sale`, `order`, `info_given`, `no_interest`, `callback`, `wrong_number`, `dnc`,
    /// `no_answer`, `busy` or `voicemail` (checked by the API).
    pub code: String,
    pub note: Option<String>,
    /// When it was stored.
    pub at: Timestamp,
}

/// A call-detail record with its quality evaluation and disposition, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCall {
    /// The record as call control wrote it.
    pub record: CallRecord,
    /// The evaluation, once a supervisor gave one.
    pub quality: Option<Quality>,
    /// The disposition, once the agent gave one.
    pub disposition: Option<Disposition>,
}

/// An escalation (table `escalations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// Unique id.
    pub id: String,
    /// The call's record id.
    pub call_id: String,
    /// The agent who asked for help.
    pub agent_id: Option<String>,
    /// What the agent wrote.
    pub note: String,
    /// When it was raised.
    pub created_at: Timestamp,
    /// When a supervisor acknowledged it.
    pub acked_at: Option<Timestamp>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
}

const STORED_CALL_SELECT: &str = "CAST(quality_score AS BIGINT) AS quality_score, \
     quality_reviewer, quality_note, quality_at, disposition, disposition_note, disposition_at";

fn stored_call_row<R: RowExt>(r: &R) -> Result<StoredCall, sqlx::Error> {
    let quality = match r.opt_int("quality_score")? {
        Some(score) => Some(Quality {
            score,
            reviewer: r.opt_text("quality_reviewer")?.unwrap_or_default(),
            note: r.opt_text("quality_note")?,
            at: r.ts("quality_at")?,
        }),
        None => None,
    };
    let disposition = match r.opt_text("disposition")? {
        Some(code) => Some(Disposition {
            code,
            note: r.opt_text("disposition_note")?,
            at: r.ts("disposition_at")?,
        }),
        None => None,
    };
    Ok(StoredCall {
        record: call_from_row(r)?,
        quality,
        disposition,
    })
}

fn escalation_row<R: RowExt>(r: &R) -> Result<Escalation, sqlx::Error> {
    Ok(Escalation {
        id: r.text("id")?,
        call_id: r.text("call_id")?,
        agent_id: r.opt_text("agent_id")?,
        note: r.text("note")?,
        created_at: r.ts("created_at")?,
        acked_at: r.opt_ts("acked_at")?,
        acked_by: r.opt_text("acked_by")?,
    })
}

fn token_row<R: RowExt>(r: &R) -> Result<(String, Timestamp), sqlx::Error> {
    Ok((r.text("agent_id")?, r.ts("expires_at")?))
}

const ESCALATION_SELECT: &str =
    "SELECT id, call_id, agent_id, note, created_at, acked_at, acked_by FROM escalations";

impl Db {
    /// Call-detail records with their evaluations, newest first: those that started at or
    /// after `since`, of `agent` only when given.
    pub(crate) async fn stored_calls(
        &self,
        since: Option<Timestamp>,
        agent: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredCall>, sqlx::Error> {
        let sql = format!(
            "SELECT {CALL_SELECT}, {STORED_CALL_SELECT} FROM calls \
             WHERE journal IS NULL AND ($1 IS NULL OR started_at >= $2) \
               AND ($3 IS NULL OR agent_id = $4) \
             ORDER BY started_at DESC, seq DESC LIMIT $5"
        );
        let vals = [
            Val::Ts(since),
            Val::Ts(since),
            Val::Text(agent),
            Val::Text(agent),
            Val::Int(i64::from(limit)),
        ];
        fetch_all!(self, sql, &vals, stored_call_row)
    }

    /// One call-detail record by id.
    pub(crate) async fn stored_call(&self, id: &str) -> Result<Option<StoredCall>, sqlx::Error> {
        let sql = format!("SELECT {CALL_SELECT}, {STORED_CALL_SELECT} FROM calls WHERE id = $1");
        let vals = [Val::Text(Some(id))];
        Ok(fetch_all!(self, sql, &vals, stored_call_row)?.pop())
    }

    /// Stores an evaluation on a call; false when no such call is stored.
    pub(crate) async fn set_quality(&self, id: &str, q: &Quality) -> Result<bool, sqlx::Error> {
        let vals = [
            Val::Int(q.score),
            Val::Text(Some(&q.reviewer)),
            Val::Text(q.note.as_deref()),
            Val::Ts(Some(q.at)),
            Val::Text(Some(id)),
        ];
        on_db!(self, pool => sqlx::query(
            "UPDATE calls SET quality_score = CAST($1 AS INTEGER), quality_reviewer = $2, \
             quality_note = $3, quality_at = $4 WHERE id = $5",
        )
        .bind_vals(&vals)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() > 0))
    }

    /// Stores a disposition on a call; false when no such call is stored.
    pub(crate) async fn set_disposition(
        &self,
        id: &str,
        d: &Disposition,
    ) -> Result<bool, sqlx::Error> {
        let vals = [
            Val::Text(Some(&d.code)),
            Val::Text(d.note.as_deref()),
            Val::Ts(Some(d.at)),
            Val::Text(Some(id)),
        ];
        on_db!(self, pool => sqlx::query(
            "UPDATE calls SET disposition = $1, disposition_note = $2, disposition_at = $3 \
             WHERE id = $4",
        )
        .bind_vals(&vals)
        .execute(pool)
        .await
        .map(|r| r.rows_affected() > 0))
    }

    pub(crate) async fn insert_token(
        &self,
        token_hash: &str,
        agent: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), sqlx::Error> {
        let purge = [Val::Ts(Some(created_at))];
        let vals = [
            Val::Text(Some(token_hash)),
            Val::Text(Some(agent)),
            Val::Ts(Some(created_at)),
            Val::Ts(Some(expires_at)),
        ];
        on_db!(self, pool => {
            // Expired tokens are removed whenever a new one is issued.
            sqlx::query("DELETE FROM agent_tokens WHERE expires_at <= $1")
                .bind_vals(&purge)
                .execute(pool)
                .await?;
            sqlx::query(
                "INSERT INTO agent_tokens (token_hash, agent_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind_vals(&vals)
            .execute(pool)
            .await
            .map(drop)
        })
    }

    /// The agent and expiry of an unexpired token.
    pub(crate) async fn token_agent(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<(String, Timestamp)>, sqlx::Error> {
        let sql = "SELECT agent_id, expires_at FROM agent_tokens \
                   WHERE token_hash = $1 AND expires_at > $2"
            .to_owned();
        let vals = [Val::Text(Some(token_hash)), Val::Ts(Some(now))];
        Ok(fetch_all!(self, sql, &vals, token_row)?.pop())
    }

    /// Revokes a token; false when it was not there.
    pub(crate) async fn delete_token(&self, token_hash: &str) -> Result<bool, sqlx::Error> {
        let vals = [Val::Text(Some(token_hash))];
        on_db!(self, pool => sqlx::query("DELETE FROM agent_tokens WHERE token_hash = $1")
            .bind_vals(&vals)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0))
    }

    pub(crate) async fn insert_escalation(&self, e: &Escalation) -> Result<(), sqlx::Error> {
        let vals = [
            Val::Text(Some(&e.id)),
            Val::Text(Some(&e.call_id)),
            Val::Text(e.agent_id.as_deref()),
            Val::Text(Some(&e.note)),
            Val::Ts(Some(e.created_at)),
        ];
        on_db!(self, pool => sqlx::query(
            "INSERT INTO escalations (id, call_id, agent_id, note, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind_vals(&vals)
        .execute(pool)
        .await
        .map(drop))
    }

    /// Escalations, oldest first: the open ones only, or all of the last `limit`.
    pub(crate) async fn escalations(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<Escalation>, sqlx::Error> {
        let sql = format!(
            "SELECT * FROM ({ESCALATION_SELECT} WHERE ($1 = 0 OR acked_at IS NULL) \
             ORDER BY created_at DESC, id DESC LIMIT $2) AS latest ORDER BY created_at, id"
        );
        let vals = [Val::Int(i64::from(open_only)), Val::Int(i64::from(limit))];
        fetch_all!(self, sql, &vals, escalation_row)
    }

    /// Acknowledges an escalation (the first acknowledgement stays); the escalation as
    /// stored afterwards, or `None` when there is no such escalation.
    pub(crate) async fn ack_escalation(
        &self,
        id: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<Escalation>, sqlx::Error> {
        let vals = [Val::Ts(Some(at)), Val::Text(Some(by)), Val::Text(Some(id))];
        on_db!(self, pool => {
            sqlx::query(
                "UPDATE escalations SET acked_at = $1, acked_by = $2 \
                 WHERE id = $3 AND acked_at IS NULL",
            )
            .bind_vals(&vals)
            .execute(pool)
            .await?;
        });
        let sql = format!("{ESCALATION_SELECT} WHERE id = $1");
        let vals = [Val::Text(Some(id))];
        Ok(fetch_all!(self, sql, &vals, escalation_row)?.pop())
    }
}

impl crate::Store {
    /// Call-detail records of ended calls with their evaluations, newest first (see
    /// [`crate::Store::recent_calls`]: open journal rows, calls in progress, are left out);
    /// only `agent`'s when given.
    pub async fn stored_calls(
        &self,
        since: Option<Timestamp>,
        agent: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredCall>, crate::StoreError> {
        Ok(self
            .ready_db()
            .await?
            .stored_calls(since, agent, limit)
            .await?)
    }

    /// One stored call-detail record.
    pub async fn stored_call(&self, id: &str) -> Result<Option<StoredCall>, crate::StoreError> {
        Ok(self.ready_db().await?.stored_call(id).await?)
    }

    /// Stores (or replaces) the disposition of a call; false when the call is not (yet) stored.
    pub async fn set_disposition(
        &self,
        id: &str,
        d: &Disposition,
    ) -> Result<bool, crate::StoreError> {
        Ok(self.ready_db().await?.set_disposition(id, d).await?)
    }

    /// Stores a quality evaluation on a call; false when the call is not (yet) stored.
    pub async fn set_quality(&self, id: &str, q: &Quality) -> Result<bool, crate::StoreError> {
        if !(0..=100).contains(&q.score) {
            return Err(crate::StoreError::InvalidValue {
                what: "quality score",
                value: q.score.to_string(),
                expected: "an integer from 0 to 100".to_owned(),
            });
        }
        Ok(self.ready_db().await?.set_quality(id, q).await?)
    }

    /// Stores an agent token by the SHA-256 of the token (hex); the token itself is never
    /// stored. Expired tokens are purged at the same time.
    pub async fn insert_agent_token(
        &self,
        token_hash: &str,
        agent: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), crate::StoreError> {
        Ok(self
            .ready_db()
            .await?
            .insert_token(token_hash, agent, created_at, expires_at)
            .await?)
    }

    /// The agent (and expiry) of a token that has not expired at `now`.
    pub async fn agent_token(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<(String, Timestamp)>, crate::StoreError> {
        Ok(self.ready_db().await?.token_agent(token_hash, now).await?)
    }

    /// Revokes an agent token; false when it was not there.
    pub async fn revoke_agent_token(&self, token_hash: &str) -> Result<bool, crate::StoreError> {
        Ok(self.ready_db().await?.delete_token(token_hash).await?)
    }

    /// Stores a new escalation.
    pub async fn insert_escalation(&self, e: &Escalation) -> Result<(), crate::StoreError> {
        Ok(self.ready_db().await?.insert_escalation(e).await?)
    }

    /// The open escalations (or the last `limit` of all), oldest first.
    pub async fn escalations(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<Escalation>, crate::StoreError> {
        Ok(self.ready_db().await?.escalations(open_only, limit).await?)
    }

    /// Acknowledges an escalation; `None` when there is no such escalation.
    pub async fn ack_escalation(
        &self,
        id: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<Escalation>, crate::StoreError> {
        Ok(self.ready_db().await?.ack_escalation(id, by, at).await?)
    }
}
