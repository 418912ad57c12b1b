//! What call control writes down: call-detail records (one per call segment, one per
//! refused INVITE), queue events and agent-state records, all through the store's
//! non-blocking [`RecordSink`](switchboard_store::RecordSink), plus the matching metrics and
//! live events.

use std::net::IpAddr;
use switchboard_engine::{AgentIdx, AgentStateKind, CallId, HangupSide, Purpose, Time};

use switchboard_sip::{Endpoint, Instant};
use switchboard_sipmsg::Request;
use switchboard_store::{
    CallRecord, Direction, HangupSide as CdrHangup, Outcome as CdrOutcome, QueueEvent,
    QueueEventKind,
};
use tracing::{debug, info, warn};

use super::state::{Call, Ended, Phase, SegmentEnd};
use super::{Calls, millis_between, timestamp};
use crate::calls::media::CallMediaStats;
use crate::http::events::LiveEvent;

/// A call that ended where it began, before any dialog or queue: refused (`rejected`) or
/// routed nowhere (`no_agent`). One record, started and ended at the same instant.
#[derive(Debug, Clone)]
pub(super) struct Refused<'a> {
    /// `None` when the source is no trunk's.
    pub trunk: Option<&'a str>,
    pub caller: &'a str,
    pub client_number: &'a str,
    pub dialed: &'a str,
    pub sip_call_id: &'a str,
    /// Class and purpose, when the call got as far as classification.
    pub class: Option<&'a str>,
    pub purpose: Option<Purpose>,
    pub outcome: CdrOutcome,
    /// Why, for the record's `route` (e.g. `rejected: 420 Bad Extension`).
    pub route: String,
}

