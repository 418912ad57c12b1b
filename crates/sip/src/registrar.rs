//! The agent registrar (RFC 3261 §10.3) with digest authentication.
//!
//! Agents are the `[[agents]]` of the configuration (id and password); the realm is the
//! `[sip] domain`. A binding remembers the [`Peer`] the REGISTER came from, so requests to
//! an agent behind NAT or on a TCP/WebSocket connection go back the same way.
//!
//! **RFC 5626 outbound**: a REGISTER whose Contact carries `+sip.instance` and `reg-id` and
//! that lists `outbound` in `Supported` (as JsSIP and SIP.js send it) registers one flow:
//! the binding is keyed by instance and reg-id (a second flow of the same instance is a second
//! binding; a re-REGISTER on a new connection replaces the flow), the `200` carries
//! `Require: outbound`, and requests to it go down that flow. Switchboard has no Path
//! support, so it must be the first hop: such a REGISTER through a proxy (more than one
//! Via) gets `439 First Hop Lacks Outbound Support`, and one that registers more than one
//! contact with a flow gets `400`. Without `outbound` in `Supported`, `reg-id` is ignored.
//!
//! **Unknown users and wrong passwords get the same answer**: a `401` whose headers are
//! identical apart from the fresh nonce, so the registrar does not reveal which agent ids
//! exist. `stale=true` is only ever sent to a client that proved knowledge of the password.
//!
//! Credentials must answer a challenge of ours exactly: `qop=auth` (with a fresh nonce count),
//! an algorithm we offered, and a `uri` equal to the Request-URI (RFC 7616 §3.4.6: a response
//! computed for another URI is not this request's). Every wrong answer counts against its
//! source address in the [`AuthGuard`]; a banned source gets `403` and no challenge.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use switchboard_sipmsg::{ContactValue, HeaderName, NameAddr, Request, Response, Scheme, Uri};

use crate::digest::{Algorithm, Challenge, Credentials, NonceCounts, NonceSource, NonceStatus};
use crate::endpoint::{ConnId, Peer, Transport};
use crate::guard::{AuthGuard, AuthNotice, GuardConfig, GuardStats};
use crate::time::Instant;

/// One agent allowed to register. `Debug` does not print the password.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentCredentials {
    /// SIP user name (`[[agents]] id`).
    pub id: String,
    /// Digest password.
    pub password: String,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("id", &self.id)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Registrar settings.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Agents that may register.
    pub agents: Vec<AgentCredentials>,
    /// Shortest accepted non-zero expiry (seconds); shorter → `423` with `Min-Expires`.
    pub min_expires: u32,
    /// Longest granted expiry (seconds); longer requests are clamped.
    pub max_expires: u32,
    /// Expiry when the request gives none (seconds).
    pub default_expires: u32,
    /// Most bindings one agent may hold at once.
    pub max_bindings_per_agent: usize,
    /// Challenges offered in a `401`, in order of preference. Clients answer the first one
    /// they support, but many deployed ones (SIPp, older softphones) only try the first: MD5
    /// first by default keeps them working while SHA-256 clients can still choose SHA-256.
    pub algorithms: Vec<Algorithm>,
    /// Failed-authentication limits per source address (`[security]`).
    pub guard: GuardConfig,
    /// Hosts that name this server (advertised address, listen addresses; the realm is
    /// implied). A digest `uri` of `sip:<one of them>[:port]` is accepted besides the
    /// Request-URI itself: some user agents (SIPp among them) put the server's address there.
    pub own_hosts: Vec<String>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            agents: Vec::new(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_bindings_per_agent: 16,
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            guard: GuardConfig::default(),
            own_hosts: Vec::new(),
        }
    }
}

/// Whether a REGISTER names a `sips:` URI (Request-URI, To or a Contact).
fn names_sips(req: &Request) -> bool {
    let sips = |uri: &Uri| uri.scheme == Scheme::Sips;
    sips(&req.uri)
        || req.to_hdr().is_ok_and(|to| sips(&to.uri))
        || req.contacts().is_ok_and(|contacts| {
            contacts
                .iter()
                .any(|c| matches!(c, ContactValue::Addr(a) if sips(&a.uri)))
        })
}

