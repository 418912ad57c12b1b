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
    pub wait_seconds: HistogramVec,
    pub talk_seconds: HistogramVec,
    pub queue_waiting: IntGaugeVec,
    pub queue_oldest_wait_seconds: prometheus::GaugeVec,
    pub service_level_ratio: prometheus::GaugeVec,
    pub rtp_packets_total: IntCounterVec,
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
        for collector in [
            Box::new(sip_requests_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(sip_responses_total.clone()),
            Box::new(registrations.clone()),
            Box::new(agents.clone()),
            Box::new(cdr_pending.clone()),
            Box::new(cdr_write_errors_total.clone()),
            Box::new(calls_total.clone()),
            Box::new(wait_seconds.clone()),
            Box::new(talk_seconds.clone()),
            Box::new(queue_waiting.clone()),
            Box::new(queue_oldest_wait_seconds.clone()),
            Box::new(service_level_ratio.clone()),
            Box::new(rtp_packets_total.clone()),
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
            wait_seconds,
            talk_seconds,
            queue_waiting,
            queue_oldest_wait_seconds,
            service_level_ratio,
            rtp_packets_total,
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
    /// before every scrape. `now` is engine time (for the oldest wait), `rtp` the relay's
    /// (packets in, packets out) since start.
    pub fn refresh(
        &self,
        engine: &switchboard_engine::Engine,
        now: switchboard_engine::Time,
        records: &switchboard_store::WriterStats,
        rtp: (u64, u64),
    ) {
        self.cdr_pending
            .set(i64::try_from(records.pending).unwrap_or(i64::MAX));
        Metrics::advance_to(&self.cdr_write_errors_total, records.write_errors);
        Metrics::advance_to(&self.rtp_packets_total.with_label_values(&["in"]), rtp.0);
        Metrics::advance_to(&self.rtp_packets_total.with_label_values(&["out"]), rtp.1);

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
        m.refresh(&engine, t, &stats, (10, 7));
        m.refresh(&engine, t, &stats, (12, 7));
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
