//! Wires the running server: binds every listener first (so a bad address fails before
//! anything starts), opens the store, drives the SIP endpoint, serves HTTP, and shuts down
//! gracefully on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use std::collections::HashSet;

use switchboard_sip::registrar::{AgentCredentials, RegistrarConfig};
use switchboard_sip::{ConnId, Endpoint, EndpointConfig, Event, Peer, Transport};
use switchboard_sipmsg::{HeaderName, Method, Response};
use switchboard_store::{AgentEventKind, AgentSessionEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock;
use crate::config::{Config, DEMO_API_TOKEN, ListenTransport};
use crate::http::{AppState, Readiness};
use crate::metrics::Metrics;
use crate::transport::{self, Connections, Inbound, Limits, Listeners, TransportStats};

/// How long calls in progress may continue after SIGTERM before the server exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Checks that need the environment as well as the file: the demo token must not be used
/// on an address other machines can reach. Returns (key path, message).
pub fn preflight(config: &Config) -> Result<(), (String, String)> {
    if let Ok(addr) = config.http.listen.parse::<SocketAddr>() {
        if !addr.ip().is_loopback() && config.api_token() == DEMO_API_TOKEN {
            return Err((
                "http.api_token".to_owned(),
                format!(
                    "the demo token {DEMO_API_TOKEN:?} is refused on the non-loopback address {addr}; set http.api_token or SWITCHBOARD_API_TOKEN"
                ),
            ));
        }
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
    if is_demo {
        info!("no --config given: running the built-in demo configuration");
    }
    let stop = CancellationToken::new();
    let metrics = Metrics::new();
    let readiness = Arc::new(Readiness::default());

    // 1. Bind everything before starting anything.
    let mut udp_addrs = Vec::new();
    let mut tcp_addrs = Vec::new();
    for listen in config.listen_addrs() {
        match listen.transport {
            ListenTransport::Udp => udp_addrs.push(listen.addr),
            ListenTransport::Tcp => tcp_addrs.push(listen.addr),
            other => warn!(
                transport = %other,
                addr = %listen.addr,
                "SIP over {other} is not served by this version; listener skipped"
            ),
        }
    }
    let listeners = Listeners::bind(&udp_addrs, &tcp_addrs)
        .await
        .map_err(|(what, e)| anyhow::anyhow!("cannot bind SIP listener {what}: {e}"))?;
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
        tcp_idle_timeout: Duration::from_secs(config.sip.tcp_idle_timeout_s),
    };
    let stats = Arc::new(TransportStats::default());
    let (inbound_tx, inbound_rx) = mpsc::channel(16 * 1024);
    let udp = transport::spawn(
        listeners,
        limits,
        inbound_tx,
        Arc::clone(&stats),
        stop.clone(),
    );
    let endpoint = Endpoint::new(endpoint_config(&config, &udp_addrs, &tcp_addrs)?);
    let driver = tokio::spawn(drive_endpoint(
        endpoint,
        inbound_rx,
        udp,
        metrics.clone(),
        Arc::clone(&readiness),
        store.writer(),
        stop.clone(),
    ));

    // 4. HTTP.
    let refresh_store = store.clone();
    let refresh_metrics = metrics.clone();
    let refresh: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        let s = refresh_store.stats();
        refresh_metrics
            .cdr_pending
            .set(i64::try_from(s.pending).unwrap_or(i64::MAX));
        Metrics::advance_to(&refresh_metrics.cdr_write_errors_total, s.write_errors);
    });
    let app = crate::http::router(AppState {
        metrics: metrics.clone(),
        readiness: Arc::clone(&readiness),
        refresh,
    });
    let http_stop = stop.clone();
    let http = tokio::spawn(async move {
        axum::serve(http_listener, app)
            .with_graceful_shutdown(async move { http_stop.cancelled().await })
            .await
    });

    // Database readiness probe.
    let probe_store = store.clone();
    let probe_ready = Arc::clone(&readiness);
    let probe_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = probe_stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            let ready = probe_store.is_ready().await;
            if probe_ready.database.swap(ready, Ordering::AcqRel) != ready {
                if ready {
                    info!("database reachable again");
                } else {
                    warn!("database unreachable: records go to the spool");
                }
            }
        }
    });

    info!("switchboard running");
    wait_for_signal().await;
    info!("shutdown requested: refusing new work, flushing records");
    readiness.shutting_down.store(true, Ordering::Release);
    // Calls are not carried yet by this version, so nothing needs the grace period beyond
    // draining transactions that are already answered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    let _ = driver.await;
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("HTTP server ended with an error: {e}"),
        Err(e) => warn!("HTTP task failed: {e}"),
    }
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
        switchboard_store::StoreOptions::default(),
    )
    .await
    .with_context(|| format!("cannot open the record store {}", redact_url(url)))?;
    info!(database = %redact_url(url), spool = %config.database.spool_dir.display(), "record store open");
    Ok(store)
}

