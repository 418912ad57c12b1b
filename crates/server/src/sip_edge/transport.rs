//! SIP transports on tokio: UDP sockets, TCP, TLS, WebSocket and secure WebSocket listeners
//! of `[sip] listen`.
//!
//! Socket tasks only move bytes: every datagram and every framed stream message goes through
//! the bounded two-lane [`InboundQueue`] (`inqueue.rs`) to the one task that owns the sans-IO
//! [`switchboard_sip::Endpoint`] (the `Driver` of `server.rs`). Outbound bytes go to a UDP socket ([`UdpSockets`]) or to
//! the writer channel of a stream connection, so responses leave over the socket or the
//! connection the request arrived on (RFC 3261 §18.2.2), and requests to a UDP peer leave
//! from the listener the endpoint picked for it (the one its REGISTER or requests came in
//! on, else one of its address family). TCP and TLS connections share one connection loop
//! ([`stream_connection`]); the TLS handshake and certificates live in `tls.rs`. WebSocket
//! connections (RFC 7118, `ws.rs`; over TLS for `wss:`) are stream connections too, with
//! one SIP message per frame instead of Content-Length framing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use switchboard_sip::{Peer, Transport};
use switchboard_sipmsg::{Frame, StreamFramer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::sip_edge::inqueue::InboundQueue;
use crate::sip_edge::udp_batch::{self, Datagram, RecvBatch};

/// Identifies one stream (TCP, TLS, WS or WSS) connection for the life of the process.
pub type ConnId = u64;

/// Something the socket tasks hand to the endpoint task.
#[derive(Debug)]
pub enum Inbound {
    /// A UDP datagram received on listener `socket`.
    Datagram {
        socket: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A whole SIP message from stream connection `conn` (TCP, TLS, WS or WSS).
    Stream {
        conn: ConnId,
        transport: Transport,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A stream connection opened: its writer channel.
    Opened {
        conn: ConnId,
        transport: Transport,
        from: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// A stream connection closed.
    Closed { conn: ConnId },
    /// An outbound connection to `addr` could not be made: what was sent there failed.
    Unreachable {
        transport: Transport,
        addr: SocketAddr,
    },
}

/// Counters of what the transports dropped, for logs and metrics.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Datagrams or stream messages larger than `max_message_size`.
    pub oversized: AtomicU64,
    /// Stream connections refused at `max_tcp_connections`.
    pub connections_refused: AtomicU64,
    /// Open stream connections (TCP and TLS, TLS handshakes in progress included).
    pub connections_open: AtomicUsize,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
    /// WebSocket upgrades refused (no `sip` subprotocol, not a WebSocket, timed out).
    pub ws_handshake_failures: AtomicU64,
}

/// Hands one whole SIP message of a stream connection — `(conn, transport, from)` — to the
/// endpoint task, waiting while its lane is full (the peer feels it as TCP backpressure).
pub async fn deliver(
    inbound: &InboundQueue,
    (conn, transport, from): (ConnId, Transport, SocketAddr),
    bytes: Vec<u8>,
) {
    let msg = Inbound::Stream {
        conn,
        transport,
        from,
        bytes,
    };
    inbound.send(msg).await;
}

/// One counted slot of `max_tcp_connections`, given back when the connection ends.
#[derive(Debug)]
pub struct ConnSlot(Arc<TransportStats>);

impl ConnSlot {
    /// Takes a slot, or `None` (counted and logged) when every slot is in use.
    pub fn take(
        stats: &Arc<TransportStats>,
        limits: &Limits,
        from: SocketAddr,
    ) -> Option<ConnSlot> {
        if stats.connections_open.load(Ordering::Relaxed) >= limits.max_tcp_connections {
            stats.connections_refused.fetch_add(1, Ordering::Relaxed);
            warn!(%from, "connection refused: max_tcp_connections reached");
            return None;
        }
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        Some(ConnSlot(Arc::clone(stats)))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The bound listeners.
#[derive(Debug)]
pub struct Listeners {
    pub udp: Vec<Arc<UdpSocket>>,
    pub tcp: Vec<TcpListener>,
    pub tls: Vec<TcpListener>,
    pub ws: Vec<TcpListener>,
    pub wss: Vec<TcpListener>,
}

/// The addresses of the stream listeners of `[sip] listen`, by transport.
#[derive(Debug, Default)]
pub struct StreamAddrs {
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub ws: Vec<SocketAddr>,
    pub wss: Vec<SocketAddr>,
}

impl Listeners {
    /// Binds every address; the first failure is returned with the address that failed.
    pub async fn bind(
        udp: &[SocketAddr],
        streams: &StreamAddrs,
    ) -> Result<Listeners, (String, std::io::Error)> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            ws: Vec::new(),
            wss: Vec::new(),
        };
        for addr in udp {
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|e| (format!("udp:{addr}"), e))?;
            info!(transport = "udp", addr = %addr, "SIP listening");
            listeners.udp.push(Arc::new(socket));
        }
        for addr in &streams.tcp {
            listeners.tcp.push(bind_stream("tcp", addr).await?);
        }
        for addr in &streams.tls {
            listeners.tls.push(bind_stream("tls", addr).await?);
        }
        for addr in &streams.ws {
            listeners.ws.push(bind_stream("ws", addr).await?);
        }
        for addr in &streams.wss {
            listeners.wss.push(bind_stream("wss", addr).await?);
        }
        Ok(listeners)
    }
}

async fn bind_stream(
    kind: &str,
    addr: &SocketAddr,
) -> Result<TcpListener, (String, std::io::Error)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| (format!("{kind}:{addr}"), e))?;
    info!(transport = kind, addr = %addr, "SIP listening");
    Ok(listener)
}

