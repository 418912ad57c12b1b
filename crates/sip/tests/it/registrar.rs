//! Registrar flows through the endpoint: digest, expiry, unregister, several contacts.

use std::time::Duration;

use switchboard_sip::digest::{Algorithm, Challenge, answer_challenge};
use switchboard_sip::{
    AgentCredentials, AuthNotice, ConnId, Endpoint, Event, Instant, Peer, Transport,
};
use switchboard_sipmsg::{HeaderName, Message, Response};

use crate::util::{check_indexes, config};

pub struct Ua {
    pub ep: Endpoint,
    pub now: Instant,
    pub src: Peer,
    branch: u32,
    nc: u32,
    /// Header lines added to every REGISTER (`Supported: outbound`, a proxy's Via).
    pub extra: Vec<String>,
}

impl Ua {
    pub fn new() -> Ua {
        let mut cfg = config("192.0.2.10");
        cfg.registrar.agents = vec![
            AgentCredentials {
                id: "ana".into(),
                password: "ana-secret".into(),
            },
            AgentCredentials {
                id: "marko".into(),
                password: "marko-secret".into(),
            },
        ];
        Ua {
            ep: Endpoint::new(cfg),
            now: Instant::ZERO + Duration::from_secs(1_700_000_000),
            src: Peer::udp("198.51.100.7:5062".parse().unwrap()),
            branch: 0,
            nc: 0,
            extra: Vec::new(),
        }
    }

    /// Sends `text` and returns the responses the endpoint sent back.
    pub fn send(&mut self, text: &str) -> Vec<Response> {
        self.ep
            .handle_datagram(self.now, self.src.clone(), text.as_bytes());
        check_indexes(&self.ep);
        let mut out = Vec::new();
        while let Some(t) = self.ep.poll_transmit() {
            match Message::parse(&t.bytes).unwrap() {
                Message::Response(r) => out.push(r),
                Message::Request(r) => panic!("unexpected request {r}"),
            }
        }
        out
    }

