//! HTTP Digest authentication for SIP (RFC 7616, RFC 2617, RFC 8760): challenges,
//! verification, stateless nonces and the client-side response.
//!
//! Header parameters are parsed by hand: the grammar (`auth-param` lists with quoted strings,
//! backslash escapes and commas inside quotes) is small, and no crate in the workspace parses
//! it for SIP.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::Error;
use crate::time::Instant;

/// A digest hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (RFC 2617); the default when `algorithm` is absent.
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token used in headers.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses the `algorithm` token (case-insensitive). `-sess` variants are not supported.
    pub fn from_token(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex digest of `data`.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
        }
    }
}

/// Parsed `auth-scheme` and `auth-param`s of an `Authorization`, `Proxy-Authorization`,
/// `WWW-Authenticate` or `Proxy-Authenticate` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// The scheme token, e.g. `Digest`.
    pub scheme: String,
    /// Parameters in order; names as received, values unquoted and unescaped.
    pub params: Vec<(String, String)>,
}

impl AuthParams {
    /// Parses `scheme name=value, name="quoted \"value\"", ...`.
    pub fn parse(value: &str) -> Result<AuthParams, Error> {
        let value = value.trim();
        let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => value.split_at(i),
            None => (value, ""),
        };
        if scheme.is_empty() || !scheme.bytes().all(is_token_byte) {
            return Err(Error::BadAuthHeader("missing or invalid auth scheme"));
        }
        let mut params = Vec::new();
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .ok_or(Error::BadAuthHeader("parameter without '='"))?;
            let (name, after) = rest.split_at(eq);
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(Error::BadAuthHeader("invalid parameter name"));
            }
            let after = after.get(1..).unwrap_or("").trim_start();
            let (val, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                parse_quoted(quoted)?
            } else {
                let end = after.find(',').unwrap_or(after.len());
                let (tok, remaining) = after.split_at(end);
                (tok.trim().to_string(), remaining)
            };
            params.push((name.to_string(), val));
            let remaining = remaining.trim_start();
            rest = match remaining.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if remaining.is_empty() => remaining,
                None => return Err(Error::BadAuthHeader("expected ',' between parameters")),
            };
        }
        Ok(AuthParams {
            scheme: scheme.to_string(),
            params,
        })
    }

    /// The first parameter named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the rest of a quoted string (after the opening quote); returns the unescaped
/// content and the text after the closing quote.
fn parse_quoted(s: &str) -> Result<(String, &str), Error> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, s.get(i + 1..).unwrap_or(""))),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            _ => out.push(c),
        }
    }
    Err(Error::BadAuthHeader("unterminated quoted string"))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Quotes `s` as a quoted-string, escaping `"` and `\`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A server challenge (`WWW-Authenticate: Digest ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space, the registrar domain.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// `qop` offered (`auth`), when any.
    pub qop_auth: bool,
    /// Opaque value echoed by the client.
    pub opaque: Option<String>,
    /// The previous nonce was valid but expired: retry with this one, same password.
    pub stale: bool,
}

