//! The [`Endpoint`]: the sans-IO SIP node the server drives.
//!
//! The driver feeds datagrams/stream frames ([`Endpoint::handle_datagram`]) and timeouts
//! ([`Endpoint::handle_timeout`]), drains [`Transmit`]s and [`Event`]s, and sleeps until
//! [`Endpoint::poll_timeout`]. The endpoint owns the transactions, the registrar and the
//! 2xx/ACK bookkeeping of INVITE dialogs, and answers by itself what needs no call
//! control: malformed requests (400), REGISTER, out-of-dialog OPTIONS, unknown (501) and
//! unsupported (405) methods, Max-Forwards: 0 (483), CANCEL (200/481), and new requests while
//! the transaction table is full (503, see [`EndpointConfig::max_transactions`]).
//!
//! Timers cost nothing per live transaction: every deadline sits in one binary heap
//! ([`Endpoint::poll_timeout`] reads its top) and only due entries are touched.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use switchboard_sipmsg::{
    HeaderName, Host, Message, Method, ParseError, Request, Response, Uri, Via,
};

use crate::Error;
use crate::dialog;
use crate::digest::{NonceSource, hmac_sha256};
use crate::registrar::{Binding, Registrar, RegistrarConfig};
use crate::time::{Instant, TimerConfig};
use crate::transaction::{
    ClientAction, ClientState, ClientTxn, RespondRefusal, ServerAction, ServerState, ServerTxn,
};

mod client;
mod server;
mod timers;
mod wire;

use wire::*;

/// RFC 3261 §8.1.1.7 magic cookie that marks RFC 3261 branch ids.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// Methods the endpoint accepts (the `Allow` header).
pub const ALLOW: &str =
    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, REFER, NOTIFY, INFO, UPDATE, PRACK, MESSAGE";

/// Most timer firings handled per transaction per `handle_timeout` call (a bound, not a
/// behaviour: every firing re-arms strictly later or disarms).
const MAX_FIRINGS: usize = 64;

/// `Retry-After` (seconds) on the `503` sent when the transaction table is full. Finished
/// transactions leave it continuously (Timers J and L), so a short wait is enough.
const OVERLOAD_RETRY_AFTER_S: u32 = 5;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP (unreliable: retransmission timers run).
    Udp,
    /// TCP.
    Tcp,
    /// WebSocket (RFC 7118).
    Ws,
    /// TLS over TCP.
    Tls,
    /// Secure WebSocket.
    Wss,
}

impl Transport {
    /// Whether the transport delivers reliably (no retransmissions, zero D/I/J/K).
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Ws => "WS",
            Transport::Tls => "TLS",
            Transport::Wss => "WSS",
        }
    }

    /// Default port when a Via or URI gives none.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp | Transport::Ws => 5060,
            Transport::Tls | Transport::Wss => 5061,
        }
    }
}

/// A stream connection, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The other end of a message: transport, address and (for streams) the connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport the message travels on.
    pub transport: Transport,
    /// Remote socket address.
    pub addr: SocketAddr,
    /// The connection, for stream transports; `None` lets the driver pick or open one.
    pub conn: Option<ConnId>,
    /// For UDP, the local socket (its bound address): the listener a datagram came in on,
    /// from which the replies to it and our requests to that peer leave. `None` lets the
    /// endpoint pick the listener that matches the destination
    /// ([`EndpointConfig::udp_listeners`]). Unused on streams, where `conn` decides.
    pub local: Option<SocketAddr>,
}

impl Peer {
    /// A UDP peer; the endpoint picks the local socket.
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
            conn: None,
            local: None,
        }
    }

    /// A UDP peer reached through the local socket bound to `local`.
    pub fn udp_on(addr: SocketAddr, local: SocketAddr) -> Peer {
        Peer {
            local: Some(local),
            ..Peer::udp(addr)
        }
    }

    /// A peer on a stream connection.
    pub fn stream(transport: Transport, addr: SocketAddr, conn: ConnId) -> Peer {
        Peer {
            transport,
            addr,
            conn: Some(conn),
            local: None,
        }
    }
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where: for stream peers with `conn`, over that connection.
    pub dest: Peer,
    /// One whole SIP message.
    pub bytes: Vec<u8>,
}

/// Names a server transaction for the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTxnKey(u64);

/// Names a client transaction for the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTxnKey(u64);

/// Either kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnKey {
    /// A server transaction.
    Server(ServerTxnKey),
    /// A client transaction.
    Client(ClientTxnKey),
}

