//! The progressive dialer's decisions, pure: which contacts to dial now and with which agent,
//! and what follows an attempt. No I/O and no clock: `now` and the free agents are passed in,
//! so the tests below run whole campaigns in virtual time.
//!
//! Progressive pacing: one call per free agent, never more. An agent reserved for a campaign
//! call stays counted as busy by the pacer until the attempt's result comes back, even while
//! the engine has not reserved it yet, so campaign calls in flight never outnumber the agents
//! that were free for them. Retries, `max_attempts` and the calling window follow the
//! call-back schedule ([`crate::callbacks::plan::Policy`]), with the campaign's own values.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use switchboard_store::{CallbackStatus, ContactEnd, ContactStatus};

use crate::callbacks::plan::{AttemptResult, Due, Policy};

/// A campaign as the pacer sees it on one look.
#[derive(Debug, Clone)]
pub struct CampaignLook {
    pub id: String,
    pub policy: Policy,
    /// The free agents of its queue, idle longest first.
    pub free_agents: Vec<String>,
    /// Its pending contacts, in dialing order.
    pub due: Vec<DueContact>,
}

/// A pending contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueContact {
    pub id: String,
    pub number: String,
    pub attempts: u32,
    pub next_at: Option<DateTime<Utc>>,
}

/// A call to make: `contact` of `campaign`, with `agent` on the line first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub campaign: String,
    pub contact: String,
    pub number: String,
    pub agent: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

#[derive(Debug, Clone)]
struct InFlight {
    agent: String,
    attempts: u32,
    policy: Policy,
}

/// The campaign calls in flight and the pacing decision.
#[derive(Debug, Default)]
pub struct Pacer {
    /// By contact id.
    in_flight: HashMap<String, InFlight>,
}

impl Pacer {
    /// Campaign calls in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The calls to make at `now`: campaigns in turn, each due contact with a free agent of
    /// its queue that no call in flight holds; nothing outside a campaign's window.
    pub fn plan(&self, now: DateTime<Utc>, campaigns: &[CampaignLook]) -> Vec<Dial> {
        let mut taken: HashSet<&str> = self.in_flight.values().map(|f| f.agent.as_str()).collect();
        let mut queues: Vec<(&CampaignLook, std::vec::IntoIter<&DueContact>)> = campaigns
            .iter()
            .filter(|c| c.policy.in_window(now))
            .map(|c| {
                let due: Vec<&DueContact> = c
                    .due
                    .iter()
                    .filter(|d| !self.in_flight.contains_key(&d.id))
                    // Contacts never expire (`expire_after` is `None`), so the time their
                    // validity counts from does not matter: `now`.
                    .filter(|d| c.policy.due(now, d.next_at, now) == Due::Now)
                    .collect();
                (c, due.into_iter())
            })
            .collect();
        let mut dials = Vec::new();
        // Round robin over the campaigns, so one long list does not starve another sharing
        // its agents.
        loop {
            let mut progressed = false;
            for (campaign, due) in &mut queues {
                let Some(agent) = campaign
                    .free_agents
                    .iter()
                    .find(|a| !taken.contains(a.as_str()))
                else {
                    continue;
                };
                let Some(contact) = due.next() else {
                    continue;
                };
                taken.insert(agent.as_str());
                dials.push(Dial {
                    campaign: campaign.id.clone(),
                    contact: contact.id.clone(),
                    number: contact.number.clone(),
                    agent: agent.clone(),
                    attempts: contact.attempts,
                });
                progressed = true;
            }
            if !progressed {
                return dials;
            }
        }
    }

    /// A planned call was handed to call control.
    pub fn started(&mut self, dial: &Dial, policy: &Policy) {
        self.in_flight.insert(
            dial.contact.clone(),
            InFlight {
                agent: dial.agent.clone(),
                attempts: dial.attempts,
                policy: policy.clone(),
            },
        );
    }

    /// A planned call was not made (the contact was taken meanwhile): its agent is free.
    pub fn dropped(&mut self, contact: &str) {
        self.in_flight.remove(contact);
    }

    /// The attempt on `contact` ended with `result` at `now`: the contact's next state.
    /// `None` when the contact was not in flight here (its end is decided from the stored
    /// row instead, see [`after`]).
    pub fn ended(
        &mut self,
        contact: &str,
        result: AttemptResult,
        now: DateTime<Utc>,
    ) -> Option<ContactEnd> {
        let f = self.in_flight.remove(contact)?;
        Some(after(&f.policy, f.attempts, result, now))
    }
}