    pub fn send_one(&mut self, text: &str) -> Response {
        let mut v = self.send(text);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ep.poll_event()).collect()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.ep.handle_timeout(self.now);
        check_indexes(&self.ep);
    }

    /// A REGISTER from `to_user` with credentials `auth` (an Authorization value).
    pub fn register(
        &mut self,
        to_user: &str,
        call_id: &str,
        cseq: u32,
        contacts: &[&str],
        expires: Option<u32>,
        auth: Option<&str>,
    ) -> String {
        self.branch += 1;
        let mut s = format!(
            "REGISTER sip:callcenter.local SIP/2.0\r\n\
             Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKreg{};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{to_user}@callcenter.local>;tag=ua{}\r\n\
             To: <sip:{to_user}@callcenter.local>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n",
            self.branch, self.branch
        );
        for c in contacts {
            s.push_str(&format!("Contact: {c}\r\n"));
        }
        if let Some(e) = expires {
            s.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\r\n"));
        }
        for line in &self.extra {
            s.push_str(&format!("{line}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        s
    }

    /// Answers the `algorithm` challenge of `resp`.
    pub fn answer(
        &mut self,
        resp: &Response,
        user: &str,
        pass: &str,
        algorithm: Algorithm,
    ) -> String {
        let ch = challenges(resp)
            .into_iter()
            .find(|c| c.algorithm == algorithm)
            .expect("challenge for algorithm");
        self.nc += 1;
        answer_challenge(
            &ch,
            user,
            pass,
            "REGISTER",
            "sip:callcenter.local",
            "cnonce1",
            self.nc,
        )
        .to_header_value()
    }

    /// Full 401 → 200 registration of `user` with `contacts`.
    pub fn login(
        &mut self,
        user: &str,
        pass: &str,
        call_id: &str,
        cseq: u32,
        contacts: &[&str],
        expires: Option<u32>,
    ) -> Response {
        let req = self.register(user, call_id, cseq, contacts, expires, None);
        let challenge = self.send_one(&req);
        assert_eq!(challenge.status, 401);
        let auth = self.answer(&challenge, user, pass, Algorithm::Sha256);
        let req = self.register(user, call_id, cseq + 1, contacts, expires, Some(&auth));
        self.send_one(&req)
    }
}

pub fn challenges(resp: &Response) -> Vec<Challenge> {
    resp.headers
        .get_all(&HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .collect()
}

pub fn contact_values(resp: &Response) -> Vec<String> {
    resp.headers
        .list(&HeaderName::Contact)
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn challenge_then_register_echoes_the_binding() {
    let mut ua = Ua::new();
    let req = ua.register(
        "ana",
        "reg-1",
        1,
        &["<sip:ana@198.51.100.7:5062>"],
        Some(600),
        None,
    );
    let challenge = ua.send_one(&req);
    assert_eq!(challenge.status, 401);
    let ch = challenges(&challenge);
    assert_eq!(ch.len(), 2);
    // Default preference: MD5 first (clients that only read the first challenge), then
    // SHA-256; both are accepted below.
    assert_eq!(ch[0].algorithm, Algorithm::Md5);
    assert_eq!(ch[1].algorithm, Algorithm::Sha256);
    assert!(
        ch.iter()
            .all(|c| c.qop_auth && c.realm == "callcenter.local" && !c.stale)
    );
    assert!(challenge.to_hdr().unwrap().tag().is_some());

    for (alg, call_id) in [(Algorithm::Sha256, "reg-1"), (Algorithm::Md5, "reg-2")] {
        let auth = ua.answer(&challenge, "ana", "ana-secret", alg);
        let req = ua.register(
            "ana",
            call_id,
            2,
            &["<sip:ana@198.51.100.7:5062>"],
            Some(600),
            Some(&auth),
        );
        let ok = ua.send_one(&req);
        assert_eq!(ok.status, 200, "{alg:?}: {ok}");
        assert_eq!(
            contact_values(&ok),
            vec!["<sip:ana@198.51.100.7:5062>;expires=600"]
        );
    }
    let events = ua.events();
    assert_eq!(events.len(), 1, "a refresh is not a change: {events:?}");
    let Event::RegistrationChanged { agent, contacts } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(agent, "ana");
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0].source, ua.src,
        "the binding records where the REGISTER came from"
    );
    let b = &ua.ep.registrar().contacts_for("ana", ua.now)[0];
    assert_eq!(b.contact.to_string(), "sip:ana@198.51.100.7:5062");
    assert_eq!(b.expires_at, ua.now + Duration::from_secs(600));
    assert_eq!(
        ua.ep.registrar().registered_agents(),
        vec!["ana".to_string()]
    );
    assert_eq!(ua.ep.registrar().binding_count(), 1);
    assert_eq!(ua.ep.stats().requests("REGISTER"), 3);
}

/// The header lines of a 401 that do not echo the request (Via, From, CSeq), with the
/// nonce and To tag blanked.
fn normalized(resp: &Response) -> Vec<String> {
    let nonce = challenges(resp)[0].nonce.clone();
    let tag = resp.to_hdr().unwrap().tag().unwrap().to_string();
    let mut lines: Vec<String> = resp
        .headers
        .iter()
        .filter(|h| ![HeaderName::Via, HeaderName::From, HeaderName::CSeq].contains(&h.name))
        .map(|h| {
            format!("{}: {}", h.name, h.value)
                .replace(&nonce, "NONCE")
                .replace(&tag, "TAG")
        })
        .collect();
    lines.insert(0, format!("{} {}", resp.status, resp.reason));
    lines
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let mut ua = Ua::new();
    let req = ua.register("ana", "reg-w", 1, &["<sip:ana@198.51.100.7>"], None, None);
    let challenge = ua.send_one(&req);
    let auth = ua.answer(&challenge, "ana", "wrong", Algorithm::Sha256);
    let req = ua.register(
        "ana",
        "reg-w",
        2,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    let wrong = ua.send_one(&req);
    let auth = ua
        .answer(&challenge, "ana", "ana-secret", Algorithm::Sha256)
        .replace("\"ana\"", "\"nobody\"");
    let req = ua.register(
        "ana",
        "reg-w",
        3,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    let unknown = ua.send_one(&req);
    assert_eq!(wrong.status, 401);
    assert_eq!(normalized(&wrong), normalized(&unknown));
    assert!(challenges(&wrong).iter().all(|c| !c.stale));
    assert_eq!(ua.ep.registrar().binding_count(), 0);
}

#[test]
fn expired_nonce_with_right_password_gets_stale_true() {
    let mut ua = Ua::new();
    let req = ua.register("ana", "reg-s", 1, &["<sip:ana@198.51.100.7>"], None, None);
    let challenge = ua.send_one(&req);
    ua.advance(Duration::from_secs(301));
    let good = ua.answer(&challenge, "ana", "ana-secret", Algorithm::Md5);
    let req = ua.register(
        "ana",
        "reg-s",
        2,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&good),
    );
    let stale = ua.send_one(&req);
    assert_eq!(stale.status, 401);
    assert!(challenges(&stale).iter().all(|c| c.stale));
    // Knowing no password earns no stale flag.
    let bad = ua.answer(&challenge, "ana", "guess", Algorithm::Md5);
    let req = ua.register(
        "ana",
        "reg-s",
        3,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&bad),
    );
    assert!(challenges(&ua.send_one(&req)).iter().all(|c| !c.stale));
    // Retrying with the fresh nonce works.
    let good = ua.answer(&stale, "ana", "ana-secret", Algorithm::Md5);
    let req = ua.register(
        "ana",
        "reg-s",
        4,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&good),
    );
    assert_eq!(ua.send_one(&req).status, 200);
}

#[test]
fn nonce_from_before_a_restart_gets_a_fresh_challenge() {
    let mut ua = Ua::new();
    let contact = ["<sip:ana@198.51.100.7>"];
    let req = ua.register("ana", "reg-r", 1, &contact, None, None);
    let challenge = ua.send_one(&req);
    assert_eq!(challenge.status, 401);
    // The server restarts: a new endpoint under a new secret, at the same time.
    let mut cfg = ua.ep.config().clone();
    cfg.nonce_secret = b"secret-drawn-at-the-next-start".to_vec();
    ua.ep = Endpoint::new(cfg);
    let good = ua.answer(&challenge, "ana", "ana-secret", Algorithm::Md5);
    let req = ua.register("ana", "reg-r", 2, &contact, None, Some(&good));
    let fresh = ua.send_one(&req);
    assert_eq!(
        fresh.status, 401,
        "a nonce that fails the HMAC is challenged again"
    );
    assert!(challenges(&fresh).iter().all(|c| !c.stale));
    let good = ua.answer(&fresh, "ana", "ana-secret", Algorithm::Md5);
    let req = ua.register("ana", "reg-r", 3, &contact, None, Some(&good));
    assert_eq!(ua.send_one(&req).status, 200);
}

#[test]
fn replayed_nonce_count_is_refused() {
    let mut ua = Ua::new();
    let req = ua.register("ana", "reg-nc", 1, &["<sip:ana@198.51.100.7>"], None, None);
    let challenge = ua.send_one(&req);
    let auth = ua.answer(&challenge, "ana", "ana-secret", Algorithm::Sha256);
    let req = ua.register(
        "ana",
        "reg-nc",
        2,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 200);
    // Same credentials (same nc) in a new transaction: a replay.
    let req = ua.register(
        "ana",
        "reg-nc",
        3,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 401);
    // A higher nc on the same nonce is fine.
    let auth = ua.answer(&challenge, "ana", "ana-secret", Algorithm::Sha256);
    let req = ua.register(
        "ana",
        "reg-nc",
        4,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 200);
}

/// Concurrent registrations handled at the same instant (one wake-up of the driver): each
/// client gets its own nonce, and each one's `nc=00000001` is accepted.
#[test]
fn concurrent_registrations_each_get_their_own_nonce() {
    let mut ua = Ua::new();
    let clients: Vec<(&str, &str, String)> = (0..16)
        .map(|i| {
            let (user, pass) = if i % 2 == 0 {
                ("ana", "ana-secret")
            } else {
                ("marko", "marko-secret")
            };
            (user, pass, format!("<sip:{user}@198.51.100.{i}>"))
        })
        .collect();
    let challenged: Vec<Response> = clients
        .iter()
        .enumerate()
        .map(|(i, (user, _, contact))| {
            let req = ua.register(user, &format!("reg-c{i}"), 1, &[contact], None, None);
            ua.send_one(&req)
        })
        .collect();
    let nonces: std::collections::HashSet<String> = challenged
        .iter()
        .map(|r| challenges(r)[0].nonce.clone())
        .collect();
    assert_eq!(nonces.len(), clients.len(), "challenges shared a nonce");
    for (i, ((user, pass, contact), challenge)) in clients.iter().zip(&challenged).enumerate() {
        let ch = challenges(challenge).remove(0);
        let auth = answer_challenge(
            &ch,
            user,
            pass,
            "REGISTER",
            "sip:callcenter.local",
            &format!("cnonce-{i}"),
            1,
        );
        let req = ua.register(
            user,
            &format!("reg-c{i}"),
            2,
            &[contact],
            None,
            Some(&auth.to_header_value()),
        );
        assert_eq!(ua.send_one(&req).status, 200, "client {i} refused");
    }
    assert_eq!(ua.ep.registrar().binding_count(), clients.len());
}

/// Answers the first MD5 challenge of `challenge` for `uri`, optionally without `qop`.
fn md5_answer(challenge: &Response, pass: &str, uri: &str, qop: bool) -> String {
    let mut ch = challenges(challenge)
        .into_iter()
        .find(|c| c.algorithm == Algorithm::Md5)
        .unwrap();
    ch.qop_auth = qop;
    answer_challenge(&ch, "ana", pass, "REGISTER", uri, "x", 1).to_header_value()
}

#[test]
fn qopless_md5_is_refused() {
    let mut ua = Ua::new();
    let req = ua.register("ana", "reg-q", 1, &["<sip:ana@198.51.100.7>"], None, None);
    let challenge = ua.send_one(&req);
    let auth = md5_answer(&challenge, "ana-secret", "sip:callcenter.local", false);
    assert!(!auth.contains("qop"));
    let req = ua.register(
        "ana",
        "reg-q",
        2,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 401);
    assert_eq!(ua.ep.registrar().binding_count(), 0);
    assert_eq!(ua.ep.registrar().guard_stats().failures, 1);
}

#[test]
fn digest_uri_other_than_the_request_uri_is_refused() {
    let mut ua = Ua::new();
    let req = ua.register("ana", "reg-u", 1, &["<sip:ana@198.51.100.7>"], None, None);
    let challenge = ua.send_one(&req);
    // A right answer, but computed for another request (e.g. captured elsewhere).
    let auth = md5_answer(&challenge, "ana-secret", "sip:other.example", true);
    let req = ua.register(
        "ana",
        "reg-u",
        2,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 401);
    assert_eq!(ua.ep.registrar().binding_count(), 0);
    // The same answer for the Request-URI is accepted.
    let challenge = {
        let req = ua.register("ana", "reg-u", 3, &[], None, None);
        ua.send_one(&req)
    };
    let auth = md5_answer(&challenge, "ana-secret", "sip:callcenter.local", true);
    let req = ua.register(
        "ana",
        "reg-u",
        4,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 200);
}

#[test]
fn an_algorithm_that_was_not_offered_is_refused() {
    let mut cfg = config("192.0.2.10");
    cfg.registrar.agents = vec![AgentCredentials {
        id: "ana".into(),
        password: "ana-secret".into(),
    }];
    cfg.registrar.algorithms = vec![Algorithm::Sha256];
    let mut ua = Ua::new();
    ua.ep = Endpoint::new(cfg);
    let challenge = {
        let req = ua.register("ana", "reg-a", 1, &[], None, None);
        ua.send_one(&req)
    };
    assert!(
        challenges(&challenge)
            .iter()
            .all(|c| c.algorithm == Algorithm::Sha256)
    );
    // An MD5 answer to the SHA-256-only challenge.
    let mut ch = challenges(&challenge).remove(0);
    ch.algorithm = Algorithm::Md5;
    let auth = answer_challenge(
        &ch,
        "ana",
        "ana-secret",
        "REGISTER",
        "sip:callcenter.local",
        "x",
        1,
    )
    .to_header_value();
    let req = ua.register(
        "ana",
        "reg-a",
        2,
        &["<sip:ana@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 401);
    assert_eq!(ua.ep.registrar().binding_count(), 0);
}

#[test]
fn guessing_bans_the_source_not_the_agent() {
    let mut ua = Ua::new();
    let limit = 10; // the default auth_failures_per_minute
    for i in 0..=limit {
        let challenge = {
            let req = ua.register("ana", "guess", 2 * i + 1, &[], None, None);
            ua.send_one(&req)
        };
        assert_eq!(challenge.status, 401, "guess {i} is challenged");
        let auth = ua.answer(&challenge, "ana", &format!("guess-{i}"), Algorithm::Md5);
        let req = ua.register("ana", "guess", 2 * i + 2, &[], None, Some(&auth));
        assert_eq!(ua.send_one(&req).status, 401);
    }
    let notices: Vec<_> = std::iter::from_fn(|| ua.ep.registrar_mut().poll_auth_notice()).collect();
    assert_eq!(notices.len(), limit as usize + 2, "{notices:?}");
    assert!(matches!(
        notices.last(),
        Some(AuthNotice::Banned { failures: 11, .. })
    ));
    // Banned: 403 without a challenge, even with the right password, for any user name.
    let resp = {
        let req = ua.register("marko", "guess", 100, &[], None, None);
        ua.send_one(&req)
    };
    assert_eq!(resp.status, 403);
    assert!(resp.headers.get(&HeaderName::WwwAuthenticate).is_none());
    // The real agent on another address is not locked out.
    ua.src = Peer::udp("203.0.113.9:5060".parse().unwrap());
    let resp = ua.login(
        "ana",
        "ana-secret",
        "real",
        1,
        &["<sip:ana@203.0.113.9>"],
        None,
    );
    assert_eq!(resp.status, 200);
    // The ban ends after auth_ban_s.
    ua.src = Peer::udp("198.51.100.7:5062".parse().unwrap());
    ua.advance(Duration::from_secs(301));
    let resp = {
        let req = ua.register("ana", "guess", 200, &[], None, None);
        ua.send_one(&req)
    };
    assert_eq!(resp.status, 401);
    let stats = ua.ep.registrar().guard_stats();
    assert_eq!(
        (stats.failures, stats.bans, stats.refused_banned),
        (11, 1, 1)
    );
}

#[test]
fn too_brief_interval_gets_423_and_long_one_is_clamped() {
    let mut ua = Ua::new();
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-423",
        1,
        &["<sip:ana@198.51.100.7>"],
        Some(30),
    );
    assert_eq!(resp.status, 423);
    assert_eq!(resp.headers.get(&HeaderName::MinExpires), Some("60"));
    assert_eq!(ua.ep.registrar().binding_count(), 0);
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-423",
        10,
        &["<sip:ana@198.51.100.7>;expires=7200"],
        Some(30),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        contact_values(&resp),
        vec!["<sip:ana@198.51.100.7>;expires=3600"]
    );
}

#[test]
fn several_contacts_query_and_unregister() {
    let mut ua = Ua::new();
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-m",
        1,
        &[
            "<sip:ana@198.51.100.7:5062>;expires=120",
            "<sip:ana@203.0.113.9>",
        ],
        Some(600),
    );
    assert_eq!(resp.status, 200);
    let mut c = contact_values(&resp);
    c.sort();
    assert_eq!(
        c,
        vec![
            "<sip:ana@198.51.100.7:5062>;expires=120",
            "<sip:ana@203.0.113.9>;expires=600"
        ]
    );
    // A second phone with a different Call-ID and +sip.instance.
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-m2",
        1,
        &["<sip:ana@192.168.0.5;transport=tcp>;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\""],
        None,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(contact_values(&resp).len(), 3);
    let b = ua.ep.registrar().contacts_for("ana", ua.now);
    assert_eq!(b.iter().filter(|b| b.instance.is_some()).count(), 1);

    // Query: no Contact → the current list, no change.
    ua.events();
    let resp = ua.login("ana", "ana-secret", "reg-q", 1, &[], None);
    assert_eq!(resp.status, 200);
    assert_eq!(contact_values(&resp).len(), 3);
    assert!(ua.events().is_empty());

    // Expiry of one binding at 120 s.
    ua.advance(Duration::from_secs(119));
    assert_eq!(ua.ep.registrar().binding_count(), 3);
    ua.advance(Duration::from_secs(1));
    assert_eq!(ua.ep.registrar().binding_count(), 2);
    assert!(
        matches!(&ua.events()[..], [Event::RegistrationChanged { contacts, .. }] if contacts.len() == 2)
    );

    // Expires: 0 on one contact removes just that one.
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-m",
        10,
        &["<sip:ana@203.0.113.9>"],
        Some(0),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(contact_values(&resp).len(), 1);

    // "*" without Expires: 0 is a 400; with it, everything goes.
    let resp = ua.login("ana", "ana-secret", "reg-m", 20, &["*"], Some(60));
    assert_eq!(resp.status, 400);
    let resp = ua.login("ana", "ana-secret", "reg-m", 30, &["*"], Some(0));
    assert_eq!(resp.status, 200);
    assert!(contact_values(&resp).is_empty());
    assert_eq!(ua.ep.registrar().binding_count(), 0);
    assert!(ua.ep.registrar().registered_agents().is_empty());
    let last = ua.events().pop().unwrap();
    assert!(matches!(last, Event::RegistrationChanged { contacts, .. } if contacts.is_empty()));
}