/// What the endpoint tells the transaction user (call control).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new request for the TU (INVITE, BYE, REFER, NOTIFY, INFO, UPDATE, MESSAGE,
    /// in-dialog OPTIONS). Answer it with [`Endpoint::respond`]. INVITEs already got
    /// `100 Trying`.
    NewRequest {
        /// The server transaction to answer on.
        txn: ServerTxnKey,
        /// The request, top Via stamped with `received`/`rport`.
        req: Request,
        /// Where it came from.
        src: Peer,
    },
    /// A response on a client transaction (provisional or final; retransmissions absorbed).
    Response {
        /// The client transaction.
        txn: ClientTxnKey,
        /// The response.
        resp: Response,
    },
    /// A CANCEL matched INVITE transaction `invite_txn`, which had no final response yet.
    /// The endpoint answered the CANCEL with 200; the TU should answer the INVITE with 487.
    CancelRequested {
        /// The INVITE's server transaction.
        invite_txn: ServerTxnKey,
        /// The CANCEL request.
        cancel: Request,
    },
    /// An ACK that is not part of an INVITE transaction: the ACK for a 2xx. `invite_txn`
    /// names the INVITE whose 2xx it acknowledges when the endpoint was retransmitting
    /// that 2xx (retransmission stops); `None` for an ACK the endpoint cannot place.
    AckReceived {
        /// The INVITE server transaction whose 2xx is acknowledged.
        invite_txn: Option<ServerTxnKey>,
        /// The ACK.
        ack: Request,
        /// Where it came from.
        src: Peer,
    },
    /// A 2xx to an INVITE was never acknowledged within 64·T1 (§13.3.1.4): the TU should
    /// end the dialog (send BYE).
    AckTimeout {
        /// The INVITE server transaction.
        invite_txn: ServerTxnKey,
    },
    /// Timer B or F (client: no final response, or no final response to a cancelled INVITE
    /// within 64·T1 of the CANCEL) or H (server: no ACK) fired.
    TransactionTimeout {
        /// The transaction.
        txn: TxnKey,
    },
    /// The driver reported that a request could not be delivered.
    TransportError {
        /// The client transaction.
        txn: ClientTxnKey,
    },
    /// A new INVITE (no To tag) met a full transaction table, or its source's full share of
    /// it, and was refused with a stateless `503` (already sent). No transaction exists; the TU may record the refused
    /// call. Each arrival of the request, retransmissions included, raises one.
    OverloadRefused {
        /// The refused INVITE, top Via stamped with `received`/`rport`.
        req: Request,
        /// Where it came from.
        src: Peer,
    },
    /// An agent's set of bindings changed (login, logout, expiry, connection loss).
    RegistrationChanged {
        /// The agent id.
        agent: String,
        /// Its live bindings now (empty: no longer registered).
        contacts: Vec<Binding>,
    },
}

/// Endpoint settings. `Debug` does not print the secret or passwords.
#[derive(Clone)]
pub struct EndpointConfig {
    /// Registrar domain and digest realm (`[sip] domain`).
    pub domain: String,
    /// Host written into Via and Contact (`[sip] advertised_address`).
    pub advertised_host: String,
    /// Advertised port per transport; missing transports use [`Transport::default_port`].
    pub advertised_ports: Vec<(Transport, u16)>,
    /// The bound addresses of the driver's UDP sockets. A request to a UDP peer without a
    /// `local` socket leaves from the first listener of the destination's address family
    /// (a loopback destination prefers a loopback or wildcard listener), and its Via and
    /// Contact carry that listener's port. Empty: the UDP advertised port, socket unnamed.
    pub udp_listeners: Vec<SocketAddr>,
    /// T1/T2/T4.
    pub timers: TimerConfig,
    /// `User-Agent` on requests and `Server` on responses.
    pub user_agent: String,
    /// Larger datagrams are dropped unread.
    pub max_message_size: usize,
    /// Most live server transactions before new requests (INVITE without a To tag,
    /// REGISTER, OPTIONS, MESSAGE…) get a stateless `503` with `Retry-After`. In-dialog
    /// requests (a To tag: BYE, re-INVITE, REFER, NOTIFY…) and CANCEL are admitted up to
    /// twice this, so a flood of new calls never keeps a call from ending; ACK never needs
    /// a transaction. Over UDP a finished transaction stays 64·T1 (Timers J and L), so
    /// size it for 2 × 64·T1 × the peak call rate (default: 3,125 calls/s at T1 = 500 ms).
    pub max_transactions: usize,
    /// Most of those `max_transactions` one source address may hold with requests outside a
    /// dialog; its next new request gets the same `503` with `Retry-After`, so a flood from
    /// one address (even an allowed trunk's) leaves room for every other source. In-dialog
    /// requests and CANCEL are not limited per source.
    pub max_transactions_per_source: usize,
    /// Agents and expiry limits.
    pub registrar: RegistrarConfig,
    /// Key for nonces and generated ids (random bytes chosen by the driver).
    pub nonce_secret: Vec<u8>,
    /// How long a digest nonce stays fresh.
    pub nonce_lifetime: Duration,
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("domain", &self.domain)
            .field("advertised_host", &self.advertised_host)
            .field("advertised_ports", &self.advertised_ports)
            .field("udp_listeners", &self.udp_listeners)
            .field("timers", &self.timers)
            .field("user_agent", &self.user_agent)
            .field("max_message_size", &self.max_message_size)
            .field("max_transactions", &self.max_transactions)
            .field(
                "max_transactions_per_source",
                &self.max_transactions_per_source,
            )
            .field("registrar", &self.registrar)
            .field("nonce_secret", &"<redacted>")
            .field("nonce_lifetime", &self.nonce_lifetime)
            .finish()
    }
}

impl EndpointConfig {
    /// Default [`Self::max_transactions`].
    pub const DEFAULT_MAX_TRANSACTIONS: usize = 200_000;

    /// Defaults for everything but the domain, advertised host and secret.
    pub fn new(
        domain: impl Into<String>,
        advertised_host: impl Into<String>,
        nonce_secret: Vec<u8>,
    ) -> EndpointConfig {
        EndpointConfig {
            domain: domain.into(),
            advertised_host: advertised_host.into(),
            advertised_ports: Vec::new(),
            udp_listeners: Vec::new(),
            timers: TimerConfig::default(),
            user_agent: concat!("Switchboard/", env!("CARGO_PKG_VERSION")).to_string(),
            max_message_size: 65_535,
            max_transactions: Self::DEFAULT_MAX_TRANSACTIONS,
            max_transactions_per_source: Self::DEFAULT_MAX_TRANSACTIONS,
            registrar: RegistrarConfig::default(),
            nonce_secret,
            nonce_lifetime: NonceSource::DEFAULT_LIFETIME,
        }
    }

