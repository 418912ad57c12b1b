//! TLS for the SIP transports (RFC 3261 §26): the server side of `tls:` listeners and the
//! client side of connections the server opens to `;transport=tls` peers, on rustls with
//! the ring provider.
//!
//! The `[tls]` certificate and key are loaded at start and re-read on SIGHUP
//! ([`Tls::reload`], called by the server's reload beside the client directory).
//! Handshakes pick the certificate through a resolver that holds the current one, so a
//! reload changes what new connections are served while open connections (and the
//! registrations and calls on them) keep theirs and are never dropped. A reload that
//! fails (unreadable file, bad PEM, a key that does not match the certificate) keeps the
//! certificate in use and says why. [`Tls::server_config`] gives any other listener (`wss:`)
//! a configuration backed by the same reloading certificate.
//!
//! After the handshake a TLS connection is an ordinary stream connection
//! ([`transport::stream_connection`]): same framing, keep-alives, limits and idle timeout.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};
use switchboard_sip::{Endpoint, Peer, Transport};
use switchboard_sipmsg::Scheme;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::TlsConfig;
use crate::sip_edge::security::Arrival;
use crate::sip_edge::transport::{
    self, ConnId, ConnSlot, Connections, Inbound, StreamContext, StreamId,
};

/// Longest a TLS handshake (or an outbound TCP connect) may take before the connection is
/// dropped: a client that opens a connection and says nothing holds a slot at most this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate, key or trust bundle did not load. `Display` names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsLoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    Empty {
        key: &'static str,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{path} is not valid PEM: {message}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("the key {key_path} does not fit the certificate {cert_path}: {message}")]
    Mismatch {
        cert_path: PathBuf,
        key_path: PathBuf,
        message: String,
    },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

impl TlsLoadError {
    /// The configuration key the error is about (`tls.cert`, `tls.key`, `tls.ca`).
    pub fn key_path(&self) -> &'static str {
        match self {
            TlsLoadError::Read { key, .. }
            | TlsLoadError::Empty { key, .. }
            | TlsLoadError::Pem { key, .. } => key,
            TlsLoadError::Mismatch { .. } => "tls.key",
            TlsLoadError::Setup(_) => "tls",
        }
    }
}

