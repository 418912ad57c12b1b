//! The campaign dialer: works through the contacts of running campaigns (tables `campaigns`
//! and `campaign_contacts`) and carries out the pacer's decisions ([`plan`]): every second,
//! for each running campaign inside its calling window, as many due contacts as its queue has
//! free agents are taken (`dialing`) and handed to call control as agent-first outbound calls
//! of kind `campaign`; each attempt's result comes back on a channel and the contact moves on
//! (done, a retry, failed). A contact whose number is on the do-not-call list becomes `dnc`
//! and is never dialed. Contacts left `dialing` by a server that stopped are put back to
//! `pending` at start, so a campaign survives a restart.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use switchboard_engine::Engine;
use switchboard_store::{
    Campaign, CampaignStatus, ContactEnd, Store, Timestamp, new_record_id, now_utc,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::callbacks::Requeued;
use crate::callbacks::plan::{AttemptResult, Policy, parse_hhmm};
use crate::calls::{CallInput, DialRequest, OutboundKind};
use crate::config::Config;
use plan::{CampaignLook, DueContact, Pacer};

/// How often the dialer looks at the running campaigns.
pub const TICK: Duration = Duration::from_secs(1);

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

/// The dialer task's state.
#[derive(Debug)]
pub struct Dialer {
    store: Store,
    engine: Arc<Engine>,
    config: Arc<Config>,
    base: Policy,
    inputs: mpsc::UnboundedSender<CallInput>,
    reports_tx: mpsc::UnboundedSender<ContactReport>,
    reports_rx: mpsc::UnboundedReceiver<ContactReport>,
    pacer: Pacer,
    /// Results not yet stored (the database was unreachable); retried every tick.
    unsaved: Vec<(String, ContactEnd)>,
    requeued: Requeued,
    /// This server's name: the contacts it takes carry it, so that a restart puts back only
    /// its own attempts (nodes sharing one database).
    node: String,
}

impl Dialer {
    pub fn new(
        store: Store,
        engine: Arc<Engine>,
        config: Arc<Config>,
        inputs: mpsc::UnboundedSender<CallInput>,
    ) -> Dialer {
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Dialer {
            node: crate::ops::journal::node_name(&config),
            base: config.callbacks.policy(&config.routing.timezone),
            store,
            engine,
            config,
            inputs,
            reports_tx,
            reports_rx,
            pacer: Pacer::default(),
            unsaved: Vec::new(),
            requeued: Requeued::default(),
        }
    }

    /// Runs until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                Some(report) = self.reports_rx.recv() => self.on_report(report).await,
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    async fn tick(&mut self) {
        let now = now_utc();
        let requeue = self.store.requeue_dialing_contacts(&self.node, now);
        if !self.requeued.once("campaign contacts", requeue).await {
            return;
        }
        self.save_unsaved(now).await;
        if !self.config.trunks.iter().any(|t| t.outbound.is_some()) {
            return; // Nowhere to dial: campaigns stay as they are.
        }
        let running = match self.store.running_campaigns().await {
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
            self.pacer.started(&dial, &look.policy);
            match self
                .store
                .claim_contact(&dial.contact, &self.node, false, now)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    self.pacer.dropped(&dial.contact);
                    continue;
                }
                Err(e) => {
                    warn!(contact = %dial.contact, "campaign contact not taken for dialing: {e}");
                    self.pacer.dropped(&dial.contact);
                    continue;
                }
            }
            let name = running
                .iter()
                .find(|c| c.id == dial.campaign)
                .map_or("", |c| c.name.as_str());
            let label = match self.store.clients().get(&dial.number) {
                Some(client) => format!("campaign {name}: {}, client {}", dial.number, client.name),
                None => format!("campaign {name}: {}", dial.number),
            };
            info!(campaign = %dial.campaign, contact = %dial.contact, number = %dial.number, agent = %dial.agent, attempt = dial.attempts + 1, "campaign call: offering it to the agent");
            let queue = running
                .iter()
                .find(|c| c.id == dial.campaign)
                .map(|c| c.queue.clone());
            let req = DialRequest {
                record_id: new_record_id(),
                agent: dial.agent,
                number: dial.number,
                queue,
                kind: OutboundKind::Campaign,
                callback_id: None,
                label: Some(label),
                report: None,
                place: None,
                campaign: Some(CampaignDial {
                    campaign_id: dial.campaign,
                    contact_id: dial.contact,
                    report: self.reports_tx.clone(),
                }),
            };
            if self.inputs.send(CallInput::Dial(Box::new(req))).is_err() {
                // Call control has stopped (shutdown): the contact stays `dialing` and is put
                // back to `pending` at the next start.
                return;
            }
        }
    }

    /// What the pacer needs of `campaign` now: its free agents and due contacts (numbers on
    /// the do-not-call list set aside as `dnc`). `None` when nothing can be dialed; a campaign
    /// with no contact left open is `finished`.
    async fn look(&mut self, campaign: &Campaign, now: Timestamp) -> Option<CampaignLook> {
        let policy = policy(campaign, &self.base);
        if !policy.in_window(now) {
            return None;
        }
        let free = crate::callbacks::free_agents(&self.config, &self.engine, &campaign.queue);
        let limit = u32::try_from(free.len())
            .unwrap_or(u32::MAX)
            .saturating_add(8);
        let due = match self.store.due_contacts(&campaign.id, now, limit).await {
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
            match self.store.dnc(&c.number).await {
                Ok(None) => dialable.push(DueContact {
                    id: c.id,
                    number: c.number,
                    attempts: c.attempts,
                    next_at: c.next_at,
                }),
                Ok(Some(_)) => match self.store.claim_contact(&c.id, &self.node, true, now).await {
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
        match self.store.open_contacts(&campaign.id).await {
            Ok(0) => {
                let moved = self
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

    async fn on_report(&mut self, report: ContactReport) {
        let now = now_utc();
        let end = match self.pacer.ended(&report.contact_id, report.result, now) {
            Some(end) => end,
            // Not dialed by this run (cannot happen short of a bug): failed, so the contact
            // is not left dialing forever.
            None => ContactEnd {
                status: switchboard_store::ContactStatus::Failed,
                attempts: 1,
                next_at: None,
                last_result: report.result.as_str().to_owned(),
            },
        };
        info!(
            contact = %report.contact_id,
            result = report.result.as_str(),
            status = end.status.as_str(),
            attempts = end.attempts,
            next_at = ?end.next_at,
            "campaign call ended"
        );
        self.unsaved.push((report.contact_id, end));
        self.save_unsaved(now).await;
    }

    async fn save_unsaved(&mut self, now: Timestamp) {
        let mut left = Vec::new();
        for (id, end) in std::mem::take(&mut self.unsaved) {
            if let Err(e) = self.store.end_contact_attempt(&id, &end, now).await {
                warn!(%id, "campaign contact result not stored yet (retried): {e}");
                left.push((id, end));
            }
        }
        self.unsaved = left;
    }
}
