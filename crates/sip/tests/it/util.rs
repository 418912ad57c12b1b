//! Simulation harness: two [`Endpoint`]s wired back to back in virtual time.
//!
//! Messages are delivered instantly (or dropped by a test-chosen filter); the clock jumps
//! to the earliest `poll_timeout()` of either endpoint, so a 32-second Timer B test takes
//! microseconds of wall time.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_sip::{
    ConnId, Endpoint, EndpointConfig, Event, Instant, Peer, Transmit, Transport,
};
use switchboard_sipmsg::{HeaderName, Message, Method, Request, Uri};

pub const SECRET: &[u8] = b"test-secret-0123456789";

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn at_ms(n: u64) -> Instant {
    Instant::ZERO + ms(n)
}

pub fn config(host: &str) -> EndpointConfig {
    EndpointConfig::new("callcenter.local", host, SECRET.to_vec())
}

/// The endpoint's timer queue must name exactly the deadline a scan of everything finds,
/// and the registrar's expiry index must hold every binding once.
pub fn check_indexes(ep: &Endpoint) {
    assert_eq!(
        ep.poll_timeout(),
        ep.poll_timeout_by_scan(),
        "timer queue disagrees with the transactions"
    );
    let registrar = ep.registrar();
    let bindings: usize = registrar
        .registered_agents()
        .iter()
        .map(|agent| registrar.contacts_for(agent, Instant::ZERO).len())
        .sum();
    assert_eq!(
        registrar.binding_count(),
        bindings,
        "expiry index disagrees"
    );
}

/// Which side of the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// A message that went over the simulated wire.
#[derive(Debug, Clone)]
pub struct Wire {
    pub at: Instant,
    pub from: Side,
    pub bytes: Vec<u8>,
    pub dropped: bool,
}

impl Wire {
    pub fn msg(&self) -> Message {
        Message::parse(&self.bytes).expect("endpoint sent unparseable bytes")
    }

    /// `"INVITE"`, `"ACK"` … for requests, `"200"` … for responses.
    pub fn label(&self) -> String {
        match self.msg() {
            Message::Request(r) => r.method.to_string(),
            Message::Response(r) => r.status.to_string(),
        }
    }
}

type DropFilter = Box<dyn FnMut(Side, &Wire) -> bool>;

/// Two endpoints, a virtual clock and a log of everything sent.
pub struct Sim {
    pub now: Instant,
    pub a: Endpoint,
    pub b: Endpoint,
    pub a_peer: Peer,
    pub b_peer: Peer,
    pub wire: Vec<Wire>,
    pub a_events: Vec<(Instant, Event)>,
    pub b_events: Vec<(Instant, Event)>,
    drop: Option<DropFilter>,
}

impl Sim {
    /// A (10.0.0.1:5060) and B (10.0.0.2:5060) on `transport`.
    pub fn new(transport: Transport) -> Sim {
        let a_addr: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let b_addr: SocketAddr = "10.0.0.2:5060".parse().unwrap();
        let conn = (transport != Transport::Udp).then_some(ConnId(1));
        Sim {
            now: Instant::ZERO,
            a: Endpoint::new(config("10.0.0.1")),
            b: Endpoint::new(config("10.0.0.2")),
            a_peer: Peer {
                transport,
                addr: a_addr,
                conn,
                local: None,
            },
            b_peer: Peer {
                transport,
                addr: b_addr,
                conn,
                local: None,
            },
            wire: Vec::new(),
            a_events: Vec::new(),
            b_events: Vec::new(),
            drop: None,
        }
    }

    /// Drop messages for which `f(sender, wire)` is true.
    pub fn set_drop(&mut self, f: impl FnMut(Side, &Wire) -> bool + 'static) {
        self.drop = Some(Box::new(f));
    }

    pub fn clear_drop(&mut self) {
        self.drop = None;
    }

    /// Delivers every queued transmit (repeatedly, since deliveries cause more).
    pub fn deliver(&mut self) {
        for _ in 0..10_000 {
            let next = match self.a.poll_transmit() {
                Some(t) => Some((Side::A, t)),
                None => self.b.poll_transmit().map(|t| (Side::B, t)),
            };
            let Some((from, t)) = next else { break };
            self.route(from, t);
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push((self.now, e));
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push((self.now, e));
        }
    }

    fn route(&mut self, from: Side, t: Transmit) {
        let mut w = Wire {
            at: self.now,
            from,
            bytes: t.bytes,
            dropped: false,
        };
        let expected = match from {
            Side::A => self.b_peer.addr,
            Side::B => self.a_peer.addr,
        };
        assert_eq!(t.dest.addr, expected, "sent to the wrong address");
        if let Some(f) = self.drop.as_mut() {
            w.dropped = f(from, &w);
        }
        if !w.dropped {
            match from {
                Side::A => self
                    .b
                    .handle_datagram(self.now, self.a_peer.clone(), &w.bytes),
                Side::B => self
                    .a
                    .handle_datagram(self.now, self.b_peer.clone(), &w.bytes),
            }
        }
        self.wire.push(w);
    }

    /// Runs until `until`: deliver, jump to the next timeout, fire, repeat.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..100_000 {
            self.deliver();
            check_indexes(&self.a);
            check_indexes(&self.b);
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    assert!(t >= self.now, "timeout in the past");
                    self.now = t;
                    self.a.handle_timeout(t);
                    self.b.handle_timeout(t);
                }
                _ => {
                    self.now = self.now.max(until);
                    self.deliver();
                    return;
                }
            }
        }
        panic!("simulation did not settle");
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Times (ms) at which `from` sent messages labelled `label`.
    pub fn sent_at(&self, from: Side, label: &str) -> Vec<u64> {
        self.wire
            .iter()
            .filter(|w| w.from == from && w.label() == label)
            .map(|w| w.at.as_micros() / 1000)
            .collect()
    }

    /// The NewRequest events B received.
    pub fn b_new_requests(&self) -> Vec<(switchboard_sip::ServerTxnKey, Request)> {
        self.b_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::NewRequest { txn, req, .. } => Some((*txn, req.clone())),
                _ => None,
            })
            .collect()
    }

    /// A request from A to B, with From tag, To, Call-ID and CSeq.
    pub fn request(&self, method: Method, call_id: &str, seq: u32) -> Request {
        let uri: Uri = "sip:queue@10.0.0.2".parse().unwrap();
        let mut req = Request::new(method.clone(), uri);
        req.headers
            .push(HeaderName::From, "<sip:trunk@10.0.0.1>;tag=from1");
        req.headers.push(HeaderName::To, "<sip:queue@10.0.0.2>");
        req.headers.push(HeaderName::CallId, call_id);
        req.headers
            .push(HeaderName::CSeq, format!("{seq} {method}"));
        req.headers
            .push(HeaderName::Contact, "<sip:trunk@10.0.0.1:5060>");
        req
    }
}