/// The ring provider. rustls now steers towards aws-lc-rs for its post-quantum key exchange;
/// ring keeps the build free of aws-lc's large C/CMake build, and SIP phones and trunks do not
/// offer post-quantum groups yet (X25519, P-256 and P-384 are what they negotiate).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsLoadError> {
    std::fs::read(path).map_err(|source| TlsLoadError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsLoadError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsLoadError::Pem {
            key,
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsLoadError::Empty {
            key,
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Reads a PEM chain and its key and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsLoadError> {
    let chain = certificates("tls.cert", cert)?;
    let key_pem = read("tls.key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsLoadError::Empty {
            key: "tls.key",
            path: key.to_owned(),
            what: "private key",
        },
        other => TlsLoadError::Pem {
            key: "tls.key",
            path: key.to_owned(),
            message: other.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| TlsLoadError::Mismatch {
        cert_path: cert.to_owned(),
        key_path: key.to_owned(),
        message: e.to_string(),
    })
}

/// The authorities trusted for outbound TLS: the `[tls] ca` bundle, else the system's store.
pub fn load_roots(ca: Option<&Path>) -> Result<RootCertStore, TlsLoadError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates("tls.ca", path)? {
                roots.add(cert).map_err(|e| TlsLoadError::Pem {
                    key: "tls.ca",
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                debug!("system trust store: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            debug!(added, ignored, "system trust store loaded for outbound TLS");
        }
    }
    Ok(roots)
}

/// SHA-256 of the leaf certificate, as `openssl x509 -fingerprint -sha256` prints it:
/// the log line of a (re)load says which certificate is served.
pub fn fingerprint(key: &CertifiedKey) -> String {
    let leaf = key.cert.first().map(|c| c.as_ref()).unwrap_or_default();
    Sha256::digest(leaf)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate handshakes are served, swapped by a reload.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn get(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The server's TLS state: the reloading certificate, the SIP acceptor and the client
/// configuration for outbound connections. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    files: TlsConfig,
    current: Arc<CurrentCert>,
    acceptor: TlsAcceptor,
    client: Arc<RwLock<Arc<ClientConfig>>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.files.cert)
            .field("key", &self.files.key)
            .field("ca", &self.files.ca)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads `[tls]`: the certificate and key, and the trust anchors for outbound TLS.
    pub fn load(files: &TlsConfig) -> Result<Tls, TlsLoadError> {
        let key = load_certified_key(&files.cert, &files.key)?;
        info!(
            cert = %files.cert.display(),
            sha256 = %fingerprint(&key),
            "TLS certificate loaded"
        );
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(key))));
        let server = server_config(&current, Vec::new())?;
        let client = client_config(files.ca.as_deref())?;
        Ok(Tls {
            files: files.clone(),
            current,
            acceptor: TlsAcceptor::from(server),
            client: Arc::new(RwLock::new(client)),
        })
    }

    /// The acceptor of `tls:` listeners (no ALPN).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// A server configuration with these ALPN protocols (e.g. `http/1.1` for `wss:`) that
    /// serves the same reloading certificate.
    pub fn server_config(&self, alpn: Vec<Vec<u8>>) -> Result<Arc<ServerConfig>, TlsLoadError> {
        server_config(&self.current, alpn)
    }

    /// The connector for outbound TLS connections, with the trust anchors of the last load.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(Arc::clone(
            &self.client.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// SHA-256 fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.current.get())
    }

    /// Re-reads the certificate, key and trust bundle. New handshakes get the new
    /// certificate; open connections are untouched. On error nothing changes.
    pub fn reload(&self) -> Result<String, TlsLoadError> {
        let key = load_certified_key(&self.files.cert, &self.files.key)?;
        let client = client_config(self.files.ca.as_deref())?;
        let sha256 = fingerprint(&key);
        self.current.set(key);
        *self.client.write().unwrap_or_else(PoisonError::into_inner) = client;
        Ok(sha256)
    }

    /// [`Self::reload`] with its log line: what is served now, or why the old one stays.
    pub fn reload_logged(&self) -> Result<(), TlsLoadError> {
        let before = self.fingerprint();
        match self.reload() {
            Ok(now) if now == before => {
                info!(cert = %self.files.cert.display(), sha256 = %now, "TLS certificate re-read: unchanged");
                Ok(())
            }
            Ok(now) => {
                info!(cert = %self.files.cert.display(), sha256 = %now, previous = %before, "TLS certificate reloaded: new connections get it, open ones keep theirs");
                Ok(())
            }
            Err(e) => {
                warn!(key = e.key_path(), sha256 = %before, "TLS certificate not reloaded, the one in use stays: {e}");
                Err(e)
            }
        }
    }
}

fn server_config(
    current: &Arc<CurrentCert>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, TlsLoadError> {
    let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(current) as _;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsLoadError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsLoadError> {
    let roots = load_roots(ca)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsLoadError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts TCP connections on a `tls:` listener, runs each handshake (bounded by
/// [`HANDSHAKE_TIMEOUT`], counted against `max_tcp_connections` from the start) and then
/// serves the connection as a stream transport of kind [`Transport::Tls`].
pub async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, ctx: StreamContext) {
    while let Some((stream, id)) = transport::accept(&listener, &ctx, Transport::Tls).await {
        let span = info_span!("tls", conn = id.conn, peer = %id.from);
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        tokio::spawn(
            async move {
                if let Some(stream) = handshake(&acceptor, stream, &ctx).await {
                    transport::stream_connection(id, stream, ctx).await;
                }
            }
            .instrument(span),
        );
    }
}

/// The server side of one TLS handshake (bounded by [`HANDSHAKE_TIMEOUT`]); `None`, counted
/// and logged, when it fails, times out or the server stops. `wss:` listeners use it too.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    ctx: &StreamContext,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let handshake = tokio::select! {
        () = ctx.stop.cancelled() => return None,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            handshake_failed(ctx, &e.to_string());
            return None;
        }
        Err(_) => {
            handshake_failed(ctx, "timed out");
            return None;
        }
    };
    let (_, session) = stream.get_ref();
    debug!(
        version = ?session.protocol_version(),
        cipher = ?session.negotiated_cipher_suite().map(|c| c.suite()),
        sni = session.server_name().unwrap_or(""),
        "TLS handshake done"
    );
    Some(stream)
}

fn handshake_failed(ctx: &StreamContext, why: &str) {
    ctx.stats
        .tls_handshake_failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    info!("TLS handshake failed: {why}");
}