impl Challenge {
    /// The header value: `Digest realm="..", nonce="..", algorithm=.., qop="auth"[, stale=true]`.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest realm={}, nonce={}, algorithm={}",
            quote(&self.realm),
            quote(&self.nonce),
            self.algorithm.token()
        );
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(s, ", opaque={}", quote(opaque));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }

    /// Parses a `WWW-Authenticate`/`Proxy-Authenticate` value (client side).
    pub fn parse(value: &str) -> Result<Challenge, Error> {
        let p = AuthParams::parse(value)?;
        if !p.scheme.eq_ignore_ascii_case("Digest") {
            return Err(Error::BadAuthHeader("not a Digest challenge"));
        }
        let algorithm = match p.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => {
                Algorithm::from_token(a).ok_or(Error::BadAuthHeader("unsupported algorithm"))?
            }
        };
        Ok(Challenge {
            realm: p
                .get("realm")
                .ok_or(Error::BadAuthHeader("missing realm"))?
                .to_string(),
            nonce: p
                .get("nonce")
                .ok_or(Error::BadAuthHeader("missing nonce"))?
                .to_string(),
            algorithm,
            qop_auth: p
                .get("qop")
                .is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth"))),
            opaque: p.get("opaque").map(str::to_string),
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// Client credentials (`Authorization: Digest ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Realm the credentials are for.
    pub realm: String,
    /// Server nonce being answered.
    pub nonce: String,
    /// The `digest-uri` (normally the Request-URI).
    pub uri: String,
    /// The hex response hash.
    pub response: String,
    /// Hash algorithm (MD5 when absent).
    pub algorithm: Algorithm,
    /// `Some((nc, cnonce))` when `qop=auth`.
    pub qop_auth: Option<(u32, String)>,
    /// Echoed opaque.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses an `Authorization`/`Proxy-Authorization` value.
    pub fn parse(value: &str) -> Result<Credentials, Error> {
        let p = AuthParams::parse(value)?;
        if !p.scheme.eq_ignore_ascii_case("Digest") {
            return Err(Error::BadAuthHeader("not Digest credentials"));
        }
        let need = |name: &'static str| {
            p.get(name)
                .map(str::to_string)
                .ok_or(Error::BadAuthHeader(name))
        };
        let algorithm = match p.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => {
                Algorithm::from_token(a).ok_or(Error::BadAuthHeader("unsupported algorithm"))?
            }
        };
        let qop_auth = match p.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = p.get("nc").ok_or(Error::BadAuthHeader("qop without nc"))?;
                if nc.len() != 8 {
                    return Err(Error::BadAuthHeader("nc must be 8 hex digits"));
                }
                let nc = u32::from_str_radix(nc, 16)
                    .map_err(|_| Error::BadAuthHeader("nc must be 8 hex digits"))?;
                Some((nc, need("cnonce")?))
            }
            Some(_) => return Err(Error::BadAuthHeader("unsupported qop")),
        };
        Ok(Credentials {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: need("response")?,
            algorithm,
            qop_auth,
            opaque: p.get("opaque").map(str::to_string),
        })
    }

    /// The header value, as a client sends it.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm.token()
        );
        if let Some((nc, cnonce)) = &self.qop_auth {
            let _ = write!(s, ", qop=auth, nc={nc:08x}, cnonce={}", quote(cnonce));
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(s, ", opaque={}", quote(opaque));
        }
        s
    }

    /// Whether `password` produces this response for `method` (constant-time comparison).
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let expected = compute_response(
            self.algorithm,
            &self.username,
            &self.realm,
            password,
            method,
            &self.uri,
            &self.nonce,
            self.qop_auth.as_ref().map(|(nc, c)| (*nc, c.as_str())),
        );
        constant_time_eq(
            expected.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// The digest `response` (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1 without qop).
/// `qop_auth` is `Some((nc, cnonce))` for `qop=auth`.
#[allow(clippy::too_many_arguments)] // mirrors the RFC's inputs one to one
pub fn compute_response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop_auth: Option<(u32, &str)>,
) -> String {
    let ha1 = algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes());
    let ha2 = algorithm.hash_hex(format!("{method}:{uri}").as_bytes());
    let kd = match qop_auth {
        Some((nc, cnonce)) => format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"),
        None => format!("{ha1}:{nonce}:{ha2}"),
    };
    algorithm.hash_hex(kd.as_bytes())
}

/// Builds client credentials answering `challenge` (used by tests and outbound trunk auth).
/// `cnonce` and `nc` are chosen by the caller (the crate has no randomness of its own).
pub fn answer_challenge(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Credentials {
    let qop_auth = challenge.qop_auth.then(|| (nc, cnonce.to_string()));
    let response = compute_response(
        challenge.algorithm,
        username,
        &challenge.realm,
        password,
        method,
        uri,
        &challenge.nonce,
        qop_auth.as_ref().map(|(n, c)| (*n, c.as_str())),
    );
    Credentials {
        username: username.to_string(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_string(),
        response,
        algorithm: challenge.algorithm,
        qop_auth,
        opaque: challenge.opaque.clone(),
    }
}

/// Byte-wise comparison whose duration does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 (RFC 2104). Written out here because the workspace has `sha2` but no `hmac`
/// crate, and these twelve lines are all a nonce needs.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Result of checking a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by us and within its lifetime.
    Valid,
    /// Issued by us but older than the lifetime (or dated in the future): answer `stale=true`.
    Stale,
    /// Not one of ours.
    Invalid,
}

/// Stateless nonces:
/// `hex(issue time) || hex(serial) || hex(HMAC-SHA-256(secret, issue time || serial)[..16])`.
///
/// Any instance with the same secret can verify a nonce and learn when it was issued; nothing
/// is stored per challenge. The serial is a per-source counter: the driver hands the same
/// `now` to every datagram of one wake-up, and without it concurrent REGISTERs were
/// challenged with the same nonce, so the second client's `nc=00000001` looked like a replay
/// of the first's. With it every nonce a source issues is distinct.
#[derive(Clone)]
pub struct NonceSource {
    secret: Vec<u8>,
    lifetime: Duration,
    serial: u64,
}

impl std::fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceSource")
            .field("secret", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("serial", &self.serial)
            .finish()
    }
}

/// Hex digits of a nonce: issue time (8 bytes), serial (8 bytes), MAC (16 bytes).
const NONCE_HEX_LEN: usize = 64;