#[test]
fn bindings_expire_on_the_endpoint_timeout() {
    let mut ua = Ua::new();
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-x",
        1,
        &["<sip:ana@198.51.100.7>"],
        Some(60),
    );
    assert_eq!(resp.status, 200);
    let expiry = ua.now + Duration::from_secs(60);
    // Transactions end earlier (Timer J = 32 s); the last timeout is the binding's.
    let mut last = None;
    for _ in 0..10 {
        let Some(t) = ua.ep.poll_timeout() else { break };
        ua.now = t;
        ua.ep.handle_timeout(t);
        last = Some(t);
    }
    assert_eq!(last, Some(expiry));
    assert_eq!(ua.ep.registrar().binding_count(), 0);
    assert_eq!(ua.ep.poll_timeout(), None);
}

#[test]
fn to_must_name_the_authenticated_user() {
    let mut ua = Ua::new();
    let req = ua.register(
        "marko",
        "reg-f",
        1,
        &["<sip:marko@198.51.100.7>"],
        None,
        None,
    );
    let challenge = ua.send_one(&req);
    let auth = ua.answer(&challenge, "ana", "ana-secret", Algorithm::Sha256);
    let req = ua.register(
        "marko",
        "reg-f",
        2,
        &["<sip:marko@198.51.100.7>"],
        None,
        Some(&auth),
    );
    assert_eq!(ua.send_one(&req).status, 403);
    assert_eq!(ua.ep.registrar().binding_count(), 0);
}