/// Opens outbound TLS connections for the endpoint task: a request to a `;transport=tls`
/// peer with no connection open gets one. The connection is known to the endpoint task at
/// once (messages queue on its writer channel while TCP connects and TLS shakes hands);
/// when it cannot be made, the endpoint task hears [`Inbound::Unreachable`] and then
/// [`Inbound::Closed`], so the transactions towards the peer fail at once (§17.1.4).
#[derive(Debug, Clone)]
pub struct Dialer {
    tls: Tls,
    ctx: StreamContext,
}

impl Dialer {
    pub fn new(tls: Tls, ctx: StreamContext) -> Dialer {
        Dialer { tls, ctx }
    }

    /// Starts a connection to `addr`, verified against `name` (the peer's IP address when
    /// the URI gave no host name). Returns its id and writer channel, for the endpoint task
    /// to record as open; `None` when every connection slot is taken.
    pub fn dial(
        &self,
        addr: SocketAddr,
        name: ServerName<'static>,
    ) -> Option<(ConnId, mpsc::Sender<Vec<u8>>)> {
        let slot = ConnSlot::take(&self.ctx.stats, &self.ctx.limits, addr)?;
        let conn = self.ctx.next_conn();
        let (tx, rx) = mpsc::channel::<Vec<u8>>(256);
        let connector = self.tls.connector();
        let ctx = self.ctx.clone();
        let writer = tx.clone();
        let span = info_span!("tls", conn, peer = %addr, outbound = true);
        tokio::spawn(
            async move {
                let connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                    let tcp = TcpStream::connect(addr).await?;
                    let _ = tcp.set_nodelay(true);
                    connector.connect(name, tcp).await
                })
                .await;
                let stream = match connected {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return dial_failed(&ctx, conn, addr, &e.to_string()).await,
                    Err(_) => return dial_failed(&ctx, conn, addr, "timed out").await,
                };
                info!("outbound TLS connection established");
                let id = StreamId {
                    conn,
                    transport: Transport::Tls,
                    from: addr,
                    slot,
                };
                transport::run_stream(id, stream, ctx, (tx, rx)).await;
            }
            .instrument(span),
        );
        Some((conn, writer))
    }
}

async fn dial_failed(ctx: &StreamContext, conn: ConnId, addr: SocketAddr, why: &str) {
    ctx.stats
        .tls_handshake_failures
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    warn!("outbound TLS connection failed: {why}");
    ctx.inbound
        .send(Inbound::Unreachable {
            transport: Transport::Tls,
            addr,
        })
        .await;
    ctx.inbound.send(Inbound::Closed { conn }).await;
}

/// A request whose Request-URI is `sips:` must have come over TLS (or WSS): one that came
/// in clear gets `416` and call control never sees it (RFC 5630: SIPS means TLS on every
/// hop). The registrar applies the same rule to REGISTER. Returns whether it was refused.
pub fn refuse_insecure_sips(
    ep: &mut Endpoint,
    now: switchboard_sip::Instant,
    arrival: Arrival<'_>,
) -> bool {
    let Arrival { req, src, .. } = arrival;
    if req.uri.scheme != Scheme::Sips || matches!(src.transport, Transport::Tls | Transport::Wss) {
        return false;
    }
    info!(peer = %src.addr, method = %req.method, uri = %req.uri, "sips: request over {:?} refused (416)", src.transport);
    let reason = "Unsupported URI Scheme - SIPS Requires TLS";
    arrival.refuse(ep, now, (416, reason), None);
    true
}