impl NonceSource {
    /// Default nonce lifetime.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

    /// A source keyed by `secret` (random bytes chosen by the caller).
    pub fn new(secret: Vec<u8>, lifetime: Duration) -> NonceSource {
        NonceSource {
            secret,
            lifetime,
            serial: 0,
        }
    }

    /// How long a nonce stays fresh.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A fresh nonce issued at `now`, different from every other nonce of this source.
    pub fn issue(&mut self, now: Instant) -> String {
        self.serial = self.serial.wrapping_add(1);
        let mut data = [0u8; 16];
        data[..8].copy_from_slice(&now.as_micros().to_be_bytes());
        data[8..].copy_from_slice(&self.serial.to_be_bytes());
        let mac = hmac_sha256(&self.secret, &data);
        format!("{}{}", hex::encode(data), hex::encode(&mac[..16]))
    }

    /// The issue time of `nonce` if it is one of ours.
    pub fn issued_at(&self, nonce: &str) -> Option<Instant> {
        if nonce.len() != NONCE_HEX_LEN || !nonce.is_ascii() {
            return None;
        }
        let (data_hex, mac_hex) = nonce.split_at(32);
        let data: [u8; 16] = hex::decode(data_hex).ok()?.try_into().ok()?;
        let mac = hex::decode(mac_hex).ok()?;
        let expected = hmac_sha256(&self.secret, &data);
        let ts: [u8; 8] = data.get(..8)?.try_into().ok()?;
        constant_time_eq(&mac, expected.get(..16)?)
            .then(|| Instant::from_micros(u64::from_be_bytes(ts)))
    }

    /// Checks `nonce` at `now`.
    pub fn check(&self, nonce: &str, now: Instant) -> NonceStatus {
        match self.issued_at(nonce) {
            None => NonceStatus::Invalid,
            Some(at) if at > now => NonceStatus::Stale,
            Some(at) if now.saturating_duration_since(at) > self.lifetime => NonceStatus::Stale,
            Some(_) => NonceStatus::Valid,
        }
    }
}

/// Highest nonce-count seen per nonce, so a replayed `nc` is refused (RFC 7616 §3.3).
/// Nonces are unique per challenge ([`NonceSource::issue`]), so two clients never share an
/// entry.
#[derive(Debug, Clone, Default)]
pub struct NonceCounts {
    seen: HashMap<String, (u32, Instant)>,
    /// Every tracked nonce by issue time, oldest first, so pruning touches only what it drops.
    by_issue: BinaryHeap<Reverse<(Instant, String)>>,
}

impl NonceCounts {
    /// Records `nc` for `nonce` (issued at `issued`); false if `nc` is not higher than before.
    pub fn accept(&mut self, nonce: &str, nc: u32, issued: Instant) -> bool {
        match self.seen.get_mut(nonce) {
            Some((last, _)) if nc <= *last => false,
            Some((last, _)) => {
                *last = nc;
                true
            }
            None => {
                self.seen.insert(nonce.to_string(), (nc, issued));
                self.by_issue.push(Reverse((issued, nonce.to_string())));
                true
            }
        }
    }

