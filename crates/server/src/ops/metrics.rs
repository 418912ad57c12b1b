//! The Prometheus registry. Names and labels are fixed by PRODUCT.md §4; only this crate
//! touches the `prometheus` crate (libraries keep plain counters that are copied in here).

use switchboard_engine::AgentStateKind;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Call-center time buckets: 1 s … 10 min.
const CALL_BUCKETS: [f64; 12] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0,
];

/// Every metric the server exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub sip_requests_total: IntCounterVec,
    pub sip_responses_total: IntCounterVec,
    pub registrations: IntGauge,
    pub agents: IntGaugeVec,
    pub cdr_pending: IntGauge,
    pub cdr_write_errors_total: IntCounter,
    pub calls_total: IntCounterVec,
    /// Outbound calls ended, by kind (callback, campaign, click) and outcome.
    pub outbound_calls_total: IntCounterVec,
    /// Call-backs by status (from the table, refreshed by the dialer).
    pub callbacks: IntGaugeVec,
    pub wait_seconds: HistogramVec,
    pub talk_seconds: HistogramVec,
    pub queue_waiting: IntGaugeVec,
    pub queue_oldest_wait_seconds: prometheus::GaugeVec,
    pub service_level_ratio: prometheus::GaugeVec,
    pub rtp_packets_total: IntCounterVec,
    pub rtp_rejected_packets_total: IntCounter,
    pub calls_active: IntGauge,
    pub sip_transactions: IntGaugeVec,
    pub call_state_entries: IntGaugeVec,
    pub engine_calls: IntGauge,
    pub rtp_port_pairs_in_use: IntGauge,
    pub webrtc_sessions: IntGauge,
    pub auth_failures_total: IntCounterVec,
    pub sip_refused_total: IntCounterVec,
    pub sip_dropped_total: IntCounterVec,
}

/// The `reason` labels of `switchboard_sip_dropped_total`.
const DROP_REASONS: [&str; 3] = ["queue_full", "priority_queue_full", "oversized"];

/// The gauges the endpoint task sets after each batch of work: the size of every table that
/// holds per-call state. With no call in progress they all fall back to 0 (SIP transactions
/// after their 64·T1 of absorbing retransmissions); one that only grows is a leak.
#[derive(Debug, Clone)]
pub struct StateGauges {
    pub calls_active: IntGauge,
    pub sip_server_transactions: IntGauge,
    pub sip_client_transactions: IntGauge,
    /// One per name of [`crate::calls::TABLES`], in that order.
    pub tables: Vec<IntGauge>,
}

/// Copies the endpoint's count of responses sent (`EndpointStats::responses_sent`, stateless
/// answers included, retransmissions not) into `switchboard_sip_responses_total`, whose
/// received half the endpoint task adds per response event. The endpoint task calls
/// [`Self::advance`] after each batch of work.
#[derive(Debug)]
pub struct SentResponses {
    by_class: [IntCounter; 6],
    seen: [u64; 6],
}

