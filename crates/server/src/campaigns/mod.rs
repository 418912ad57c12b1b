//! The campaign dialer: works through the contacts of running campaigns (tables `campaigns`
//! and `campaign_contacts`) and carries out the pacer's decisions ([`plan`]): every second,
//! for each running campaign inside its calling window, as many due contacts as its queue has
//! free agents are taken (`dialing`) and handed to call control as agent-first outbound calls
//! of kind `campaign`; each attempt's result comes back on a channel and the contact moves on
//! (done, a retry, failed). A contact whose number is on the do-not-call list becomes `dnc`
//! and is never dialed. Contacts left `dialing` by a server that stopped are put back to
//! `pending` at start, so a campaign survives a restart. The task itself, results and that
//! start-up put-back are the shared dialer core's ([`crate::dialer`]); this is its
//! [`CampaignWork`].

pub mod plan;

use std::convert::Infallible;
use std::time::Duration;

use switchboard_store::{
    Campaign, CampaignStatus, ContactEnd, ContactStatus, StoreError, Timestamp,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::callbacks::plan::{AttemptResult, Policy, parse_hhmm};
use crate::calls::{DialRequest, OutboundKind};
use crate::dialer::{self, Core, Parts, Work};
use plan::{CampaignLook, Dial, DueContact, Pacer};

/// The campaign contact an outbound call is made for, and where its result goes.
#[derive(Debug, Clone)]
pub struct CampaignDial {
    pub campaign_id: String,
    pub contact_id: String,
    report: mpsc::UnboundedSender<ContactReport>,
}

impl CampaignDial {
    /// Tells the campaign dialer how the attempt ended.
    pub fn report(&self, result: AttemptResult) {
        let sent = self.report.send(ContactReport {
            contact_id: self.contact_id.clone(),
            result,
        });
        if sent.is_err() {
            warn!(
                campaign = %self.campaign_id,
                contact = %self.contact_id,
                "campaign call result not delivered: the dialer has stopped"
            );
        }
    }
}

/// The result of one attempt on a contact, reported by call control.
#[derive(Debug, Clone)]
pub struct ContactReport {
    pub contact_id: String,
    pub result: AttemptResult,
}

/// The campaign's schedule: its own attempts, retry delay and window, in the
/// `[callbacks] timezone`; the `[callbacks] window` when it names none.
pub fn policy(campaign: &Campaign, base: &Policy) -> Policy {
    let window = match &campaign.window {
        Some((open, close)) => parse_hhmm(open).zip(parse_hhmm(close)),
        None => base.window,
    };
    Policy {
        max_attempts: campaign.max_attempts.max(1),
        retry_after: Duration::from_secs(u64::from(campaign.retry_after_s.max(1))),
        window,
        zone: base.zone,
        // A campaign's contacts stay in its list until dialed or given up: no expiry.
        expire_after: None,
    }
}

/// The campaign dialer task.
pub type Dialer = dialer::Dialer<CampaignWork>;

impl Dialer {
    pub fn new(parts: Parts) -> Dialer {
        let (core, reports) = Core::new(parts);
        let work = CampaignWork {
            base: core.config.callbacks.policy(&core.config.routing.timezone),
            core,
            pacer: Pacer::default(),
        };
        Dialer::with(work, reports, None)
    }
}

/// What the campaign dialer does on its own: the pacer over the running campaigns.
#[derive(Debug)]
pub struct CampaignWork {
    core: Core<ContactReport>,
    base: Policy,
    pacer: Pacer,
}

impl Work for CampaignWork {
    type Report = ContactReport;
    type Status = ContactStatus;
    type Note = Infallible;
    const ONE: &'static str = "campaign contact";
    const NOT_OURS: &'static str = "the contact is no longer being dialed";

    async fn requeue(&self, now: Timestamp) -> Result<u64, StoreError> {
        let store = &self.core.store;
        store.requeue_dialing_contacts(&self.core.node, now).await
    }

    async fn tick(&mut self, now: Timestamp) {
        if !self.core.can_dial() {
            return; // Nowhere to dial: campaigns stay as they are.
        }
        let running = match self.core.store.running_campaigns().await {
            Ok(r) => r,
            Err(e) => return debug!("campaigns not read: {e}"),
        };
        let mut looks = Vec::new();
        for campaign in &running {
            if let Some(look) = self.look(campaign, now).await {
                looks.push(look);
            }
        }
        for dial in self.pacer.plan(now, &looks) {
            let Some(look) = looks.iter().find(|l| l.id == dial.campaign) else {
                continue;
            };
            let Some(campaign) = running.iter().find(|c| c.id == dial.campaign) else {
                continue;
            };
            if !self.place(dial, look, campaign, now).await {
                return; // Call control has stopped (shutdown).
            }
        }
    }

    async fn ended(&mut self, report: ContactReport, now: Timestamp) -> (String, ContactEnd) {
        let end = match self.pacer.ended(&report.contact_id, report.result, now) {
            Some(end) => end,
            // Not dialed by this run (cannot happen short of a bug): failed, so the contact
            // is not left dialing forever.
            None => ContactEnd {
                status: ContactStatus::Failed,
                attempts: 1,
                next_at: None,
                last_result: report.result.as_str().to_owned(),
            },
        };
        (report.contact_id, end)
    }

    async fn store_end(
        &self,
        id: &str,
        end: &ContactEnd,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.core.store.end_contact_attempt(id, end, now).await
    }

    async fn settled(&mut self) {}

    async fn on_note(&mut self, note: Infallible) {
        match note {}
    }
}

impl CampaignWork {
    /// Takes the contact the pacer planned and hands its call to call control; false when
    /// call control has stopped.
    async fn place(
        &mut self,
        dial: Dial,
        look: &CampaignLook,
        campaign: &Campaign,
        now: Timestamp,
    ) -> bool {
        self.pacer.started(&dial, &look.policy);
        let store = &self.core.store;
        match store
            .claim_contact(&dial.contact, &self.core.node, false, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.pacer.dropped(&dial.contact);
                return true;
            }
            Err(e) => {
                warn!(contact = %dial.contact, "campaign contact not taken for dialing: {e}");
                self.pacer.dropped(&dial.contact);
                return true;
            }
        }
        let head = format!("campaign {}: {}", campaign.name, dial.number);
        let label = self.core.label(head, &dial.number);
        info!(campaign = %dial.campaign, contact = %dial.contact, number = %dial.number, agent = %dial.agent, attempt = dial.attempts + 1, "campaign call: offering it to the agent");
        let queue = Some(campaign.queue.clone());
        let req = DialRequest {
            campaign: Some(CampaignDial {
                campaign_id: dial.campaign,
                contact_id: dial.contact,
                report: self.core.reports.clone(),
            }),
            ..dialer::request(
                OutboundKind::Campaign,
                dial.agent,
                dial.number,
                queue,
                label,
            )
        };
        self.core.place(req)
    }

    /// What the pacer needs of `campaign` now: its free agents and due contacts (numbers on
    /// the do-not-call list set aside as `dnc`). `None` when nothing can be dialed; a campaign
    /// with no contact left open is `finished`.
    async fn look(&mut self, campaign: &Campaign, now: Timestamp) -> Option<CampaignLook> {
        let policy = policy(campaign, &self.base);
        if !policy.in_window(now) {
            return None;
        }
        let free = self.core.free_agents(&campaign.queue);
        let limit = u32::try_from(free.len())
            .unwrap_or(u32::MAX)
            .saturating_add(8);
        let due = match self.core.store.due_contacts(&campaign.id, now, limit).await {
            Ok(d) => d,
            Err(e) => {
                debug!(campaign = %campaign.id, "campaign contacts not read: {e}");
                return None;
            }
        };
        if due.is_empty() {
            self.finish_if_done(campaign, now).await;
            return None;
        }
        if free.is_empty() {
            return None; // Nobody free: the contacts wait for the next look.
        }
        let mut dialable = Vec::new();
        for c in due {
            match self.core.store.dnc(&c.number).await {
                Ok(None) => dialable.push(DueContact {
                    id: c.id,
                    number: c.number,
                    attempts: c.attempts,
                    next_at: c.next_at,
                }),
                Ok(Some(_)) => match self
                    .core
                    .store
                    .claim_contact(&c.id, &self.core.node, true, now)
                    .await
                {
                    Ok(true) => {
                        info!(campaign = %campaign.id, number = %c.number, "campaign contact not dialed: the number is on the do-not-call list")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(contact = %c.id, "campaign contact on the do-not-call list not set aside yet: {e}")
                    }
                },
                Err(e) => {
                    // Nothing is dialed unchecked.
                    warn!(campaign = %campaign.id, "do-not-call list not read; the campaign waits: {e}");
                    return None;
                }
            }
        }
        Some(CampaignLook {
            id: campaign.id.clone(),
            policy,
            free_agents: free,
            due: dialable,
        })
    }

    /// A running campaign with no contact pending or being dialed is `finished`.
    async fn finish_if_done(&self, campaign: &Campaign, now: Timestamp) {
        match self.core.store.open_contacts(&campaign.id).await {
            Ok(0) => {
                let moved = self
                    .core
                    .store
                    .set_campaign_status(
                        &campaign.id,
                        &[CampaignStatus::Running],
                        CampaignStatus::Finished,
                        now,
                    )
                    .await;
                match moved {
                    Ok(true) => {
                        info!(campaign = %campaign.id, name = %campaign.name, "campaign finished: every contact was called or set aside")
                    }
                    Ok(false) => {}
                    Err(e) => debug!(campaign = %campaign.id, "campaign not finished yet: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => debug!(campaign = %campaign.id, "campaign contacts not counted: {e}"),
        }
    }
}
