//! The virtual-time call-control harness (tests only): the real `sip::Endpoint` and
//! [`Calls`] with the real engine, media plane and record store, driven by scripted SIP
//! messages from scripted peers and a clock that jumps to the next deadline — so a 15 s
//! ring timeout or a 30 min session timer runs in microseconds. Modelled on quinn-proto's
//! `tests/util.rs` `Pair`: input in, drain what came out, `step` to the next timer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchboard_sip::digest::{Challenge, answer_challenge};
use switchboard_sip::{Endpoint, EndpointConfig, Instant, Peer, Transport};
use switchboard_sipmsg::{HeaderName, Message, Method, Request, Response};
use switchboard_store::{CallRecord, Store};

use super::{CallDeps, Calls};
use crate::calls::media::MediaSetup;
use crate::config::Config;
use crate::http::events::EventBus;
use crate::http::shared::Shared;
use crate::ops::metrics::Metrics;
use crate::routing::{self, StoreDirectory};

/// Where the simulated server listens.
pub const SERVER: &str = "127.0.0.1:5060";

/// A message the server sent, with where it went.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: SocketAddr,
    /// The transport it went over.
    pub transport: Transport,
    pub msg: Message,
}

pub struct Sim {
    pub now: Instant,
    pub ep: Endpoint,
    pub calls: Calls,
    pub store: Store,
    /// What call control told the call-back dialer (in-queue call-backs).
    pub places: tokio::sync::mpsc::UnboundedReceiver<crate::callbacks::PlaceNote>,
    out: VecDeque<Sent>,
    _dir: tempfile::TempDir,
}

/// The demo company with `extra` TOML appended (or replacing whole tables), its database in
/// a temporary directory and RTP on ports of its own.
pub fn config(base: &str, extra: &str, dir: &std::path::Path, rtp_base: u16) -> Config {
    let demo = base
        .replace(
            "sqlite://switchboard.db",
            &format!("sqlite://{}/sim.db", dir.display()),
        )
        .replace(
            "spool_dir = \"spool\"",
            &format!("spool_dir = \"{}/spool\"", dir.display()),
        )
        .replace(
            "rtp_ports = [20000, 29999]",
            &format!("rtp_ports = [{rtp_base}, {}]", rtp_base + 99),
        );
    Config::from_toml(&format!("{demo}\n{extra}")).expect("sim config")
}

impl Sim {
    /// A server on the demo company. `rtp_base` keeps tests running in parallel apart: each
    /// test has 100 RTP ports of its own between 29400 and 32767 (above the integration
    /// tests' ranges, below Linux's ephemeral ports).
    pub async fn new(extra: &str, rtp_base: u16) -> Sim {
        Sim::with_config(crate::config::DEMO_CONFIG, extra, rtp_base).await
    }

