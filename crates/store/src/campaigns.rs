//! Campaigns (tables `campaigns` and `campaign_contacts`, migration 0009): proactive calling
//! lists stored by the API and worked through by the server's progressive dialer.
//!
//! A contact moves `pending` → `dialing` → `done` | `failed` (or back to `pending` for a
//! retry), or from `pending` to `dnc` when its number is on the do-not-call list. Each move is
//! one conditional `UPDATE`, so two dialers (nodes sharing the database) never both take one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::db::{BindVals, RowExt, Val, on_db};
use crate::model::{ClientType, Timestamp, text_enum};
use crate::reports::fetch_all;
use crate::{Store, StoreError};

text_enum!(
    /// Whether the dialer works on a campaign.
    CampaignStatus, "campaign status" {
        /// Created or paused: nobody is dialed.
        Paused = "paused",
        /// The dialer calls its pending contacts.
        Running = "running",
        /// Every contact is done, failed or on the do-not-call list.
        Finished = "finished",
    }
);

text_enum!(
    /// Where one contact of a campaign stands.
    ContactStatus, "campaign contact status" {
        /// Waiting to be dialed (first time or a retry).
        Pending = "pending",
        /// An attempt is in progress.
        Dialing = "dialing",
        /// The client answered.
        Done = "done",
        /// Every attempt failed (busy, no answer, failure).
        Failed = "failed",
        /// On the do-not-call list: never dialed.
        Dnc = "dnc",
    }
);

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    /// The queue whose agents make the calls.
    pub queue: String,
    /// The request's target as JSON text (`{"dormant_days", "types", "numbers"}`).
    pub target: String,
    /// Local opening and closing time (`"08:00"`); absent: the `[callbacks] window`.
    pub window: Option<(String, String)>,
    pub max_attempts: u32,
    pub retry_after_s: u32,
    pub status: CampaignStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One number of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: String,
    pub campaign_id: String,
    /// Normalised number.
    pub number: String,
    pub status: ContactStatus,
    pub attempts: u32,
    /// When the next attempt is due (`None`: as soon as possible).
    pub next_at: Option<Timestamp>,
    /// How the last attempt ended (`answered`, `busy`, `no_answer`, `failed`, `dnc`).
    pub last_result: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// The end of one attempt on a contact, as the dialer decided it.
pub type ContactEnd = crate::AttemptEnd<ContactStatus>;

/// A campaign's figures: contacts by status and its calls by disposition code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignCounts {
    pub by_status: Vec<(String, i64)>,
    pub by_disposition: Vec<(String, i64)>,
}

const CAMPAIGN_SELECT: &str = "SELECT id, name, queue, target, window_open, window_close, \
     CAST(max_attempts AS BIGINT) AS max_attempts, CAST(retry_after_s AS BIGINT) AS retry_after_s, \
     status, created_at, updated_at FROM campaigns";

const CONTACT_SELECT: &str = "SELECT id, campaign_id, number, status, \
     CAST(attempts AS BIGINT) AS attempts, next_at, last_result, updated_at FROM campaign_contacts";