    /// Advertised port for `transport`.
    pub fn port(&self, transport: Transport) -> u16 {
        self.advertised_ports
            .iter()
            .find(|(t, _)| *t == transport)
            .map_or(transport.default_port(), |(_, p)| *p)
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Requests received (retransmissions included), by method token; unknown methods are
    /// counted under `OTHER` so the network cannot grow this map.
    pub requests_received: BTreeMap<String, u64>,
    /// Responses received by class: index 0 = 1xx … 5 = 6xx.
    pub responses_received: [u64; 6],
    /// Responses sent by class (retransmissions not counted): index 0 = 1xx … 5 = 6xx.
    pub responses_sent: [u64; 6],
    /// Datagrams that did not parse as SIP.
    pub parse_errors: u64,
    /// Input dropped without an answer (unparseable and unanswerable, oversize, stray
    /// responses).
    pub dropped: u64,
    /// Requests/responses retransmitted on timers.
    pub retransmissions_sent: u64,
    /// Retransmissions received and absorbed by a transaction.
    pub retransmissions_absorbed: u64,
    /// Timers B, F, H and 2xx ACK timeouts.
    pub transaction_timeouts: u64,
    /// Requests refused with `503` because the transaction table was full (or the
    /// source's share of it: those are counted in `source_share_rejections` too).
    pub overload_rejections: u64,
    /// Requests refused with `503` because their source held
    /// `max_transactions_per_source` transactions.
    pub source_share_rejections: u64,
    /// The source refused last for holding its share (for the log line).
    pub last_share_refused: Option<IpAddr>,
}

impl EndpointStats {
    /// Requests received with method `method` (token, e.g. `"INVITE"`).
    pub fn requests(&self, method: &str) -> u64 {
        self.requests_received.get(method).copied().unwrap_or(0)
    }

    /// Responses received in `class` (1–6).
    pub fn responses_received_class(&self, class: u8) -> u64 {
        class_slot(&self.responses_received, class)
    }

    /// Responses sent in `class` (1–6).
    pub fn responses_sent_class(&self, class: u8) -> u64 {
        class_slot(&self.responses_sent, class)
    }

    fn count_request(&mut self, method: &Method) {
        let key = match method {
            Method::Other(_) => "OTHER".to_string(),
            m => m.to_string(),
        };
        let n = self.requests_received.entry(key).or_insert(0);
        *n = n.saturating_add(1);
    }
}

fn class_slot(slots: &[u64; 6], class: u8) -> u64 {
    usize::from(class)
        .checked_sub(1)
        .and_then(|i| slots.get(i))
        .copied()
        .unwrap_or(0)
}

fn bump_class(slots: &mut [u64; 6], status: u16) {
    let idx = usize::from(status / 100).saturating_sub(1);
    if let Some(n) = slots.get_mut(idx) {
        *n = n.saturating_add(1);
    }
}

fn bump(n: &mut u64) {
    *n = n.saturating_add(1);
}

/// §17.2.3 server transaction identity: branch, sent-by, method (ACK → INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerMatch {
    branch: String,
    sent_by: String,
    method: String,
}

/// §17.1.3 client transaction identity: branch and CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientMatch {
    branch: String,
    method: String,
}

#[derive(Debug)]
struct ServerEntry {
    txn: ServerTxn,
    index: ServerMatch,
    request: Request,
    reply_to: Peer,
    last_response: Option<Vec<u8>>,
    sched: Scheduled,
    /// The source address this transaction is counted against (requests outside a dialog).
    counted_source: Option<IpAddr>,
}

#[derive(Debug)]
struct ClientEntry {
    txn: ClientTxn,
    index: ClientMatch,
    request: Request,
    bytes: Vec<u8>,
    dest: Peer,
    ack: Option<Vec<u8>>,
    /// A CANCEL the TU asked for before any provisional response (§9.1: wait for one).
    deferred_cancel: Option<ClientTxnKey>,
    sched: Scheduled,
}

/// UAS side of a 2xx to INVITE: retransmit until the ACK comes (§13.3.1.4).
#[derive(Debug)]
struct PendingAck {
    /// Call-ID and CSeq number of the INVITE.
    key: (String, u32),
    invite_txn: ServerTxnKey,
    bytes: Vec<u8>,
    dest: Peer,
    interval: Duration,
    next_retransmit: Option<Instant>,
    give_up: Instant,
    acked: bool,
    sched: Scheduled,
}

impl PendingAck {
    fn deadline(&self) -> Instant {
        match self.next_retransmit {
            Some(at) if !self.acked => at.min(self.give_up),
            _ => self.give_up,
        }
    }
}

/// UAC side: the ACK we sent for a 2xx, resent when the 2xx is retransmitted.
#[derive(Debug)]
struct SentAck {
    /// Call-ID, CSeq number and To tag of the 2xx.
    key: (String, u32, String),
    bytes: Vec<u8>,
    dest: Peer,
    until: Instant,
    sched: Scheduled,
}

/// What a timer-queue entry belongs to: a transaction or 2xx/ACK record, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerOwner {
    Client(u64),
    Server(u64),
    PendingAck(u64),
    SentAck(u64),
}

/// The deadline an owner is queued under, with the generation of its queue entry; `None`
/// when it has no entry.
type Scheduled = Option<(Instant, u64)>;

/// Every deadline of the endpoint, soonest first: a binary heap with lazy deletion.
///
/// Each owner records the `(deadline, generation)` of its one live entry ([`Scheduled`]);
/// when its next deadline moves, a new entry is pushed and the old one becomes stale. Stale
/// entries are dropped when they reach the top, so pushing is O(log n), the next deadline is
/// the top once the top is live, and nothing ever walks every transaction. `std`'s
/// `BinaryHeap` is enough: a timer wheel crate would add a dependency for what this does with
/// the std heap plus a generation per entry.
#[derive(Debug, Default)]
struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerOwner)>>,
    generation: u64,
}