/// Limits the transports enforce.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message_size: usize,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout: Duration,
}

/// What every stream connection task needs: limits, the way to the endpoint task, the
/// counters, the stop token and the connection numbering.
#[derive(Debug, Clone)]
pub struct StreamContext {
    pub limits: Limits,
    pub inbound: Arc<InboundQueue>,
    pub stats: Arc<TransportStats>,
    pub stop: CancellationToken,
    next_conn: Arc<AtomicU64>,
}

impl StreamContext {
    pub fn new(
        limits: Limits,
        inbound: Arc<InboundQueue>,
        stats: Arc<TransportStats>,
        stop: CancellationToken,
    ) -> StreamContext {
        StreamContext {
            limits,
            inbound,
            stats,
            stop,
            next_conn: Arc::new(AtomicU64::new(1)),
        }
    }

    /// A number for a new connection, never reused.
    pub fn next_conn(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// The UDP listeners, in `[sip] listen` order, with the address each is bound to. A
/// datagram's [`Peer`] names the socket it came in on, and what the endpoint sends to a UDP
/// peer leaves from the socket its `local` names (the endpoint sets it on every transmit when
/// it knows its listeners). What the endpoint task sends is queued per socket and leaves in
/// `sendmmsg` batches at [`UdpSockets::flush`], once per round of the task.
#[derive(Debug, Default)]
pub struct UdpSockets {
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// Datagrams waiting for the next flush, by socket.
    outbox: Vec<Vec<(SocketAddr, Vec<u8>)>>,
}

impl UdpSockets {
    fn new(sockets: &[Arc<UdpSocket>]) -> std::io::Result<UdpSockets> {
        let sockets = sockets
            .iter()
            .map(|s| Ok((s.local_addr()?, Arc::clone(s))))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(UdpSockets {
            outbox: vec![Vec::new(); sockets.len()],
            sockets,
        })
    }

    /// The bound address of every socket, in order.
    pub fn locals(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(addr, _)| *addr).collect()
    }

    /// The peer of a datagram from `from` on socket `index`.
    pub fn peer(&self, index: usize, from: SocketAddr) -> Peer {
        match self.sockets.get(index) {
            Some((local, _)) => Peer::udp_on(from, *local),
            None => Peer::udp(from),
        }
    }

    /// Queues `bytes` for `dest` on the socket bound to `dest.local`, else on the first
    /// socket of the destination's address family; it leaves at the next [`flush`].
    ///
    /// [`flush`]: UdpSockets::flush
    pub fn send(&mut self, dest: &Peer, bytes: Vec<u8>) {
        let named = dest
            .local
            .and_then(|local| self.sockets.iter().position(|(addr, _)| *addr == local));
        let index = named
            .or_else(|| {
                self.sockets
                    .iter()
                    .position(|(addr, _)| addr.is_ipv4() == dest.addr.is_ipv4())
            })
            .unwrap_or(0);
        match self.outbox.get_mut(index) {
            Some(out) => out.push((dest.addr, bytes)),
            None => warn!(dest = %dest.addr, "no UDP socket to send from"),
        }
    }

    /// Sends what [`send`](UdpSockets::send) queued, in `sendmmsg` batches. Never waits: what
    /// a full socket buffer does not take is handed to a task.
    pub fn flush(&mut self) {
        for ((local, socket), out) in self.sockets.iter().zip(self.outbox.iter_mut()) {
            let mut sent = 0;
            while let Some(rest) = out.get(sent..).filter(|r| !r.is_empty()) {
                match socket.try_io(Interest::WRITABLE, || {
                    udp_batch::send_batch(socket.as_ref(), rest)
                }) {
                    Ok(n) => sent += n.max(1),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let rest: Vec<_> = out.drain(sent..).collect();
                        let socket = Arc::clone(socket);
                        tokio::spawn(async move {
                            for (addr, bytes) in rest {
                                let _ = socket.send_to(&bytes, addr).await;
                            }
                        });
                        break;
                    }
                    Err(e) => {
                        // The first datagram of the batch failed (the kernel reports an
                        // error only for the first); the rest go on in the next call.
                        let dest = rest.first().map(|(addr, _)| *addr);
                        debug!(?dest, %local, "udp send failed: {e}");
                        sent += 1;
                    }
                }
            }
            out.clear();
        }
    }
}

