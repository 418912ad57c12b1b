//! SIP over TLS through the real server: a real softphone (baresip) registers over a `tls:`
//! listener and takes a trunk call on that connection; the certificate is replaced and
//! re-read on SIGHUP while the call is up (new connections get the new certificate, the
//! call and the agent's connection go on); a broken certificate file on SIGHUP changes
//! nothing. Certificates come from a throwaway CA made here with rcgen.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};

use crate::harness::{
    Baresip, BaresipTransport, Ports, Server, demo_config, ended_calls, free_port, signal,
    trunk_calls_to, wait_until, without_baresip, without_sipp,
};

/// A throwaway certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Switchboard test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for 127.0.0.1 and localhost: (PEM chain, PEM key, leaf DER).
    fn issue(&self) -> (String, String, CertificateDer<'static>) {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }
}

/// Installs a certificate where the server's `[tls]` points.
fn install(dir: &Path, cert: &str, key: &str) {
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
}

#[allow(deprecated)]
fn client_config(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens a new TLS connection to `port` (verifying the server against `ca` for 127.0.0.1),
/// sends an OPTIONS over it and returns the leaf certificate served and the response.
fn options_over_tls(port: u16, ca: &CertificateDer<'static>) -> (CertificateDer<'static>, String) {
    request_over_tls(
        port,
        ca,
        "OPTIONS",
        &format!("sip:127.0.0.1:{port};transport=tls"),
    )
}

fn request_over_tls(
    port: u16,
    ca: &CertificateDer<'static>,
    method: &str,
    uri: &str,
) -> (CertificateDer<'static>, String) {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = ClientConnection::new(client_config(ca), name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let local = tls.sock.local_addr().unwrap();
    let request = format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK-tls-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=p1\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: tls-probe-{}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n",
        local.port(),
        local.port(),
    );
    tls.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the server closed the TLS connection without answering"
        );
        response.extend_from_slice(&buf[..n]);
    }
    let leaf = conn.peer_certificates().unwrap()[0].clone().into_owned();
    (leaf, String::from_utf8_lossy(&response).into_owned())
}

fn tls_config(ports: &Ports, tls_port: u16) -> String {
    demo_config(ports).replacen(
        &format!("\"tcp:127.0.0.1:{}\"", ports.sip),
        &format!(
            "\"tcp:127.0.0.1:{}\", \"tls:127.0.0.1:{tls_port}\"",
            ports.sip
        ),
        1,
    ) + "\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n"
}