fn endpoint_config(
    config: &Config,
    udp: &[SocketAddr],
    tcp: &[SocketAddr],
) -> anyhow::Result<EndpointConfig> {
    let mut cfg = EndpointConfig::new(
        config.sip.domain.clone(),
        config.sip.advertised_address.clone(),
        random_secret().context("cannot read random bytes for digest nonces")?,
    );
    if let Some(addr) = udp.first() {
        cfg.advertised_ports.push((Transport::Udp, addr.port()));
    }
    if let Some(addr) = tcp.first() {
        cfg.advertised_ports.push((Transport::Tcp, addr.port()));
    }
    cfg.timers = switchboard_sip::TimerConfig {
        t1: Duration::from_millis(config.sip.t1_ms),
        t2: Duration::from_millis(config.sip.t2_ms),
        t4: Duration::from_millis(config.sip.t4_ms),
    };
    cfg.max_message_size = config.sip.max_message_size;
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
        ..RegistrarConfig::default()
    };
    Ok(cfg)
}

/// 32 bytes from the kernel's CSPRNG, the key of digest nonces.
fn random_secret() -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut secret = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Owns the sans-IO endpoint: feeds it bytes and time, sends what it emits, acts on events.
async fn drive_endpoint(
    mut endpoint: Endpoint,
    mut inbound: mpsc::Receiver<Inbound>,
    udp: Vec<Arc<UdpSocket>>,
    metrics: Metrics,
    readiness: Arc<Readiness>,
    records: switchboard_store::RecordSink,
    stop: CancellationToken,
) {
    // Endpoint time counts from the UNIX epoch (so digest nonces stay verifiable across a
    // restart) but advances with the monotonic clock.
    let mono_start = clock::now();
    let wall_start = clock::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let now = move || {
        switchboard_sip::Instant::from_duration(
            wall_start + clock::now().duration_since(mono_start),
        )
    };
    let mut conns = Connections::default();
    let mut registered: HashSet<String> = HashSet::new();
    loop {
        let deadline = endpoint.poll_timeout().map(|t| {
            let from_start = t.since_epoch().saturating_sub(wall_start);
            tokio::time::Instant::from_std(mono_start + from_start)
        });
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            msg = inbound.recv() => {
                let Some(msg) = msg else { break };
                handle_inbound(&mut endpoint, &mut conns, now(), msg);
                // Take what else is already waiting before flushing: fewer wake-ups under load.
                for _ in 0..64 {
                    match inbound.try_recv() {
                        Ok(msg) => handle_inbound(&mut endpoint, &mut conns, now(), msg),
                        Err(_) => break,
                    }
                }
            }
            () = sleep_until(deadline) => endpoint.handle_timeout(now()),
        }
        flush(
            &mut endpoint,
            &udp,
            &conns,
            &metrics,
            &readiness,
            &records,
            &mut registered,
            now(),
        );
    }
    debug!("SIP endpoint task stopped");
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn handle_inbound(
    endpoint: &mut Endpoint,
    conns: &mut Connections,
    now: switchboard_sip::Instant,
    msg: Inbound,
) {
    match msg {
        Inbound::Datagram {
            socket,
            from,
            bytes,
        } => {
            let _ = socket;
            endpoint.handle_datagram(now, Peer::udp(from), &bytes);
        }
        Inbound::Stream { conn, from, bytes } => {
            endpoint.handle_datagram(
                now,
                Peer::stream(Transport::Tcp, from, ConnId(conn)),
                &bytes,
            );
        }
        Inbound::Opened { conn, from, writer } => conns.opened(conn, from, writer),
        Inbound::Closed { conn } => {
            conns.closed(conn);
            endpoint.handle_connection_closed(now, ConnId(conn));
        }
    }
}

