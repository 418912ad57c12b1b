//! SIP transports on tokio: UDP sockets, TCP and WebSocket listeners of `[sip] listen`.
//!
//! Socket tasks only move bytes: every datagram and every framed stream message goes over a
//! bounded channel to the one task that owns the sans-IO [`switchboard_sip::Endpoint`]
//! (see `server::drive_endpoint`). Outbound bytes come back as [`Outbound`] routes:
//! a UDP socket to send from, or the writer channel of the TCP connection a request came on,
//! so responses leave over the connection the request arrived on (RFC 3261 §18.2.2).
//! WebSocket connections (RFC 7118, `ws.rs`) are stream connections too: one SIP message
//! per frame instead of Content-Length framing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use switchboard_sip::Transport;
use switchboard_sipmsg::{Frame, StreamFramer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

/// Identifies one stream (TCP or WebSocket) connection for the life of the process.
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
    /// A whole SIP message from stream connection `conn` (TCP or WebSocket).
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
}

/// Counters of what the transports dropped, for logs and metrics.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Datagrams dropped because the endpoint task was saturated.
    pub inbound_dropped: AtomicU64,
    /// Datagrams or stream messages larger than `max_message_size`.
    pub oversized: AtomicU64,
    /// Stream connections refused at `max_tcp_connections`.
    pub connections_refused: AtomicU64,
    /// WebSocket handshakes refused (no `sip` subprotocol, not a WebSocket, timed out).
    pub ws_handshake_failures: AtomicU64,
    /// Open stream connections (TCP and WebSocket).
    pub connections_open: AtomicUsize,
}

/// The bound listeners.
#[derive(Debug)]
pub struct Listeners {
    pub udp: Vec<Arc<UdpSocket>>,
    pub tcp: Vec<TcpListener>,
    pub ws: Vec<TcpListener>,
}