/// What follows an attempt that ended with `result`, `attempts` having been made before it:
/// the call-back schedule's decision, in contact states.
pub fn after(
    policy: &Policy,
    attempts: u32,
    result: AttemptResult,
    now: DateTime<Utc>,
) -> ContactEnd {
    // A campaign's policy has no expiry: the time asked for is not used.
    let next = policy.after(attempts, result, now, now);
    let status = match next.status {
        CallbackStatus::Done => ContactStatus::Done,
        CallbackStatus::Pending => ContactStatus::Pending,
        _ => ContactStatus::Failed,
    };
    ContactEnd {
        status,
        attempts: next.attempts,
        next_at: next.next_at,
        last_result: result.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::callbacks::plan::parse_hhmm;

    fn policy(window: Option<(&str, &str)>) -> Policy {
        Policy {
            max_attempts: 2,
            retry_after: Duration::from_secs(60),
            window: window.map(|(a, b)| (parse_hhmm(a).unwrap(), parse_hhmm(b).unwrap())),
            zone: "Europe/Zagreb".parse().unwrap(),
            expire_after: None,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// One campaign's contacts as the store keeps them, in virtual time.
    #[derive(Debug, Clone)]
    struct Row {
        id: String,
        status: ContactStatus,
        attempts: u32,
        next_at: Option<DateTime<Utc>>,
        last_result: Option<String>,
    }

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                id: format!("c{i}"),
                status: ContactStatus::Pending,
                attempts: 0,
                next_at: None,
                last_result: None,
            })
            .collect()
    }

    fn look(id: &str, p: &Policy, free: &[&str], rows: &[Row]) -> CampaignLook {
        CampaignLook {
            id: id.into(),
            policy: p.clone(),
            free_agents: free.iter().map(|a| (*a).to_owned()).collect(),
            due: rows
                .iter()
                .filter(|r| r.status == ContactStatus::Pending)
                .map(|r| DueContact {
                    id: r.id.clone(),
                    number: format!("+38591555{}", r.id),
                    attempts: r.attempts,
                    next_at: r.next_at,
                })
                .collect(),
        }
    }

    fn apply(rows: &mut [Row], contact: &str, end: ContactEnd) {
        let r = rows.iter_mut().find(|r| r.id == contact).unwrap();
        r.status = end.status;
        r.attempts = end.attempts;
        r.next_at = end.next_at;
        r.last_result = Some(end.last_result);
    }

    #[test]
    fn a_campaign_never_has_more_calls_in_flight_than_free_agents() {
        // Two agents, seven contacts; every call takes 30 s of virtual time; the agents'
        // availability changes on the way (one goes on break for a minute).
        let p = policy(None);
        let mut pacer = Pacer::default();
        let mut contacts = rows(7);
        let agents = ["ana", "marko"];
        let t0 = utc("2026-03-02T10:00:00Z");
        // (ends at, contact, agent)
        let mut calls: Vec<(DateTime<Utc>, String, String)> = Vec::new();
        let mut peak = 0;
        for tick in 0..600 {
            let now = t0 + Duration::from_secs(tick);
            // Calls ending now free their agents (answered: the contact is done).
            let (ended, running): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.0 <= now);
            calls = running;
            for (_, contact, _) in ended {
                let end = pacer.ended(&contact, AttemptResult::Answered, now).unwrap();
                apply(&mut contacts, &contact, end);
            }
            let on_break = (60..120).contains(&tick);
            // Free: not talking, not on break (as the engine would report them).
            let free: Vec<&str> = agents
                .iter()
                .copied()
                .filter(|a| !calls.iter().any(|c| c.2 == *a))
                .filter(|a| !(on_break && *a == "marko"))
                .collect();
            let dials = pacer.plan(now, &[look("k", &p, &free, &contacts)]);
            assert!(dials.len() <= free.len(), "{dials:?} with {free:?} free");
            for d in dials {
                assert!(free.contains(&d.agent.as_str()));
                pacer.started(&d, &p);
                let r = contacts.iter_mut().find(|r| r.id == d.contact).unwrap();
                r.status = ContactStatus::Dialing;
                calls.push((now + Duration::from_secs(30), d.contact, d.agent));
            }
            assert!(calls.len() <= agents.len());
            assert_eq!(pacer.in_flight(), calls.len());
            peak = peak.max(calls.len());
        }
        // Progressive, not one at a time: both agents were used.
        assert_eq!(peak, 2);
        assert!(
            contacts.iter().all(|r| r.status == ContactStatus::Done),
            "{contacts:?}"
        );
    }

    #[test]
    fn an_agent_held_by_a_call_in_flight_is_not_given_a_second_one() {
        // The engine may still report ana available for a moment after she was reserved.
        let p = policy(None);
        let mut pacer = Pacer::default();
        let contacts = rows(3);
        let now = utc("2026-03-02T10:00:00Z");
        let first = pacer.plan(now, &[look("k", &p, &["ana"], &contacts)]);
        assert_eq!(first.len(), 1);
        pacer.started(&first[0], &p);
        assert!(
            pacer
                .plan(now, &[look("k", &p, &["ana"], &contacts)])
                .is_empty()
        );
        // Another campaign over the same queue does not get her either, but gets marko.
        let dials = pacer.plan(
            now,
            &[
                look("k", &p, &["ana"], &contacts),
                look("other", &p, &["ana", "marko"], &rows(2)),
            ],
        );
        assert_eq!(dials.len(), 1);
        assert_eq!(
            (dials[0].campaign.as_str(), dials[0].agent.as_str()),
            ("other", "marko")
        );
        // A dropped dial frees the agent.
        pacer.dropped(&first[0].contact);
        assert_eq!(
            pacer.plan(now, &[look("k", &p, &["ana"], &contacts)]).len(),
            1
        );
    }

    #[test]
    fn campaigns_sharing_agents_take_turns() {
        let p = policy(None);
        let pacer = Pacer::default();
        let now = utc("2026-03-02T10:00:00Z");
        let dials = pacer.plan(
            now,
            &[
                look("a", &p, &["x", "y", "z"], &rows(5)),
                look("b", &p, &["x", "y", "z"], &rows(5)),
            ],
        );
        let order: Vec<&str> = dials.iter().map(|d| d.campaign.as_str()).collect();
        assert_eq!(order, ["a", "b", "a"]);
    }

    #[test]
    fn busy_contacts_are_retried_after_the_delay_then_failed() {
        let p = policy(None);
        let mut pacer = Pacer::default();
        let mut contacts = rows(1);
        let t0 = utc("2026-03-02T10:00:00Z");
        let d = pacer
            .plan(t0, &[look("k", &p, &["ana"], &contacts)])
            .remove(0);
        pacer.started(&d, &p);
        let end = pacer.ended(&d.contact, AttemptResult::Busy, t0).unwrap();
        assert_eq!(
            end,
            ContactEnd {
                status: ContactStatus::Pending,
                attempts: 1,
                next_at: Some(t0 + Duration::from_secs(60)),
                last_result: "busy".into(),
            }
        );
        apply(&mut contacts, &d.contact, end);
        // Not before the retry time, with the agent free all along.
        let before = t0 + Duration::from_secs(59);
        assert!(
            pacer
                .plan(before, &[look("k", &p, &["ana"], &contacts)])
                .is_empty()
        );
        let at = t0 + Duration::from_secs(60);
        let d = pacer
            .plan(at, &[look("k", &p, &["ana"], &contacts)])
            .remove(0);
        assert_eq!(d.attempts, 1);
        pacer.started(&d, &p);
        let end = pacer
            .ended(&d.contact, AttemptResult::NoAnswer, at)
            .unwrap();
        assert_eq!((end.status, end.attempts), (ContactStatus::Failed, 2));
        apply(&mut contacts, &d.contact, end);
        assert!(
            pacer
                .plan(
                    at + Duration::from_secs(3600),
                    &[look("k", &p, &["ana"], &contacts)]
                )
                .is_empty()
        );
        // An agent who did not take the call costs the contact no attempt.
        let e = after(&p, 1, AttemptResult::AgentNoAnswer, at);
        assert_eq!((e.status, e.attempts), (ContactStatus::Pending, 1));
        // Unknown contacts (a result after a restart) are not the pacer's.
        assert_eq!(pacer.ended("nobody", AttemptResult::Answered, at), None);
    }

    #[test]
    fn nobody_is_dialed_outside_the_campaign_window() {
        // 09:00–17:00 in Zagreb (UTC+1 in March).
        let p = policy(Some(("09:00", "17:00")));
        let pacer = Pacer::default();
        let contacts = rows(2);
        let early = utc("2026-03-02T07:59:00Z");
        assert!(
            pacer
                .plan(early, &[look("k", &p, &["ana"], &contacts)])
                .is_empty()
        );
        let open = utc("2026-03-02T08:00:00Z");
        assert_eq!(
            pacer
                .plan(open, &[look("k", &p, &["ana"], &contacts)])
                .len(),
            1
        );
        let closed = utc("2026-03-02T16:00:00Z");
        assert!(
            pacer
                .plan(closed, &[look("k", &p, &["ana"], &contacts)])
                .is_empty()
        );
    }
}