    /// A server on `base` (a whole configuration) with `extra` appended.
    pub async fn with_config(base: &str, extra: &str, rtp_base: u16) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(base, extra, dir.path(), rtp_base);
        let store = Store::open(
            &config.database.url,
            &config.database.spool_dir,
            switchboard_store::StoreOptions::default(),
        )
        .await
        .expect("store");
        let mut ep_cfg = EndpointConfig::new(
            config.sip.domain.clone(),
            config.sip.advertised_address.clone(),
            b"sim-secret".to_vec(),
        );
        ep_cfg.advertised_ports.push((Transport::Udp, 5060));
        ep_cfg.max_transactions = config.sip.max_transactions;
        ep_cfg.registrar.agents = config
            .agents
            .iter()
            .map(|a| switchboard_sip::AgentCredentials {
                id: a.id.clone(),
                password: a.password.clone(),
            })
            .collect();
        let engine = Arc::new(
            switchboard_engine::Engine::new(routing::engine_config(&config).unwrap()).unwrap(),
        );
        let (inputs, _rx) = tokio::sync::mpsc::unbounded_channel();
        let (places_tx, places) = tokio::sync::mpsc::unbounded_channel();
        let calls = Calls::new(
            &config,
            CallDeps {
                engine,
                directory: StoreDirectory(store.clients()),
                records: store.writer(),
                metrics: Metrics::new(),
                events: EventBus::new(64),
                media: MediaSetup::new(&config).expect("media"),
                shared: Shared::new(),
                inputs,
                nonce_secret: b"sim-trunk-secret".to_vec(),
                places: Some(places_tx),
            },
        );
        Sim {
            now: Instant::from_duration(Duration::from_secs(1_800_000_000)),
            ep: Endpoint::new(ep_cfg),
            calls,
            store,
            places,
            out: VecDeque::new(),
            _dir: dir,
        }
    }

    /// Puts every agent of the company on a break: logged in but taking no calls, so calls
    /// wait in their chains (with nobody logged in at all a call is refused as `no_agent`).
    pub fn everyone_on_break(&mut self) {
        let t = super::engine_time(self.now);
        for agent in self.calls.engine.agents() {
            let change = switchboard_engine::AgentStateChange::Break { reason: None };
            self.calls
                .engine
                .set_agent_state(t, agent.idx, change)
                .expect("on break");
        }
        self.settle();
    }

    /// Delivers `msg` from `from` and runs everything it causes.
    pub fn deliver(&mut self, from: SocketAddr, msg: &Message) {
        self.ep
            .handle_datagram(self.now, Peer::udp(from), &msg.to_bytes());
        self.settle();
    }

    /// Events to call control, engine offers carried out, transmits collected.
    fn settle(&mut self) {
        loop {
            while let Some(event) = self.ep.poll_event() {
                // Registrations: the driver's part, logging agents in and out.
                if let Some(switchboard_sip::Event::RegistrationChanged { agent, contacts }) =
                    self.calls.on_sip_event(&mut self.ep, self.now, event)
                {
                    self.calls
                        .registration_changed(self.now, &agent, !contacts.is_empty());
                }
            }
            self.calls.pump(&mut self.ep, self.now);
            let mut any = false;
            while let Some(t) = self.ep.poll_transmit() {
                any = true;
                let msg = Message::parse(&t.bytes).expect("the server sends valid SIP");
                self.out.push_back(Sent {
                    to: t.dest.addr,
                    transport: t.dest.transport,
                    msg,
                });
            }
            if !any && self.ep.poll_event().is_none() {
                return;
            }
        }
    }

    /// The next deadline of the endpoint or call control.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.ep.poll_timeout(), self.calls.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Jumps to the next deadline and runs it. Returns false when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(at) = self.next_deadline() else {
            return false;
        };
        self.now = self.now.max(at);
        self.ep.handle_timeout(self.now);
        self.calls.handle_timeout(&mut self.ep, self.now);
        self.settle();
        true
    }

    /// Runs every deadline up to `now + d`, then sets the clock there.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while self.next_deadline().is_some_and(|at| at <= until) {
            self.step();
        }
        self.now = until;
        self.ep.handle_timeout(self.now);
        self.calls.handle_timeout(&mut self.ep, self.now);
        self.settle();
    }

    /// Everything sent since the last call.
    pub fn take_sent(&mut self) -> Vec<Sent> {
        self.out.drain(..).collect()
    }

    /// The first message sent to `to` that `pick` accepts, removed from the outbox; the
    /// clock steps on (through at most 10 virtual minutes of deadlines) until it shows up.
    fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&Sent) -> Option<T>) -> T {
        let give_up = self.now + Duration::from_secs(600);
        while self.now <= give_up {
            if let Some(i) = self.out.iter().position(|s| pick(s).is_some()) {
                let sent = self.out.remove(i).expect("index");
                return pick(&sent).expect("picked");
            }
            if !self.step() {
                break;
            }
        }
        panic!("{what} never came; sent: {:#?}", self.out);
    }

    /// The next response with `status` sent to `to`.
    pub fn response(&mut self, to: SocketAddr, status: u16) -> Response {
        self.wait_for(&format!("{status} to {to}"), |s| match &s.msg {
            Message::Response(r) if s.to == to && r.status == status => Some(r.clone()),
            _ => None,
        })
    }

    /// The next `method` request sent to `to`.
    pub fn request(&mut self, to: SocketAddr, method: Method) -> Request {
        self.wait_for(&format!("{method} to {to}"), |s| match &s.msg {
            Message::Request(r) if s.to == to && r.method == method => Some(r.clone()),
            _ => None,
        })
    }

    /// The call records the store holds now (waits for the writer).
    pub async fn records(&self) -> Vec<CallRecord> {
        self.store
            .flush(Duration::from_secs(5))
            .await
            .expect("flush");
        self.store.recent_calls(None, 100).await.expect("records")
    }
}