#[test]
fn agent_over_tls_takes_a_call_and_a_certificate_reload_spares_it() {
    if without_sipp() || without_baresip() {
        return;
    }
    let ca = Ca::new();
    let (cert1, key1, der1) = ca.issue();
    let (cert2, key2, der2) = ca.issue();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &cert1, &key1);
    let ca_path = ca.write(dir.path());
    let ports = Ports::new();
    let tls_port = free_port();
    let config = tls_config(&ports, tls_port);
    let mut server = Server::start_in(dir, &config, ports);

    // The listener serves the configured certificate and SIP over it.
    let (served, response) = options_over_tls(tls_port, &ca.der());
    assert_eq!(served, der1, "the configured certificate is served");
    assert!(response.starts_with("SIP/2.0 200"), "{response}");

    // A real softphone registers over TLS (verifying the server against the CA).
    let ivan = Baresip::start_over(
        &server,
        "ivan",
        &BaresipTransport::Tls {
            port: tls_port,
            ca: &ca_path,
        },
        600,
    );
    let log = server.log();
    let registered = log
        .lines()
        .find(|l| l.contains("agent registered") && l.contains("agent=ivan "))
        .unwrap();
    assert!(registered.contains("transport=tls"), "{registered}");

    // A new client (unknown number) goes to the department head, ivan: the INVITE travels
    // over his TLS connection. The caller talks 3 s (baresip's voice file lasts 4.7 s and it
    // hangs up at its end), during which the certificate changes twice.
    let sip = server.sip_addr();
    let caller = std::thread::spawn(move || {
        trunk_calls_to(
            sip,
            "+38599999999",
            "100",
            3000,
            &[],
            Duration::from_secs(30),
        )
    });
    wait_until(&server, "ivan answers", Duration::from_secs(10), || {
        server
            .log()
            .lines()
            .any(|l| l.contains("answered") && l.contains("agent=ivan"))
    });

    // New certificate, SIGHUP: new connections get it.
    install(server.dir.path(), &cert2, &key2);
    signal(server.child.id(), "HUP");
    wait_until(&server, "the reload", Duration::from_secs(5), || {
        server.log().contains("TLS certificate reloaded")
    });
    let (served, response) = options_over_tls(tls_port, &ca.der());
    assert_eq!(
        served, der2,
        "after SIGHUP new connections get the new certificate"
    );
    assert!(response.starts_with("SIP/2.0 200"), "{response}");

    // A broken file on SIGHUP changes nothing: the certificate in use stays.
    std::fs::write(server.dir.path().join("server.pem"), "not a certificate\n").unwrap();
    signal(server.child.id(), "HUP");
    wait_until(
        &server,
        "the refused reload",
        Duration::from_secs(5),
        || server.log().contains("TLS certificate not reloaded"),
    );
    let (served, _) = options_over_tls(tls_port, &ca.der());
    assert_eq!(served, der2, "a failed reload keeps the certificate in use");

    // The call went on through both reloads and ended normally, talked over TLS.
    let (status, out, messages) = caller.join().unwrap();
    assert!(
        status.success(),
        "trunk call failed ({status:?}):\n{out}\n{messages}\n--- server ---\n{}",
        server.log()
    );
    wait_until(&server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    let rec = ended_calls(&server.log()).remove(0);
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["agent"], "ivan", "{rec:?}");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
    let talk_ms: u64 = rec["talk_ms"].parse().unwrap();
    assert!(talk_ms >= 2500, "the call was cut short: {rec:?}");
    for key in ["caller_rtp_in", "agent_rtp_in", "agent_rtp_out"] {
        let n: u64 = rec[key].parse().unwrap();
        assert!(n > 50, "too few RTP packets for {key}: {rec:?}");
    }
    let heard = ivan.heard();
    let loud = heard.iter().filter(|s| s.unsigned_abs() > 500).count();
    assert!(loud > 200, "ivan heard only silence\n{}", ivan.log());
    // The caller's BYE reached ivan over the same TLS connection (baresip reports a BYE as
    // the session closed by the peer), a connection never closed meanwhile.
    assert!(
        ivan.log()
            .contains("session closed: Connection reset by peer"),
        "ivan never got the BYE:\n{}",
        ivan.log()
    );
    let log = server.log();
    assert!(
        !log.contains("agent unregistered agent=ivan"),
        "ivan's TLS registration was lost:\n{log}"
    );
    assert!(server.terminate().success());
}

/// A `sips:` request in clear is refused (416) before call control sees it; the same over
/// TLS is served.
#[test]
fn sips_requests_need_tls() {
    let ca = Ca::new();
    let (cert, key, _) = ca.issue();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &cert, &key);
    let ports = Ports::new();
    let tls_port = free_port();
    let config = tls_config(&ports, tls_port);
    let server = Server::start_in(dir, &config, ports);

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = udp.local_addr().unwrap();
    let invite = format!(
        "INVITE sips:100@127.0.0.1:{tls_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-sips-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+38599999999@127.0.0.1>;tag=c1\r\n\
         To: <sips:100@127.0.0.1>\r\n\
         Call-ID: sips-in-clear@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    udp.send_to(invite.as_bytes(), server.sip_addr()).unwrap();
    let mut buf = [0u8; 4096];
    let mut statuses = Vec::new();
    while !statuses
        .iter()
        .any(|s: &String| !s.starts_with("SIP/2.0 1"))
    {
        let (n, _) = udp
            .recv_from(&mut buf)
            .expect("no final answer to the sips INVITE");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        statuses.push(text.lines().next().unwrap_or_default().to_owned());
    }
    assert_eq!(
        statuses.last().unwrap(),
        "SIP/2.0 416 Unsupported URI Scheme - SIPS Requires TLS",
        "{statuses:?}"
    );
    assert!(
        !server.log().contains("call=1 "),
        "call control saw the refused INVITE:\n{}",
        server.log()
    );

    let (_, response) = request_over_tls(
        tls_port,
        &ca.der(),
        "OPTIONS",
        &format!("sips:127.0.0.1:{tls_port}"),
    );
    assert!(response.starts_with("SIP/2.0 200"), "{response}");
}