impl SentResponses {
    /// Adds what was sent since the last call; `sent` is the endpoint's running total by
    /// class (index 0 = 1xx … 5 = 6xx).
    pub fn advance(&mut self, sent: &[u64; 6]) {
        for ((counter, seen), &total) in self.by_class.iter().zip(&mut self.seen).zip(sent) {
            if total > *seen {
                counter.inc_by(total - *seen);
                *seen = total;
            }
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let sip_requests_total = IntCounterVec::new(
            Opts::new(
                "switchboard_sip_requests_total",
                "SIP requests received, by method.",
            ),
            &["method"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let sip_responses_total = IntCounterVec::new(
            Opts::new(
                "switchboard_sip_responses_total",
                "SIP responses sent and received, by class (1xx..6xx).",
            ),
            &["class"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let registrations = IntGauge::new(
            "switchboard_registrations",
            "Current agent contact bindings in the registrar.",
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let agents = IntGaugeVec::new(
            Opts::new("switchboard_agents", "Agents by state."),
            &["state"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let cdr_pending = IntGauge::new(
            "switchboard_cdr_pending",
            "Records accepted but not yet in the database (memory queue plus spool).",
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let cdr_write_errors_total = IntCounter::with_opts(Opts::new(
            "switchboard_cdr_write_errors_total",
            "Failed database or spool writes of records since start.",
        ))
        .unwrap_or_else(|e| unreachable_metric(&e));
        let calls_total = IntCounterVec::new(
            Opts::new(
                "switchboard_calls_total",
                "Calls ended, by queue and outcome.",
            ),
            &["queue", "outcome"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let outbound_calls_total = IntCounterVec::new(
            Opts::new(
                "switchboard_outbound_calls_total",
                "Outbound calls ended, by kind (callback, campaign, click) and outcome \
                 (answered, no_answer, busy, failed, agent_no_answer).",
            ),
            &["kind", "outcome"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let callbacks = IntGaugeVec::new(
            Opts::new(
                "switchboard_callbacks",
                "Call-backs by status (pending, dialing, done, failed, cancelled, expired).",
            ),
            &["status"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let wait_seconds = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_wait_seconds",
                "Time callers waited for an agent (answered or not).",
            )
            .buckets(CALL_BUCKETS.to_vec()),
            &["queue"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let talk_seconds = HistogramVec::new(
            HistogramOpts::new("switchboard_talk_seconds", "Talk time of answered calls.")
                .buckets(CALL_BUCKETS.to_vec()),
            &["queue"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let queue_waiting = IntGaugeVec::new(
            Opts::new(
                "switchboard_queue_waiting",
                "Callers waiting in a queue now.",
            ),
            &["queue"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let queue_oldest_wait_seconds = prometheus::GaugeVec::new(
            Opts::new(
                "switchboard_queue_oldest_wait_seconds",
                "How long the longest-waiting caller of a queue has waited.",
            ),
            &["queue"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let service_level_ratio = prometheus::GaugeVec::new(
            Opts::new(
                "switchboard_service_level_ratio",
                "Calls answered within the service-level threshold / calls offered, per queue.",
            ),
            &["queue"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let rtp_packets_total = IntCounterVec::new(
            Opts::new(
                "switchboard_rtp_packets_total",
                "RTP packets through the relay, by direction (in, out).",
            ),
            &["direction"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let rtp_rejected_packets_total = IntCounter::new(
            "switchboard_rtp_rejected_packets_total",
            "RTP packets dropped for coming from a source other than the leg's (PRODUCT 5).",
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let calls_active = IntGauge::new(
            "switchboard_calls_active",
            "Calls in progress (caller connected: menu, queued, ringing or talking).",
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let sip_transactions = IntGaugeVec::new(
            Opts::new(
                "switchboard_sip_transactions",
                "Live SIP transactions, by kind (server, client); finished ones stay 64*T1.",
            ),
            &["kind"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let call_state_entries = IntGaugeVec::new(
            Opts::new(
                "switchboard_call_state_entries",
                "Entries in each table of call control; all 0 when no call is in progress.",
            ),
            &["table"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let engine_calls = IntGauge::new(
            "switchboard_engine_calls",
            "Calls the queue engine holds (waiting, ringing or talking).",
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let rtp_port_pairs_in_use = IntGauge::new(
            "switchboard_rtp_port_pairs_in_use",
            "RTP/RTCP port pairs allocated to calls (two per call).",
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let webrtc_sessions = IntGauge::new(
            "switchboard_webrtc_sessions",
            "WebRTC agent legs (ICE-lite, DTLS-SRTP) running now.",
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let auth_failures_total = IntCounterVec::new(
            Opts::new(
                "switchboard_auth_failures_total",
                "Wrong digest credentials, by request kind (register|invite).",
            ),
            &["kind"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let sip_refused_total = IntCounterVec::new(
            Opts::new(
                "switchboard_sip_refused_total",
                "SIP requests refused before any processing, by reason (rate_limit|banned|overload).",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        let sip_dropped_total = IntCounterVec::new(
            Opts::new(
                "switchboard_sip_dropped_total",
                "SIP messages dropped unread by the transports, by reason (queue_full|priority_queue_full|oversized).",
            ),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        for reason in DROP_REASONS {
            sip_dropped_total.with_label_values(&[reason]);
        }
        for kind in ["register", "invite"] {
            auth_failures_total.with_label_values(&[kind]);
        }
        for reason in ["rate_limit", "banned", "overload"] {
            sip_refused_total.with_label_values(&[reason]);
        }
        for collector in [
            Box::new(sip_requests_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(sip_responses_total.clone()),
            Box::new(registrations.clone()),
            Box::new(agents.clone()),
            Box::new(cdr_pending.clone()),
            Box::new(cdr_write_errors_total.clone()),
            Box::new(calls_total.clone()),
            Box::new(outbound_calls_total.clone()),
            Box::new(callbacks.clone()),
            Box::new(wait_seconds.clone()),
            Box::new(talk_seconds.clone()),
            Box::new(queue_waiting.clone()),
            Box::new(queue_oldest_wait_seconds.clone()),
            Box::new(service_level_ratio.clone()),
            Box::new(rtp_packets_total.clone()),
            Box::new(rtp_rejected_packets_total.clone()),
            Box::new(calls_active.clone()),
            Box::new(sip_transactions.clone()),
            Box::new(call_state_entries.clone()),
            Box::new(engine_calls.clone()),
            Box::new(rtp_port_pairs_in_use.clone()),
            Box::new(webrtc_sessions.clone()),
            Box::new(auth_failures_total.clone()),
            Box::new(sip_refused_total.clone()),
            Box::new(sip_dropped_total.clone()),
        ] {
            if let Err(e) = registry.register(collector) {
                unreachable_metric(&e);
            }
        }
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = registry.register(Box::new(process)) {
                tracing::warn!("process metrics unavailable: {e}");
            }
        }
        Metrics {
            registry,
            sip_requests_total,
            sip_responses_total,
            registrations,
            agents,
            cdr_pending,
            cdr_write_errors_total,
            calls_total,
            outbound_calls_total,
            callbacks,
            wait_seconds,
            talk_seconds,
            queue_waiting,
            queue_oldest_wait_seconds,
            service_level_ratio,
            rtp_packets_total,
            rtp_rejected_packets_total,
            calls_active,
            sip_transactions,
            call_state_entries,
            engine_calls,
            rtp_port_pairs_in_use,
            webrtc_sessions,
            auth_failures_total,
            sip_refused_total,
            sip_dropped_total,
        }
    }

    /// Brings `switchboard_sip_dropped_total` up to the transports' counts: datagrams dropped
    /// by a full lane of the inbound queue (normal, priority) and oversized messages.
    pub fn transport_drops(&self, (priority, normal): (u64, u64), oversized: u64) {
        for (reason, total) in DROP_REASONS.into_iter().zip([normal, priority, oversized]) {
            Metrics::advance_to(&self.sip_dropped_total.with_label_values(&[reason]), total);
        }
    }

    /// Handles on the per-call state gauges, resolved once (the endpoint task sets them after
    /// every batch of work).
    pub fn state_gauges(&self) -> StateGauges {
        StateGauges {
            calls_active: self.calls_active.clone(),
            sip_server_transactions: self.sip_transactions.with_label_values(&["server"]),
            sip_client_transactions: self.sip_transactions.with_label_values(&["client"]),
            tables: crate::calls::TABLES
                .iter()
                .map(|t| self.call_state_entries.with_label_values(&[t]))
                .collect(),
        }
    }

    /// The mirror of the endpoint's sent responses, starting from 0 sent.
    pub fn sent_responses(&self) -> SentResponses {
        SentResponses {
            by_class: ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"]
                .map(|class| self.sip_responses_total.with_label_values(&[class])),
            seen: [0; 6],
        }
    }

    /// Brings a counter up to a total kept elsewhere (counters only move forward).
    pub fn advance_to(counter: &IntCounter, total: u64) {
        let current = counter.get();
        if total > current {
            counter.inc_by(total - current);
        }
    }

    /// Brings the gauges and counters that mirror other components up to date; called just
    /// before every scrape. `now` is engine time (for the oldest wait), `media` the relay's
    /// totals since start.
    pub fn refresh(
        &self,
        engine: &switchboard_engine::Engine,
        now: switchboard_engine::Time,
        records: &switchboard_store::WriterStats,
        media: &switchboard_media::MediaTotals,
    ) {
        self.cdr_pending
            .set(i64::try_from(records.pending).unwrap_or(i64::MAX));
        Metrics::advance_to(&self.cdr_write_errors_total, records.write_errors);
        Metrics::advance_to(
            &self.rtp_packets_total.with_label_values(&["in"]),
            media.packets_in,
        );
        Metrics::advance_to(
            &self.rtp_packets_total.with_label_values(&["out"]),
            media.packets_out,
        );
        Metrics::advance_to(&self.rtp_rejected_packets_total, media.rejected);
        self.rtp_port_pairs_in_use
            .set(i64::try_from(media.ports_in_use).unwrap_or(i64::MAX));
        self.engine_calls
            .set(i64::try_from(engine.active_calls()).unwrap_or(i64::MAX));

        let mut by_state = [0i64; AgentStateKind::ALL.len()];
        for agent in engine.agents() {
            if let Some(n) = AgentStateKind::ALL
                .iter()
                .position(|k| *k == agent.state.kind())
                .and_then(|i| by_state.get_mut(i))
            {
                *n = n.saturating_add(1);
            }
        }
        for (kind, n) in AgentStateKind::ALL.iter().zip(by_state) {
            self.agents.with_label_values(&[kind.as_str()]).set(n);
        }

        // Every series a dashboard or alert rule expects exists from the first scrape, at 0,
        // so `rate()` and `increase()` see the first call.
        for method in ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS"] {
            self.sip_requests_total.with_label_values(&[method]);
        }
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"] {
            self.sip_responses_total.with_label_values(&[class]);
        }
        let queues = (0..engine.queue_count())
            .filter_map(|i| u32::try_from(i).ok())
            .filter_map(|i| engine.queue_name(switchboard_engine::QueueIdx(i)));
        for queue in queues.chain(["none"]) {
            for outcome in switchboard_store::Outcome::ALL {
                self.calls_total
                    .with_label_values(&[queue, outcome.as_str()]);
            }
            self.wait_seconds.with_label_values(&[queue]);
            self.talk_seconds.with_label_values(&[queue]);
        }

        for i in 0..engine.queue_count() {
            let Some(stats) = u32::try_from(i)
                .ok()
                .and_then(|i| engine.stats(now, switchboard_engine::QueueIdx(i)))
            else {
                continue;
            };
            let queue = [stats.name.as_str()];
            self.queue_waiting
                .with_label_values(&queue)
                .set(i64::try_from(stats.waiting).unwrap_or(i64::MAX));
            #[allow(clippy::cast_precision_loss)] // waits are far below 2^53 ms
            self.queue_oldest_wait_seconds
                .with_label_values(&queue)
                .set(stats.oldest_wait_ms as f64 / 1000.0);
            // No series until a call has finished waiting: an empty queue has no service level.
            if let Some(level) = stats.service_level() {
                self.service_level_ratio
                    .with_label_values(&queue)
                    .set(level);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!("cannot encode metrics: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Metric definitions are static: a failure here is a programming error caught by the unit
/// test below, never something input can cause.
#[allow(clippy::panic)]
fn unreachable_metric(e: &prometheus::Error) -> ! {
    panic!("invalid metric definition: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_metrics_register_and_render() {
        let m = Metrics::new();
        m.sip_requests_total.with_label_values(&["REGISTER"]).inc();
        let text = m.render();
        assert!(text.contains("switchboard_sip_requests_total{method=\"REGISTER\"} 1"));
        assert!(text.contains("switchboard_registrations 0"));
        assert!(text.contains("switchboard_cdr_pending 0"));
    }

    #[test]
    fn sent_responses_add_to_the_received_ones_by_class() {
        let m = Metrics::new();
        m.sip_responses_total.with_label_values(&["2xx"]).inc();
        let mut sent = m.sent_responses();
        sent.advance(&[3, 1, 0, 2, 0, 0]);
        sent.advance(&[3, 1, 0, 5, 1, 0]);
        let text = m.render();
        for line in [
            "switchboard_sip_responses_total{class=\"1xx\"} 3",
            "switchboard_sip_responses_total{class=\"2xx\"} 2",
            "switchboard_sip_responses_total{class=\"4xx\"} 5",
            "switchboard_sip_responses_total{class=\"5xx\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn state_gauges_name_every_call_control_table() {
        let m = Metrics::new();
        let g = m.state_gauges();
        assert_eq!(g.tables.len(), crate::calls::TABLES.len());
        g.calls_active.set(2);
        g.sip_client_transactions.set(3);
        for (i, t) in g.tables.iter().enumerate() {
            t.set(i64::try_from(i).unwrap());
        }
        let text = m.render();
        for line in [
            "switchboard_calls_active 2",
            "switchboard_sip_transactions{kind=\"client\"} 3",
            "switchboard_sip_transactions{kind=\"server\"} 0",
            "switchboard_call_state_entries{table=\"calls\"} 0",
            "switchboard_call_state_entries{table=\"orphans\"} 7",
            "switchboard_call_state_entries{table=\"finished\"} 8",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn refresh_mirrors_engine_store_and_media() {
        use switchboard_engine::{AgentConfig, AgentStateChange, EngineConfig, QueueConfig, Time};
        let mut cfg = EngineConfig::default();
        for id in ["kira", "lena"] {
            cfg.agents.push(AgentConfig {
                id: id.into(),
                skills: vec![("orders".into(), 5)],
                ..Default::default()
            });
        }
        cfg.queues.push(QueueConfig::new("orders", "orders"));
        cfg.queues.push(QueueConfig::new("regional", "regional"));
        let engine = switchboard_engine::Engine::new(cfg).unwrap();
        let t = Time::from_secs(10);
        let kira = engine.agent_idx("kira").unwrap();
        engine
            .set_agent_state(t, kira, AgentStateChange::Available)
            .unwrap();
        let m = Metrics::new();
        let stats = switchboard_store::WriterStats {
            pending: 3,
            write_errors: 2,
            ..Default::default()
        };
        let media = |packets_in| switchboard_media::MediaTotals {
            packets_in,
            packets_out: 7,
            ports_in_use: 4,
            rejected: 5,
            ..Default::default()
        };
        m.refresh(&engine, t, &stats, &media(10));
        m.refresh(&engine, t, &stats, &media(12));
        let text = m.render();
        for line in [
            "switchboard_agents{state=\"available\"} 1",
            "switchboard_agents{state=\"logged_out\"} 1",
            "switchboard_agents{state=\"on_call\"} 0",
            "switchboard_queue_waiting{queue=\"orders\"} 0",
            "switchboard_queue_oldest_wait_seconds{queue=\"orders\"} 0",
            "switchboard_cdr_pending 3",
            "switchboard_cdr_write_errors_total 2",
            "switchboard_rtp_packets_total{direction=\"in\"} 12",
            "switchboard_rtp_packets_total{direction=\"out\"} 7",
            "switchboard_rtp_port_pairs_in_use 4",
            "switchboard_rtp_rejected_packets_total 5",
            "switchboard_engine_calls 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("switchboard_service_level_ratio{"));
        for line in [
            "switchboard_calls_total{outcome=\"answered\",queue=\"orders\"} 0",
            "switchboard_calls_total{outcome=\"no_agent\",queue=\"none\"} 0",
            "switchboard_wait_seconds_count{queue=\"regional\"} 0",
            "switchboard_sip_requests_total{method=\"INVITE\"} 0",
            "switchboard_sip_responses_total{class=\"5xx\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