impl Calls {
    /// The CDR of a call segment in progress (a transfer), with media counts so far.
    pub(super) fn write_cdr(&self, now: Instant, key: u64, end: &SegmentEnd) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let stats = call.media.stats();
        self.record_segment(now, call, end, &stats);
    }

    /// Writes one call-detail record, counts it in the metrics, logs it and tells the live
    /// event stream.
    pub(super) fn record_segment(
        &self,
        now: Instant,
        call: &Call,
        end: &SegmentEnd,
        stats: &CallMediaStats,
    ) {
        let key = call.key;
        let (outcome, side) = (end.outcome, end.side);
        let wait_ms = millis_between(call.queued_at, call.answered_at.unwrap_or(now));
        let talk_ms = call.answered_at.map_or(0, |a| millis_between(a, now));
        let agent_id = end.agent.clone();
        let queue_label = call.queue.clone().unwrap_or_else(|| "none".to_owned());
        self.metrics
            .calls_total
            .with_label_values(&[&queue_label, outcome.as_str()])
            .inc();
        self.metrics
            .wait_seconds
            .with_label_values(&[&queue_label])
            .observe(wait_ms as f64 / 1000.0);
        if call.answered_at.is_some() {
            self.metrics
                .talk_seconds
                .with_label_values(&[&queue_label])
                .observe(talk_ms as f64 / 1000.0);
        }
        info!(
            call = key,
            outcome = outcome.as_str(),
            hangup = side.as_str(),
            agent = agent_id.as_deref().unwrap_or("-"),
            wait_ms,
            talk_ms,
            caller_rtp_in = stats.caller_in,
            caller_rtp_out = stats.caller_out,
            agent_rtp_in = stats.agent_in,
            agent_rtp_out = stats.agent_out,
            route = %call.route,
            "call ended"
        );
        self.events.send(LiveEvent::CallEnded {
            call: key,
            outcome: outcome.as_str().to_owned(),
            hangup_side: side.as_str().to_owned(),
        });
        let record = self.call_record(now, call, end, stats);
        if let Err(e) = self.records.send(record) {
            warn!(call = key, "call record not accepted: {e}");
        }
    }

    /// The call's record as it stands at `now`, ended as `end` says.
    fn call_record(
        &self,
        now: Instant,
        call: &Call,
        end: &SegmentEnd,
        stats: &CallMediaStats,
    ) -> CallRecord {
        CallRecord {
            sip_call_id: call.caller_leg.sip_call_id.clone(),
            trunk: Some(call.trunk.clone()),
            client_class: Some(call.class.clone()),
            purpose: Some(call.purpose.as_str().to_owned()),
            queue: call.queue.clone(),
            agent_id: end.agent.clone(),
            hangup_side: end.side,
            callback_id: call.callback_id.clone(),
            ..ended_after(
                now,
                call.record_id.clone(),
                Direction::Inbound,
                (call.started_at, call.queued_at, call.answered_at),
                stats,
                (
                    call.caller.clone(),
                    call.dialed.clone(),
                    call.client_number.clone(),
                ),
                (end.outcome, call.route.clone()),
            )
        }
    }

    /// Journals call `key` in progress (its start, its answer): a `kill -9` leaves this row,
    /// closed as `interrupted` at the next start.
    pub(super) fn journal(&self, now: Instant, key: u64) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let agent = match &call.phase {
            Phase::Talking(b) => self.engine.agent_id(b.agent).map(str::to_owned),
            _ => None,
        };
        let end = SegmentEnd {
            agent,
            outcome: CdrOutcome::Interrupted,
            side: CdrHangup::System,
        };
        let record = self.call_record(now, call, &end, &call.media.stats());
        let row = crate::ops::journal::journal_row(record, &self.journal_node);
        if let Err(e) = self.records.send(row) {
            warn!(call = key, "call journal not accepted: {e}");
        }
    }

    /// A queue event of call `key` written by call control itself (TRANSFER).
    pub(super) fn write_queue_event(
        &self,
        now: Instant,
        key: u64,
        kind: QueueEventKind,
        agent: Option<String>,
        data: Option<String>,
    ) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        self.send_queue_event(
            now,
            call.record_id.clone(),
            call.queue.clone(),
            agent,
            kind,
            data,
        );
    }

    /// One `queue_events` row of record `call_id` (queue `none` outside queues).
    pub(super) fn send_queue_event(
        &self,
        now: Instant,
        call_id: String,
        queue: Option<String>,
        agent_id: Option<String>,
        event: QueueEventKind,
        data: Option<String>,
    ) {
        let record = QueueEvent {
            id: switchboard_store::new_record_id(),
            at: timestamp(now),
            call_id,
            queue: queue.unwrap_or_else(|| "none".to_owned()),
            agent_id,
            event,
            data,
        };
        if let Err(e) = self.records.send(record) {
            warn!("queue event not accepted: {e}");
        }
    }

    /// The record of a call that ended where it began (see [`Refused`]).
    pub(super) fn write_refused(&self, now: Instant, r: Refused<'_>) {
        info!(call_id = %r.sip_call_id, caller = %r.caller, trunk = r.trunk.unwrap_or("-"), outcome = r.outcome.as_str(), route = %r.route, "refused before a dialog: recorded");
        self.store_refused(now, r, switchboard_store::new_record_id());
    }

    /// A new INVITE the endpoint refused with its stateless `503` because the transaction
    /// table was full (`sip.max_transactions`): recorded as `rejected` like every refusal
    /// before a dialog (PRODUCT §4). Kept cheap for a flood: the trunk is found by source
    /// network only (no digest, no directory lookup), the line is DEBUG (the refusals are
    /// counted in `switchboard_sip_refused_total{reason="overload"}`), and the record goes
    /// into the sink's queue, which its writer stores in batches. The id derives from the
    /// request, so a retransmission refused again is stored once.
    ///
    /// A flood that fills half the record queue is no longer recorded (only counted, with
    /// one WARN line), so the records of real calls always find room.
    pub(super) fn write_overload_refusal(&mut self, now: Instant, req: &Request, src: IpAddr) {
        let spare = self.records.has_spare_room();
        if spare != self.recording_overload {
            self.recording_overload = spare;
            if spare {
                info!("refusals of the overload are recorded again");
            } else {
                warn!(
                    "record queue half full: refusals of the overload are counted, no longer recorded, until it drains"
                );
            }
        }
        if !spare {
            return;
        }
        let caller = super::inbound::caller_number(req);
        let trunk = self
            .trunks
            .iter()
            .find(|t| t.allow.iter().any(|net| net.contains(&src)));
        let sip_call_id = req.call_id().unwrap_or_default();
        debug!(call_id = %sip_call_id, %src, "INVITE refused by overload (503): recorded");
        let refused = Refused {
            trunk: trunk.map(|t| t.name.as_str()),
            caller: &caller,
            client_number: &self.numbers.normalize(&caller),
            dialed: req.uri.user.as_deref().unwrap_or_default(),
            sip_call_id,
            class: None,
            purpose: None,
            outcome: CdrOutcome::Rejected,
            route: "rejected: 503 Service Unavailable (overload)".to_owned(),
        };
        self.store_refused(now, refused, request_record_id(req));
    }

    /// Counts and stores the record of a refused call under `id`.
    fn store_refused(&self, now: Instant, r: Refused<'_>, id: String) {
        self.metrics
            .calls_total
            .with_label_values(&["none", r.outcome.as_str()])
            .inc();
        let record = CallRecord {
            sip_call_id: r.sip_call_id.to_owned(),
            trunk: r.trunk.map(str::to_owned),
            client_class: r.class.map(str::to_owned),
            purpose: r.purpose.map(|p| p.as_str().to_owned()),
            ..ended_at_once(
                now,
                id,
                Direction::Inbound,
                (
                    r.caller.to_owned(),
                    r.dialed.to_owned(),
                    r.client_number.to_owned(),
                ),
                (r.outcome, r.route),
            )
        };
        if let Err(e) = self.records.send(record) {
            warn!("call record not accepted: {e}");
        }
    }

    pub(super) fn on_engine_event(
        &mut self,
        ep: &mut Endpoint,
        now: Instant,
        event: switchboard_engine::Event,
    ) {
        use switchboard_engine::Event as E;
        let (call, kind, agent, queue, data) = match &event {
            E::CallEnqueued { call, queue, .. } => {
                (*call, QueueEventKind::EnterQueue, None, *queue, None)
            }
            E::CallNotAnswered {
                call,
                agent,
                rejected,
                ..
            } => (
                *call,
                QueueEventKind::RingNoAnswer,
                Some(*agent),
                None,
                Some(if *rejected { "rejected" } else { "no answer" }.to_owned()),
            ),
            E::CallAnswered {
                call,
                agent,
                queue,
                wait_ms,
                ..
            } => (
                *call,
                QueueEventKind::Connect,
                Some(*agent),
                *queue,
                Some(format!("{wait_ms}")),
            ),
            E::CallEnded {
                call,
                agent,
                talk_ms,
                side,
                ..
            } => (
                *call,
                match side {
                    HangupSide::Agent => QueueEventKind::CompleteAgent,
                    _ => QueueEventKind::CompleteCaller,
                },
                Some(*agent),
                None,
                Some(format!("{talk_ms}")),
            ),
            E::CallAbandoned { call, wait_ms, .. } => (
                *call,
                QueueEventKind::Abandon,
                None,
                None,
                Some(format!("{wait_ms}")),
            ),
            E::CallOverflowed { call, queue, .. } => (
                *call,
                QueueEventKind::ExitWithTimeout,
                None,
                Some(*queue),
                None,
            ),
            E::CallTimedOut {
                call,
                queue,
                wait_ms,
                ..
            } => (
                *call,
                QueueEventKind::ExitWithTimeout,
                None,
                *queue,
                Some(format!("timeout {wait_ms}")),
            ),
            E::DailyCountersReset { at } => {
                crate::routing::daily::schedule_next_reset(&self.engine, *at, self.day_zone);
                return;
            }
            E::AgentStateChanged {
                agent,
                from,
                to,
                at,
            } => {
                if *from == AgentStateKind::Ringing
                    && !matches!(to, AgentStateKind::Ringing | AgentStateKind::OnCall)
                {
                    self.stop_ringing(ep, now, *agent);
                }
                self.agent_state_changed(*agent, *from, *to, *at);
                return;
            }
            // Written by call control when the caller asks (EXITWITHKEY with the position).
            E::CallOffered { .. } | E::PlaceHeld { .. } => return,
        };
        let Some(key) = self.by_engine.get(&call).copied() else {
            // Events after the call ended (COMPLETE*, ABANDON) still belong to its record.
            self.write_queue_event_detached(now, call, kind, agent, queue, data);
            return;
        };
        if self.outbound.contains_key(&key) {
            // An outbound call whose agent never became free in time: give up.
            if let E::CallTimedOut { .. } = event {
                info!(
                    call = key,
                    "outbound call: the agent did not become free in time"
                );
                self.end_outbound(
                    ep,
                    now,
                    key,
                    super::outbound::OutResult::AgentNoAnswer,
                    CdrHangup::System,
                );
            }
            return;
        }
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let queue_name = queue
            .and_then(|q| self.engine.queue_name(q))
            .map(str::to_owned);
        // The record names the first queue the call waited in, even when no agent was ever
        // offered it (a caller who leaves, a call that times out).
        if c.queue.is_none() {
            c.queue.clone_from(&queue_name);
        }
        let queue_name = queue_name.or_else(|| c.queue.clone());
        let record_id = c.record_id.clone();
        if let E::CallTimedOut { route, .. } = &event {
            // Every step it reached and why none served: the record explains the timeout.
            c.route.clone_from(route);
        }
        let agent = agent
            .and_then(|a| self.engine.agent_id(a))
            .map(str::to_owned);
        self.send_queue_event(now, record_id, queue_name, agent, kind, data);
        if let E::CallTimedOut { wait_ms, route, .. } = event {
            info!(
                call = key,
                wait_ms,
                %route,
                "waited as long as the route chain allows: timeout"
            );
            self.end_call(ep, now, key, Ended::Timeout);
        }
    }

    fn write_queue_event_detached(
        &mut self,
        now: Instant,
        call: CallId,
        kind: QueueEventKind,
        agent: Option<AgentIdx>,
        queue: Option<switchboard_engine::QueueIdx>,
        data: Option<String>,
    ) {
        // The engine reports a call's last events (COMPLETE*, ABANDON) after call control has
        // ended it: they belong to the record of the finished call.
        let finished = if matches!(
            kind,
            QueueEventKind::CompleteAgent
                | QueueEventKind::CompleteCaller
                | QueueEventKind::Abandon
        ) {
            self.finished.remove(&call)
        } else {
            self.finished.get(&call).cloned()
        };
        let Some((record_id, last_queue)) = finished else {
            debug!(call = %call, "queue event for an unknown call dropped");
            return;
        };
        let queue = queue
            .and_then(|q| self.engine.queue_name(q))
            .map(str::to_owned)
            .or(last_queue);
        let agent = agent
            .and_then(|a| self.engine.agent_id(a))
            .map(str::to_owned);
        self.send_queue_event(now, record_id, queue, agent, kind, data);
    }

    fn agent_state_changed(
        &self,
        agent: AgentIdx,
        from: AgentStateKind,
        to: AgentStateKind,
        _at: Time,
    ) {
        let id = self.engine.agent_id(agent).unwrap_or_default().to_owned();
        debug!(agent = %id, from = ?from, to = ?to, "agent state");
        self.events.send(LiveEvent::AgentState {
            agent: id.clone(),
            state: to.as_str().to_owned(),
        });
        let record = switchboard_store::AgentSessionEvent {
            id: switchboard_store::new_record_id(),
            at: switchboard_store::now_utc(),
            agent_id: id,
            event: switchboard_store::AgentEventKind::State,
            state: Some(to.as_str().to_owned()),
            reason: Some(format!("from {}", from.as_str())),
        };
        if let Err(e) = self.records.send(record) {
            warn!("agent session record not accepted: {e}");
        }
    }
}

