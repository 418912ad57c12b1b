//! Overload from one source: an allowed trunk address floods INVITEs that it never
//! acknowledges (each holds a server transaction for 64·T1) at many times the legitimate
//! rate, while a SIPp trunk on another loopback address places real calls. The flooding
//! address meets its share of the transaction table (`sip.max_transactions_source_share`)
//! and the per-source INVITE rate; the other trunk's calls are answered; the server's
//! memory stays bounded.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::harness::*;

fn metrics(server: &Server) -> String {
    http_get(server.ports.http, "/metrics").unwrap().1
}

/// The resident set of process `pid` in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// SIPp's cumulative count on the line of its final statistics that starts with `what`.
fn sipp_count(out: &str, what: &str) -> u64 {
    out.lines()
        .rev()
        .filter(|l| l.trim_start().starts_with(what))
        .find_map(|l| {
            l.split('|')
                .map(str::trim)
                .rfind(|f| !f.is_empty())
                .and_then(|f| f.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// An INVITE from the flooding trunk whose offer has no codec the relay speaks (G.729
/// only): the few the rate limit lets through are refused with `488` and recorded, the rest
/// get `503`; the sender acknowledges nothing, so every transaction lives its 64·T1.
fn flood_invite(n: u32, from: std::net::SocketAddr, to: std::net::SocketAddr) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=flood {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
        ip = from.ip()
    );
    format!(
        "INVITE sip:100@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKflood{n}\r\n\
         From: <sip:+38599000009@{ip}>;tag=f{n}\r\nTo: <sip:100@{to}>\r\n\
         Call-ID: flood-{n}@{ip}\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@{from}>\r\n\
         Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
        ip = from.ip(),
        len = sdp.len()
    )
    .into_bytes()
}

#[test]
fn a_flood_from_one_trunk_address_leaves_the_other_trunk_served_and_memory_bounded() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config = format!(
        "{}\n[security]\ninvite_rate_per_source = 20\n",
        demo_config(&ports)
            .replace(
                "allow = [\"127.0.0.1/32\"]",
                "allow = [\"127.0.0.1/32\", \"127.0.0.5/32\"]"
            )
            .replace(
                "[sip]\n",
                "[sip]\nmax_transactions = 1000\nmax_transactions_source_share = 0.2\n"
            )
    );
    let server = Server::start(&config, ports);
    // The department heads (a new client's chain) are on a break: every legitimate call is
    // answered by the queue and waits with music until the trunk hangs up.
    put_on_break(&server, &["ivan", "petra"]);
    let pid = server.child.id();
    let rss_before = rss_kib(pid);

    // The flood: 300 INVITE/s from 127.0.0.5 for 14 s, thirty times the legitimate rate.
    const FLOOD_RATE: u32 = 300;
    const FLOOD_SECS: u32 = 14;
    let target = server.sip_addr();
    let socket = UdpSocket::bind(("127.0.0.5", 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let receiver = socket.try_clone().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (legit, flood) = std::thread::scope(|s| {
        let answers = s.spawn(|| {
            let (mut refused, mut retry_after, mut other) = (0u32, 0u32, 0u32);
            let mut buf = vec![0u8; 65_536];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(n) = receiver.recv(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("SIP/2.0 503") {
                    refused += 1;
                    retry_after += u32::from(text.contains("\r\nRetry-After: "));
                } else if !text.starts_with("SIP/2.0 100") {
                    other += 1;
                }
            }
            (refused, retry_after, other)
        });
        let sender = s.spawn(|| {
            let started = Instant::now();
            let mut sent = 0u32;
            for n in 0..FLOOD_RATE * FLOOD_SECS {
                // Paced in 10 ms steps.
                let due = started
                    + Duration::from_micros(u64::from(n) * 1_000_000 / u64::from(FLOOD_RATE));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if socket
                    .send_to(&flood_invite(n, local, target), target)
                    .is_ok()
                {
                    sent += 1;
                }
            }
            (sent, started.elapsed())
        });
        // Let the flood fill its share first, then the legitimate trunk: 10 calls/s from
        // 127.0.0.1, 100 calls.
        std::thread::sleep(Duration::from_secs(2));
        let legit = trunk_calls(
            &server,
            "+38599000002",
            "100",
            300,
            &["-m", "100", "-r", "10", "-l", "20"],
            Duration::from_secs(60),
        );
        let (sent, took) = sender.join().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (refused, retry_after, other) = answers.join().unwrap();
        (legit, (sent, took, refused, retry_after, other))
    });
    let rss_after = rss_kib(pid);
    let (status, out, _) = legit;
    let (sent, took, refused, retry_after, other) = flood;
    let succeeded = sipp_count(&out, "Successful call");
    let failed = sipp_count(&out, "Failed call");
    let text = metrics(&server);
    let overload = metric_sum(
        &text,
        "switchboard_sip_refused_total",
        &["reason=\"overload\""],
    );
    let rate_limited = metric_sum(
        &text,
        "switchboard_sip_refused_total",
        &["reason=\"rate_limit\""],
    );
    let dropped = metric_sum(&text, "switchboard_sip_dropped_total", &[]);
    let flood_rate = f64::from(sent) / took.as_secs_f64();
    println!(
        "flood: {sent} INVITEs in {:.1} s ({flood_rate:.0}/s) from 127.0.0.5, {refused} answered 503 \
         ({retry_after} with Retry-After), {other} other answers; refused for the share: {overload}, \
         by the rate limit: {rate_limited}; dropped by the inbound queue: {dropped}\n\
         legitimate: {succeeded} of 100 calls answered and completed, {failed} failed\n\
         RSS: {rss_before} KiB before, {rss_after} KiB after",
        took.as_secs_f64()
    );
    assert!(
        flood_rate >= 100.0,
        "the flood ran at {flood_rate:.0}/s, less than 10× the legitimate rate"
    );
    assert!(
        succeeded >= 99,
        "{succeeded} of 100 legitimate calls completed ({status}):\n{out}"
    );
    // The share held the flood: most of its INVITEs met the table's 503 for their source.
    assert!(
        overload >= f64::from(sent) / 2.0,
        "{overload} refused for the share of {sent}\n{text}"
    );
    assert!(
        refused > 0 && retry_after == refused,
        "{refused} 503s, {retry_after} with Retry-After"
    );
    // Memory: bounded by the table, the share and the queue (64 MiB of slack for the
    // allocator's high-water mark and the calls' media).
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

/// A stranger (no trunk) sprays large OPTIONS as fast as it can at a server whose inbound
/// lanes hold 64 KiB each: the normal lane overflows and its drops are counted, while the
/// trunk's calls — INVITEs from an `allow` network, responses and in-dialog requests, all in
/// the priority lane — are answered.
#[test]
fn a_spray_fills_the_normal_lane_while_trunk_calls_go_first() {
    if without_sipp() {
        return;
    }
    let ports = Ports::new();
    let config = demo_config(&ports).replace(
        "[sip]\n",
        "[sip]\ninbound_queue_messages = 16\ninbound_queue_bytes = 65536\n",
    );
    let server = Server::start(&config, ports);
    put_on_break(&server, &["ivan", "petra"]);
    let pid = server.child.id();
    let rss_before = rss_kib(pid);
    let target = server.sip_addr();
    let socket = UdpSocket::bind(("127.0.0.6", 0)).unwrap();
    let local = socket.local_addr().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let padding = "x".repeat(30_000);
    let (legit, sprayed) = std::thread::scope(|s| {
        let sprayer = s.spawn(|| {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let options = format!(
                    "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKspray{sent}\r\n\
                     From: <sip:spray@{local}>;tag=s\r\nTo: <sip:{target}>\r\nCall-ID: spray-{sent}\r\n\
                     CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n\
                     Content-Length: {}\r\n\r\n{padding}",
                    padding.len()
                );
                if socket.send_to(options.as_bytes(), target).is_ok() {
                    sent += 1;
                }
                // A little under 2,000 datagrams per second: 60 MB/s of SIP.
                if sent.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            sent
        });
        std::thread::sleep(Duration::from_secs(1));
        let legit = trunk_calls(
            &server,
            "+38599000002",
            "100",
            300,
            &["-m", "50", "-r", "5", "-l", "10"],
            Duration::from_secs(60),
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (legit, sprayer.join().unwrap())
    });
    let rss_after = rss_kib(pid);
    let (status, out, _) = legit;
    let succeeded = sipp_count(&out, "Successful call");
    let text = metrics(&server);
    let dropped = |reason: &str| {
        metric_sum(
            &text,
            "switchboard_sip_dropped_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    println!(
        "spray: {sprayed} OPTIONS of 30 kB from 127.0.0.6; dropped from the normal lane: {}, \
         from the priority lane: {}; trunk calls answered: {succeeded} of 50; RSS {rss_before} \
         KiB before, {rss_after} KiB after",
        dropped("queue_full"),
        dropped("priority_queue_full")
    );
    assert_eq!(
        succeeded, 50,
        "every trunk call completed ({status}):\n{out}"
    );
    assert!(
        dropped("queue_full") > 0.0,
        "the spray overflowed the normal lane\n{text}"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