/// Spawns the receive loops. Returns at once; the tasks stop when `stop` is cancelled.
/// TLS and WSS listeners need `tls` (validation makes sure `[tls]` is set when they exist).
pub fn spawn(
    listeners: Listeners,
    ctx: &StreamContext,
    tls: Option<&crate::sip_edge::tls::Tls>,
) -> std::io::Result<UdpSockets> {
    let (limits, inbound, stats, stop) = (
        ctx.limits,
        Arc::clone(&ctx.inbound),
        Arc::clone(&ctx.stats),
        ctx.stop.clone(),
    );
    let udp = UdpSockets::new(&listeners.udp)?;
    for (index, socket) in listeners.udp.into_iter().enumerate() {
        let inbound = Arc::clone(&inbound);
        let stats = Arc::clone(&stats);
        let stop = stop.clone();
        tokio::spawn(udp_loop(index, socket, limits, inbound, stats, stop));
    }
    for listener in listeners.tcp {
        tokio::spawn(tcp_accept_loop(listener, ctx.clone()));
    }
    for listener in listeners.tls {
        match tls {
            Some(tls) => {
                tokio::spawn(crate::sip_edge::tls::accept_loop(
                    listener,
                    tls.acceptor(),
                    ctx.clone(),
                ));
            }
            None => warn!("tls: listener without [tls]: not served"),
        }
    }
    for listener in listeners.ws {
        tokio::spawn(crate::sip_edge::ws::accept_loop(
            listener,
            None,
            ctx.clone(),
        ));
    }
    for listener in listeners.wss {
        match tls {
            Some(tls) => {
                tokio::spawn(crate::sip_edge::ws::accept_loop(
                    listener,
                    Some(tls.acceptor()),
                    ctx.clone(),
                ));
            }
            None => warn!("wss: listener without [tls]: not served"),
        }
    }
    Ok(udp)
}

async fn udp_loop(
    index: usize,
    socket: Arc<UdpSocket>,
    limits: Limits,
    inbound: Arc<InboundQueue>,
    stats: Arc<TransportStats>,
    stop: CancellationToken,
) {
    // One byte more than allowed tells an oversized datagram from one that fits exactly.
    let mut batch = RecvBatch::new(limits.max_message_size.saturating_add(1));
    let mut msgs = Vec::with_capacity(udp_batch::BATCH);
    loop {
        let ready = tokio::select! {
            () = stop.cancelled() => return,
            r = socket.readable() => r,
        };
        if let Err(e) = ready {
            debug!(socket = index, "udp socket not readable: {e}");
            continue;
        }
        // One recvmmsg for everything waiting (up to a batch); WouldBlock clears readiness.
        match socket.try_io(Interest::READABLE, || batch.recv(socket.as_ref())) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // ICMP port unreachable surfaces here on Linux as ECONNREFUSED: not fatal.
                debug!(socket = index, "udp receive error: {e}");
                continue;
            }
        }
        for datagram in batch.datagrams() {
            let (from, bytes) = match datagram {
                Datagram::Data { from, bytes } if bytes.len() <= limits.max_message_size => {
                    (from, bytes)
                }
                Datagram::Data { from, .. } | Datagram::Oversized { from } => {
                    stats.oversized.fetch_add(1, Ordering::Relaxed);
                    debug!(%from, "oversized datagram dropped");
                    continue;
                }
            };
            // CRLF keep-alives on UDP (RFC 5626 §4.4.1 uses STUN; plain CRLF is common): ignore.
            if bytes
                .iter()
                .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
            {
                continue;
            }
            msgs.push(Inbound::Datagram {
                socket: index,
                from,
                bytes: bytes.to_vec(),
            });
        }
        // Never block the receive loop: a full lane drops the datagram (counted there),
        // like a full socket buffer would; SIP over UDP retransmits.
        let dropped = inbound.offer_all(&mut msgs);
        if dropped > 0 {
            debug!(
                socket = index,
                dropped, "inbound queue full: datagrams dropped"
            );
        }
    }
}