/// One registered contact of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI to send requests to.
    pub contact: Uri,
    /// The Contact value as registered (without `expires`), echoed in 200 responses.
    pub contact_addr: NameAddr,
    /// Where the REGISTER came from: transport, source address and connection.
    pub source: Peer,
    /// When the binding lapses unless refreshed.
    pub expires_at: Instant,
    /// `+sip.instance` (RFC 5626) when the UA sent one; then the binding key.
    pub instance: Option<String>,
    /// Call-ID of the REGISTER that created or last refreshed the binding.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    key: String,
}

impl Binding {
    /// Seconds left at `now` (rounded down).
    pub fn remaining_secs(&self, now: Instant) -> u64 {
        self.expires_at.saturating_duration_since(now).as_secs()
    }
}

/// What the registrar decided about one REGISTER.
#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    /// The response to send (the endpoint adds the To tag and Server header).
    pub response: Response,
    /// The agent whose set of bindings changed (added or removed), if any.
    pub changed: Option<String>,
}

/// The registrar: credentials, nonces and bindings.
///
/// `Debug` shows the configuration with passwords redacted, never the passwords map.
pub struct Registrar {
    cfg: RegistrarConfig,
    realm: String,
    passwords: HashMap<String, String>,
    nonces: NonceSource,
    nonce_counts: NonceCounts,
    bindings: BTreeMap<String, Vec<Binding>>,
    /// Every binding as (expiry, agent, key), soonest first: the next expiry and the lapsed
    /// bindings are found without walking all of them.
    expiries: BTreeSet<(Instant, String, String)>,
    guard: AuthGuard,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("realm", &self.realm)
            .field("cfg", &self.cfg)
            .field("bindings", &self.bindings)
            .finish_non_exhaustive()
    }
}

/// A password no agent has: verifying against it keeps the work for an unknown user the
/// same as for a known one.
const DUMMY_PASSWORD: &str = "\u{0}switchboard-no-such-agent";

impl Registrar {
    /// A registrar for `realm` with nonces from `nonces`.
    pub fn new(cfg: RegistrarConfig, realm: impl Into<String>, nonces: NonceSource) -> Registrar {
        let passwords = cfg
            .agents
            .iter()
            .map(|a| (a.id.clone(), a.password.clone()))
            .collect();
        Registrar {
            guard: AuthGuard::new(cfg.guard),
            cfg,
            realm: realm.into(),
            passwords,
            nonces,
            nonce_counts: NonceCounts::default(),
            bindings: BTreeMap::new(),
            expiries: BTreeSet::new(),
        }
    }