/// A scripted SIP peer (a trunk or an agent phone).
#[derive(Debug, Clone)]
pub struct Ua {
    pub addr: SocketAddr,
    pub user: String,
    pub tag: String,
    pub rtp_port: u16,
    /// Parameters after the address in this peer's Contact (e.g. `;transport=tcp`).
    pub contact_params: String,
    cseq: u32,
    branch: u32,
}

impl Ua {
    pub fn new(user: &str, port: u16) -> Ua {
        Ua {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            user: user.to_owned(),
            tag: format!("{user}-tag"),
            rtp_port: port + 1000,
            contact_params: String::new(),
            cseq: 0,
            branch: 0,
        }
    }

    fn via(&mut self) -> String {
        self.branch += 1;
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK{}-{}",
            self.addr, self.user, self.branch
        )
    }

    /// An SDP offer or answer for RTP at `port` in `direction`.
    pub fn sdp(&self, port: u16, direction: &str) -> Vec<u8> {
        format!(
            "v=0\r\no={u} 1 {port} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n",
            u = self.user
        )
        .into_bytes()
    }

    /// A new request from this peer; `extra` headers as `Name: value` lines.
    pub fn request(&mut self, method: Method, uri: &str, call_id: &str, extra: &[&str]) -> Request {
        self.cseq += 1;
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: {}\r\nFrom: <sip:{}@{}>;tag={}\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {} {method}\r\nContact: <sip:{}@{}>\r\nMax-Forwards: 70\r\n{}Content-Length: 0\r\n\r\n",
            self.via(),
            self.user,
            self.addr,
            self.tag,
            self.cseq,
            self.user,
            self.addr,
            extra.iter().map(|h| format!("{h}\r\n")).collect::<String>(),
        );
        scripted_request(&text)
    }

    /// A trunk INVITE to `did` (with `sdp` as the offer, or none for a late offer).
    pub fn invite(
        &mut self,
        did: &str,
        call_id: &str,
        sdp: Option<Vec<u8>>,
        extra: &[&str],
    ) -> Request {
        let mut inv = self.request(
            Method::Invite,
            &format!("sip:{did}@{SERVER}"),
            call_id,
            extra,
        );
        if let Some(body) = sdp {
            inv.headers.push(HeaderName::ContentType, "application/sdp");
            inv.body = body;
        }
        inv
    }

    /// A request of this peer inside a dialog: `from`/`to` as this peer sends them, to
    /// `target`, CSeq counted by the peer.
    pub fn dialog_request(
        &mut self,
        method: Method,
        target: &str,
        call_id: &str,
        from: &str,
        to: &str,
        extra: &[&str],
    ) -> Request {
        self.cseq += 1;
        let text = format!(
            "{method} {target} SIP/2.0\r\nVia: {}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {} {method}\r\nContact: <sip:{}@{}{}>\r\nMax-Forwards: 70\r\n{}Content-Length: 0\r\n\r\n",
            self.via(),
            self.cseq,
            self.user,
            self.addr,
            self.contact_params,
            extra.iter().map(|h| format!("{h}\r\n")).collect::<String>(),
        );
        scripted_request(&text)
    }

    /// The ACK for the server's 2xx `ok` to our INVITE.
    pub fn ack(&mut self, ok: &Response, body: Option<Vec<u8>>) -> Request {
        let seq = ok.cseq().map(|c| c.seq).unwrap_or(1);
        let text = format!(
            "ACK {} SIP/2.0\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {seq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            contact_uri(ok.headers.get(&HeaderName::Contact)),
            self.via(),
            ok.headers.get(&HeaderName::From).unwrap_or_default(),
            ok.headers.get(&HeaderName::To).unwrap_or_default(),
            ok.call_id().unwrap_or_default(),
        );
        let Ok(Message::Request(mut ack)) = Message::parse(text.as_bytes()) else {
            panic!("bad ACK");
        };
        if let Some(b) = body {
            ack.headers.push(HeaderName::ContentType, "application/sdp");
            ack.body = b;
        }
        ack
    }

    /// A request of this peer in the dialog the server's 2xx `ok` to our INVITE formed.
    pub fn in_call(&mut self, method: Method, ok: &Response, extra: &[&str]) -> Request {
        let target = contact_uri(ok.headers.get(&HeaderName::Contact));
        let from = ok
            .headers
            .get(&HeaderName::From)
            .unwrap_or_default()
            .to_owned();
        let to = ok
            .headers
            .get(&HeaderName::To)
            .unwrap_or_default()
            .to_owned();
        let call_id = ok.call_id().unwrap_or_default().to_owned();
        self.dialog_request(method, &target, &call_id, &from, &to, extra)
    }

    /// Our answer to a request of the server: `status`, our tag, our Contact.
    pub fn answer(&self, req: &Request, status: u16, body: Option<Vec<u8>>) -> Response {
        let mut r = Response::from_request(req, status, "Scripted", Some(&self.tag));
        r.headers.push(
            HeaderName::Contact,
            format!("<sip:{}@{}>", self.user, self.addr),
        );
        if let Some(b) = body {
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = b;
        }
        r
    }

    /// Registers this peer as agent `self.user` with `password` (digest, two rounds).
    pub fn register(&mut self, sim: &mut Sim, password: &str) {
        let uri = format!("sip:{SERVER}");
        let aor = format!("sip:{}@{SERVER}", self.user);
        let call_id = format!("reg-{}", self.user);
        let mut reg = self.dialog_request(
            Method::Register,
            &uri,
            &call_id,
            &format!("<{aor}>;tag={}", self.tag),
            &format!("<{aor}>"),
            &["Expires: 3600"],
        );
        sim.deliver(self.addr, &Message::Request(reg.clone()));
        let challenge = sim.response(self.addr, 401);
        let challenge = Challenge::parse(
            challenge
                .headers
                .get(&HeaderName::WwwAuthenticate)
                .expect("challenge"),
        )
        .expect("challenge parses");
        let creds = answer_challenge(
            &challenge, &self.user, password, "REGISTER", &uri, "c0ffee", 1,
        );
        reg = self.dialog_request(
            Method::Register,
            &uri,
            &call_id,
            &format!("<{aor}>;tag={}", self.tag),
            &format!("<{aor}>"),
            &[
                "Expires: 3600",
                &format!("Authorization: {}", creds.to_header_value()),
            ],
        );
        sim.deliver(self.addr, &Message::Request(reg));
        sim.response(self.addr, 200);
    }
}

/// The URI inside a Contact value (`<sip:…>;params`).
pub fn contact_uri(contact: Option<&str>) -> String {
    let c = contact.unwrap_or_default();
    match (c.find('<'), c.find('>')) {
        (Some(a), Some(b)) if a < b => c[a + 1..b].to_owned(),
        _ => c.to_owned(),
    }
}

/// A scripted request's text as a parsed request (a test bug if it does not parse).
fn scripted_request(text: &str) -> Request {
    match Message::parse(text.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("bad scripted request: {other:?}"),
    }
}