/// Waits for the next connection on `listener` that gets a slot of `max_tcp_connections`
/// (those that find none are closed at once); `None` once `stop` is cancelled.
pub async fn accept(
    listener: &TcpListener,
    ctx: &StreamContext,
    transport: Transport,
) -> Option<(TcpStream, StreamId)> {
    loop {
        let accepted = tokio::select! {
            () = ctx.stop.cancelled() => return None,
            r = listener.accept() => r,
        };
        let (stream, from) = match accepted {
            Ok(r) => r,
            Err(e) => {
                warn!("{transport:?} accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = ConnSlot::take(&ctx.stats, &ctx.limits, from) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = StreamId {
            conn: ctx.next_conn(),
            transport,
            from,
            slot,
        };
        return Some((stream, id));
    }
}

async fn tcp_accept_loop(listener: TcpListener, ctx: StreamContext) {
    while let Some((stream, id)) = accept(&listener, &ctx, Transport::Tcp).await {
        let span = info_span!("tcp", conn = id.conn, peer = %id.from);
        tokio::spawn(stream_connection(id, stream, ctx.clone()).instrument(span));
    }
}

/// Who a stream connection is: its number, transport and peer, and the slot it holds.
#[derive(Debug)]
pub struct StreamId {
    pub conn: ConnId,
    pub transport: Transport,
    pub from: SocketAddr,
    pub slot: ConnSlot,
}

/// One stream connection (TCP, or TLS after its handshake) for its whole life: announces it
/// to the endpoint task, frames what arrives into SIP messages, writes what the endpoint
/// sends, answers CRLF keep-alives, and closes on idle timeout, framing errors or `stop`.
pub async fn stream_connection<S>(id: StreamId, stream: S, ctx: StreamContext)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let StreamId {
        conn,
        transport,
        from,
        ..
    } = id;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
    ctx.inbound
        .send(Inbound::Opened {
            conn,
            transport,
            from,
            writer: tx.clone(),
        })
        .await;
    run_stream(id, stream, ctx, (tx, rx)).await;
}

/// The body of [`stream_connection`] once the endpoint task knows the connection; `channel`
/// is its writer channel (messages queued before the connection was up go out first).
pub async fn run_stream<S>(
    id: StreamId,
    stream: S,
    ctx: StreamContext,
    channel: (mpsc::Sender<Vec<u8>>, mpsc::Receiver<Vec<u8>>),
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let StreamId {
        conn,
        transport,
        from,
        slot,
    } = id;
    debug!("connection opened");
    let (tx, mut rx) = channel;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write_stop = ctx.stop.clone();
    let write_task = tokio::spawn(async move {
        loop {
            let bytes = tokio::select! {
                () = write_stop.cancelled() => break,
                b = rx.recv() => match b { Some(b) => b, None => break },
            };
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let limits = ctx.limits;
    let inbound = &ctx.inbound;
    let mut framer = StreamFramer::new(limits.max_message_size);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let read = tokio::select! {
            () = ctx.stop.cancelled() => break,
            r = tokio::time::timeout(limits.tcp_idle_timeout, reader.read(&mut buf)) => r,
        };
        let n = match read {
            Err(_) => {
                debug!("idle timeout");
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!("read error: {e}");
                break;
            }
        };
        let Some(chunk) = buf.get(..n) else { break };
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Message(bytes))) => {
                    // Waits while the lane is full: the peer feels it as TCP backpressure.
                    deliver(inbound, (conn, transport, from), bytes).await;
                }
                Ok(Some(Frame::KeepAlivePing)) => {
                    // RFC 5626 §4.4.1: answer a double-CRLF ping with a single CRLF pong.
                    if tx.send(b"\r\n".to_vec()).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::KeepAlivePong)) => {}
                Err(e) => {
                    // A stream that cannot be framed cannot be resynchronised: close it.
                    ctx.stats.oversized.fetch_add(1, Ordering::Relaxed);
                    warn!("closing connection: {e}");
                    break 'read;
                }
            }
        }
    }
    drop(tx);
    inbound.send(Inbound::Closed { conn }).await;
    write_task.abort();
    drop(slot);
    debug!("connection closed");
}

