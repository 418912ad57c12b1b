//! SIPS (RFC 5630) at the registrar: a `sips:` binding is taken over TLS only.

use switchboard_sip::{ConnId, Peer, Transport};

use crate::registrar::{Ua, challenges};

#[test]
fn a_sips_binding_is_only_taken_over_tls() {
    let mut ua = Ua::new();
    let sips = ["<sips:ana@198.51.100.7:5063>"];
    // Over UDP: refused at once, without a challenge (nothing to guess at).
    let req = ua.register("ana", "reg-sips", 1, &sips, None, None);
    let resp = ua.send_one(&req);
    assert_eq!(resp.status, 416, "{resp}");
    assert!(challenges(&resp).is_empty());
    // Over TCP neither.
    ua.src = Peer::stream(Transport::Tcp, ua.src.addr, ConnId(7));
    let resp = ua.send_one(&req);
    assert_eq!(resp.status, 416, "{resp}");
    // Over TLS: the usual digest exchange, and the binding keeps its TLS connection.
    ua.src = Peer::stream(Transport::Tls, ua.src.addr, ConnId(8));
    let resp = ua.login("ana", "ana-secret", "reg-sips", 2, &sips, None);
    assert_eq!(resp.status, 200, "{resp}");
    let bindings = ua.ep.registrar().contacts_for("ana", ua.now);
    assert_eq!(bindings.len(), 1);
    assert_eq!(
        bindings[0].contact.to_string(),
        "sips:ana@198.51.100.7:5063"
    );
    assert_eq!(bindings[0].source.transport, Transport::Tls);
    assert_eq!(bindings[0].source.conn, Some(ConnId(8)));
    // A plain sip: contact over TLS is fine too (most TLS phones register those).
    let resp = ua.login(
        "marko",
        "marko-secret",
        "reg-tls",
        1,
        &["<sip:marko@198.51.100.7:5063;transport=tls>"],
        None,
    );
    assert_eq!(resp.status, 200, "{resp}");
}