/// A record of a call that ended the instant it began, by the system: nothing queued,
/// answered or recorded. `party` is (caller, dialed, client number), `end` the outcome and
/// the route; the caller fills in what else it knows.
pub(super) fn ended_at_once(
    now: Instant,
    id: String,
    direction: Direction,
    (caller, dialed, client_number): (String, String, String),
    (outcome, route): (CdrOutcome, String),
) -> CallRecord {
    CallRecord {
        id,
        sip_call_id: String::new(),
        direction,
        trunk: None,
        caller,
        dialed,
        client_number: Some(client_number),
        client_class: None,
        purpose: None,
        queue: None,
        agent_id: None,
        route,
        started_at: timestamp(now),
        queued_at: None,
        answered_at: None,
        ended_at: timestamp(now),
        wait_ms: 0,
        talk_ms: 0,
        outcome,
        hangup_side: CdrHangup::System,
        recording: None,
        journal: None,
        callback_id: None,
        campaign: None,
    }
}

/// A record of a call that ran: of `times`, it started at the first, queued at the second
/// and was answered at the third (if ever); it ends at `now`. Its wait and talk time follow
/// from those, its recording is in `stats`; `party` and `end` are as for [`ended_at_once`].
/// The caller fills in what else it knows (who hung up, the agent, the queue).
pub(super) fn ended_after(
    now: Instant,
    id: String,
    direction: Direction,
    (started, queued, answered): (Instant, Instant, Option<Instant>),
    stats: &CallMediaStats,
    party: (String, String, String),
    end: (CdrOutcome, String),
) -> CallRecord {
    CallRecord {
        started_at: timestamp(started),
        queued_at: Some(timestamp(queued)),
        answered_at: answered.map(timestamp),
        wait_ms: millis_between(queued, answered.unwrap_or(now)),
        talk_ms: answered.map_or(0, |a| millis_between(a, now)),
        recording: stats.recording.as_ref().map(|p| p.display().to_string()),
        ..ended_at_once(now, id, direction, party, end)
    }
}

/// The record id of a refused request, derived from its Call-ID, From tag and CSeq: the
/// same request refused again (a retransmission) maps to the same row, and record inserts
/// are idempotent on the id. A version 8 UUID (RFC 9562) of the SHA-256 of those fields, so
/// it looks like every other record id.
fn request_record_id(req: &Request) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(req.call_id().unwrap_or_default());
    h.update([0]);
    let from_tag = req.from_hdr().ok().and_then(|f| f.tag().map(str::to_owned));
    h.update(from_tag.unwrap_or_default());
    h.update([0]);
    h.update(req.cseq().map(|c| c.seq).unwrap_or_default().to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}