/// How long an outbound TCP connection may take to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens outbound TCP connections for the endpoint task: a request to a TCP peer with no
/// connection open (a trunk's `outbound = "…;transport=tcp"`, an agent whose Contact asks
/// for TCP) starts one here. Like an accepted connection it holds a [`ConnSlot`], and
/// [`run_stream`] frames what the peer sends on it (its responses and in-dialog requests
/// reach the endpoint) and closes it after `tcp_idle_timeout`, which is never below a live
/// registration. A connection that cannot be made becomes [`Inbound::Unreachable`] then
/// [`Inbound::Closed`], so the transactions towards the peer fail at once (RFC 3261
/// §17.1.4).
#[derive(Debug, Clone)]
pub struct TcpDialer {
    ctx: StreamContext,
}

impl TcpDialer {
    pub fn new(ctx: StreamContext) -> TcpDialer {
        TcpDialer { ctx }
    }

    /// Starts a connection to `addr`; its id and writer channel (messages queued before it
    /// is up go out first), or `None` when every connection slot is taken.
    pub fn dial(&self, addr: SocketAddr) -> Option<(ConnId, mpsc::Sender<Vec<u8>>)> {
        let slot = ConnSlot::take(&self.ctx.stats, &self.ctx.limits, addr)?;
        let conn = self.ctx.next_conn();
        let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
        let writer = tx.clone();
        let ctx = self.ctx.clone();
        let span = info_span!("tcp", conn, peer = %addr, outbound = true);
        tokio::spawn(
            async move {
                let why =
                    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                        Ok(Ok(stream)) => {
                            let _ = stream.set_nodelay(true);
                            info!("outbound TCP connection established");
                            let id = StreamId {
                                conn,
                                transport: Transport::Tcp,
                                from: addr,
                                slot,
                            };
                            return run_stream(id, stream, ctx, (tx, rx)).await;
                        }
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".to_owned(),
                    };
                warn!("outbound TCP connection failed: {why}");
                let unreachable = Inbound::Unreachable {
                    transport: Transport::Tcp,
                    addr,
                };
                let _ = ctx.inbound.send(unreachable).await;
                let _ = ctx.inbound.send(Inbound::Closed { conn }).await;
            }
            .instrument(span),
        );
        Some((conn, writer))
    }
}

/// The endpoint task sends `bytes` over TCP (see [`Connections::send_or_dial`]): an open
/// connection to the address is reused, whether this dialer opened it or the peer did.
pub fn send_tcp(dest: &Peer, bytes: Vec<u8>, conns: &mut Connections, dialer: &TcpDialer) {
    conns.send_or_dial(dest, bytes, || dialer.dial(dest.addr));
}

/// The endpoint task's view of open stream connections: owned by that one task, so no lock.
#[derive(Debug, Default)]
pub struct Connections {
    writers: HashMap<ConnId, (SocketAddr, Transport, mpsc::Sender<Vec<u8>>)>,
}

impl Connections {
    pub fn opened(
        &mut self,
        conn: ConnId,
        transport: Transport,
        from: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    ) {
        self.writers.insert(conn, (from, transport, writer));
    }

    pub fn closed(&mut self, conn: ConnId) {
        self.writers.remove(&conn);
    }

    /// Queues bytes on a connection; false when it is gone or saturated.
    pub fn send(&self, conn: ConnId, bytes: Vec<u8>) -> bool {
        match self.writers.get(&conn) {
            Some((_, _, writer)) => writer.try_send(bytes).is_ok(),
            None => false,
        }
    }

