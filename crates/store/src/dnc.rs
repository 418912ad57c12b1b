//! The do-not-call list (table `dnc`): numbers that call-backs, campaigns and click-to-call
//! never dial. Written by the API directly; read by the dialer before each call.

use serde::{Deserialize, Serialize};

use crate::db::{BindVals, RowExt, Val, on_db};
use crate::model::{Timestamp, normalize_number};
use crate::reports::fetch_all;
use crate::{Store, StoreError};

/// One number on the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DncEntry {
    /// Normalised number.
    pub number: String,
    /// Why (e.g. "asked on the phone").
    pub reason: Option<String>,
    pub added_at: Timestamp,
}

fn dnc_row<R: RowExt>(r: &R) -> Result<DncEntry, sqlx::Error> {
    Ok(DncEntry {
        number: r.text("number")?,
        reason: r.opt_text("reason")?,
        added_at: r.ts("added_at")?,
    })
}

impl Store {
    /// Puts a number on the list (or replaces its reason); true when it was not there yet.
    pub async fn put_dnc(&self, entry: &DncEntry) -> Result<bool, StoreError> {
        let number = normalize_number(&entry.number)?;
        let known = self.dnc(&number).await?.is_some();
        let vals = [
            Val::Text(Some(&number)),
            Val::Text(entry.reason.as_deref()),
            Val::Ts(Some(entry.added_at)),
        ];
        let db = self.ready_db().await?;
        on_db!(db, pool => sqlx::query(
            "INSERT INTO dnc (number, reason, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (number) DO UPDATE SET reason = excluded.reason",
        )
        .bind_vals(&vals)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(!known)
    }

    /// Takes a number off the list; false when it was not on it.
    pub async fn delete_dnc(&self, number: &str) -> Result<bool, StoreError> {
        let number = normalize_number(number)?;
        let vals = [Val::Text(Some(&number))];
        let db = self.ready_db().await?;
        let n = on_db!(db, pool => sqlx::query("DELETE FROM dnc WHERE number = $1")
            .bind_vals(&vals)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// The list entry of `number` (normalised first), if it is on the list.
    pub async fn dnc(&self, number: &str) -> Result<Option<DncEntry>, StoreError> {
        let number = normalize_number(number)?;
        let vals = [Val::Text(Some(&number))];
        let db = self.ready_db().await?;
        let sql = "SELECT number, reason, added_at FROM dnc WHERE number = $1";
        Ok(fetch_all!(db, sql, &vals, dnc_row)?.pop())
    }

    /// The whole list, by number.
    pub async fn list_dnc(&self) -> Result<Vec<DncEntry>, StoreError> {
        let db = self.ready_db().await?;
        let sql = "SELECT number, reason, added_at FROM dnc ORDER BY number";
        Ok(fetch_all!(db, sql, &[], dnc_row)?)
    }
}