#[test]
fn older_cseq_with_same_call_id_is_rejected() {
    let mut ua = Ua::new();
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-o",
        10,
        &["<sip:ana@198.51.100.7>"],
        None,
    );
    assert_eq!(resp.status, 200); // registered with CSeq 11
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-o",
        3,
        &["<sip:ana@198.51.100.7>"],
        Some(0),
    );
    assert_eq!(resp.status, 400); // CSeq 4 < 11
    assert_eq!(ua.ep.registrar().binding_count(), 1);
}

#[test]
fn tcp_bindings_remember_the_connection_and_die_with_it() {
    let mut ua = Ua::new();
    ua.src = Peer::stream(
        Transport::Tcp,
        "198.51.100.7:40123".parse().unwrap(),
        ConnId(42),
    );
    let resp = ua.login(
        "ana",
        "ana-secret",
        "reg-t",
        1,
        &["<sip:ana@10.1.1.1:5060;transport=tcp>"],
        None,
    );
    assert_eq!(resp.status, 200);
    let b = ua.ep.registrar().contacts_for("ana", ua.now);
    assert_eq!(b[0].source.conn, Some(ConnId(42)));
    ua.events();
    ua.ep.handle_connection_closed(ua.now, ConnId(42));
    assert_eq!(ua.ep.registrar().binding_count(), 0);
    check_indexes(&ua.ep);
    assert!(
        matches!(&ua.events()[..], [Event::RegistrationChanged { agent, contacts }] if agent == "ana" && contacts.is_empty())
    );
}