    /// The realm (registrar domain).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Replaces the agent list (configuration reload). Bindings of removed agents are
    /// dropped; returns their ids.
    pub fn set_agents(&mut self, agents: Vec<AgentCredentials>) -> Vec<String> {
        self.passwords = agents
            .iter()
            .map(|a| (a.id.clone(), a.password.clone()))
            .collect();
        self.cfg.agents = agents;
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|id| !self.passwords.contains_key(*id))
            .cloned()
            .collect();
        for id in &gone {
            self.remove_agent_bindings(id);
        }
        gone
    }

    /// Live bindings of `agent_id` at `now`.
    pub fn contacts_for(&self, agent_id: &str, now: Instant) -> Vec<Binding> {
        self.bindings
            .get(agent_id)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default()
    }

    /// Agents with at least one binding, sorted by id.
    pub fn registered_agents(&self) -> Vec<String> {
        self.bindings
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Total number of bindings (O(1): the driver reads it after every wake-up).
    pub fn binding_count(&self) -> usize {
        self.expiries.len()
    }

    /// When the next binding lapses.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, ..)| *at)
    }

    /// Drops bindings that lapsed by `now`; returns the agents that lost one, sorted.
    /// Costs O(log n) per lapsed binding, nothing per live one.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        self.nonce_counts
            .prune(Instant::from_micros(now.as_micros().saturating_sub(
                u64::try_from(self.nonces.lifetime().as_micros()).unwrap_or(u64::MAX),
            )));
        let mut changed = BTreeSet::new();
        while let Some((at, ..)) = self.expiries.first()
            && *at <= now
        {
            let Some((_, agent, key)) = self.expiries.pop_first() else {
                break;
            };
            if let Some(list) = self.bindings.get_mut(&agent) {
                list.retain(|b| b.key != key);
                if list.is_empty() {
                    self.bindings.remove(&agent);
                }
            }
            changed.insert(agent);
        }
        changed.into_iter().collect()
    }

    /// Drops bindings learnt over connection `conn` (it closed: the agent is unreachable
    /// through it); returns the agents that lost one.
    pub fn remove_connection(&mut self, conn: ConnId) -> Vec<String> {
        self.retain_bindings(|b| b.source.conn != Some(conn))
    }

    fn retain_bindings(&mut self, keep: impl Fn(&Binding) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        for (agent, list) in self.bindings.iter_mut() {
            let before = list.len();
            list.retain(|b| {
                let kept = keep(b);
                if !kept {
                    self.expiries
                        .remove(&(b.expires_at, agent.clone(), b.key.clone()));
                }
                kept
            });
            if list.len() != before {
                changed.push(agent.clone());
            }
        }
        self.bindings.retain(|_, v| !v.is_empty());
        changed
    }

    /// Drops every binding of `agent`; whether it had any.
    fn remove_agent_bindings(&mut self, agent: &str) -> bool {
        let Some(list) = self.bindings.remove(agent) else {
            return false;
        };
        for b in list {
            self.expiries
                .remove(&(b.expires_at, agent.to_string(), b.key));
        }
        true
    }

    /// A `401` with fresh challenges, one per configured algorithm in preference order
    /// (RFC 8760 §2.4).
    pub fn challenge(&mut self, req: &Request, now: Instant, stale: bool) -> Response {
        let nonce = self.nonces.issue(now);
        let mut resp = Response::from_request(req, 401, "Unauthorized", None);
        for &algorithm in &self.cfg.algorithms {
            let c = Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                algorithm,
                qop_auth: true,
                opaque: None,
                stale,
            };
            resp.headers
                .push(HeaderName::WwwAuthenticate, c.to_header_value());
        }
        resp
    }

    /// Checks the digest credentials of `req` from `source`: `Ok(username)` or the `401` to
    /// send. A wrong answer (as opposed to none, or a stale nonce) counts against `source`.
    pub fn authenticate(
        &mut self,
        req: &Request,
        source: IpAddr,
        now: Instant,
    ) -> Result<String, Box<Response>> {
        let creds = req
            .headers
            .get_all(&HeaderName::Authorization)
            .filter_map(|v| Credentials::parse(v).ok())
            .find(|c| c.realm == self.realm);
        let Some(creds) = creds else {
            return Err(Box::new(self.challenge(req, now, false)));
        };
        match self.check_credentials(req, &creds, now) {
            Ok(()) => Ok(creds.username),
            Err(Refusal::Stale) => Err(Box::new(self.challenge(req, now, true))),
            Err(Refusal::Foreign) => Err(Box::new(self.challenge(req, now, false))),
            Err(Refusal::Wrong(reason)) => {
                self.guard.failed(source, &creds.username, reason, now);
                Err(Box::new(self.challenge(req, now, false)))
            }
        }
    }

    fn check_credentials(
        &mut self,
        req: &Request,
        creds: &Credentials,
        now: Instant,
    ) -> Result<(), Refusal> {
        let status = self.nonces.check(&creds.nonce, now);
        let password = self.passwords.get(&creds.username);
        // Always verify (against a dummy password for an unknown user): the work, and so the
        // timing, does not tell which users exist.
        let verified = creds.verify(
            req.method.as_str(),
            password.map_or(DUMMY_PASSWORD, String::as_str),
        ) && password.is_some();
        if status == NonceStatus::Invalid {
            // Not our nonce (e.g. issued before a restart): a fresh challenge, not a failure,
            // or one office of agents behind one address would ban itself after a restart.
            return Err(Refusal::Foreign);
        }
        if !verified {
            return Err(Refusal::Wrong("wrong user or password"));
        }
        let Some((nc, _)) = &creds.qop_auth else {
            return Err(Refusal::Wrong("qop=auth missing"));
        };
        if !self.cfg.algorithms.contains(&creds.algorithm) {
            return Err(Refusal::Wrong("algorithm not offered"));
        }
        if !self.digest_uri_matches(&creds.uri, &req.uri) {
            return Err(Refusal::Wrong("uri differs from the Request-URI"));
        }
        if status == NonceStatus::Stale {
            return Err(Refusal::Stale);
        }
        let issued = self.nonces.issued_at(&creds.nonce).unwrap_or(now);
        if !self.nonce_counts.accept(&creds.nonce, *nc, issued) {
            return Err(Refusal::Wrong("nonce count replayed"));
        }
        Ok(())
    }

    /// Whether the digest `uri` names this request: the Request-URI (the same text, or the
    /// same URI once both are parsed: clients differ in parameter case and escaping), or a
    /// user-less SIP URI of this server (the realm, the Request-URI's host, or one of
    /// `own_hosts`). An answer computed for another server's URI is refused.
    fn digest_uri_matches(&self, digest_uri: &str, request_uri: &Uri) -> bool {
        let digest_uri = digest_uri.trim();
        if digest_uri == request_uri.to_string() {
            return true;
        }
        let Ok(uri) = digest_uri.parse::<Uri>() else {
            return false;
        };
        if &uri == request_uri {
            return true;
        }
        if uri.scheme != request_uri.scheme || uri.user.is_some() {
            return false;
        }
        let host = uri.host.to_string();
        host.eq_ignore_ascii_case(&request_uri.host.to_string())
            || host.eq_ignore_ascii_case(&self.realm)
            || self
                .cfg
                .own_hosts
                .iter()
                .any(|own| host.eq_ignore_ascii_case(own))
    }

    /// The next authentication notice (failure, ban) for the driver to log.
    pub fn poll_auth_notice(&mut self) -> Option<AuthNotice> {
        self.guard.poll_notice()
    }

    /// Failure and ban counters.
    pub fn guard_stats(&self) -> GuardStats {
        self.guard.stats()
    }

    /// Replaces the failed-authentication limits (configuration reload).
    pub fn set_guard_config(&mut self, cfg: GuardConfig) {
        self.cfg.guard = cfg;
        self.guard.set_config(cfg);
    }

    /// Handles a REGISTER received from `src` at `now`.
    pub fn handle_register(&mut self, now: Instant, req: &Request, src: &Peer) -> RegisterOutcome {
        let reject = |status: u16, reason: &str| RegisterOutcome {
            response: Response::from_request(req, status, reason, None),
            changed: None,
        };
        let source = src.addr.ip();
        if self.guard.refuse(source, now) {
            // No challenge: a banned source learns nothing and gets nothing to answer.
            return reject(403, "Forbidden");
        }
        if names_sips(req) && !matches!(src.transport, Transport::Tls | Transport::Wss) {
            // RFC 5630: a SIPS URI promises TLS up to the resource, so a binding that
            // names one is only taken over a secure transport.
            return reject(416, "Unsupported URI Scheme - SIPS Requires TLS");
        }
        let user = match self.authenticate(req, source, now) {
            Ok(user) => user,
            Err(challenge) => {
                return RegisterOutcome {
                    response: *challenge,
                    changed: None,
                };
            }
        };
        let Ok(to) = req.to_hdr() else {
            return reject(400, "Bad Request - Malformed To");
        };
        if to.uri.user.as_deref() != Some(user.as_str()) {
            return reject(403, "Forbidden - To Does Not Match Credentials");
        }
        let Some(call_id) = req.call_id().map(str::to_string) else {
            return reject(400, "Bad Request - Missing Call-ID");
        };
        let Ok(cseq) = req.cseq() else {
            return reject(400, "Bad Request - Malformed CSeq");
        };
        let Ok(contacts) = req.contacts() else {
            return reject(400, "Bad Request - Malformed Contact");
        };
        let header_expires = req.expires();
        // RFC 5626: the UA asks for outbound semantics (JsSIP: `Supported: path,gruu,outbound`).
        let outbound = crate::extensions::offers(req, "outbound").0;
        let mut flow = false;

        let changed = if contacts.iter().any(|c| matches!(c, ContactValue::Star)) {
            // RFC 3261 §10.3 step 6: "*" only alone and only with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return reject(400, "Bad Request - Contact * Requires Expires: 0");
            }
            let out_of_order = self
                .bindings
                .get(&user)
                .into_iter()
                .flatten()
                .any(|b| b.call_id == call_id && b.cseq >= cseq.seq);
            if out_of_order {
                return reject(400, "Bad Request - Out-of-Order CSeq");
            }
            self.remove_agent_bindings(&user)
        } else {
            let mut updates: Vec<(NameAddr, u32)> = Vec::new();
            for c in &contacts {
                let ContactValue::Addr(addr) = c else {
                    continue;
                };
                let expires = match addr.param("expires") {
                    Some(Some(v)) => v.trim().parse::<u32>().ok(),
                    _ => None,
                }
                .or(header_expires)
                .unwrap_or(self.cfg.default_expires);
                if expires != 0 && expires < self.cfg.min_expires {
                    let mut resp = Response::from_request(req, 423, "Interval Too Brief", None);
                    resp.headers
                        .push(HeaderName::MinExpires, self.cfg.min_expires.to_string());
                    return RegisterOutcome {
                        response: resp,
                        changed: None,
                    };
                }
                updates.push((addr.clone(), expires.min(self.cfg.max_expires)));
            }
            if updates
                .iter()
                .any(|(a, _)| flow_reg_id(a, outbound).is_some())
            {
                if updates.iter().filter(|(_, e)| *e != 0).count() > 1 {
                    return reject(400, "Bad Request - reg-id With Several Contacts");
                }
                if req.vias().map_or(0, |v| v.len()) > 1 {
                    return reject(439, "First Hop Lacks Outbound Support");
                }
                flow = true;
            }
            match self.apply(&user, updates, outbound, (&call_id, cseq.seq), src, now) {
                Ok(changed) => changed,
                Err((status, reason)) => return reject(status, reason),
            }
        };

        let mut response = Response::from_request(req, 200, "OK", None);
        if flow {
            // RFC 5626 §6: the registration uses the flow it came on.
            response.headers.push(HeaderName::Require, "outbound");
        }
        for b in self.contacts_for(&user, now) {
            let mut addr = b.contact_addr.clone();
            addr.params
                .retain(|p| !p.name.eq_ignore_ascii_case("expires"));
            response.headers.push(
                HeaderName::Contact,
                format!("{addr};expires={}", b.remaining_secs(now)),
            );
        }
        RegisterOutcome {
            response,
            changed: changed.then_some(user),
        }
    }

    /// Validates all contact updates first (§10.3 step 7), then applies them.
    fn apply(
        &mut self,
        user: &str,
        updates: Vec<(NameAddr, u32)>,
        outbound: bool,
        (call_id, cseq): (&str, u32),
        src: &Peer,
        now: Instant,
    ) -> Result<bool, (u16, &'static str)> {
        let list = self.bindings.entry(user.to_string()).or_default();
        let keyed: Vec<(String, Option<String>, NameAddr, u32)> = updates
            .into_iter()
            .map(|(addr, exp)| {
                let instance = addr
                    .param("+sip.instance")
                    .flatten()
                    .map(|s| s.trim_matches('"').to_string());
                let reg_id = flow_reg_id(&addr, outbound);
                (
                    binding_key(&addr.uri, instance.as_deref(), reg_id),
                    instance,
                    addr,
                    exp,
                )
            })
            .collect();
        for (key, ..) in &keyed {
            if let Some(b) = list.iter().find(|b| &b.key == key)
                && b.call_id == call_id
                && cseq <= b.cseq
            {
                return Err((400, "Bad Request - Out-of-Order CSeq"));
            }
        }
        let new_keys = keyed
            .iter()
            .filter(|(key, _, _, exp)| *exp != 0 && !list.iter().any(|b| &b.key == key))
            .count();
        let removed_keys = keyed
            .iter()
            .filter(|(key, _, _, exp)| *exp == 0 && list.iter().any(|b| &b.key == key))
            .count();
        if list
            .len()
            .saturating_add(new_keys)
            .saturating_sub(removed_keys)
            > self.cfg.max_bindings_per_agent
        {
            return Err((403, "Forbidden - Too Many Contacts"));
        }
        let mut changed = false;
        for (key, instance, mut addr, expires) in keyed {
            let existing = list.iter().position(|b| b.key == key);
            if expires == 0 {
                if let Some(i) = existing {
                    let gone = list.remove(i);
                    self.expiries
                        .remove(&(gone.expires_at, user.to_string(), gone.key));
                    changed = true;
                }
                continue;
            }
            addr.params
                .retain(|p| !p.name.eq_ignore_ascii_case("expires"));
            let binding = Binding {
                contact: addr.uri.clone(),
                contact_addr: addr,
                source: src.clone(),
                expires_at: now + Duration::from_secs(u64::from(expires)),
                instance,
                call_id: call_id.to_string(),
                cseq,
                key,
            };
            self.expiries
                .insert((binding.expires_at, user.to_string(), binding.key.clone()));
            match existing.and_then(|i| list.get_mut(i)) {
                Some(slot) => {
                    let old = std::mem::replace(slot, binding);
                    if old.expires_at != slot.expires_at {
                        self.expiries
                            .remove(&(old.expires_at, user.to_string(), old.key));
                    }
                }
                None => {
                    list.push(binding);
                    changed = true;
                }
            }
        }
        if list.is_empty() {
            self.bindings.remove(user);
        }
        Ok(changed)
    }
}

