//! The [`Endpoint`]: the sans-IO SIP node the server drives.
//!
//! The driver feeds datagrams/stream frames ([`Endpoint::handle_datagram`]) and timeouts
//! ([`Endpoint::handle_timeout`]), drains [`Transmit`]s and [`Event`]s, and sleeps until
//! [`Endpoint::poll_timeout`]. The endpoint owns the transactions, the registrar and the
//! 2xx/ACK bookkeeping of INVITE dialogs, and answers by itself what needs no call
//! control: malformed requests (400), REGISTER, out-of-dialog OPTIONS, unknown (501) and
//! unsupported (405) methods, Max-Forwards: 0 (483), CANCEL (200/481).

use std::collections::{BTreeMap, HashMap, VecDeque};
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

/// RFC 3261 §8.1.1.7 magic cookie that marks RFC 3261 branch ids.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

/// Methods the endpoint accepts (the `Allow` header).
pub const ALLOW: &str =
    "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, REFER, NOTIFY, INFO, UPDATE, MESSAGE";

/// Most timer firings handled per transaction per `handle_timeout` call (a bound, not a
/// behaviour: every firing re-arms strictly later or disarms).
const MAX_FIRINGS: usize = 64;

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
}

impl Peer {
    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr,
            conn: None,
        }
    }

    /// A peer on a stream connection.
    pub fn stream(transport: Transport, addr: SocketAddr, conn: ConnId) -> Peer {
        Peer {
            transport,
            addr,
            conn: Some(conn),
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
    /// Timer B or F (client: no final response) or H (server: no ACK) fired.
    TransactionTimeout {
        /// The transaction.
        txn: TxnKey,
    },
    /// The driver reported that a request could not be delivered.
    TransportError {
        /// The client transaction.
        txn: ClientTxnKey,
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
    /// T1/T2/T4.
    pub timers: TimerConfig,
    /// `User-Agent` on requests and `Server` on responses.
    pub user_agent: String,
    /// Larger datagrams are dropped unread.
    pub max_message_size: usize,
    /// Most live server transactions; beyond it new requests get a stateless `503`.
    pub max_transactions: usize,
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
            .field("timers", &self.timers)
            .field("user_agent", &self.user_agent)
            .field("max_message_size", &self.max_message_size)
            .field("max_transactions", &self.max_transactions)
            .field("registrar", &self.registrar)
            .field("nonce_secret", &"<redacted>")
            .field("nonce_lifetime", &self.nonce_lifetime)
            .finish()
    }
}

impl EndpointConfig {
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
            timers: TimerConfig::default(),
            user_agent: concat!("Switchboard/", env!("CARGO_PKG_VERSION")).to_string(),
            max_message_size: 65_535,
            max_transactions: 10_000,
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
}

/// UAS side of a 2xx to INVITE: retransmit until the ACK comes (§13.3.1.4).
#[derive(Debug)]
struct PendingAck {
    invite_txn: ServerTxnKey,
    bytes: Vec<u8>,
    dest: Peer,
    interval: Duration,
    next_retransmit: Option<Instant>,
    give_up: Instant,
    acked: bool,
}

/// UAC side: the ACK we sent for a 2xx, resent when the 2xx is retransmitted.
#[derive(Debug)]
struct SentAck {
    bytes: Vec<u8>,
    dest: Peer,
    until: Instant,
}

/// The sans-IO SIP endpoint: transactions, registrar, 2xx/ACK handling.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    registrar: Registrar,
    next_id: u64,
    servers: HashMap<u64, ServerEntry>,
    server_index: HashMap<ServerMatch, u64>,
    clients: HashMap<u64, ClientEntry>,
    client_index: HashMap<ClientMatch, u64>,
    pending_acks: HashMap<(String, u32), PendingAck>,
    sent_acks: HashMap<(String, u32, String), SentAck>,
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
            clients: HashMap::new(),
            client_index: HashMap::new(),
            pending_acks: HashMap::new(),
            sent_acks: HashMap::new(),
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

    /// The request of a live server transaction.
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

    /// A URI of this endpoint for Contact headers: `sip:[user@]host:port[;transport=..]`.
    pub fn local_uri(&self, user: Option<&str>, transport: Transport) -> Uri {
        let host = Host::parse(&self.cfg.advertised_host)
            .unwrap_or_else(|_| Host::Domain(self.cfg.advertised_host.clone()));
        let mut uri = Uri::sip(user, host, Some(self.cfg.port(transport)));
        if transport != Transport::Udp {
            uri.set_param(
                "transport",
                Some(&transport.via_token().to_ascii_lowercase()),
            );
        }
        uri
    }

    /// `host:port` this endpoint puts in Via for `transport`.
    pub fn sent_by(&self, transport: Transport) -> String {
        format!("{}:{}", self.cfg.advertised_host, self.cfg.port(transport))
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
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.client_timers(now);
        self.server_timers(now);
        self.ack_timers(now);
        self.sent_acks.retain(|_, a| a.until > now);
        for agent in self.registrar.expire(now) {
            self.registration_changed(agent, now);
        }
    }

    /// The next instant [`Self::handle_timeout`] must be called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clients = self
            .clients
            .values()
            .filter_map(|e| e.txn.next_timer().map(|t| t.0));
        let servers = self
            .servers
            .values()
            .filter_map(|e| e.txn.next_timer().map(|t| t.0));
        let acks = self.pending_acks.values().map(|p| match p.next_retransmit {
            Some(at) if !p.acked => at.min(p.give_up),
            _ => p.give_up,
        });
        let sent = self.sent_acks.values().map(|a| a.until);
        clients
            .chain(servers)
            .chain(acks)
            .chain(sent)
            .chain(self.registrar.next_expiry())
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

    // ----- TU actions --------------------------------------------------------------------

    /// The TU answers server transaction `txn`. A `Server` header is added when absent; the
    /// To tag is the TU's business (use the same tag for all responses of a dialog).
    /// A 2xx to an INVITE is retransmitted by the endpoint until the ACK arrives
    /// ([`Event::AckReceived`]) or 64·T1 pass ([`Event::AckTimeout`]).
    pub fn respond(
        &mut self,
        now: Instant,
        txn: ServerTxnKey,
        resp: Response,
    ) -> Result<(), Error> {
        self.send_response(now, txn.0, resp)
    }

    /// The TU starts a client transaction: sends `req` to `dest`. Adds, when absent: a top
    /// Via with a fresh branch and `rport`, Max-Forwards 70, Call-ID, User-Agent. An ACK
    /// is sent statelessly as by [`Self::send_ack`] and its key never produces events.
    pub fn send_request(&mut self, now: Instant, dest: Peer, req: Request) -> ClientTxnKey {
        let id = self.alloc_id();
        self.start_client(now, id, dest, req);
        ClientTxnKey(id)
    }

    /// Sends the ACK for a 2xx (build it with [`dialog::ack_for_2xx`]). The endpoint keeps
    /// it for 64·T1 and resends it whenever the 2xx is retransmitted, without telling the
    /// TU again.
    pub fn send_ack(&mut self, now: Instant, dest: Peer, ack: Request) {
        let mut ack = ack;
        self.prepare_request(&mut ack, dest.transport);
        let bytes = ack.to_bytes();
        if let (Some(call_id), Ok(cseq), Ok(to)) = (ack.call_id(), ack.cseq(), ack.to_hdr()) {
            let key = (
                call_id.to_string(),
                cseq.seq,
                to.tag().unwrap_or("").to_string(),
            );
            self.sent_acks.insert(
                key,
                SentAck {
                    bytes: bytes.clone(),
                    dest: dest.clone(),
                    until: now + self.cfg.timers.t1_x64(),
                },
            );
        }
        self.transmits.push_back(Transmit { dest, bytes });
    }

    /// Cancels the INVITE client transaction `invite` (§9.1). The CANCEL is a client
    /// transaction of its own, returned here; its final response comes as
    /// [`Event::Response`]. Before any provisional response the CANCEL is held and sent when
    /// the first one arrives (it is dropped if the INVITE ends first).
    pub fn cancel(&mut self, now: Instant, invite: ClientTxnKey) -> Result<ClientTxnKey, Error> {
        let id = self.alloc_id();
        let entry = self
            .clients
            .get_mut(&invite.0)
            .ok_or(Error::UnknownTransaction)?;
        if !entry.txn.is_invite() {
            return Err(Error::NotInvite);
        }
        match entry.txn.state() {
            ClientState::Calling => {
                entry.deferred_cancel = Some(ClientTxnKey(id));
                Ok(ClientTxnKey(id))
            }
            ClientState::Proceeding => {
                let cancel = dialog::cancel_for(&entry.request);
                let dest = entry.dest.clone();
                self.start_client(now, id, dest, cancel);
                Ok(ClientTxnKey(id))
            }
            _ => Err(Error::AlreadyFinal),
        }
    }

    // ----- requests ----------------------------------------------------------------------

    fn on_request(&mut self, now: Instant, src: Peer, mut req: Request) {
        self.stats.count_request(&req.method);
        let via = match stamp_via(&mut req, &src) {
            Ok(via) => via,
            Err(e) => {
                self.reply_stateless(&req, src, 400, e.reason_phrase());
                return;
            }
        };
        let reply_to = reply_target(&src, &via);
        if let Err(e) = req.validate() {
            self.reply_stateless(&req, reply_to, e.status(), e.reason_phrase());
            return;
        }
        match req.method {
            Method::Ack => return self.on_ack(now, src, req, &via),
            Method::Cancel => return self.on_cancel(now, src, reply_to, req, &via),
            _ => {}
        }
        let key = server_match(&req, &via, req.method.as_str());
        if let Some(&id) = self.server_index.get(&key) {
            self.on_server_retransmit(id);
            return;
        }
        if self.servers.len() >= self.cfg.max_transactions {
            self.reply_stateless(&req, reply_to, 503, "Service Unavailable");
            return;
        }
        let id = self.new_server(now, key, req.clone(), reply_to);
        self.dispatch_new(now, id, req, src);
    }

    fn on_server_retransmit(&mut self, id: u64) {
        bump(&mut self.stats.retransmissions_absorbed);
        let Some(e) = self.servers.get_mut(&id) else {
            return;
        };
        if e.txn.on_request_retransmit() == ServerAction::ResendResponse
            && let Some(bytes) = e.last_response.clone()
        {
            let dest = e.reply_to.clone();
            bump(&mut self.stats.retransmissions_sent);
            self.transmits.push_back(Transmit { dest, bytes });
        }
    }

    fn new_server(&mut self, now: Instant, key: ServerMatch, req: Request, reply_to: Peer) -> u64 {
        let _ = now;
        let id = self.alloc_id();
        let txn = ServerTxn::new(
            req.method == Method::Invite,
            reply_to.transport.is_reliable(),
            self.cfg.timers,
        );
        self.server_index.insert(key.clone(), id);
        self.servers.insert(
            id,
            ServerEntry {
                txn,
                index: key,
                request: req,
                reply_to,
                last_response: None,
            },
        );
        id
    }

    fn dispatch_new(&mut self, now: Instant, id: u64, req: Request, src: Peer) {
        let in_dialog = req.to_hdr().ok().is_some_and(|to| to.tag().is_some());
        if max_forwards(&req) == Some(0) && req.method != Method::Options {
            return self.reply_own(now, id, &req, 483, "Too Many Hops");
        }
        let required: Vec<String> = req
            .headers
            .list(&HeaderName::Require)
            .into_iter()
            .map(str::to_string)
            .collect();
        if !required.is_empty() {
            let mut resp = Response::from_request(&req, 420, "Bad Extension", None);
            resp.headers
                .push(HeaderName::Other("Unsupported".into()), required.join(", "));
            return self.reply_own_response(now, id, resp);
        }
        match &req.method {
            Method::Register => {
                let outcome = self.registrar.handle_register(now, &req, &src);
                self.reply_own_response(now, id, outcome.response);
                if let Some(agent) = outcome.changed {
                    self.registration_changed(agent, now);
                }
            }
            Method::Options if !in_dialog => {
                let mut resp = Response::from_request(&req, 200, "OK", None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                resp.headers.push(HeaderName::Accept, "application/sdp");
                resp.headers.push(HeaderName::Supported, "");
                self.reply_own_response(now, id, resp);
            }
            Method::Invite => {
                let trying = Response::from_request(&req, 100, "Trying", None);
                let _ = self.send_response(now, id, trying);
                self.events.push_back(Event::NewRequest {
                    txn: ServerTxnKey(id),
                    req,
                    src,
                });
            }
            Method::Bye
            | Method::Refer
            | Method::Notify
            | Method::Info
            | Method::Update
            | Method::Message
            | Method::Options => {
                self.events.push_back(Event::NewRequest {
                    txn: ServerTxnKey(id),
                    req,
                    src,
                });
            }
            Method::Other(_) => self.reply_own(now, id, &req, 501, "Not Implemented"),
            _ => {
                let mut resp = Response::from_request(&req, 405, "Method Not Allowed", None);
                resp.headers.push(HeaderName::Allow, ALLOW);
                self.reply_own_response(now, id, resp);
            }
        }
    }

    fn on_ack(&mut self, now: Instant, src: Peer, ack: Request, via: &Via) {
        let key = server_match(&ack, via, "INVITE");
        if let Some(&id) = self.server_index.get(&key)
            && let Some(e) = self.servers.get_mut(&id)
            && matches!(
                e.txn.state(),
                ServerState::Completed | ServerState::Confirmed
            )
        {
            if e.txn.state() == ServerState::Confirmed {
                bump(&mut self.stats.retransmissions_absorbed);
            }
            e.txn.on_ack(now);
            return;
        }
        let pending = match (ack.call_id(), ack.cseq()) {
            (Some(call_id), Ok(cseq)) => {
                self.pending_acks.get_mut(&(call_id.to_string(), cseq.seq))
            }
            _ => None,
        };
        let invite_txn = match pending {
            Some(p) if p.acked => {
                bump(&mut self.stats.retransmissions_absorbed);
                return;
            }
            Some(p) => {
                p.acked = true;
                p.next_retransmit = None;
                Some(p.invite_txn)
            }
            None => None,
        };
        self.events.push_back(Event::AckReceived {
            invite_txn,
            ack,
            src,
        });
    }

    fn on_cancel(&mut self, now: Instant, src: Peer, reply_to: Peer, cancel: Request, via: &Via) {
        let _ = src;
        let key = server_match(&cancel, via, "CANCEL");
        if let Some(&id) = self.server_index.get(&key) {
            self.on_server_retransmit(id);
            return;
        }
        let invite = self
            .server_index
            .get(&server_match(&cancel, via, "INVITE"))
            .copied();
        let id = self.new_server(now, key, cancel.clone(), reply_to);
        match invite.and_then(|inv| self.servers.get(&inv).map(|e| (inv, e.txn.has_final()))) {
            Some((inv, false)) => {
                self.reply_own(now, id, &cancel, 200, "OK");
                self.events.push_back(Event::CancelRequested {
                    invite_txn: ServerTxnKey(inv),
                    cancel,
                });
            }
            // §9.2: the INVITE already has its final response; the CANCEL has no effect.
            Some((_, true)) => self.reply_own(now, id, &cancel, 200, "OK"),
            None => self.reply_own(now, id, &cancel, 481, "Call/Transaction Does Not Exist"),
        }
    }

    /// A response the endpoint itself generates on server transaction `id`.
    fn reply_own(&mut self, now: Instant, id: u64, req: &Request, status: u16, reason: &str) {
        let resp = Response::from_request(req, status, reason, None);
        self.reply_own_response(now, id, resp);
    }

    fn reply_own_response(&mut self, now: Instant, id: u64, mut resp: Response) {
        if resp.status > 100 {
            let tag = self.new_tag();
            ensure_to_tag(&mut resp, &tag);
        }
        let _ = self.send_response(now, id, resp);
    }

    fn send_response(&mut self, now: Instant, id: u64, mut resp: Response) -> Result<(), Error> {
        let e = self.servers.get_mut(&id).ok_or(Error::UnknownTransaction)?;
        let was_accepted = e.txn.state() == ServerState::Accepted;
        e.txn
            .on_tu_response(now, resp.status)
            .map_err(|r| match r {
                RespondRefusal::AlreadyFinal => Error::AlreadyFinal,
                RespondRefusal::Terminated => Error::UnknownTransaction,
                RespondRefusal::BadStatus => Error::BadStatus(resp.status),
            })?;
        if !resp.headers.contains(&HeaderName::Server) {
            resp.headers
                .push(HeaderName::Server, self.cfg.user_agent.clone());
        }
        let bytes = resp.to_bytes();
        let dest = e.reply_to.clone();
        let is_2xx_to_invite = e.txn.is_invite() && (200..300).contains(&resp.status);
        e.last_response = Some(bytes.clone());
        if !was_accepted {
            bump_class(&mut self.stats.responses_sent, resp.status);
        }
        if is_2xx_to_invite && let (Some(call_id), Ok(cseq)) = (resp.call_id(), resp.cseq()) {
            let t1 = self.cfg.timers.t1;
            let key = (call_id.to_string(), cseq.seq);
            let reliable = dest.transport.is_reliable();
            let entry = self.pending_acks.entry(key).or_insert_with(|| PendingAck {
                invite_txn: ServerTxnKey(id),
                bytes: Vec::new(),
                dest: dest.clone(),
                interval: t1,
                next_retransmit: None,
                give_up: now + t1.saturating_mul(64),
                acked: false,
            });
            entry.bytes = bytes.clone();
            if !reliable && !entry.acked && entry.next_retransmit.is_none() {
                entry.next_retransmit = Some(now + t1);
            }
        }
        self.transmits.push_back(Transmit { dest, bytes });
        Ok(())
    }

    /// A response outside any transaction (the request could not be matched or validated).
    /// Never for ACK.
    fn reply_stateless(&mut self, req: &Request, dest: Peer, status: u16, reason: &str) {
        if req.method == Method::Ack {
            bump(&mut self.stats.dropped);
            return;
        }
        let mut resp = Response::from_request(req, status, reason, None);
        let tag = self.new_tag();
        ensure_to_tag(&mut resp, &tag);
        resp.headers
            .push(HeaderName::Server, self.cfg.user_agent.clone());
        bump_class(&mut self.stats.responses_sent, status);
        self.transmits.push_back(Transmit {
            dest,
            bytes: resp.to_bytes(),
        });
    }

    /// Unparseable input: a 400 when the request is recoverable enough to answer, else drop.
    fn on_garbage(&mut self, src: Peer, bytes: &[u8], err: &ParseError) {
        let tag = self.new_tag();
        match raw_error_response(bytes, err, &tag, &self.cfg.user_agent) {
            Some((resp, via)) => {
                let dest = via
                    .and_then(|v| Via::parse(&v).ok())
                    .map_or_else(|| src.clone(), |v| reply_target(&src, &v));
                bump_class(&mut self.stats.responses_sent, err.status());
                self.transmits.push_back(Transmit { dest, bytes: resp });
            }
            None => bump(&mut self.stats.dropped),
        }
    }

    fn registration_changed(&mut self, agent: String, now: Instant) {
        let contacts = self.registrar.contacts_for(&agent, now);
        self.events
            .push_back(Event::RegistrationChanged { agent, contacts });
    }

    // ----- responses ---------------------------------------------------------------------

    fn on_response(&mut self, now: Instant, resp: Response) {
        bump_class(&mut self.stats.responses_received, resp.status);
        let (Ok(via), Ok(cseq)) = (resp.top_via(), resp.cseq()) else {
            bump(&mut self.stats.dropped);
            return;
        };
        let Some(branch) = via.branch() else {
            bump(&mut self.stats.dropped);
            return;
        };
        let is_invite_2xx = cseq.method == Method::Invite && (200..300).contains(&resp.status);
        if is_invite_2xx && self.resend_ack_for(&resp) {
            return;
        }
        let key = ClientMatch {
            branch: branch.to_string(),
            method: cseq.method.as_str().to_string(),
        };
        let Some(&id) = self.client_index.get(&key) else {
            bump(&mut self.stats.dropped);
            return;
        };
        let Some(e) = self.clients.get_mut(&id) else {
            return;
        };
        let action = e.txn.on_response(now, resp.status);
        let mut deferred = None;
        if (100..200).contains(&resp.status) {
            deferred = e
                .deferred_cancel
                .take()
                .map(|k| (k, dialog::cancel_for(&e.request), e.dest.clone()));
        } else if resp.status >= 200 {
            e.deferred_cancel = None;
        }
        match action {
            ClientAction::PassToTu => self.events.push_back(Event::Response {
                txn: ClientTxnKey(id),
                resp,
            }),
            ClientAction::AckAndPassToTu => {
                let mut ack = dialog::ack_for_non_2xx(&e.request, &resp);
                if !ack.headers.contains(&HeaderName::UserAgent) {
                    ack.headers
                        .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
                }
                let bytes = ack.to_bytes();
                e.ack = Some(bytes.clone());
                self.transmits.push_back(Transmit {
                    dest: e.dest.clone(),
                    bytes,
                });
                self.events.push_back(Event::Response {
                    txn: ClientTxnKey(id),
                    resp,
                });
            }
            ClientAction::ResendAck => {
                bump(&mut self.stats.retransmissions_absorbed);
                if let Some(bytes) = e.ack.clone() {
                    self.transmits.push_back(Transmit {
                        dest: e.dest.clone(),
                        bytes,
                    });
                }
            }
            ClientAction::Nothing | ClientAction::Retransmit | ClientAction::Timeout => {
                bump(&mut self.stats.retransmissions_absorbed);
            }
        }
        if let Some((key, cancel, dest)) = deferred {
            self.start_client(now, key.0, dest, cancel);
        }
        if self.clients.get(&id).is_some_and(|e| e.txn.is_terminated()) {
            self.remove_client(id);
        }
    }

    /// Resends our ACK when `resp` is a retransmitted 2xx we already acknowledged.
    fn resend_ack_for(&mut self, resp: &Response) -> bool {
        let (Some(call_id), Ok(cseq), Ok(to)) = (resp.call_id(), resp.cseq(), resp.to_hdr()) else {
            return false;
        };
        let key = (
            call_id.to_string(),
            cseq.seq,
            to.tag().unwrap_or("").to_string(),
        );
        match self.sent_acks.get(&key) {
            Some(a) => {
                bump(&mut self.stats.retransmissions_absorbed);
                self.transmits.push_back(Transmit {
                    dest: a.dest.clone(),
                    bytes: a.bytes.clone(),
                });
                true
            }
            None => false,
        }
    }

    // ----- client transactions -----------------------------------------------------------

    fn prepare_request(&mut self, req: &mut Request, transport: Transport) {
        if !req.headers.contains(&HeaderName::Via) {
            let branch = self.new_branch();
            let via = format!(
                "SIP/2.0/{} {};branch={branch};rport",
                transport.via_token(),
                self.sent_by(transport)
            );
            req.headers.push_front(HeaderName::Via, via);
        } else if let Ok(mut via) = req.top_via()
            && via.branch().is_none()
        {
            let branch = self.new_branch();
            via.set_param("branch", Some(&branch));
            replace_top_via(&mut req.headers, &via.to_string());
        }
        if !req.headers.contains(&HeaderName::MaxForwards) {
            req.headers.push(HeaderName::MaxForwards, "70");
        }
        if !req.headers.contains(&HeaderName::CallId) {
            let call_id = self.new_call_id();
            req.headers.push(HeaderName::CallId, call_id);
        }
        if !req.headers.contains(&HeaderName::UserAgent) {
            req.headers
                .push(HeaderName::UserAgent, self.cfg.user_agent.clone());
        }
    }

    fn start_client(&mut self, now: Instant, id: u64, dest: Peer, req: Request) {
        if req.method == Method::Ack {
            self.send_ack(now, dest, req);
            return;
        }
        let mut req = req;
        self.prepare_request(&mut req, dest.transport);
        let bytes = req.to_bytes();
        let branch = req
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let index = ClientMatch {
            branch,
            method: req.method.as_str().to_string(),
        };
        if let Some(old) = self.client_index.insert(index.clone(), id) {
            self.clients.remove(&old);
        }
        let txn = ClientTxn::new(
            now,
            req.method == Method::Invite,
            dest.transport.is_reliable(),
            self.cfg.timers,
        );
        self.transmits.push_back(Transmit {
            dest: dest.clone(),
            bytes: bytes.clone(),
        });
        self.clients.insert(
            id,
            ClientEntry {
                txn,
                index,
                request: req,
                bytes,
                dest,
                ack: None,
                deferred_cancel: None,
            },
        );
    }

    fn remove_client(&mut self, id: u64) {
        if let Some(e) = self.clients.remove(&id)
            && self.client_index.get(&e.index) == Some(&id)
        {
            self.client_index.remove(&e.index);
        }
    }

    fn remove_server(&mut self, id: u64) {
        if let Some(e) = self.servers.remove(&id)
            && self.server_index.get(&e.index) == Some(&id)
        {
            self.server_index.remove(&e.index);
        }
    }

    // ----- timers ------------------------------------------------------------------------

    fn client_timers(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, e)| e.txn.next_timer().is_some_and(|(at, _)| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            for _ in 0..MAX_FIRINGS {
                let Some(e) = self.clients.get_mut(&id) else {
                    break;
                };
                let Some((at, timer)) = e.txn.next_timer().filter(|(at, _)| *at <= now) else {
                    break;
                };
                match e.txn.on_timer(at.max(now), timer) {
                    ClientAction::Retransmit => {
                        bump(&mut self.stats.retransmissions_sent);
                        self.transmits.push_back(Transmit {
                            dest: e.dest.clone(),
                            bytes: e.bytes.clone(),
                        });
                    }
                    ClientAction::Timeout => {
                        bump(&mut self.stats.transaction_timeouts);
                        self.events.push_back(Event::TransactionTimeout {
                            txn: TxnKey::Client(ClientTxnKey(id)),
                        });
                    }
                    _ => {}
                }
            }
            if self.clients.get(&id).is_some_and(|e| e.txn.is_terminated()) {
                self.remove_client(id);
            }
        }
    }

    fn server_timers(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .servers
            .iter()
            .filter(|(_, e)| e.txn.next_timer().is_some_and(|(at, _)| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            for _ in 0..MAX_FIRINGS {
                let Some(e) = self.servers.get_mut(&id) else {
                    break;
                };
                let Some((at, timer)) = e.txn.next_timer().filter(|(at, _)| *at <= now) else {
                    break;
                };
                match e.txn.on_timer(at.max(now), timer) {
                    ServerAction::ResendResponse => {
                        if let Some(bytes) = e.last_response.clone() {
                            bump(&mut self.stats.retransmissions_sent);
                            self.transmits.push_back(Transmit {
                                dest: e.reply_to.clone(),
                                bytes,
                            });
                        }
                    }
                    ServerAction::Timeout => {
                        bump(&mut self.stats.transaction_timeouts);
                        self.events.push_back(Event::TransactionTimeout {
                            txn: TxnKey::Server(ServerTxnKey(id)),
                        });
                    }
                    ServerAction::Nothing => {}
                }
            }
            if self.servers.get(&id).is_some_and(|e| e.txn.is_terminated()) {
                self.remove_server(id);
            }
        }
    }

    fn ack_timers(&mut self, now: Instant) {
        let t2 = self.cfg.timers.t2;
        let mut timed_out = Vec::new();
        for p in self.pending_acks.values_mut() {
            if p.give_up <= now {
                if !p.acked {
                    timed_out.push(p.invite_txn);
                }
                continue;
            }
            if let Some(at) = p.next_retransmit
                && at <= now
                && !p.acked
            {
                bump(&mut self.stats.retransmissions_sent);
                self.transmits.push_back(Transmit {
                    dest: p.dest.clone(),
                    bytes: p.bytes.clone(),
                });
                p.interval = p.interval.saturating_mul(2).min(t2);
                p.next_retransmit = Some(now + p.interval);
            }
        }
        self.pending_acks.retain(|_, p| p.give_up > now);
        for invite_txn in timed_out {
            bump(&mut self.stats.transaction_timeouts);
            self.events.push_back(Event::AckTimeout { invite_txn });
        }
    }
}

// ----- helpers ---------------------------------------------------------------------------

/// RFC 3261 §18.2.1 and RFC 3581: note the source in the top Via (`received` when the
/// sent-by host differs from the source IP or `rport` is present; `rport` filled in).
fn stamp_via(req: &mut Request, src: &Peer) -> Result<Via, ParseError> {
    let mut via = req.top_via()?;
    let src_ip = src.addr.ip().to_canonical();
    let host_is_src = match &via.host {
        Host::V4(a) => IpAddr::V4(*a) == src_ip,
        Host::V6(a) => IpAddr::V6(*a).to_canonical() == src_ip,
        Host::Domain(_) => false,
    };
    let rport = via.param("rport").is_some();
    if rport {
        via.set_param("rport", Some(&src.addr.port().to_string()));
    }
    if rport || !host_is_src {
        via.set_param("received", Some(&src_ip.to_string()));
    }
    if rport || !host_is_src {
        replace_top_via(&mut req.headers, &via.to_string());
    }
    Ok(via)
}

/// Where responses to a request with top Via `via` from `src` go: the same connection for
/// streams; for UDP the source IP (it is the `received` address) and, with `rport`, the
/// source port, else the sent-by port (§18.2.2, RFC 3581 §4).
fn reply_target(src: &Peer, via: &Via) -> Peer {
    if src.transport.is_reliable() {
        return src.clone();
    }
    let port = if via.param("rport").is_some() {
        src.addr.port()
    } else {
        via.port.unwrap_or(Transport::Udp.default_port())
    };
    Peer::udp(SocketAddr::new(src.addr.ip(), port))
}

/// Replaces the first Via element (the first comma-separated value of the first Via line).
fn replace_top_via(headers: &mut switchboard_sipmsg::Headers, new_top: &str) {
    if let Some(h) = headers.iter_mut().find(|h| h.name == HeaderName::Via) {
        let rest = split_first_element(&h.value).1.map(str::to_string);
        h.value = match rest {
            Some(rest) => format!("{new_top}, {rest}"),
            None => new_top.to_string(),
        };
    }
}

/// Splits `value` at the first comma outside a quoted string.
fn split_first_element(value: &str) -> (&str, Option<&str>) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                let rest = value.get(i + 1..).map(str::trim).filter(|r| !r.is_empty());
                return (value.get(..i).unwrap_or(value), rest);
            }
            _ => {}
        }
    }
    (value, None)
}