#[test]
fn removed_agents_lose_their_bindings_on_reload() {
    let mut ua = Ua::new();
    assert_eq!(
        ua.login(
            "ana",
            "ana-secret",
            "reg-r",
            1,
            &["<sip:ana@198.51.100.7>"],
            None
        )
        .status,
        200
    );
    assert_eq!(
        ua.login(
            "marko",
            "marko-secret",
            "reg-r2",
            1,
            &["<sip:marko@198.51.100.7>"],
            None
        )
        .status,
        200
    );
    ua.events();
    let now = ua.now;
    ua.ep.set_agents(
        now,
        vec![AgentCredentials {
            id: "marko".into(),
            password: "new".into(),
        }],
    );
    assert_eq!(
        ua.ep.registrar().registered_agents(),
        vec!["marko".to_string()]
    );
    assert_eq!(ua.ep.registrar().binding_count(), 1);
    check_indexes(&ua.ep);
    assert!(
        matches!(&ua.events()[..], [Event::RegistrationChanged { agent, contacts }] if agent == "ana" && contacts.is_empty())
    );
    // The new password is in force.
    assert_eq!(
        ua.login("marko", "marko-secret", "reg-r2", 10, &[], None)
            .status,
        401
    );
    assert_eq!(
        ua.login("marko", "new", "reg-r2", 20, &[], None).status,
        200
    );
}