    /// Whether connection `conn` is open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.writers.contains_key(&conn)
    }

    /// Sends `bytes` to `dest` over its stream transport (TCP or TLS): on the connection
    /// `dest` names (dropped when it has closed: that flow is gone, RFC 5626), else on an
    /// open connection of that transport to the address, else on a new outbound one that
    /// `dial` starts (`None`: none can be made, and the message is dropped).
    pub fn send_or_dial(
        &mut self,
        dest: &Peer,
        bytes: Vec<u8>,
        dial: impl FnOnce() -> Option<(ConnId, mpsc::Sender<Vec<u8>>)>,
    ) {
        let transport = dest.transport.via_token();
        if let Some(conn) = dest.conn {
            if !self.send(conn.0, bytes) {
                debug!(dest = %dest.addr, conn = conn.0, transport, "connection gone or saturated; message dropped");
            }
            return;
        }
        if let Some(conn) = self.to_addr(dest.transport, dest.addr) {
            if !self.send(conn, bytes) {
                debug!(dest = %dest.addr, conn, transport, "connection saturated; message dropped");
            }
            return;
        }
        match dial() {
            Some((conn, writer)) => {
                // The channel is fresh and holds 256 messages: this first one always fits.
                let _ = writer.try_send(bytes);
                self.opened(conn, dest.transport, dest.addr, writer);
            }
            None => debug!(dest = %dest.addr, transport, "no outbound connection; message dropped"),
        }
    }

    /// A connection of `transport` to `addr`, if one is open (requests to a peer reuse its
    /// connection).
    pub fn to_addr(&self, transport: Transport, addr: SocketAddr) -> Option<ConnId> {
        self.writers
            .iter()
            .find(|(_, (from, t, _))| *from == addr && *t == transport)
            .map(|(conn, _)| *conn)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const PING: &[u8] = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    const PONG: &[u8] = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";

    /// A stream context for tests: 64 KB messages, 16 connections, `idle` timeout; the
    /// inbound queue it feeds (64 messages, 1 MiB).
    pub(crate) fn context(idle: Duration) -> (StreamContext, Arc<InboundQueue>) {
        let queue = Arc::new(InboundQueue::new(
            crate::sip_edge::inqueue::QueueLimits {
                messages: 64,
                bytes: 1 << 20,
            },
            Vec::new(),
        ));
        let limits = Limits {
            max_message_size: 65_535,
            max_tcp_connections: 16,
            tcp_idle_timeout: idle,
        };
        let stats = Arc::new(TransportStats::default());
        let ctx = StreamContext::new(limits, Arc::clone(&queue), stats, CancellationToken::new());
        (ctx, queue)
    }

    /// The next message for the endpoint task (at most 10 s away).
    pub(crate) async fn next(rx: &mut Arc<InboundQueue>) -> Inbound {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("nothing arrived in time")
    }

    fn tcp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Tcp,
            addr,
            conn: None,
            local: None,
        }
    }

    /// A request to a TCP peer without a connection opens one; the next request reuses it,
    /// the peer's answer on it reaches the endpoint task, and it closes after the idle
    /// timeout. A peer that cannot be reached is reported at once.
    #[tokio::test]
    async fn outbound_tcp_opens_reuses_carries_answers_and_idles_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ctx, mut rx) = context(Duration::from_millis(400));
        let dialer = TcpDialer::new(ctx.clone());
        let mut conns = Connections::default();
        send_tcp(&tcp(addr), PING.to_vec(), &mut conns, &dialer);
        let first = conns
            .to_addr(Transport::Tcp, addr)
            .expect("connection recorded");
        send_tcp(&tcp(addr), PING.to_vec(), &mut conns, &dialer);
        assert_eq!(conns.to_addr(Transport::Tcp, addr), Some(first), "reused");

        let (mut peer, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while got.len() < 2 * PING.len() {
            let n = tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            got,
            [PING, PING].concat(),
            "both requests on one connection"
        );
        peer.write_all(PONG).await.unwrap();
        let reply = next(&mut rx).await;
        assert!(
            matches!(&reply, Inbound::Stream { conn, transport: Transport::Tcp, from, bytes }
                if *conn == first && *from == addr && bytes == PONG),
            "the reply on the same connection: {reply:?}"
        );
        // Silence past the idle timeout closes it (the peer sees EOF).
        match next(&mut rx).await {
            Inbound::Closed { conn } => assert_eq!(conn, first),
            other => panic!("{other:?}"),
        }
        conns.closed(first);
        let n = tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(ctx.stats.connections_open.load(Ordering::Relaxed), 0);

        // Nobody listening: unreachable, then closed; nothing stays recorded as usable.
        drop(listener);
        send_tcp(&tcp(addr), PING.to_vec(), &mut conns, &dialer);
        let dialed = conns.to_addr(Transport::Tcp, addr).expect("dialing");
        match next(&mut rx).await {
            Inbound::Unreachable { transport, addr: a } => {
                assert_eq!((transport, a), (Transport::Tcp, addr));
            }
            other => panic!("{other:?}"),
        }
        match next(&mut rx).await {
            Inbound::Closed { conn } => assert_eq!(conn, dialed),
            other => panic!("{other:?}"),
        }
    }
}