fn server_match(req: &Request, via: &Via, method: &str) -> ServerMatch {
    let sent_by = format!(
        "{}:{}",
        via.host.to_string().to_ascii_lowercase(),
        via.port.unwrap_or(0)
    );
    let branch = match via.branch() {
        Some(b) if b.starts_with(BRANCH_MAGIC) => b.to_string(),
        // RFC 2543 peers: identify by the dialog and CSeq instead (§17.2.3, simplified).
        other => format!(
            "2543|{}|{}|{}|{}",
            other.unwrap_or(""),
            req.call_id().unwrap_or(""),
            req.cseq().map(|c| c.seq).unwrap_or(0),
            req.from_hdr()
                .ok()
                .and_then(|f| f.tag().map(str::to_string))
                .unwrap_or_default()
        ),
    };
    ServerMatch {
        branch,
        sent_by,
        method: method.to_string(),
    }
}

fn max_forwards(req: &Request) -> Option<u8> {
    req.max_forwards().ok().flatten()
}

fn ensure_to_tag(resp: &mut Response, tag: &str) {
    let has_tag = resp.to_hdr().ok().is_some_and(|to| to.tag().is_some());
    if !has_tag && let Some(to) = resp.headers.get(&HeaderName::To).map(str::to_string) {
        resp.headers.set(HeaderName::To, format!("{to};tag={tag}"));
    }
}