/// The endpoint task sends `bytes` over TLS (see [`Connections::send_or_dial`]): a new
/// outbound connection is verified against the address.
pub fn send(dest: &Peer, bytes: Vec<u8>, conns: &mut Connections, dialer: Option<&Dialer>) {
    conns.send_or_dial(dest, bytes, || {
        let Some(dialer) = dialer else {
            debug!(dest = %dest.addr, "no [tls] to connect with");
            return None;
        };
        dialer.dial(dest.addr, ServerName::IpAddress(dest.addr.ip().into()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip_edge::inqueue::InboundQueue;
    use crate::sip_edge::transport::tests::next;
    use std::path::Path;

    const PING: &[u8] = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    const PONG: &[u8] = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";

    /// A CA and a server certificate for 127.0.0.1 signed by it, written under `dir`.
    fn pki(dir: &Path, tag: &str) -> TlsConfig {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let files = TlsConfig {
            cert: dir.join(format!("{tag}.pem")),
            key: dir.join(format!("{tag}.key")),
            ca: Some(dir.join(format!("{tag}-ca.pem"))),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(files.ca.as_ref().unwrap(), ca.pem()).unwrap();
        files
    }

    fn context() -> (StreamContext, Arc<InboundQueue>) {
        crate::sip_edge::transport::tests::context(Duration::from_secs(30))
    }

    fn peer(addr: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Tls,
            addr,
            conn: None,
            local: None,
        }
    }

    /// The server's own acceptor and dialer, end to end over loopback: the dialer opens a
    /// verified connection on first send and reuses it; answers come back on it.
    #[tokio::test]
    async fn outbound_tls_connects_verifies_and_carries_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::load(&pki(dir.path(), "a")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (server_ctx, mut server_rx) = context();
        tokio::spawn(accept_loop(listener, tls.acceptor(), server_ctx.clone()));

        let (client_ctx, mut client_rx) = context();
        let dialer = Dialer::new(tls.clone(), client_ctx.clone());
        let mut conns = Connections::default();
        send(&peer(addr), PING.to_vec(), &mut conns, Some(&dialer));
        let first = conns
            .to_addr(Transport::Tls, addr)
            .expect("connection recorded");
        send(&peer(addr), PING.to_vec(), &mut conns, Some(&dialer));
        assert_eq!(conns.to_addr(Transport::Tls, addr), Some(first), "reused");

        let Inbound::Opened {
            transport, writer, ..
        } = next(&mut server_rx).await
        else {
            panic!("the server did not see the connection open")
        };
        assert_eq!(transport, Transport::Tls);
        for _ in 0..2 {
            let Inbound::Stream {
                transport, bytes, ..
            } = next(&mut server_rx).await
            else {
                panic!("no message")
            };
            assert_eq!((transport, bytes.as_slice()), (Transport::Tls, PING));
        }
        writer.send(PONG.to_vec()).await.unwrap();
        let Inbound::Stream {
            conn,
            transport,
            from,
            bytes,
        } = next(&mut client_rx).await
        else {
            panic!("no answer on the outbound connection")
        };
        assert_eq!((conn, transport, from), (first, Transport::Tls, addr));
        assert_eq!(bytes, PONG);
        server_ctx.stop.cancel();
        client_ctx.stop.cancel();
    }

    /// A peer whose certificate the trust anchors do not vouch for, or nobody listening:
    /// the endpoint task hears that the address is unreachable, then that the connection
    /// closed.
    #[tokio::test]
    async fn outbound_tls_failures_reach_the_endpoint_task() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Tls::load(&pki(dir.path(), "ours")).unwrap();
        let theirs = Tls::load(&pki(dir.path(), "theirs")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let untrusted = listener.local_addr().unwrap();
        let (server_ctx, _server_rx) = context();
        tokio::spawn(accept_loop(listener, theirs.acceptor(), server_ctx.clone()));
        let nobody = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };

        let (client_ctx, mut client_rx) = context();
        let dialer = Dialer::new(ours, client_ctx.clone());
        for addr in [untrusted, nobody] {
            let mut conns = Connections::default();
            send(&peer(addr), PING.to_vec(), &mut conns, Some(&dialer));
            let conn = conns.to_addr(Transport::Tls, addr).unwrap();
            let Inbound::Unreachable { transport, addr: a } = next(&mut client_rx).await else {
                panic!("failure not reported for {addr}")
            };
            assert_eq!((transport, a), (Transport::Tls, addr));
            let Inbound::Closed { conn: closed } = next(&mut client_rx).await else {
                panic!("no close for {addr}")
            };
            assert_eq!(closed, conn);
        }
        assert_eq!(
            client_ctx
                .stats
                .tls_handshake_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        assert_eq!(
            client_ctx
                .stats
                .connections_open
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "failed dials give their slots back"
        );
        server_ctx.stop.cancel();
    }

    /// Reload swaps the certificate new handshakes get; a failed reload keeps it.
    #[test]
    fn reload_swaps_the_served_certificate_and_survives_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = pki(dir.path(), "a");
        let tls = Tls::load(&files).unwrap();
        let before = tls.fingerprint();
        let other = pki(dir.path(), "b");
        std::fs::copy(&other.cert, &files.cert).unwrap();
        std::fs::copy(&other.key, &files.key).unwrap();
        let after = tls.reload().unwrap();
        assert_ne!(before, after);
        assert_eq!(tls.fingerprint(), after);
        std::fs::write(&files.key, "junk").unwrap();
        let e = tls.reload().unwrap_err();
        assert_eq!(e.key_path(), "tls.key");
        assert_eq!(tls.fingerprint(), after, "a failed reload changes nothing");
    }
}