    /// Forgets nonces issued before `cutoff` (they can only be stale now).
    pub fn prune(&mut self, cutoff: Instant) {
        while let Some(Reverse((issued, _))) = self.by_issue.peek()
            && *issued < cutoff
        {
            if let Some(Reverse((_, nonce))) = self.by_issue.pop() {
                self.seen.remove(&nonce);
            }
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7616 §3.9.1.
    const USER: &str = "Mufasa";
    const PASS: &str = "Circle of Life";
    const REALM: &str = "http-auth@example.org";
    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    /// The response of RFC 7616 §3.9.1's example request with `algorithm`.
    fn rfc7616_example(algorithm: Algorithm) -> String {
        compute_response(
            algorithm,
            USER,
            REALM,
            PASS,
            "GET",
            "/dir/index.html",
            NONCE,
            Some((1, CNONCE)),
        )
    }

    #[test]
    fn rfc7616_md5_example() {
        assert_eq!(
            rfc7616_example(Algorithm::Md5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_sha256_example() {
        assert_eq!(
            rfc7616_example(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_qopless_md5() {
        // RFC 2617 §3.5 inputs; the qop=auth value is the RFC's, the qop-less value was
        // computed independently with Python's hashlib.
        let resp = |qop| {
            compute_response(
                Algorithm::Md5,
                USER,
                "testrealm@host.com",
                "Circle Of Life",
                "GET",
                "/dir/index.html",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                qop,
            )
        };
        assert_eq!(
            resp(Some((1, "0a4f113b"))),
            "6629fae49393a05397450978507c4ef1"
        );
        assert_eq!(resp(None), "670fd8c2df070c60b045671b8b24ff02");
    }

    #[test]
    fn hmac_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn params_with_quotes_escapes_and_commas() {
        let p = AuthParams::parse(
            r#"Digest username="a\"b", realm="x, y", nonce=abc , qop=auth,nc=00000001"#,
        )
        .unwrap();
        assert_eq!(p.scheme, "Digest");
        assert_eq!(p.get("username"), Some("a\"b"));
        assert_eq!(p.get("REALM"), Some("x, y"));
        assert_eq!(p.get("nonce"), Some("abc"));
        assert_eq!(p.get("nc"), Some("00000001"));
        assert!(AuthParams::parse(r#"Digest realm="open"#).is_err());
        assert!(AuthParams::parse("Digest realm").is_err());
        assert!(AuthParams::parse("").is_err());
        assert!(AuthParams::parse(r#"Digest a="1" b="2""#).is_err());
    }

    #[test]
    fn challenge_round_trips_and_client_answer_verifies() {
        let c = Challenge {
            realm: "callcenter.local".into(),
            nonce: "n\"1".into(),
            algorithm: Algorithm::Sha256,
            qop_auth: true,
            opaque: None,
            stale: true,
        };
        let parsed = Challenge::parse(&c.to_header_value()).unwrap();
        assert_eq!(parsed, c);
        let creds = answer_challenge(
            &parsed,
            "ana",
            "pw",
            "REGISTER",
            "sip:callcenter.local",
            "cn",
            1,
        );
        let back = Credentials::parse(&creds.to_header_value()).unwrap();
        assert_eq!(back, creds);
        assert!(back.verify("REGISTER", "pw"));
        assert!(!back.verify("REGISTER", "pW"));
        assert!(!back.verify("INVITE", "pw"));
    }

    #[test]
    fn nonce_is_verifiable_and_expires() {
        let mut src = NonceSource::new(b"secret".to_vec(), Duration::from_secs(300));
        let t0 = Instant::from_micros(1_000_000_000);
        let n = src.issue(t0);
        assert_eq!(src.issued_at(&n), Some(t0));
        assert_eq!(
            src.check(&n, t0 + Duration::from_secs(299)),
            NonceStatus::Valid
        );
        assert_eq!(
            src.check(&n, t0 + Duration::from_secs(301)),
            NonceStatus::Stale
        );
        let other = NonceSource::new(b"other".to_vec(), Duration::from_secs(300));
        assert_eq!(other.check(&n, t0), NonceStatus::Invalid);
        let mut forged = n.clone();
        forged.replace_range(63..64, if n.ends_with('0') { "1" } else { "0" });
        assert_eq!(src.check(&forged, t0), NonceStatus::Invalid);
        assert_eq!(src.check("short", t0), NonceStatus::Invalid);
        assert_eq!(src.check(&"é".repeat(32), t0), NonceStatus::Invalid);
        // The serial is under the MAC too: changing it invalidates the nonce.
        let mut reserialed = n.clone();
        reserialed.replace_range(31..32, if n[31..32] == *"0" { "1" } else { "0" });
        assert_eq!(src.check(&reserialed, t0), NonceStatus::Invalid);
    }

    #[test]
    fn nonces_issued_at_the_same_instant_are_distinct_and_each_verifies_once() {
        let mut src = NonceSource::new(b"secret".to_vec(), Duration::from_secs(300));
        let now = Instant::from_micros(1_700_000_000_000_000);
        let nonces: Vec<String> = (0..1000).map(|_| src.issue(now)).collect();
        let distinct: std::collections::HashSet<&String> = nonces.iter().collect();
        assert_eq!(distinct.len(), 1000);
        let mut counts = NonceCounts::default();
        for n in &nonces {
            assert_eq!(src.check(n, now), NonceStatus::Valid);
            assert_eq!(src.issued_at(n), Some(now));
            // Every client starts at nc=1 on its own nonce: never a replay of another's.
            assert!(counts.accept(n, 1, now), "{n} refused as a replay");
        }
        for n in &nonces {
            assert!(!counts.accept(n, 1, now), "{n} replayed");
        }
        assert_eq!(counts.len(), 1000);
    }

    #[test]
    fn nonce_counts_refuse_replay() {
        let mut nc = NonceCounts::default();
        let t = Instant::from_micros(5);
        assert!(nc.accept("n", 1, t));
        assert!(!nc.accept("n", 1, t));
        assert!(nc.accept("n", 2, t));
        assert!(nc.accept("m", 1, Instant::from_micros(7)));
        nc.prune(Instant::from_micros(6));
        assert_eq!(nc.len(), 1);
        assert!(nc.accept("n", 1, t), "pruned nonces are forgotten");
        nc.prune(Instant::from_micros(8));
        assert!(nc.is_empty());
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