/// Why credentials were not accepted.
enum Refusal {
    /// Right password, expired nonce: challenge again with `stale=true`.
    Stale,
    /// A nonce we never issued (or issued before a restart): challenge afresh.
    Foreign,
    /// A wrong answer; counts against the source.
    Wrong(&'static str),
}

/// The `reg-id` of a contact that registers an RFC 5626 flow: the UA asked for outbound
/// and the contact names its instance. A `reg-id` without `+sip.instance` is ignored (§6).
fn flow_reg_id(addr: &NameAddr, outbound: bool) -> Option<u32> {
    if !outbound || !matches!(addr.param("+sip.instance"), Some(Some(_))) {
        return None;
    }
    addr.param("reg-id")
        .flatten()
        .and_then(|v| v.trim().parse().ok())
}

/// Binding identity: the `+sip.instance` (with the `reg-id` of an RFC 5626 flow) when
/// present, else the contact URI without parameters, host lower-cased (RFC 3261 §19.1.4
/// compares hosts case-insensitively).
fn binding_key(uri: &Uri, instance: Option<&str>, reg_id: Option<u32>) -> String {
    if let Some(i) = instance {
        return match reg_id {
            Some(r) => format!("instance:{i};reg-id:{r}"),
            None => format!("instance:{i}"),
        };
    }
    let mut bare = uri.clone();
    bare.params.clear();
    bare.headers.clear();
    let host = bare.host.to_string().to_ascii_lowercase();
    format!(
        "uri:{}:{}@{}:{}",
        bare.scheme,
        bare.user.as_deref().unwrap_or(""),
        host,
        bare.port.map(|p| p.to_string()).unwrap_or_default()
    )
}