fn flush(
    endpoint: &mut Endpoint,
    udp: &[Arc<UdpSocket>],
    conns: &Connections,
    metrics: &Metrics,
    readiness: &Readiness,
    records: &switchboard_store::RecordSink,
    registered: &mut HashSet<String>,
    now: switchboard_sip::Instant,
) {
    // Events first: answering a request produces more transmits.
    while let Some(event) = endpoint.poll_event() {
        on_event(endpoint, event, readiness, records, registered, now);
    }
    while let Some(t) = endpoint.poll_transmit() {
        send(&t.dest, t.bytes, udp, conns);
    }
    let count = endpoint.registrar().binding_count();
    metrics
        .registrations
        .set(i64::try_from(count).unwrap_or(i64::MAX));
}

fn send(dest: &Peer, bytes: Vec<u8>, udp: &[Arc<UdpSocket>], conns: &Connections) {
    match dest.transport {
        Transport::Udp => {
            // Send from a socket of the destination's address family.
            let socket = udp
                .iter()
                .find(|s| {
                    s.local_addr()
                        .is_ok_and(|l| l.is_ipv4() == dest.addr.is_ipv4())
                })
                .or_else(|| udp.first());
            let Some(socket) = socket else {
                warn!(dest = %dest.addr, "no UDP socket to send from");
                return;
            };
            match socket.try_send_to(&bytes, dest.addr) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let socket = Arc::clone(socket);
                    let addr = dest.addr;
                    tokio::spawn(async move {
                        let _ = socket.send_to(&bytes, addr).await;
                    });
                }
                Err(e) => debug!(dest = %dest.addr, "udp send failed: {e}"),
            }
        }
        Transport::Tcp => {
            let conn = dest.conn.map(|c| c.0).or_else(|| conns.to_addr(dest.addr));
            let sent = conn.is_some_and(|c| conns.send(c, bytes));
            if !sent {
                debug!(dest = %dest.addr, "no open TCP connection for this message; dropped");
            }
        }
        other => debug!(dest = %dest.addr, "transport {other:?} is not served; message dropped"),
    }
}

fn on_event(
    endpoint: &mut Endpoint,
    event: Event,
    readiness: &Readiness,
    records: &switchboard_store::RecordSink,
    registered: &mut HashSet<String>,
    now: switchboard_sip::Instant,
) {
    match event {
        Event::NewRequest { txn, req, src } => {
            let (status, reason) = match req.method {
                Method::Invite if readiness.shutting_down.load(Ordering::Acquire) => {
                    (503, "Shutting Down")
                }
                // Call control (queues, agent legs, media) is not part of this version.
                Method::Invite => (503, "Call Handling Not Available"),
                Method::Message => (405, "Method Not Allowed"),
                _ => (481, "Call/Transaction Does Not Exist"),
            };
            debug!(method = %req.method, %status, peer = %src.addr, "request answered without a dialog");
            let tag = endpoint.new_tag();
            let mut resp = Response::from_request(&req, status, reason, Some(&tag));
            if status == 503 {
                resp.headers.push(HeaderName::RetryAfter, "30");
            }
            if status == 405 {
                resp.headers.push(HeaderName::Allow, switchboard_sip::ALLOW);
            }
            if let Err(e) = endpoint.respond(now, txn, resp) {
                debug!("response not sent: {e}");
            }
        }
        Event::RegistrationChanged { agent, contacts } => {
            let at = switchboard_store::now_utc();
            if contacts.is_empty() {
                if registered.remove(&agent) {
                    info!(%agent, "agent unregistered");
                    record_session(records, &agent, AgentEventKind::Logout, "unregistered", at);
                }
            } else {
                let list: Vec<String> = contacts.iter().map(|b| b.contact.to_string()).collect();
                if registered.insert(agent.clone()) {
                    info!(%agent, contacts = ?list, "agent registered");
                    record_session(records, &agent, AgentEventKind::Login, "registered", at);
                } else {
                    debug!(%agent, contacts = ?list, "agent bindings changed");
                }
            }
        }
        Event::CancelRequested { invite_txn, cancel } => {
            let tag = endpoint.new_tag();
            if let Some(invite) = endpoint.server_request(invite_txn).cloned() {
                let resp = Response::from_request(&invite, 487, "Request Terminated", Some(&tag));
                if let Err(e) = endpoint.respond(now, invite_txn, resp) {
                    debug!("487 not sent: {e}");
                }
            }
            debug!(
                call_id = cancel.call_id().unwrap_or_default(),
                "INVITE cancelled"
            );
        }
        other => debug!(event = ?other, "SIP event"),
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
