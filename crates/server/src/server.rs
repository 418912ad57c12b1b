//! Wires the running server: binds every listener first (so a bad address fails before
//! anything starts), opens the store, drives the SIP endpoint, serves HTTP, tells the service
//! manager when it is ready, reloads on SIGHUP and shuts down gracefully on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use std::collections::HashSet;

use switchboard_sip::registrar::{AgentCredentials, RegistrarConfig};
use switchboard_sip::{ConnId, Endpoint, EndpointConfig, Event, Peer, Transport};
use switchboard_store::{AgentEventKind, AgentSessionEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::calls::media::MediaSetup;
use crate::calls::{self, CallDeps, CallInput, Calls};
use crate::clock;
use crate::config::{Config, DEMO_API_TOKEN, ListenTransport};
use crate::http::events::EventBus;
use crate::http::shared::Shared;
use crate::http::{AppState, Readiness};
use crate::ops::metrics::{Metrics, SentResponses, StateGauges};
use crate::ops::service::{Notifier, Request, Signals};
use crate::routing;
use crate::sip_edge::inqueue::{InboundQueue, QueueLimits};
use crate::sip_edge::security::{self, Arrival, Security};
use crate::sip_edge::tls::{Dialer, Tls};
use crate::sip_edge::transport::{
    self, Connections, Inbound, Limits, Listeners, StreamContext, TcpDialer, TransportStats,
    UdpSockets,
};

/// How long calls in progress may continue after SIGTERM before the server exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Checks that need the environment as well as the file: the demo token must not be used
/// on an address other machines can reach. Returns (key path, message).
pub fn preflight(config: &Config) -> Result<(), (String, String)> {
    if let Ok(addr) = config.http.listen.parse::<SocketAddr>()
        && !addr.ip().is_loopback()
        && config.api_token() == DEMO_API_TOKEN
    {
        return Err((
            "http.api_token".to_owned(),
            format!(
                "the demo token {DEMO_API_TOKEN:?} is refused on the non-loopback address {addr}; set http.api_token or SWITCHBOARD_API_TOKEN"
            ),
        ));
    }
    Ok(())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db` for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(config: Config, is_demo: bool) -> anyhow::Result<()> {
    // First, so that a SIGHUP during start-up does not end the process.
    let mut signals = Signals::register().context("cannot install signal handlers")?;
    let notifier = Arc::new(Notifier::default());
    if is_demo {
        info!("no --config given: running the built-in demo configuration");
    }
    if let (Some(dir), Some(source)) = (&config.state.dir, config.state.source) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        info!(dir = %dir.display(), from = %source, "state directory");
    }
    if let (true, Some(ip)) = (config.advertised_is_name(), config.advertised_ip()) {
        info!(advertised_address = %config.sip.advertised_address, %ip,
            "advertised address resolved (Via and Contact carry the name, SDP the address)");
    }
    let stop = CancellationToken::new();
    let metrics = Metrics::new();
    let readiness = Arc::new(Readiness::default());

    // 1. Bind everything before starting anything.
    let mut udp_addrs = Vec::new();
    let mut streams_at = crate::sip_edge::transport::StreamAddrs::default();
    for listen in config.listen_addrs() {
        match listen.transport {
            ListenTransport::Udp => udp_addrs.push(listen.addr),
            ListenTransport::Tcp => streams_at.tcp.push(listen.addr),
            ListenTransport::Tls => streams_at.tls.push(listen.addr),
            ListenTransport::Ws => streams_at.ws.push(listen.addr),
            ListenTransport::Wss => streams_at.wss.push(listen.addr),
        }
    }
    let tls = match &config.tls {
        Some(files) => Some(Tls::load(files).context("cannot load the [tls] certificate")?),
        None => None,
    };
    let listeners = Listeners::bind(&udp_addrs, &streams_at)
        .await
        .map_err(|(what, e)| anyhow::anyhow!("cannot bind SIP listener {what}: {e}"))?;
    for socket in &listeners.udp {
        crate::ops::os_limits::size_udp_buffers(socket, config.sip.udp_buffer_kb)
            .context("cannot size the SIP socket buffers")?;
    }
    let http_addr: SocketAddr = config
        .http
        .listen
        .parse()
        .context("http.listen is not an address")?;
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot bind HTTP listener {http_addr}"))?;
    info!(addr = %http_addr, "HTTP listening (/healthz, /readyz, /metrics)");
    readiness.sip_bound.store(true, Ordering::Release);

    // 2. Records.
    let store = open_store(&config).await?;
    readiness
        .database
        .store(store.is_ready().await, Ordering::Release);

    // 3. SIP.
    let limits = Limits {
        max_message_size: config.sip.max_message_size,
        max_tcp_connections: config.sip.max_tcp_connections,
        // Never below a live registration: a phone registered over TCP may stay silent until
        // it re-registers, at the latest when its binding (at most `max_expires_s`) expires.
        tcp_idle_timeout: Duration::from_secs(
            config
                .sip
                .tcp_idle_timeout_s
                .max(u64::from(config.sip.max_expires_s) + 32),
        ),
    };
    let stats = Arc::new(TransportStats::default());
    let inbound = Arc::new(InboundQueue::new(
        QueueLimits {
            messages: config.sip.inbound_queue_messages,
            bytes: config.sip.inbound_queue_bytes,
        },
        config
            .trunks
            .iter()
            .flat_map(|t| &t.allow)
            .filter_map(|n| crate::config::parse_net(n))
            .collect(),
    ));
    let streams = StreamContext::new(
        limits,
        Arc::clone(&inbound),
        Arc::clone(&stats),
        stop.clone(),
    );
    let udp = transport::spawn(listeners, &streams, tls.as_ref())
        .context("cannot read the address of a UDP listener")?;
    let dialer = tls.clone().map(|tls| Dialer::new(tls, streams.clone()));
    let tcp_dialer = TcpDialer::new(streams.clone());
    let endpoint = Endpoint::new(endpoint_config(&config, &udp.locals(), &streams_at)?);

    // 4. Routing and call control.
    let engine = Arc::new(
        switchboard_engine::Engine::new(routing::engine_config(&config)?)
            .context("cannot build the queue engine")?,
    );
    let events = EventBus::new(1024);
    let shared = Shared::new();
    let (inputs_tx, inputs_rx) = tokio::sync::mpsc::unbounded_channel();
    let (places_tx, places_rx) = tokio::sync::mpsc::unbounded_channel();
    let media = MediaSetup::new(&config).context("cannot set up media")?;
    let refresh_media = media.clone();
    let calls = Calls::new(
        &config,
        CallDeps {
            engine: Arc::clone(&engine),
            directory: routing::StoreDirectory(store.clients()),
            records: store.writer(),
            metrics: metrics.clone(),
            events: events.clone(),
            media,
            shared: Arc::clone(&shared),
            inputs: inputs_tx.clone(),
            nonce_secret: random_secret().context("cannot read random bytes for digest nonces")?,
            places: Some(places_tx),
        },
    );
    let mono_start = clock::now();
    let wall_start = clock::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let day_zone = config
        .routing
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Tz::UTC);
    crate::routing::daily::schedule_next_reset(
        &engine,
        calls::engine_time(switchboard_sip::Instant::from_duration(wall_start)),
        day_zone,
    );
    let driver = Driver {
        endpoint,
        calls,
        conns: Connections::default(),
        udp,
        dialer,
        tcp_dialer,
        metrics: metrics.clone(),
        state_gauges: metrics.state_gauges(),
        sent_responses: metrics.sent_responses(),
        records: store.writer(),
        registered: HashSet::new(),
        security: Security::new(&config.security, &metrics),
        dropped: (0, 0),
        shared: Arc::clone(&shared),
        mono_start,
        wall_start,
    };
    let drain = CancellationToken::new();
    let driver = tokio::spawn(driver.run(Arc::clone(&inbound), inputs_rx, drain.clone()));

    // 5. HTTP.
    let refresh_store = store.clone();
    let refresh_metrics = metrics.clone();
    let refresh_engine = Arc::clone(&engine);
    let refresh_inbound = Arc::clone(&inbound);
    let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        refresh_metrics.transport_drops(
            refresh_inbound.dropped(),
            stats.oversized.load(Ordering::Relaxed),
        );
        refresh_metrics.refresh(
            &refresh_engine,
            calls::engine_time(switchboard_sip::Instant::from_duration(
                wall_start + clock::now().duration_since(mono_start),
            )),
            &refresh_store.stats(),
            &refresh_media.totals(),
        );
        refresh_metrics
            .webrtc_sessions
            .set(i64::try_from(refresh_media.webrtc_sessions()).unwrap_or(i64::MAX));
    });
    let app = crate::http::router(AppState {
        metrics: metrics.clone(),
        readiness: Arc::clone(&readiness),
        refresh,
        engine: Arc::clone(&engine),
        store: store.clone(),
        shared: Arc::clone(&shared),
        events: events.clone(),
        call_inputs: inputs_tx.clone(),
        api_token: Arc::from(config.api_token()),
        config: Arc::new(config.clone()),
        logins: Arc::default(),
        stop: stop.clone(),
    });
    let http_stop = stop.clone();
    let http = tokio::spawn(crate::http::serve(http_listener, app, http_stop));

    // Database readiness probe; the first time the database answers, the service manager
    // hears READY=1 (SIP and HTTP are bound by now).
    let serving = format!(
        "serving SIP on {}, HTTP on {http_addr}",
        config.sip.listen.join(", ")
    );
    tokio::spawn(probe_database(
        store.clone(),
        Arc::clone(&readiness),
        Arc::clone(&notifier),
        serving.clone(),
        stop.clone(),
    ));

    // Call-backs: due ones are dialed agent first through call control.
    let parts = crate::dialer::Parts {
        store: store.clone(),
        engine: Arc::clone(&engine),
        config: Arc::new(config.clone()),
        inputs: inputs_tx,
    };
    let dialer = crate::callbacks::Dialer::new(parts.clone(), metrics.clone(), places_rx);
    tokio::spawn(dialer.run(drain.clone()));
    // Campaigns: contacts of running campaigns are dialed as agents of the queue are free.
    let campaigns = crate::campaigns::Dialer::new(parts);
    tokio::spawn(campaigns.run(drain.clone()));

    info!("switchboard running");
    loop {
        match signals.next().await {
            Request::Reload => reload(&store, tls.as_ref(), &notifier, &serving).await,
            Request::Stop(signal) => {
                info!("{signal} received");
                break;
            }
        }
    }
    info!("shutdown requested: refusing new work, flushing records");
    notifier.stopping(&format!(
        "stopping: new calls refused, calls in progress may finish within {} s",
        SHUTDOWN_GRACE.as_secs()
    ));
    readiness.shutting_down.store(true, Ordering::Release);
    // New INVITEs get 503; calls in progress may finish within the grace period while the
    // transports keep carrying their BYEs.
    drain.cancel();
    let _ = driver.await;
    stop.cancel();
    if let Err(e) = http.await {
        warn!("HTTP task failed: {e}");
    }
    crate::ops::journal::log_out_at_stop(&engine, &store.writer());
    if let Err(e) = store.flush(SHUTDOWN_GRACE).await {
        warn!("records not flushed to the database before exit: {e} (they stay in the spool)");
    }
    info!("switchboard stopped");
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<switchboard_store::Store> {
    let url = &config.database.url;
    let store = switchboard_store::Store::open(
        url,
        &config.database.spool_dir,
        switchboard_store::StoreOptions {
            journal_node: Some(crate::ops::journal::node_name(config)),
            ..switchboard_store::StoreOptions::default()
        },
    )
    .await
    .with_context(|| format!("cannot open the record store {}", redact_url(url)))?;
    info!(database = %redact_url(url), spool = %config.database.spool_dir.display(), "record store open");
    Ok(store)
}

fn endpoint_config(
    config: &Config,
    udp: &[SocketAddr],
    streams: &crate::sip_edge::transport::StreamAddrs,
) -> anyhow::Result<EndpointConfig> {
    let mut cfg = EndpointConfig::new(
        config.sip.domain.clone(),
        config.sip.advertised_address.clone(),
        random_secret().context("cannot read random bytes for digest nonces")?,
    );
    if let Some(addr) = udp.first() {
        cfg.advertised_ports.push((Transport::Udp, addr.port()));
    }
    cfg.udp_listeners = udp.to_vec();
    for (transport, addrs) in [
        (Transport::Tcp, &streams.tcp),
        (Transport::Tls, &streams.tls),
        (Transport::Ws, &streams.ws),
        (Transport::Wss, &streams.wss),
    ] {
        if let Some(addr) = addrs.first() {
            cfg.advertised_ports.push((transport, addr.port()));
        }
    }
    cfg.timers = switchboard_sip::TimerConfig {
        t1: Duration::from_millis(config.sip.t1_ms),
        t2: Duration::from_millis(config.sip.t2_ms),
        t4: Duration::from_millis(config.sip.t4_ms),
    };
    cfg.max_message_size = config.sip.max_message_size;
    cfg.max_transactions = config.sip.max_transactions;
    cfg.max_transactions_per_source = source_share(
        config.sip.max_transactions,
        config.sip.max_transactions_source_share,
    );
    cfg.nonce_lifetime = Duration::from_secs(u64::from(config.sip.nonce_lifetime_s));
    cfg.registrar = RegistrarConfig {
        agents: config
            .agents
            .iter()
            .map(|a| AgentCredentials {
                id: a.id.clone(),
                password: a.password.clone(),
            })
            .collect(),
        min_expires: config.sip.min_expires_s,
        max_expires: config.sip.max_expires_s,
        default_expires: config.sip.max_expires_s,
        algorithms: config
            .sip
            .digest_algorithms
            .iter()
            .filter_map(|a| switchboard_sip::digest::Algorithm::from_token(a))
            .collect(),
        guard: security::guard_config(&config.security),
        own_hosts: std::iter::once(config.sip.advertised_address.clone())
            .chain(config.advertised_ip().map(|ip| ip.to_string()))
            .chain(
                udp.iter()
                    .chain(&streams.tcp)
                    .chain(&streams.tls)
                    .chain(&streams.ws)
                    .chain(&streams.wss)
                    .map(|a| a.ip().to_string()),
            )
            .collect(),
        ..RegistrarConfig::default()
    };
    Ok(cfg)
}

/// `max_transactions × share`, rounded up, at least 1 (validation keeps the share in (0, 1]).
fn source_share(max_transactions: usize, share: f64) -> usize {
    let limit = (max_transactions as f64 * share).ceil();
    if limit >= max_transactions as f64 {
        max_transactions
    } else if limit >= 1.0 {
        // In range: below `max_transactions`, a usize.
        limit as usize
    } else {
        1
    }
}

/// 32 bytes from the kernel's CSPRNG, the key of digest nonces.
fn random_secret() -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut secret = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

/// Watches the database for `/readyz` and logs when it comes and goes; announces readiness
/// to the service manager the first time it answers. Until then the server already takes
/// calls (their records wait in the spool) but says it is waiting.
async fn probe_database(
    store: switchboard_store::Store,
    readiness: Arc<Readiness>,
    notifier: Arc<Notifier>,
    serving: String,
    stop: CancellationToken,
) {
    let mut first = true;
    loop {
        let ready = store.is_ready().await;
        if readiness.database.swap(ready, Ordering::AcqRel) != ready && !first {
            if ready {
                info!("database reachable again");
            } else {
                warn!("database unreachable: records go to the spool");
            }
        }
        if ready && !notifier.is_ready() && !readiness.shutting_down.load(Ordering::Acquire) {
            notifier.ready(&serving);
        } else if !ready && first {
            warn!("database not answering yet: calls are taken, records wait in the spool");
            notifier.status("waiting for the database (calls are taken, records spool)");
        }
        first = false;
        // Poll faster until the first READY=1: start-up waits on it.
        let every = if notifier.is_ready() { 2000 } else { 250 };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(every)) => {}
        }
    }
}

/// SIGHUP: re-reads what may change under a running server — the client directory, for
/// edits made straight in the database, and the `[tls]` certificate (`tls.rs`). A failed
/// reload keeps what is in use and never stops the server.
async fn reload(
    store: &switchboard_store::Store,
    tls: Option<&Tls>,
    notifier: &Notifier,
    serving: &str,
) {
    info!("SIGHUP received: reloading the client directory");
    notifier.reloading();
    let mut failed = Vec::new();
    if let Some(tls) = tls
        && let Err(e) = tls.reload_logged()
    {
        failed.push(format!("TLS certificate: {e}"));
    }
    match store.clients().refresh().await {
        Ok(()) => info!(clients = store.clients().len(), "client directory reloaded"),
        Err(e) => {
            warn!("client directory not reloaded, the loaded one stays in use: {e}");
            failed.push(format!("client directory: {e}"));
        }
    }
    if failed.is_empty() {
        notifier.reloaded(serving);
    } else {
        notifier.reloaded(&format!(
            "{serving}; last reload failed: {}",
            failed.join("; ")
        ));
    }
}

/// The endpoint task: owns the sans-IO endpoint and call control; feeds them bytes and time,
/// sends what they emit and acts on their events.
struct Driver {
    endpoint: Endpoint,
    calls: Calls,
    conns: Connections,
    udp: UdpSockets,
    /// Opens outbound TLS connections (with `[tls]` only).
    dialer: Option<Dialer>,
    /// Opens outbound TCP connections.
    tcp_dialer: TcpDialer,
    metrics: Metrics,
    state_gauges: StateGauges,
    /// `switchboard_sip_responses_total` counts responses received per event and responses
    /// sent from the endpoint's counters.
    sent_responses: SentResponses,
    records: switchboard_store::RecordSink,
    registered: HashSet<String>,
    security: Security,
    /// The inbound queue's drops (priority, normal) as last read, for the overload log.
    dropped: (u64, u64),
    shared: Arc<Shared>,
    /// Monotonic and wall-clock readings at start: endpoint time counts from the UNIX epoch
    /// (so it dates the records) but advances monotonically.
    mono_start: std::time::Instant,
    wall_start: Duration,
}

impl Driver {
    fn now(&self) -> switchboard_sip::Instant {
        switchboard_sip::Instant::from_duration(
            self.wall_start + clock::now().duration_since(self.mono_start),
        )
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        let next = match (self.endpoint.poll_timeout(), self.calls.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        let from_start = next.since_epoch().saturating_sub(self.wall_start);
        Some(tokio::time::Instant::from_std(self.mono_start + from_start))
    }

    async fn run(
        mut self,
        inbound: Arc<InboundQueue>,
        mut inputs: mpsc::UnboundedReceiver<CallInput>,
        drain: CancellationToken,
    ) {
        let mut draining = false;
        let mut grace_over = None;
        loop {
            let deadline = self.deadline();
            tokio::select! {
                biased;
                () = drain.cancelled(), if !draining => {
                    // Refuse new calls; let those in progress finish within the grace period.
                    draining = true;
                    grace_over = Some(tokio::time::Instant::from_std(clock::now() + SHUTDOWN_GRACE));
                    self.calls.begin_shutdown();
                    if self.calls.active() == 0 {
                        break;
                    }
                    info!(calls = self.calls.active(), "waiting for calls in progress to end");
                }
                () = sleep_until(grace_over), if draining => {
                    let now = self.now();
                    warn!(calls = self.calls.active(), "grace period over: ending calls");
                    self.calls.end_all(&mut self.endpoint, now);
                    self.flush(now);
                    break;
                }
                msg = inbound.recv() => {
                    let now = self.now();
                    self.handle_inbound(now, msg);
                    // Take what else is already waiting before flushing: fewer wake-ups under
                    // load. The queue hands out its priority lane first.
                    for _ in 0..64 {
                        match inbound.try_recv() {
                            Some(msg) => self.handle_inbound(now, msg),
                            None => break,
                        }
                    }
                    self.dropped = inbound.dropped();
                    self.flush(now);
                }
                Some(input) = inputs.recv() => {
                    let now = self.now();
                    self.calls.on_input(&mut self.endpoint, now, input);
                    self.flush(now);
                }
                () = self.shared.wake.notified() => {
                    // The API changed agent states: carry out what the engine decides now.
                    let now = self.now();
                    self.flush(now);
                }
                () = sleep_until(deadline) => {
                    let now = self.now();
                    self.endpoint.handle_timeout(now);
                    self.calls.handle_timeout(&mut self.endpoint, now);
                    self.flush(now);
                }
            }
            if draining && self.calls.active() == 0 {
                break;
            }
        }
        // Let the last BYEs and responses leave.
        let now = self.now();
        self.flush(now);
        debug!("SIP endpoint task stopped");
    }

    fn handle_inbound(&mut self, now: switchboard_sip::Instant, msg: Inbound) {
        match msg {
            Inbound::Datagram {
                socket,
                from,
                bytes,
            } => {
                let src = self.udp.peer(socket, from);
                self.endpoint.handle_datagram(now, src, &bytes);
            }
            Inbound::Stream {
                conn,
                transport,
                from,
                bytes,
            } => {
                self.endpoint.handle_datagram(
                    now,
                    Peer::stream(transport, from, ConnId(conn)),
                    &bytes,
                );
            }
            Inbound::Opened {
                conn,
                transport,
                from,
                writer,
            } => self.conns.opened(conn, transport, from, writer),
            Inbound::Unreachable { transport, addr } => {
                let dest = Peer {
                    transport,
                    addr,
                    conn: None,
                    local: None,
                };
                self.endpoint.handle_transport_error(now, &dest);
            }
            Inbound::Closed { conn } => {
                self.conns.closed(conn);
                self.endpoint.handle_connection_closed(now, ConnId(conn));
            }
        }
    }

    fn flush(&mut self, now: switchboard_sip::Instant) {
        // Events first: answering a request produces more transmits.
        while let Some(event) = self.endpoint.poll_event() {
            self.on_event(event, now);
        }
        // Carry out what the engine decided (offers → INVITEs to agents, records).
        self.calls.pump(&mut self.endpoint, now);
        // Counted before they leave: a peer that has its answer never scrapes an older count.
        self.sent_responses
            .advance(&self.endpoint.stats().responses_sent);
        self.security
            .after_batch(&mut self.endpoint, now, self.dropped);
        while let Some(t) = self.endpoint.poll_transmit() {
            send(
                &t.dest,
                t.bytes,
                &mut self.udp,
                &mut self.conns,
                (self.dialer.as_ref(), &self.tcp_dialer),
            );
        }
        // UDP leaves in batches: one sendmmsg per socket for this round's datagrams.
        self.udp.flush();
        let count = self.endpoint.registrar().binding_count();
        self.metrics.registrations.set(gauge(count));
        let g = &self.state_gauges;
        g.calls_active.set(gauge(self.calls.active()));
        let (server, client) = self.endpoint.transaction_count();
        g.sip_server_transactions.set(gauge(server));
        g.sip_client_transactions.set(gauge(client));
        for (t, n) in g.tables.iter().zip(self.calls.table_sizes()) {
            t.set(gauge(n));
        }
    }

    fn on_event(&mut self, event: Event, now: switchboard_sip::Instant) {
        match &event {
            Event::NewRequest { txn, req, src } => {
                self.metrics
                    .sip_requests_total
                    .with_label_values(&[req.method.to_string().as_str()])
                    .inc();
                let arrival = Arrival {
                    txn: *txn,
                    req,
                    src,
                };
                if self
                    .security
                    .refuse_over_rate(&mut self.endpoint, now, arrival)
                    || crate::sip_edge::tls::refuse_insecure_sips(&mut self.endpoint, now, arrival)
                {
                    return;
                }
            }
            Event::Response { resp, .. } => {
                let class = format!("{}xx", resp.status / 100);
                self.metrics
                    .sip_responses_total
                    .with_label_values(&[class.as_str()])
                    .inc();
            }
            _ => {}
        }
        let Some(event) = self.calls.on_sip_event(&mut self.endpoint, now, event) else {
            return;
        };
        match event {
            Event::RegistrationChanged { agent, contacts } => {
                let at = calls::timestamp(now);
                self.shared.set_registration(
                    &agent,
                    contacts.iter().map(|b| b.contact.to_string()).collect(),
                );
                if contacts.is_empty() {
                    if self.registered.remove(&agent) {
                        info!(%agent, "agent unregistered");
                        record_session(
                            &self.records,
                            &agent,
                            AgentEventKind::Logout,
                            "unregistered",
                            at,
                        );
                        self.calls.registration_changed(now, &agent, false);
                    }
                } else {
                    let list: Vec<String> =
                        contacts.iter().map(|b| b.contact.to_string()).collect();
                    if self.registered.insert(agent.clone()) {
                        info!(%agent, contacts = ?list, "agent registered");
                        record_session(
                            &self.records,
                            &agent,
                            AgentEventKind::Login,
                            "registered",
                            at,
                        );
                        self.calls.registration_changed(now, &agent, true);
                    } else {
                        debug!(%agent, contacts = ?list, "agent bindings changed");
                    }
                }
            }
            other => debug!(event = ?other, "SIP event"),
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn send(
    dest: &Peer,
    bytes: Vec<u8>,
    udp: &mut UdpSockets,
    conns: &mut Connections,
    (dialer, tcp_dialer): (Option<&Dialer>, &TcpDialer),
) {
    match dest.transport {
        Transport::Udp => udp.send(dest, bytes),
        Transport::Tcp => crate::sip_edge::transport::send_tcp(dest, bytes, conns, tcp_dialer),
        Transport::Ws | Transport::Wss => {
            let conn = dest
                .conn
                .map(|c| c.0)
                .or_else(|| conns.to_addr(dest.transport, dest.addr));
            let sent = conn.is_some_and(|c| conns.send(c, bytes));
            if !sent {
                debug!(dest = %dest.addr, transport = dest.transport.via_token(),
                    "no open connection for this message; dropped");
            }
        }
        Transport::Tls => crate::sip_edge::tls::send(dest, bytes, conns, dialer),
    }
}

fn record_session(
    records: &switchboard_store::RecordSink,
    agent: &str,
    event: AgentEventKind,
    reason: &str,
    at: switchboard_store::Timestamp,
) {
    let record = AgentSessionEvent {
        id: switchboard_store::new_record_id(),
        at,
        agent_id: agent.to_owned(),
        event,
        state: None,
        reason: Some(reason.to_owned()),
    };
    if let Err(e) = records.send(record) {
        warn!(%agent, "agent session record not accepted: {e}");
    }
}