impl Listeners {
    /// Binds every address; the first failure is returned with the address that failed.
    pub async fn bind(
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
        ws: &[SocketAddr],
    ) -> Result<Listeners, (String, std::io::Error)> {
        let mut listeners = Listeners {
            udp: Vec::new(),
            tcp: Vec::new(),
            ws: Vec::new(),
        };
        for addr in udp {
            let socket = UdpSocket::bind(addr)
                .await
                .map_err(|e| (format!("udp:{addr}"), e))?;
            info!(transport = "udp", addr = %addr, "SIP listening");
            listeners.udp.push(Arc::new(socket));
        }
        for addr in tcp {
            listeners.tcp.push(bind_stream("tcp", addr).await?);
        }
        for addr in ws {
            listeners.ws.push(bind_stream("ws", addr).await?);
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

/// Spawns the receive loops. Returns at once; the tasks stop when `stop` is cancelled.
pub fn spawn(
    listeners: Listeners,
    limits: Limits,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
    stop: CancellationToken,
) -> Vec<Arc<UdpSocket>> {
    let udp = listeners.udp.clone();
    for (index, socket) in listeners.udp.into_iter().enumerate() {
        let inbound = inbound.clone();
        let stats = Arc::clone(&stats);
        let stop = stop.clone();
        tokio::spawn(udp_loop(index, socket, limits, inbound, stats, stop));
    }
    let next_conn = Arc::new(AtomicU64::new(1));
    let streams = listeners
        .tcp
        .into_iter()
        .map(|l| (Transport::Tcp, l))
        .chain(listeners.ws.into_iter().map(|l| (Transport::Ws, l)));
    for (transport, listener) in streams {
        let stream = StreamTask {
            limits,
            inbound: inbound.clone(),
            stats: Arc::clone(&stats),
            stop: stop.clone(),
        };
        tokio::spawn(accept_loop(
            transport,
            listener,
            stream,
            Arc::clone(&next_conn),
        ));
    }
    udp
}

async fn udp_loop(
    index: usize,
    socket: Arc<UdpSocket>,
    limits: Limits,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<TransportStats>,
    stop: CancellationToken,
) {
    // One byte more than allowed tells an oversized datagram from one that fits exactly.
    let mut buf = vec![0u8; limits.max_message_size.saturating_add(1)];
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, from) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable surfaces here on Linux as ECONNREFUSED: not fatal.
                debug!(socket = index, "udp receive error: {e}");
                continue;
            }
        };
        if len > limits.max_message_size {
            stats.oversized.fetch_add(1, Ordering::Relaxed);
            debug!(%from, len, "oversized datagram dropped");
            continue;
        }
        let Some(bytes) = buf.get(..len) else {
            continue;
        };
        // CRLF keep-alives on UDP (RFC 5626 §4.4.1 uses STUN; plain CRLF is common): ignore.
        if bytes
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        {
            continue;
        }
        let msg = Inbound::Datagram {
            socket: index,
            from,
            bytes: bytes.to_vec(),
        };
        // Never block the receive loop: a saturated endpoint drops datagrams, like a full
        // socket buffer would; SIP over UDP retransmits.
        if inbound.try_send(msg).is_err() {
            stats.inbound_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What every stream connection task is given.
#[derive(Debug, Clone)]
pub(crate) struct StreamTask {
    pub limits: Limits,
    pub inbound: mpsc::Sender<Inbound>,
    pub stats: Arc<TransportStats>,
    pub stop: CancellationToken,
}

async fn accept_loop(
    transport: Transport,
    listener: TcpListener,
    task: StreamTask,
    next_conn: Arc<AtomicU64>,
) {
    let kind = transport.via_token().to_ascii_lowercase();
    loop {
        let accepted = tokio::select! {
            () = task.stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, from) = match accepted {
            Ok(r) => r,
            Err(e) => {
                warn!("{kind} accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if task.stats.connections_open.load(Ordering::Relaxed) >= task.limits.max_tcp_connections {
            task.stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            warn!(%from, "{kind} connection refused: max_tcp_connections reached");
            drop(stream);
            continue;
        }
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        let span = info_span!("conn", transport = %kind, conn, peer = %from);
        let _ = stream.set_nodelay(true);
        if transport == Transport::Ws {
            tokio::spawn(crate::ws::connection(conn, stream, from, task.clone()).instrument(span));
        } else {
            tokio::spawn(tcp_connection(conn, stream, from, task.clone()).instrument(span));
        }
    }
}

async fn tcp_connection(conn: ConnId, stream: TcpStream, from: SocketAddr, task: StreamTask) {
    let StreamTask {
        limits,
        inbound,
        stats,
        stop,
    } = task;
    stats.connections_open.fetch_add(1, Ordering::Relaxed);
    debug!("connection opened");
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITER_QUEUE);
    if inbound
        .send(Inbound::Opened {
            conn,
            transport: Transport::Tcp,
            from,
            writer: tx.clone(),
        })
        .await
        .is_err()
    {
        stats.connections_open.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let write_stop = stop.clone();
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
    let mut framer = StreamFramer::new(limits.max_message_size);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let read = tokio::select! {
            () = stop.cancelled() => break,
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
                    let msg = Inbound::Stream {
                        conn,
                        transport: Transport::Tcp,
                        from,
                        bytes,
                    };
                    if inbound.send(msg).await.is_err() {
                        break 'read;
                    }
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
                    stats.oversized.fetch_add(1, Ordering::Relaxed);
                    warn!("closing connection: {e}");
                    break 'read;
                }
            }
        }
    }
    drop(tx);
    let _ = inbound.send(Inbound::Closed { conn }).await;
    write_task.abort();
    stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    debug!("connection closed");
}

/// Messages queued for one connection's writer before it counts as saturated.
pub(crate) const WRITER_QUEUE: usize = 256;

/// The endpoint task's view of open stream connections: owned by that one task, so no lock.
#[derive(Debug, Default)]
pub struct Connections {
    writers: HashMap<ConnId, (Transport, SocketAddr, mpsc::Sender<Vec<u8>>)>,
}

impl Connections {
    pub fn opened(
        &mut self,
        conn: ConnId,
        transport: Transport,
        from: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    ) {
        self.writers.insert(conn, (transport, from, writer));
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

    /// A connection of `transport` to `addr`, if one is open (requests to a peer reuse its
    /// connection).
    pub fn to_addr(&self, transport: Transport, addr: SocketAddr) -> Option<ConnId> {
        self.writers
            .iter()
            .find(|(_, (t, from, _))| *t == transport && *from == addr)
            .map(|(conn, _)| *conn)
    }
}
