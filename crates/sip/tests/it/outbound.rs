//! RFC 5626 outbound registrations through the endpoint: JsSIP's REGISTER (`reg-id`,
//! `+sip.instance`, `Supported: path,gruu,outbound`) registers one flow per reg-id and is
//! answered with `Require: outbound`; without outbound support reg-id is ignored; through a
//! proxy (no Path support) it is refused with 439.

use switchboard_sip::{ConnId, Peer, Transport};
use switchboard_sipmsg::{HeaderName, Response};

use crate::registrar::{Ua, contact_values};

/// The Contact JsSIP registers with (RFC 5626: `reg-id`, `+sip.instance`).
fn jssip_contact(reg_id: u32) -> String {
    format!(
        "<sip:k3l2v9@df7jal23ls0d.invalid;transport=ws>;+sip.ice;reg-id={reg_id};\
         +sip.instance=\"<urn:uuid:8f1b5f5a-3e4c-4f6e-9a36-2b8c0e4b8d11>\""
    )
}

fn require(resp: &Response) -> Vec<&str> {
    resp.headers.list(&HeaderName::Require)
}

#[test]
fn an_outbound_registration_gets_require_outbound_and_one_binding_per_flow() {
    let mut ua = Ua::new();
    ua.src = Peer {
        transport: Transport::Ws,
        addr: "198.51.100.7:50000".parse().unwrap(),
        conn: Some(ConnId(7)),
        local: None,
    };
    // As JsSIP sends it: `Supported: path,gruu,outbound`.
    ua.extra = vec!["Supported: path,gruu,outbound".into()];
    let resp = ua.login(
        "ana",
        "ana-secret",
        "ob-1",
        1,
        &[&jssip_contact(1)],
        Some(600),
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(require(&resp), ["outbound"], "{resp}");
    let contacts = contact_values(&resp);
    assert_eq!(contacts.len(), 1, "{resp}");
    assert!(contacts[0].contains("reg-id=1"), "{contacts:?}");
    assert!(contacts[0].contains("+sip.instance="), "{contacts:?}");

    // The same instance on a second flow (reg-id 2, another connection) is a second binding.
    ua.src.conn = Some(ConnId(8));
    let resp = ua.login(
        "ana",
        "ana-secret",
        "ob-2",
        1,
        &[&jssip_contact(2)],
        Some(600),
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(require(&resp), ["outbound"]);
    assert_eq!(ua.ep.registrar().contacts_for("ana", ua.now).len(), 2);

    // Flow 1 re-registers over a new connection: it replaces that flow, nothing is added,
    // and requests to it now take the new connection.
    ua.src.conn = Some(ConnId(9));
    let resp = ua.login(
        "ana",
        "ana-secret",
        "ob-1",
        10,
        &[&jssip_contact(1)],
        Some(600),
    );
    assert_eq!(resp.status, 200, "{resp}");
    let bindings = ua.ep.registrar().contacts_for("ana", ua.now);
    assert_eq!(bindings.len(), 2);
    let conns: Vec<_> = bindings.iter().map(|b| b.source.conn).collect();
    assert!(
        conns.contains(&Some(ConnId(9))) && conns.contains(&Some(ConnId(8))),
        "{conns:?}"
    );

    // `Require: outbound` in a REGISTER is understood (no 420).
    ua.extra = vec!["Supported: path,gruu".into(), "Require: outbound".into()];
    let resp = ua.login(
        "ana",
        "ana-secret",
        "ob-2",
        10,
        &[&jssip_contact(2)],
        Some(600),
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(require(&resp), ["outbound"]);
}

#[test]
fn reg_id_without_outbound_support_is_ignored() {
    let mut ua = Ua::new();
    // No `outbound` in Supported: a plain registration keyed by the instance; no Require.
    let resp = ua.login(
        "ana",
        "ana-secret",
        "plain",
        1,
        &[&jssip_contact(1)],
        Some(600),
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert!(require(&resp).is_empty(), "{resp}");
    // Another reg-id of the same instance is the same binding then.
    let resp = ua.login(
        "ana",
        "ana-secret",
        "plain",
        10,
        &[&jssip_contact(2)],
        Some(600),
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert_eq!(ua.ep.registrar().contacts_for("ana", ua.now).len(), 1);
    // A reg-id without +sip.instance is no flow either (RFC 5626 §6).
    ua.extra = vec!["Supported: outbound".into()];
    let resp = ua.login(
        "marko",
        "marko-secret",
        "no-instance",
        1,
        &["<sip:marko@203.0.113.4;transport=tcp>;reg-id=1"],
        Some(600),
    );
    assert_eq!(resp.status, 200, "{resp}");
    assert!(require(&resp).is_empty(), "{resp}");
}

#[test]
fn an_outbound_registration_through_a_proxy_or_with_two_contacts_is_refused() {
    let mut ua = Ua::new();
    // Switchboard keeps no Path: it must be the first hop of a flow (RFC 5626 §6).
    ua.extra = vec![
        "Supported: outbound".into(),
        "Via: SIP/2.0/UDP 192.0.2.77:5060;branch=z9hG4bKproxy1".into(),
    ];
    let resp = ua.login(
        "ana",
        "ana-secret",
        "via-proxy",
        1,
        &[&jssip_contact(1)],
        Some(600),
    );
    assert_eq!(resp.status, 439, "{resp}");
    assert_eq!(resp.reason, "First Hop Lacks Outbound Support");
    // One flow per REGISTER.
    ua.extra = vec!["Supported: outbound".into()];
    let resp = ua.login(
        "ana",
        "ana-secret",
        "two",
        1,
        &[&jssip_contact(1), "<sip:ana@203.0.113.9>"],
        Some(600),
    );
    assert_eq!(resp.status, 400, "{resp}");
    assert_eq!(ua.ep.registrar().binding_count(), 0);
}