/// Builds a 400 (or the status the error calls for) from the raw lines of an unparseable
/// request when Via, From, To, Call-ID and CSeq can be found; returns the bytes and the top
/// Via value. `None` for responses, ACKs and hopeless input.
fn raw_error_response(
    bytes: &[u8],
    err: &ParseError,
    tag: &str,
    server: &str,
) -> Option<(Vec<u8>, Option<String>)> {
    let head_end = find_subslice(bytes, b"\r\n\r\n").unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(bytes.get(..head_end)?);
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let start = lines.next()?;
    let mut parts = start.split(' ');
    let method = parts.next()?;
    if method.is_empty() || method.starts_with("SIP/") || method == "ACK" {
        return None;
    }
    let (mut via, mut from, mut to, mut call_id, mut cseq) = (Vec::new(), None, None, None, None);
    for line in lines {
        if line.contains(|c: char| c.is_control() && c != '\t') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => via.push(value),
            "from" | "f" => from = from.or(Some(value)),
            "to" | "t" => to = to.or(Some(value)),
            "call-id" | "i" => call_id = call_id.or(Some(value)),
            "cseq" => cseq = cseq.or(Some(value)),
            _ => {}
        }
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if via.is_empty() || cseq.split_whitespace().nth(1) == Some("ACK") {
        return None;
    }
    let to = if to.contains(";tag=") {
        to
    } else {
        format!("{to};tag={tag}")
    };
    let status = err.status();
    let mut out = format!("SIP/2.0 {status} {}\r\n", err.reason_phrase());
    for v in &via {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    out.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nServer: {server}\r\nContent-Length: 0\r\n\r\n"
    ));
    let top = via.first().map(|v| split_first_element(v).0.to_string());
    // Copied lines may themselves be malformed: never send what a parser would reject.
    let out = out.into_bytes();
    Message::parse(&out).ok()?;
    Some((out, top))
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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
    fn transaction_cap_sheds_load_with_503() {
        let mut cfg = EndpointConfig::new("d", "192.0.2.1", b"s".to_vec());
        cfg.max_transactions = 1;
        let mut ep = Endpoint::new(cfg);
        let src = Peer::udp("203.0.113.5:5060".parse().unwrap());
        for (i, want) in [(1, "SIP/2.0 200"), (2, "SIP/2.0 503")] {
            let msg = format!(
                "OPTIONS sip:d SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK{i}\r\n\
                 From: <sip:a@b>;tag=1\r\nTo: <sip:d>\r\nCall-ID: c{i}\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            ep.handle_datagram(Instant::ZERO, src.clone(), msg.as_bytes());
            let t = ep.poll_transmit().unwrap();
            assert!(
                t.bytes.starts_with(want.as_bytes()),
                "{}",
                String::from_utf8_lossy(&t.bytes)
            );
        }
    }
}