fn small(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn campaign_row<R: RowExt>(r: &R) -> Result<Campaign, sqlx::Error> {
    Ok(Campaign {
        id: r.text("id")?,
        name: r.text("name")?,
        queue: r.text("queue")?,
        target: r.text("target")?,
        window: r.opt_text("window_open")?.zip(r.opt_text("window_close")?),
        max_attempts: small(r.int("max_attempts")?),
        retry_after_s: small(r.int("retry_after_s")?),
        status: r.parsed("status")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn contact_row<R: RowExt>(r: &R) -> Result<Contact, sqlx::Error> {
    Ok(Contact {
        id: r.text("id")?,
        campaign_id: r.text("campaign_id")?,
        number: r.text("number")?,
        status: r.parsed("status")?,
        attempts: small(r.int("attempts")?),
        next_at: r.opt_ts("next_at")?,
        last_result: r.opt_text("last_result")?,
        updated_at: r.opt_ts("updated_at")?,
    })
}

fn count_row<R: RowExt>(r: &R) -> Result<(String, i64), sqlx::Error> {
    Ok((r.text("k")?, r.int("n")?))
}

fn number_row<R: RowExt>(r: &R) -> Result<String, sqlx::Error> {
    r.text("number")
}

impl Store {
    /// Stores a campaign and its contacts in one transaction (numbers already normalised
    /// and unique).
    pub async fn insert_campaign(
        &self,
        campaign: &Campaign,
        contacts: &[Contact],
    ) -> Result<(), StoreError> {
        let (open, close) = match &campaign.window {
            Some((a, b)) => (Some(a.as_str()), Some(b.as_str())),
            None => (None, None),
        };
        let head = [
            Val::Text(Some(&campaign.id)),
            Val::Text(Some(&campaign.name)),
            Val::Text(Some(&campaign.queue)),
            Val::Text(Some(&campaign.target)),
            Val::Text(open),
            Val::Text(close),
            Val::Int(i64::from(campaign.max_attempts)),
            Val::Int(i64::from(campaign.retry_after_s)),
            Val::Text(Some(campaign.status.as_str())),
            Val::Ts(Some(campaign.created_at)),
            Val::Ts(Some(campaign.updated_at)),
        ];
        let db = self.ready_db().await?;
        on_db!(db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO campaigns (id, name, queue, target, window_open, window_close, \
                 max_attempts, retry_after_s, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS INTEGER), CAST($8 AS INTEGER), $9, $10, $11)",
            )
            .bind_vals(&head)
            .execute(&mut *tx)
            .await?;
            for c in contacts {
                let vals = [
                    Val::Text(Some(&c.id)),
                    Val::Text(Some(&campaign.id)),
                    Val::Text(Some(&c.number)),
                    Val::Text(Some(c.status.as_str())),
                    Val::Text(c.last_result.as_deref()),
                    Val::Ts(c.updated_at),
                ];
                sqlx::query(
                    "INSERT INTO campaign_contacts (id, campaign_id, number, status, attempts, \
                     last_result, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $6)",
                )
                .bind_vals(&vals)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// Every campaign, newest first.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let sql = format!("{CAMPAIGN_SELECT} ORDER BY created_at DESC, id DESC");
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &[], campaign_row)?)
    }

    /// Campaigns the dialer works on.
    pub async fn running_campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        let sql = format!("{CAMPAIGN_SELECT} WHERE status = 'running' ORDER BY created_at, id");
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &[], campaign_row)?)
    }

    /// One campaign.
    pub async fn campaign(&self, id: &str) -> Result<Option<Campaign>, StoreError> {
        let sql = format!("{CAMPAIGN_SELECT} WHERE id = $1");
        let vals = [Val::Text(Some(id))];
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &vals, campaign_row)?.pop())
    }

    /// Moves a campaign to `to` when it is in one of `from`; false when it was not.
    pub async fn set_campaign_status(
        &self,
        id: &str,
        from: &[CampaignStatus],
        to: CampaignStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut sql = String::from(
            "UPDATE campaigns SET status = $1, updated_at = $2 WHERE id = $3 AND status IN (",
        );
        let mut vals = vec![
            Val::Text(Some(to.as_str())),
            Val::Ts(Some(now)),
            Val::Text(Some(id)),
        ];
        for (i, s) in from.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", i + 4));
            vals.push(Val::Text(Some(s.as_str())));
        }
        sql.push(')');
        self.changed(&sql, &vals).await
    }

    /// The contacts of a campaign, in the order they are dialed.
    pub async fn campaign_contacts(&self, campaign_id: &str) -> Result<Vec<Contact>, StoreError> {
        let sql = format!("{CONTACT_SELECT} WHERE campaign_id = $1 ORDER BY number");
        let vals = [Val::Text(Some(campaign_id))];
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &vals, contact_row)?)
    }

    /// A campaign's contacts by status and its calls by disposition code.
    pub async fn campaign_counts(&self, campaign_id: &str) -> Result<CampaignCounts, StoreError> {
        let vals = [Val::Text(Some(campaign_id))];
        let db = self.ready_db().await?;
        let sql = "SELECT status AS k, COUNT(*) AS n FROM campaign_contacts \
                   WHERE campaign_id = $1 GROUP BY status";
        let by_status = fetch_all!(db, sql, &vals, count_row)?;
        let sql = "SELECT disposition AS k, COUNT(*) AS n FROM calls \
                   WHERE campaign = $1 AND disposition IS NOT NULL GROUP BY disposition";
        let by_disposition = fetch_all!(db, sql, &vals, count_row)?;
        Ok(CampaignCounts {
            by_status,
            by_disposition,
        })
    }

    /// Pending contacts of a campaign due at `now` (or as soon as possible), oldest first.
    pub async fn due_contacts(
        &self,
        campaign_id: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Contact>, StoreError> {
        let sql = format!(
            "{CONTACT_SELECT} WHERE campaign_id = $1 AND status = 'pending' \
             AND (next_at IS NULL OR next_at <= $2) ORDER BY next_at IS NOT NULL, next_at, number \
             LIMIT $3"
        );
        let vals = [
            Val::Text(Some(campaign_id)),
            Val::Ts(Some(now)),
            Val::Int(i64::from(limit)),
        ];
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &vals, contact_row)?)
    }

    /// How many contacts of a campaign are still pending or being dialed.
    pub async fn open_contacts(&self, campaign_id: &str) -> Result<i64, StoreError> {
        let sql = "SELECT 'open' AS k, COUNT(*) AS n FROM campaign_contacts \
                   WHERE campaign_id = $1 AND status IN ('pending', 'dialing')";
        let vals = [Val::Text(Some(campaign_id))];
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &vals, count_row)?
            .pop()
            .map_or(0, |(_, n)| n))
    }

    /// Takes a pending contact: `dialing` by `node`, or `dnc` when `dnc` (never dialed).
    /// False when it is no longer pending (taken by another node).
    pub async fn claim_contact(
        &self,
        id: &str,
        node: &str,
        dnc: bool,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = if dnc {
            "UPDATE campaign_contacts SET status = 'dnc', last_result = 'dnc', node = $1, \
             updated_at = $2 WHERE id = $3 AND status = 'pending'"
        } else {
            "UPDATE campaign_contacts SET status = 'dialing', node = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'pending'"
        };
        let vals = [
            Val::Text(Some(node)),
            Val::Ts(Some(now)),
            Val::Text(Some(id)),
        ];
        self.changed(sql, &vals).await
    }

    /// Records how an attempt on a contact ended.
    pub async fn end_contact_attempt(
        &self,
        id: &str,
        end: &ContactEnd,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let vals = end.binds(end.status.as_str(), now, id);
        self.changed(
            "UPDATE campaign_contacts SET status = $1, attempts = CAST($2 AS INTEGER), \
                 next_at = $3, last_result = $4, updated_at = $5 \
                 WHERE id = $6 AND status = 'dialing'",
            &vals,
        )
        .await
    }

    /// Puts contacts `node` left `dialing` (it stopped mid-attempt) back to `pending`;
    /// returns how many. Called once at start; other nodes' attempts are left alone.
    pub async fn requeue_dialing_contacts(
        &self,
        node: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.requeue_dialing("campaign_contacts", "", node, now)
            .await
    }

    /// Numbers of the client directory to call: of `types` only when given, and with
    /// `dormant_since`, only clients with no answered call since then (clients never called
    /// count as dormant). By number.
    pub async fn campaign_clients(
        &self,
        dormant_since: Option<Timestamp>,
        types: Option<&[ClientType]>,
    ) -> Result<Vec<String>, StoreError> {
        let mut sql = String::from("SELECT number FROM clients c WHERE 1 = 1");
        let mut vals = Vec::new();
        if let Some(since) = dormant_since {
            vals.push(Val::Ts(Some(since)));
            sql.push_str(
                " AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.client_number = c.number \
                 AND k.answered_at IS NOT NULL AND k.answered_at >= $1)",
            );
        }
        if let Some(types) = types {
            if types.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(" AND type IN (");
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                vals.push(Val::Text(Some(t.as_str())));
                sql.push_str(&format!("${}", vals.len()));
            }
            sql.push(')');
        }
        sql.push_str(" ORDER BY number");
        let db = self.ready_db().await?;
        Ok(fetch_all!(db, sql, &vals, number_row)?)
    }
}