impl TimerQueue {
    /// Makes the owner's queued deadline `sched` agree with its next deadline `next`.
    fn update(&mut self, sched: &mut Scheduled, next: Option<Instant>, owner: TimerOwner) {
        if sched.map(|(at, _)| at) == next {
            return;
        }
        *sched = next.map(|at| {
            self.generation = self.generation.wrapping_add(1);
            self.heap.push(Reverse((at, self.generation, owner)));
            (at, self.generation)
        });
    }
}

/// The sans-IO SIP endpoint: transactions, registrar, 2xx/ACK handling.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    registrar: Registrar,
    next_id: u64,
    servers: HashMap<u64, ServerEntry>,
    server_index: HashMap<ServerMatch, u64>,
    /// Server transactions outside a dialog per source address (only non-zero entries).
    per_source: HashMap<IpAddr, usize>,
    clients: HashMap<u64, ClientEntry>,
    client_index: HashMap<ClientMatch, u64>,
    next_ack_id: u64,
    pending_acks: HashMap<u64, PendingAck>,
    pending_ack_index: HashMap<(String, u32), u64>,
    sent_acks: HashMap<u64, SentAck>,
    sent_ack_index: HashMap<(String, u32, String), u64>,
    timers: TimerQueue,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: EndpointStats,
}

