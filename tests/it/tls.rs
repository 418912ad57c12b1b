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
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::harness::{
    Baresip, BaresipTransport, Ports, Server, call_ended, demo_config, ended_calls, free_port,
    new_client_call_answered_by, signal, wait_until, without_baresip, without_sipp,
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
    let caller = new_client_call_answered_by(&server, "ivan", 3000);

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
    let rec = call_ended(&server, caller);
    assert_eq!(rec["outcome"], "answered", "{rec:?}");
    assert_eq!(rec["agent"], "ivan", "{rec:?}");
    assert_eq!(rec["hangup"], "caller", "{rec:?}");
    let talk_ms: u64 = rec["talk_ms"].parse().unwrap();
    assert!(talk_ms >= 2500, "the call was cut short: {rec:?}");
    for key in ["caller_rtp_in", "agent_rtp_in", "agent_rtp_out"] {
        let n: u64 = rec[key].parse().unwrap();
        assert!(n > 50, "too few RTP packets for {key}: {rec:?}");
    }
    ivan.assert_heard_the_caller();
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

/// Reads one SIP message (headers and a Content-Length body) from a TLS stream.
fn read_sip(stream: &mut (impl Read + ?Sized), pending: &mut Vec<u8>) -> String {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let body_len: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            let total = end + 4 + body_len;
            if pending.len() >= total {
                let msg = String::from_utf8_lossy(&pending[..total]).into_owned();
                pending.drain(..total);
                return msg;
            }
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "connection closed mid-message: {pending:?}");
        pending.extend_from_slice(&buf[..n]);
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

/// A PBX trunk reaching Switchboard over TLS through its SBC: the INVITE arrives on one TLS
/// connection and records the SBC's TLS address as its route. When Switchboard ends the
/// call (the caller sends no RTP: `rtp_timeout_s`), its BYE follows the route set: Switchboard
/// opens a TLS connection of its own to the SBC, verifying the SBC's certificate against
/// `[tls] ca`, and the BYE arrives there.
#[test]
fn in_dialog_requests_to_a_tls_route_open_a_verified_tls_connection() {
    let ca = Ca::new();
    let (cert, key, _) = ca.issue();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &cert, &key);
    ca.write(dir.path());
    let ports = Ports::new();
    let tls_port = free_port();
    let config = tls_config(&ports, tls_port).replace("[media]\n", "[media]\nrtp_timeout_s = 2\n")
        + "ca = \"ca.pem\"\n";
    assert!(config.contains("rtp_timeout_s = 2\n"));
    let server = Server::start_in(dir, &config, ports);
    // The department heads are logged in but on a break: the call waits in the queue.
    crate::harness::put_on_break(&server, &["ivan", "petra"]);

    // The SBC's TLS listener, with a certificate from the CA Switchboard trusts.
    let (sbc_port, sbc_thread) = tls_pbx(&ca, |tls| {
        let mut pending = Vec::new();
        let bye = read_sip(tls, &mut pending);
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
            header(&bye, "Via"),
            header(&bye, "From"),
            header(&bye, "To"),
            header(&bye, "Call-ID"),
            header(&bye, "CSeq"),
        );
        tls.write_all(ok.as_bytes()).unwrap();
        tls.flush().unwrap();
        bye
    });

    // The trunk's own connection to the tls: listener.
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = ClientConnection::new(client_config(&ca.der()), name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let rtp_port = free_port();
    let sdp = format!(
        "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    );
    let invite = format!(
        "INVITE sip:100@127.0.0.1:{tls_port};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:{sbc_port};branch=z9hG4bK-tls-trunk-1\r\n\
         Record-Route: <sip:127.0.0.1:{sbc_port};transport=tls;lr>\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+38599999999@pbx.example>;tag=pbx1\r\n\
         To: <sip:100@127.0.0.1>\r\n\
         Call-ID: tls-trunk-call@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:pbx@127.0.0.1:{sbc_port};transport=tls>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    tls.write_all(invite.as_bytes()).unwrap();
    let mut pending = Vec::new();
    let ok = loop {
        let msg = read_sip(&mut tls, &mut pending);
        if msg.starts_with("SIP/2.0 200") {
            break msg;
        }
        assert!(msg.starts_with("SIP/2.0 1"), "{msg}\n{}", server.log());
    };
    assert!(
        ok.contains(&format!("127.0.0.1:{sbc_port};transport=tls;lr")),
        "the Record-Route is echoed:\n{ok}"
    );
    let contact = header(&ok, "Contact");
    let target = contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let ack = format!(
        "ACK {target} SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.0.1:{sbc_port};branch=z9hG4bK-tls-trunk-2\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+38599999999@pbx.example>;tag=pbx1\r\n\
         To: {}\r\n\
         Call-ID: tls-trunk-call@127.0.0.1\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        header(&ok, "To")
    );
    tls.write_all(ack.as_bytes()).unwrap();

    // No RTP from the trunk: after 2 s Switchboard ends the call, its BYE following the route.
    let bye = sbc_thread.join().unwrap();
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(
        bye.contains(&format!(
            "Route: <sip:127.0.0.1:{sbc_port};transport=tls;lr>"
        )),
        "{bye}"
    );
    assert!(header(&bye, "Via").starts_with("SIP/2.0/TLS "), "{bye}");
    wait_until(&server, "the call record", Duration::from_secs(5), || {
        !ended_calls(&server.log()).is_empty()
    });
    let log = server.log();
    assert!(log.contains("outbound TLS connection established"), "{log}");
}

/// A PBX's TLS listener for one test: accepts one connection with a certificate from `ca`
/// and hands the stream to `serve` on a thread of its own.
fn tls_pbx<T: Send + 'static>(
    ca: &Ca,
    serve: impl FnOnce(&mut dyn ReadWrite) -> T + Send + 'static,
) -> (u16, std::thread::JoinHandle<T>) {
    let (cert, key, _) = ca.issue();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            #[allow(deprecated)]
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        serve(&mut tls)
    });
    (port, thread)
}