impl Endpoint {
    /// An endpoint with no transactions and no bindings.
    pub fn new(cfg: EndpointConfig) -> Endpoint {
        let mut cfg = cfg;
        cfg.timers = cfg.timers.sanitized();
        let nonces = NonceSource::new(cfg.nonce_secret.clone(), cfg.nonce_lifetime);
        let registrar = Registrar::new(cfg.registrar.clone(), cfg.domain.clone(), nonces);
        Endpoint {
            cfg,
            registrar,
            next_id: 0,
            servers: HashMap::new(),
            server_index: HashMap::new(),
            per_source: HashMap::new(),
            clients: HashMap::new(),
            client_index: HashMap::new(),
            next_ack_id: 0,
            pending_acks: HashMap::new(),
            pending_ack_index: HashMap::new(),
            sent_acks: HashMap::new(),
            sent_ack_index: HashMap::new(),
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// The registrar (bindings of agents).
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Replaces the agents allowed to register (configuration reload); agents that are
    /// gone lose their bindings, reported as [`Event::RegistrationChanged`].
    pub fn set_agents(&mut self, now: Instant, agents: Vec<crate::AgentCredentials>) {
        for agent in self.registrar.set_agents(agents) {
            self.registration_changed(agent, now);
        }
    }

    /// Mutable registrar (prefer [`Self::set_agents`], which also reports changes).
    pub fn registrar_mut(&mut self) -> &mut Registrar {
        &mut self.registrar
    }

    /// Counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Number of live server and client transactions.
    pub fn transaction_count(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    /// The request of a live server transaction, without its body.
    pub fn server_request(&self, txn: ServerTxnKey) -> Option<&Request> {
        self.servers.get(&txn.0).map(|e| &e.request)
    }

    /// The request of a live client transaction.
    pub fn client_request(&self, txn: ClientTxnKey) -> Option<&Request> {
        self.clients.get(&txn.0).map(|e| &e.request)
    }

    /// A fresh, unguessable token (hex): HMAC of a counter under the configured secret.
    pub fn new_token(&mut self) -> String {
        self.next_id = self.next_id.wrapping_add(1);
        let mut msg = b"switchboard-token".to_vec();
        msg.extend_from_slice(&self.next_id.to_be_bytes());
        let mac = hmac_sha256(&self.cfg.nonce_secret, &msg);
        hex::encode(mac.get(..8).unwrap_or(&mac))
    }

    /// A fresh From/To tag.
    pub fn new_tag(&mut self) -> String {
        self.new_token()
    }

    /// A fresh Call-ID.
    pub fn new_call_id(&mut self) -> String {
        let t = self.new_token();
        format!("{t}@{}", self.cfg.advertised_host)
    }

    /// A fresh RFC 3261 branch id.
    pub fn new_branch(&mut self) -> String {
        format!("{BRANCH_MAGIC}{}", self.new_token())
    }

    /// A URI of this endpoint for Contact headers: `sip:[user@]host:port[;transport=..]`,
    /// with the advertised port of `transport`.
    pub fn local_uri(&self, user: Option<&str>, transport: Transport) -> Uri {
        self.uri_with_port(user, transport, self.cfg.port(transport))
    }

    /// The Contact URI for messages to `peer`: over UDP it names the port of the socket
    /// they leave from ([`Endpoint::with_local`]), so the peer's requests come back to it.
    pub fn local_uri_for(&self, user: Option<&str>, peer: &Peer) -> Uri {
        self.uri_with_port(user, peer.transport, self.port_towards(peer))
    }

    /// `dest` with the UDP socket it leaves from: its own `local`, else the listener of
    /// [`EndpointConfig::udp_listeners`] that matches the destination. Streams unchanged.
    pub fn with_local(&self, dest: Peer) -> Peer {
        if dest.transport != Transport::Udp || dest.local.is_some() {
            return dest;
        }
        let local = wire::pick_udp_listener(&self.cfg.udp_listeners, dest.addr);
        Peer { local, ..dest }
    }

    /// The port this endpoint advertises to `peer` (Via sent-by, Contact).
    fn port_towards(&self, peer: &Peer) -> u16 {
        match self.with_local(peer.clone()).local {
            Some(local) if peer.transport == Transport::Udp => local.port(),
            _ => self.cfg.port(peer.transport),
        }
    }

    fn uri_with_port(&self, user: Option<&str>, transport: Transport, port: u16) -> Uri {
        let host = Host::parse(&self.cfg.advertised_host)
            .unwrap_or_else(|_| Host::Domain(self.cfg.advertised_host.clone()));
        let mut uri = Uri::sip(user, host, Some(port));
        if transport != Transport::Udp {
            uri.set_param(
                "transport",
                Some(&transport.via_token().to_ascii_lowercase()),
            );
        }
        uri
    }

    /// `host:port` this endpoint puts in Via of a request to `dest`.
    pub fn sent_by(&self, dest: &Peer) -> String {
        format!("{}:{}", self.cfg.advertised_host, self.port_towards(dest))
    }

    fn alloc_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    // ----- input -------------------------------------------------------------------------

    /// One datagram (UDP) or one framed message (stream transports) from `src`.
    /// Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, src: Peer, bytes: &[u8]) {
        if bytes.len() > self.cfg.max_message_size {
            bump(&mut self.stats.dropped);
            return;
        }
        if bytes
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        {
            return; // keep-alive (RFC 5626 §4.4.1 / §3.5.1 CRLF)
        }
        match Message::parse(bytes) {
            Ok(Message::Request(req)) => self.on_request(now, src, req),
            Ok(Message::Response(resp)) => self.on_response(now, resp),
            Err(e) => {
                bump(&mut self.stats.parse_errors);
                self.on_garbage(src, bytes, &e);
            }
        }
        self.settle_timers();
    }

    /// The driver could not deliver to `dest` (ICMP error, connection refused or reset):
    /// client transactions towards it fail with [`Event::TransportError`] (§17.1.4).
    pub fn handle_transport_error(&mut self, now: Instant, dest: &Peer) {
        let _ = now;
        let failed: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, e)| {
                e.dest.transport == dest.transport
                    && e.dest.addr == dest.addr
                    && (dest.conn.is_none() || e.dest.conn == dest.conn)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            if let Some(e) = self.clients.get_mut(&id) {
                e.txn.on_transport_error();
            }
            self.events.push_back(Event::TransportError {
                txn: ClientTxnKey(id),
            });
            self.remove_client(id);
        }
        self.settle_timers();
    }

    /// Stream connection `conn` closed: bindings learnt over it are dropped (the agent is
    /// unreachable through it) and client transactions on it fail.
    pub fn handle_connection_closed(&mut self, now: Instant, conn: ConnId) {
        let failed: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, e)| e.dest.conn == Some(conn))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            self.events.push_back(Event::TransportError {
                txn: ClientTxnKey(id),
            });
            self.remove_client(id);
        }
        for agent in self.registrar.remove_connection(conn) {
            self.registration_changed(agent, now);
        }
        self.settle_timers();
    }

    /// Fires every timer due at `now`: client transactions first, then server transactions,
    /// 2xx retransmissions and ACK timeouts, remembered ACKs, and registrations last; within
    /// each kind, soonest deadline first.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&Reverse((at, generation, owner))) = self.timers.heap.peek() {
            if at > now {
                break;
            }
            self.timers.heap.pop();
            if self.unschedule(at, generation, owner) {
                due.push(owner);
            }
        }
        let ids = |want: fn(TimerOwner) -> Option<u64>| -> Vec<u64> {
            due.iter().filter_map(|o| want(*o)).collect()
        };
        let clients = ids(|o| match o {
            TimerOwner::Client(id) => Some(id),
            _ => None,
        });
        let servers = ids(|o| match o {
            TimerOwner::Server(id) => Some(id),
            _ => None,
        });
        let pending = ids(|o| match o {
            TimerOwner::PendingAck(id) => Some(id),
            _ => None,
        });
        let sent = ids(|o| match o {
            TimerOwner::SentAck(id) => Some(id),
            _ => None,
        });
        self.client_timers(now, clients);
        self.server_timers(now, servers);
        self.ack_timers(now, pending);
        for id in sent {
            self.remove_sent_ack(id);
        }
        for agent in self.registrar.expire(now) {
            self.registration_changed(agent, now);
        }
        self.settle_timers();
    }

    /// The next instant [`Self::handle_timeout`] must be called at, if any. O(log n) in the
    /// registrations, O(1) in the transactions.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let queued = self.timers.heap.peek().map(|Reverse((at, ..))| *at);
        match (queued, self.registrar.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What [`Self::poll_timeout`] must answer, found the slow way: by asking every
    /// transaction, 2xx/ACK record and binding. For tests that check the timer queue.
    #[doc(hidden)]
    pub fn poll_timeout_by_scan(&self) -> Option<Instant> {
        let clients = self
            .clients
            .values()
            .filter_map(|e| e.txn.next_timer().map(|t| t.0));
        let servers = self
            .servers
            .values()
            .filter_map(|e| e.txn.next_timer().map(|t| t.0));
        let acks = self.pending_acks.values().map(PendingAck::deadline);
        let sent = self.sent_acks.values().map(|a| a.until);
        let bindings = self
            .registrar
            .registered_agents()
            .into_iter()
            .flat_map(|agent| {
                self.registrar
                    .contacts_for(&agent, Instant::ZERO)
                    .into_iter()
                    .map(|b| b.expires_at)
            })
            .collect::<Vec<_>>();
        clients
            .chain(servers)
            .chain(acks)
            .chain(sent)
            .chain(bindings)
            .min()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_element_split_respects_quotes() {
        assert_eq!(split_first_element("a, b, c"), ("a", Some("b, c")));
        assert_eq!(
            split_first_element("a;x=\"1,2\", b"),
            ("a;x=\"1,2\"", Some("b"))
        );
        assert_eq!(split_first_element("a"), ("a", None));
        assert_eq!(split_first_element("a, "), ("a", None));
    }

    #[test]
    fn reply_target_follows_rport_and_streams() {
        let src = Peer::udp("203.0.113.5:40000".parse().unwrap());
        let via = Via::parse("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(reply_target(&src, &via).addr, src.addr);
        let via = Via::parse("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK1").unwrap();
        assert_eq!(
            reply_target(&src, &via).addr.to_string(),
            "203.0.113.5:5070"
        );
        let via = Via::parse("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1").unwrap();
        assert_eq!(
            reply_target(&src, &via).addr.to_string(),
            "203.0.113.5:5060"
        );
        let tcp = Peer::stream(Transport::Tcp, src.addr, ConnId(3));
        assert_eq!(reply_target(&tcp, &via), tcp);
    }

    #[test]
    fn raw_400_needs_the_five_headers_and_skips_ack() {
        let err = ParseError::BadContentLength;
        let ok = b"MESSAGE sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKa\r\nf: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\ni: id\r\nCSeq: 1 MESSAGE\r\nl: x\r\n\r\n";
        let (bytes, via) = raw_error_response(ok, &err, "t1", "SB").unwrap();
        let Message::Response(r) = Message::parse(&bytes).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(r.status, 400);
        assert_eq!(r.to_hdr().unwrap().tag(), Some("t1"));
        assert_eq!(via.as_deref(), Some("SIP/2.0/UDP h;branch=z9hG4bKa"));
        let no_call_id = String::from_utf8_lossy(ok).replace("i: id\r\n", "");
        assert!(raw_error_response(no_call_id.as_bytes(), &err, "t", "SB").is_none());
        let ack = String::from_utf8_lossy(ok).replace("MESSAGE", "ACK");
        assert!(raw_error_response(ack.as_bytes(), &err, "t", "SB").is_none());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut cfg = EndpointConfig::new("d", "h", b"very-secret-key".to_vec());
        cfg.registrar.agents.push(crate::AgentCredentials {
            id: "ana".into(),
            password: "ana-pass".into(),
        });
        let ep = Endpoint::new(cfg);
        let text = format!("{ep:?}");
        assert!(text.contains("ana"));
        assert!(!text.contains("ana-pass"));
        assert!(!text.contains("118, 101, 114, 121")); // "very" as bytes
    }

    #[test]
    fn local_uri_names_the_transport() {
        let ep = Endpoint::new(EndpointConfig::new("d", "192.0.2.1", b"s".to_vec()));
        assert_eq!(
            ep.local_uri(Some("q"), Transport::Udp).to_string(),
            "sip:q@192.0.2.1:5060"
        );
        assert_eq!(
            ep.local_uri(None, Transport::Tcp).to_string(),
            "sip:192.0.2.1:5060;transport=tcp"
        );
    }

    #[test]
    fn udp_listener_is_picked_by_family_and_reach() {
        let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:5080".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:5090".parse().unwrap();
        let pick = |ls: &[SocketAddr], d: &str| pick_udp_listener(ls, d.parse().unwrap());
        assert_eq!(pick(&[v4, lo, v6], "127.0.0.1:5060"), Some(lo));
        assert_eq!(pick(&[lo, v4, v6], "198.51.100.7:5060"), Some(v4));
        assert_eq!(pick(&[lo, any], "198.51.100.7:5060"), Some(any));
        assert_eq!(pick(&[v4, lo, v6], "[2001:db8::7]:5060"), Some(v6));
        // Nothing of the family: the first listener (the kernel will say why it fails).
        assert_eq!(pick(&[v4, lo], "[2001:db8::7]:5060"), Some(v4));
        assert_eq!(pick(&[], "192.0.2.9:5060"), None);
    }

    #[test]
    fn udp_replies_and_requests_leave_from_their_listener() {
        let a: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:5080".parse().unwrap();
        let mut cfg = EndpointConfig::new("d", "192.0.2.1", b"s".to_vec());
        cfg.advertised_ports.push((Transport::Udp, a.port()));
        cfg.udp_listeners = vec![a, b];
        let mut ep = Endpoint::new(cfg);
        let now = Instant::ZERO;
        // A request that came in on the second socket is answered from it.
        let from: SocketAddr = "203.0.113.5:5060".parse().unwrap();
        let options = udp_request("OPTIONS", "l1", "l", None);
        ep.handle_datagram(now, Peer::udp_on(from, b), options.as_bytes());
        let reply = ep.poll_transmit().unwrap();
        assert_eq!(reply.dest, Peer::udp_on(from, b));
        // A request to a peer reached through it names that socket's port in Via and Contact.
        let peer = Peer::udp_on(from, b);
        assert_eq!(
            ep.local_uri_for(Some("q"), &peer).to_string(),
            "sip:q@192.0.2.1:5080"
        );
        let req = Request::new(Method::Options, "sip:x@203.0.113.5".parse::<Uri>().unwrap());
        ep.send_request(now, peer.clone(), req);
        let sent = ep.poll_transmit().unwrap();
        assert_eq!(sent.dest, peer);
        let Message::Request(r) = Message::parse(&sent.bytes).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.top_via().unwrap().port, Some(5080));
        // Without a socket the endpoint picks the first of the destination's family.
        let req = Request::new(
            Method::Options,
            "sip:x@198.51.100.7".parse::<Uri>().unwrap(),
        );
        let dest: SocketAddr = "198.51.100.7:5060".parse().unwrap();
        ep.send_request(now, Peer::udp(dest), req);
        assert_eq!(ep.poll_transmit().unwrap().dest, Peer::udp_on(dest, a));
    }

    fn udp_request(method: &str, branch: &str, call_id: &str, to_tag: Option<&str>) -> String {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{method} sip:q@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:q@192.0.2.1>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:a@203.0.113.5>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    /// Feeds `text`; returns what went out (first line of each) and the TU events.
    fn exchange(ep: &mut Endpoint, now: Instant, text: &str) -> (Vec<Response>, Vec<Event>) {
        let src = Peer::udp("203.0.113.5:5060".parse().unwrap());
        ep.handle_datagram(now, src, text.as_bytes());
        let sent = std::iter::from_fn(|| ep.poll_transmit())
            .map(|t| match Message::parse(&t.bytes).unwrap() {
                Message::Response(r) => r,
                Message::Request(r) => panic!("unexpected request {r}"),
            })
            .collect();
        (sent, std::iter::from_fn(|| ep.poll_event()).collect())
    }

    fn statuses(sent: &[Response]) -> Vec<u16> {
        sent.iter().map(|r| r.status).collect()
    }

    #[test]
    fn transaction_cap_refuses_new_requests_but_never_in_dialog_ones() {
        let mut cfg = EndpointConfig::new("d", "192.0.2.1", b"s".to_vec());
        cfg.max_transactions = 2;
        let mut ep = Endpoint::new(cfg);
        let now = Instant::ZERO;
        // Two OPTIONS answered by the endpoint fill the table (Timer J keeps them 32 s).
        for i in 0..2 {
            let (sent, _) = exchange(
                &mut ep,
                now,
                &udp_request("OPTIONS", &format!("o{i}"), "o", None),
            );
            assert_eq!(statuses(&sent), vec![200]);
        }
        assert_eq!(ep.transaction_count(), (2, 0));

        // A new call, a registration and a new OPTIONS are shed: 503 with Retry-After.
        for method in ["INVITE", "REGISTER", "OPTIONS", "MESSAGE"] {
            let (sent, events) = exchange(&mut ep, now, &udp_request(method, method, "new", None));
            assert_eq!(statuses(&sent), vec![503], "{method}");
            assert_eq!(sent[0].headers.get(&HeaderName::RetryAfter), Some("5"));
            assert!(sent[0].to_hdr().unwrap().tag().is_some());
            // Only the refused new call is told to the TU (it records it), with the request.
            match (method, events.as_slice()) {
                ("INVITE", [Event::OverloadRefused { req, .. }]) => {
                    assert_eq!(req.call_id(), Some("new"));
                }
                ("INVITE", other) => panic!("INVITE: {other:?}"),
                (_, events) => assert!(events.is_empty(), "{method}: {events:?}"),
            }
        }
        assert_eq!(ep.stats().overload_rejections, 4);
        assert_eq!(ep.transaction_count(), (2, 0));

        // The BYE of a call in progress still reaches the TU, on a transaction it can answer.
        let bye = udp_request("BYE", "bye1", "call-1", Some("sb-tag"));
        let (sent, events) = exchange(&mut ep, now, &bye);
        assert!(sent.is_empty(), "{sent:?}");
        let [Event::NewRequest { txn, req, .. }] = events.as_slice() else {
            panic!("BYE did not reach the TU: {events:?}")
        };
        assert_eq!(req.method, Method::Bye);
        ep.respond(now, *txn, Response::from_request(req, 200, "OK", None))
            .unwrap();
        assert_eq!(
            statuses(
                &std::iter::from_fn(|| ep.poll_transmit())
                    .map(|t| match Message::parse(&t.bytes).unwrap() {
                        Message::Response(r) => r,
                        Message::Request(r) => panic!("unexpected request {r}"),
                    })
                    .collect::<Vec<_>>()
            ),
            vec![200]
        );
        // ACK needs no transaction; CANCEL gets its answer.
        let (sent, events) = exchange(
            &mut ep,
            now,
            &udp_request("ACK", "INVITE", "new", Some("x")),
        );
        assert!(sent.is_empty());
        assert!(matches!(
            events.as_slice(),
            [Event::AckReceived {
                invite_txn: None,
                ..
            }]
        ));
        let (sent, _) = exchange(&mut ep, now, &udp_request("CANCEL", "nothing", "c", None));
        assert_eq!(statuses(&sent), vec![481]);
        assert_eq!(ep.transaction_count(), (4, 0));
        assert_eq!(ep.stats().overload_rejections, 4);

        // The in-dialog reserve is as large as the cap: beyond it, 503 again (the table stays
        // bounded whatever To tags a peer forges).
        let (sent, events) = exchange(
            &mut ep,
            now,
            &udp_request("INFO", "info1", "call-1", Some("sb-tag")),
        );
        assert_eq!(statuses(&sent), vec![503]);
        assert!(events.is_empty());

        // Once Timer J frees the table, new calls are admitted again.
        ep.handle_timeout(now + Duration::from_secs(32));
        assert_eq!(ep.transaction_count(), (0, 0));
        let (sent, events) = exchange(
            &mut ep,
            now + Duration::from_secs(32),
            &udp_request("INVITE", "inv2", "call-2", None),
        );
        assert_eq!(statuses(&sent), vec![100]);
        assert!(matches!(events.as_slice(), [Event::NewRequest { .. }]));
    }

    /// One source fills its share of the table and meets `503`; another source is still
    /// admitted, the flooding source's in-dialog requests still pass, and the share comes
    /// back as its transactions end.
    #[test]
    fn one_source_holds_at_most_its_share_of_the_table() {
        let mut cfg = EndpointConfig::new("d", "192.0.2.1", b"s".to_vec());
        cfg.max_transactions = 10;
        cfg.max_transactions_per_source = 3;
        let mut ep = Endpoint::new(cfg);
        let now = Instant::ZERO;
        let flood = Peer::udp("203.0.113.5:5060".parse().unwrap());
        let other = Peer::udp("203.0.113.6:5060".parse().unwrap());
        let feed = |ep: &mut Endpoint, src: &Peer, text: String| {
            ep.handle_datagram(now, src.clone(), text.as_bytes());
            let sent: Vec<u16> = std::iter::from_fn(|| ep.poll_transmit())
                .filter_map(|t| match Message::parse(&t.bytes) {
                    Ok(Message::Response(r)) => Some(r.status),
                    _ => None,
                })
                .collect();
            while ep.poll_event().is_some() {}
            sent
        };
        for i in 0..3 {
            let sent = feed(
                &mut ep,
                &flood,
                udp_request("OPTIONS", &format!("f{i}"), "f", None),
            );
            assert_eq!(sent, vec![200]);
        }
        for i in 3..6 {
            let sent = feed(
                &mut ep,
                &flood,
                udp_request("INVITE", &format!("f{i}"), "f", None),
            );
            assert_eq!(sent, vec![503], "over the share");
        }
        assert_eq!(ep.stats().source_share_rejections, 3);
        assert_eq!(ep.stats().overload_rejections, 3);
        // Another source is admitted, and an in-dialog request from the flooding one too.
        let sent = feed(&mut ep, &other, udp_request("INVITE", "o1", "o", None));
        assert_eq!(sent, vec![100]);
        let sent = feed(&mut ep, &flood, udp_request("BYE", "b1", "call", Some("t")));
        assert!(sent.is_empty(), "the BYE reaches the TU: {sent:?}");
        assert_eq!(ep.transaction_count(), (5, 0));
        // Timer J ends the OPTIONS transactions: the share is free again.
        ep.handle_timeout(now + Duration::from_secs(33));
        assert!(!ep.per_source.contains_key(&flood.addr.ip()));
        let sent = feed(&mut ep, &flood, udp_request("OPTIONS", "f9", "f", None));
        assert_eq!(sent, vec![200]);
        assert_eq!(ep.stats().source_share_rejections, 3);
    }

    /// 50,000 live transactions of every kind: the queue's next deadline always equals the
    /// earliest deadline of any transaction, and every timer fires on time.
    #[test]
    fn timer_queue_stays_exact_with_50k_transactions() {
        let mut ep = Endpoint::new(EndpointConfig::new("d", "192.0.2.1", b"s".to_vec()));
        let check = |ep: &Endpoint| assert_eq!(ep.poll_timeout(), ep.poll_timeout_by_scan());
        let ms = |n: u64| Instant::ZERO + Duration::from_millis(n);
        let mut invites = Vec::new();
        let src = Peer::udp("203.0.113.5:5060".parse().unwrap());
        for i in 0..50_000u64 {
            let now = ms(i / 10);
            match i % 10 {
                // Answered by the endpoint: Completed, Timer J (32 s).
                0..=2 => {
                    let text = udp_request("OPTIONS", &format!("o{i}"), "o", None);
                    ep.handle_datagram(now, src.clone(), text.as_bytes());
                }
                // INVITEs answered later with 2xx (Timer L, 2xx retransmissions) or 486
                // (Timers G and H).
                3..=7 => {
                    let text = udp_request("INVITE", &format!("i{i}"), &format!("c{i}"), None);
                    ep.handle_datagram(now, src.clone(), text.as_bytes());
                    if let Some(Event::NewRequest { txn, req, .. }) = ep.poll_event() {
                        invites.push((txn, req, i % 2 == 0));
                    }
                }
                // Client transactions towards a silent peer: Timers E and F.
                _ => {
                    let mut req =
                        Request::new(Method::Message, "sip:x@198.51.100.1".parse().unwrap());
                    req.headers
                        .push(HeaderName::From, "<sip:q@192.0.2.1>;tag=f");
                    req.headers.push(HeaderName::To, "<sip:x@198.51.100.1>");
                    req.headers.push(HeaderName::CSeq, "1 MESSAGE");
                    ep.send_request(now, Peer::udp("198.51.100.1:5060".parse().unwrap()), req);
                }
            }
            while ep.poll_transmit().is_some() {}
            if i % 4999 == 0 {
                check(&ep);
            }
        }
        for (n, (txn, req, ok)) in invites.into_iter().enumerate() {
            let status = if ok { 200 } else { 486 };
            let mut resp = Response::from_request(&req, status, "X", Some("t"));
            resp.headers.push(HeaderName::Contact, "<sip:q@192.0.2.1>");
            ep.respond(ms(5_000 + n as u64 / 10), txn, resp).unwrap();
            if n % 4999 == 0 {
                check(&ep);
            }
        }
        let total = ep.transaction_count();
        assert_eq!(total, (40_000, 10_000));
        assert_eq!(ep.pending_acks.len(), 10_000);
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
        // Jump from deadline to deadline until nothing is left.
        let (mut fired, mut last) = (0u32, Instant::ZERO);
        while let Some(at) = ep.poll_timeout() {
            assert!(at >= last, "deadlines went backwards");
            last = at;
            ep.handle_timeout(at);
            fired += 1;
            if fired % 4999 == 0 {
                check(&ep);
            }
            while ep.poll_transmit().is_some() {}
            while ep.poll_event().is_some() {}
            assert!(fired < 1_000_000, "the queue never drained");
        }
        assert_eq!(ep.transaction_count(), (0, 0));
        assert_eq!(ep.poll_timeout_by_scan(), None);
        // The last to go is the last INVITE answered (Timer H or the 2xx's ACK timeout, 64·T1
        // after the answer).
        assert_eq!(last, ms(5_000 + 24_999 / 10 + 32_000));
        assert!(fired > 1000, "{fired}");
    }
}