/// A TLS stream the PBX threads read and write.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Click-to-call through a trunk whose `outbound` URI says `;transport=tls`: Switchboard
/// opens the TLS connection itself, verifies the PBX against `[tls] ca`, sends the INVITE
/// over it (Via and Contact say TLS), and the PBX's BYE comes back on that connection.
#[test]
fn click_to_call_through_a_tls_trunk() {
    if without_sipp() {
        return;
    }
    let ca = Ca::new();
    let (cert, key, _) = ca.issue();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &cert, &key);
    ca.write(dir.path());
    let (pbx_port, pbx) = tls_pbx(&ca, |tls| {
        let mut pending = Vec::new();
        let invite = read_sip(tls, &mut pending);
        let to = format!("{};tag=pbx-tls", header(&invite, "To"));
        let sdp = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
             Contact: <sip:pbx@127.0.0.1;transport=tls>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            header(&invite, "Via"),
            header(&invite, "From"),
            header(&invite, "Call-ID"),
            header(&invite, "CSeq"),
            sdp.len()
        );
        tls.write_all(ok.as_bytes()).unwrap();
        let ack = read_sip(tls, &mut pending);
        std::thread::sleep(Duration::from_secs(1));
        let target = header(&invite, "Contact")
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_owned();
        let bye = format!(
            "BYE {target} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK-pbx-bye\r\n\
             Max-Forwards: 70\r\nFrom: {to}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\n\
             Content-Length: 0\r\n\r\n",
            header(&invite, "From"),
            header(&invite, "Call-ID"),
        );
        tls.write_all(bye.as_bytes()).unwrap();
        let bye_ok = read_sip(tls, &mut pending);
        (invite, ack, bye_ok)
    });
    let ports = Ports::new();
    let tls_port = free_port();
    let config = tls_config(&ports, tls_port).replacen(
        "name = \"pbx-main\"\n",
        &format!("name = \"pbx-main\"\noutbound = \"sip:127.0.0.1:{pbx_port};transport=tls\"\n"),
        1,
    ) + "ca = \"ca.pem\"\n";
    let server = Server::start_in(dir, &config, ports);
    let _ana = crate::harness::SippAgent::start(&server, "ana", None);
    crate::harness::wait_available(&server, "ana");
    let (status, body) = crate::harness::api_post(
        server.ports.http,
        "/api/v1/calls",
        r#"{"agent": "ana", "number": "+385915550100"}"#,
    )
    .unwrap();
    assert_eq!(status, 202, "{body}");

    let (invite, ack, bye_ok) = pbx.join().unwrap();
    assert!(
        invite.starts_with(&format!(
            "INVITE sip:+385915550100@127.0.0.1:{pbx_port};transport=tls SIP/2.0"
        )),
        "{invite}"
    );
    assert!(
        header(&invite, "Via").starts_with("SIP/2.0/TLS "),
        "{invite}"
    );
    assert!(
        header(&invite, "Contact").contains(&format!(":{tls_port};transport=tls")),
        "{invite}"
    );
    assert!(ack.starts_with("ACK "), "{ack}");
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
    let rec = crate::harness::outbound_record(&server);
    assert_eq!(rec["result"], "answered", "{rec:?}");
    assert!(server.log().contains("outbound TLS connection established"));
}
