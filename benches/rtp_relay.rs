//! RTP relay throughput and CPU cost: N concurrent bridged `switchboard-media` sessions, each
//! with a caller and an agent far end sending 50 packets/s (20 ms G.711, 172-byte datagrams)
//! both ways on loopback. Baseline, same run: a plain socket-to-socket forwarder (one task
//! per call, latch-and-forward, no parsing, no rewriting, no transcoding) on the same
//! runtime shape.
//!
//! The relay runs on one relay thread (`Media::with_relay_threads(_, 1)`, epoll over every
//! session's sockets) beside a one-worker tokio runtime that owns the session handles; the
//! traffic generator on its own thread (the machine has two cores). "Relay CPU" is read from
//! `/proc/self/task/<tid>/stat` for the relay thread (`sb-relay-*`) and the runtime's worker;
//! "process CPU" from `/proc/self/stat` (relay + generator).
//!
//! Beside them, the baseline's forwarding on io_uring (`rtp_relay_uring.rs`): one thread, a
//! receive posted on every socket, the forwards of a wake-up submitted with the next wait in
//! one system call.
//!
//! `cargo bench --bench rtp_relay` (seconds per scenario: `RTP_BENCH_SECS`, default 4; the relay's
//! first port: `RTP_BENCH_PORT`, default 24000; the kernel NAT scenario's: `RTP_BENCH_NAT_PORT`,
//! default 7000).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "rtp_relay_uring.rs"]
mod uring;

use switchboard_media::rtp::RtpPacket;
use switchboard_media::{Media, MediaConfig, Sdp, Session};
use tokio::net::UdpSocket;

const PACKET_PAYLOAD: usize = 160;
const TICKS_PER_SEC: u64 = 50;
/// /proc stat times are in USER_HZ, 100 on every Linux ABI Switchboard targets.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

#[allow(clippy::disallowed_methods)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn cpu_of(stat_path: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    let Some(after) = s.rfind(')').and_then(|i| s.get(i + 1..)) else {
        return 0.0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / CLOCK_TICKS_PER_SEC
}

/// The relay runtime and the thread ids of its workers.
fn relay_runtime() -> (tokio::runtime::Runtime, Arc<Mutex<Vec<String>>>) {
    let tids = Arc::new(Mutex::new(Vec::new()));
    let t2 = Arc::clone(&tids);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || {
            if let Ok(link) = std::fs::read_link("/proc/thread-self") {
                t2.lock()
                    .expect("tids")
                    .push(link.to_string_lossy().into_owned());
            }
        })
        .build()
        .expect("relay runtime");
    (rt, tids)
}

/// CPU of the runtime's workers and of the media relay threads (named `sb-relay-N`).
fn relay_cpu(tids: &Mutex<Vec<String>>) -> f64 {
    let workers: f64 = tids
        .lock()
        .expect("tids")
        .iter()
        .map(|t| cpu_of(&format!("/proc/{t}/stat")))
        .sum();
    let relay_threads: f64 = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("sb-relay"))
                })
                .map(|t| cpu_of(&t.path().join("stat").to_string_lossy()))
                .sum()
        })
        .unwrap_or(0.0);
    workers + relay_threads
}

struct Peers {
    /// The far ends' sockets, registered with the generator's own runtime once it runs: on
    /// the relay's runtime their readiness would be the relay's CPU.
    caller: std::net::UdpSocket,
    agent: std::net::UdpSocket,
    caller_target: SocketAddr,
    agent_target: SocketAddr,
    /// Payload type the agent far end sends (8 = PCMA when the legs' laws differ).
    agent_pt: u8,
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
}

/// Sends one packet per peer per 20 ms tick for `secs`, counting what comes back.
fn generate(peers: Vec<Peers>, secs: f64, counts: Arc<Counts>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("generator runtime");
        rt.block_on(async move {
            let peers: Vec<Ends> = peers.into_iter().map(Ends::new).collect();
            for p in &peers {
                for sock in [&p.caller, &p.agent] {
                    let sock = Arc::clone(sock);
                    let counts = Arc::clone(&counts);
                    tokio::spawn(async move {
                        let mut buf = [0u8; 2048];
                        while sock.recv_from(&mut buf).await.is_ok() {
                            counts.received.fetch_add(1, Relaxed);
                        }
                    });
                }
            }
            let ticks = (secs * TICKS_PER_SEC as f64) as u32;
            let mut interval = tokio::time::interval(Duration::from_millis(1000 / TICKS_PER_SEC));
            let mut wire = Vec::with_capacity(200);
            for n in 0..ticks {
                interval.tick().await;
                for (i, p) in peers.iter().enumerate() {
                    for (k, (sock, to, pt)) in [
                        (&p.caller, p.caller_target, 0u8),
                        (&p.agent, p.agent_target, p.agent_pt),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        let pkt = RtpPacket {
                            marker: n == 0,
                            payload_type: pt,
                            sequence: n as u16,
                            timestamp: n * 160,
                            ssrc: (i * 2 + k) as u32,
                            payload: bytes_payload(pt),
                        };
                        pkt.write_to(&mut wire).expect("marshal");
                        if sock.try_send_to(&wire, to).is_ok() {
                            counts.sent.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
            // Let the last packets arrive.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
    })
}

fn bytes_payload(pt: u8) -> bytes::Bytes {
    static ULAW: [u8; PACKET_PAYLOAD] = [0x2A; PACKET_PAYLOAD];
    static ALAW: [u8; PACKET_PAYLOAD] = [0xD5; PACKET_PAYLOAD];
    bytes::Bytes::from_static(if pt == 0 { &ULAW } else { &ALAW })
}

fn bind_peer() -> std::net::UdpSocket {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer socket");
    s.set_nonblocking(true).expect("non-blocking");
    s
}

/// [`Peers`] on the generator's runtime.
struct Ends {
    caller: Arc<UdpSocket>,
    agent: Arc<UdpSocket>,
    caller_target: SocketAddr,
    agent_target: SocketAddr,
    agent_pt: u8,
}

impl Ends {
    fn new(p: Peers) -> Ends {
        let tokio =
            |s| Arc::new(UdpSocket::from_std(s).expect("far end on the generator's runtime"));
        Ends {
            caller: tokio(p.caller),
            agent: tokio(p.agent),
            caller_target: p.caller_target,
            agent_target: p.agent_target,
            agent_pt: p.agent_pt,
        }
    }
}

fn sdp(addr: SocketAddr, pt: u8) -> Sdp {
    let text = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP {pt} 101\r\na=rtpmap:101 telephone-event/8000\r\n",
        addr.port()
    );
    Sdp::parse(&text).expect("sdp")
}

struct Outcome {
    relayed_per_sec: f64,
    relay_cpu: f64,
    process_cpu: f64,
    loss: f64,
}

fn measure(
    rt: &tokio::runtime::Runtime,
    tids: &Mutex<Vec<String>>,
    peers: Vec<Peers>,
    secs: f64,
    relayed: impl Fn(&Counts) -> u64,
) -> Outcome {
    let counts = Arc::new(Counts::default());
    let warm = 0.3;
    let gen_thread = generate(peers, secs + warm, Arc::clone(&counts));
    std::thread::sleep(Duration::from_secs_f64(warm));
    let (cpu0, proc0, rel0, t0) = (
        relay_cpu(tids),
        cpu_of("/proc/self/stat"),
        relayed(&counts),
        now(),
    );
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (cpu1, proc1, rel1, t1) = (
        relay_cpu(tids),
        cpu_of("/proc/self/stat"),
        relayed(&counts),
        now(),
    );
    gen_thread.join().expect("generator");
    let _ = rt;
    let sent = counts.sent.load(Relaxed) as f64;
    let received = counts.received.load(Relaxed) as f64;
    let elapsed = (t1 - t0).as_secs_f64();
    Outcome {
        relayed_per_sec: (rel1 - rel0) as f64 / elapsed,
        relay_cpu: cpu1 - cpu0,
        process_cpu: proc1 - proc0,
        loss: if sent > 0.0 {
            (sent - received).max(0.0) / sent
        } else {
            0.0
        },
    }
}

fn run_relay(calls: usize, secs: f64, transcode: bool, base_port: u16) -> Outcome {
    let (rt, tids) = relay_runtime();
    let sounds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sounds");
    let media = Media::with_relay_threads(
        MediaConfig {
            // Below the kernel's ephemeral range, so the far ends' sockets never take pool ports.
            ports: (base_port, base_port + (calls as u16) * 4 + 100),
            bind_ip: "127.0.0.1".parse().expect("ip"),
            advertised_ip: "127.0.0.1".parse().expect("ip"),
            sounds_dir: sounds,
        },
        1,
    )
    .expect("media");
    let agent_pt = if transcode { 8 } else { 0 };
    let (sessions, peers): (Vec<Session>, Vec<Peers>) = rt.block_on(async {
        let mut sessions = Vec::new();
        let mut peers = Vec::new();
        for i in 0..calls {
            let mut s = media.open_session(&format!("bench-{i}")).expect("session");
            let (caller, agent) = (bind_peer(), bind_peer());
            s.caller_answer(&sdp(caller.local_addr().expect("addr"), 0))
                .expect("answer");
            s.agent_offer();
            s.set_agent_remote(&sdp(agent.local_addr().expect("addr"), agent_pt))
                .expect("agent");
            s.bridge().expect("bridge");
            peers.push(Peers {
                caller_target: SocketAddr::from(([127, 0, 0, 1], s.caller_port())),
                agent_target: SocketAddr::from(([127, 0, 0, 1], s.agent_port())),
                agent_pt,
                caller,
                agent,
            });
            sessions.push(s);
        }
        (sessions, peers)
    });
    let out = measure(&rt, &tids, peers, secs, |_| media.totals().packets_out);
    rt.block_on(async {
        for s in sessions {
            s.close().await;
        }
    });
    out
}

/// The baseline: per call, two sockets; whatever arrives on one goes out of the other to
/// the address that last sent to that other one.
fn run_forwarder(calls: usize, secs: f64) -> Outcome {
    let (rt, tids) = relay_runtime();
    let forwarded = Arc::new(AtomicU64::new(0));
    let peers = rt.block_on(async {
        let mut peers = Vec::new();
        for _ in 0..calls {
            let a = UdpSocket::bind("127.0.0.1:0").await.expect("a");
            let b = UdpSocket::bind("127.0.0.1:0").await.expect("b");
            let (caller, agent) = (bind_peer(), bind_peer());
            let mut remote_a = Some(caller.local_addr().expect("c"));
            let mut remote_b = Some(agent.local_addr().expect("g"));
            peers.push(Peers {
                caller_target: a.local_addr().expect("a"),
                agent_target: b.local_addr().expect("b"),
                agent_pt: 0,
                caller,
                agent,
            });
            let fwd = Arc::clone(&forwarded);
            tokio::spawn(async move {
                let (mut buf_a, mut buf_b) = ([0u8; 2048], [0u8; 2048]);
                loop {
                    tokio::select! {
                        Ok((n, src)) = a.recv_from(&mut buf_a) => {
                            remote_a = Some(src);
                            if let (Some(to), Some(d)) = (remote_b, buf_a.get(..n)) && b.try_send_to(d, to).is_ok() {
                                fwd.fetch_add(1, Relaxed);
                            }
                        }
                        Ok((n, src)) = b.recv_from(&mut buf_b) => {
                            remote_b = Some(src);
                            if let (Some(to), Some(d)) = (remote_a, buf_b.get(..n)) && a.try_send_to(d, to).is_ok() {
                                fwd.fetch_add(1, Relaxed);
                            }
                        }
                    }
                }
            });
        }
        peers
    });
    let f = Arc::clone(&forwarded);
    let out = measure(&rt, &tids, peers, secs, move |_| f.load(Relaxed));
    rt.shutdown_timeout(Duration::from_millis(100));
    out
}

/// Far-end pairs on loopback for `calls` calls.
fn far_ends(calls: usize) -> Vec<(std::net::UdpSocket, std::net::UdpSocket)> {
    (0..calls).map(|_| (bind_peer(), bind_peer())).collect()
}

/// The floor: each far end sends straight to the other, no relay at all. What a relay costs is
/// the CPU it adds to this.
fn run_direct(calls: usize, secs: f64) -> Outcome {
    let (rt, tids) = relay_runtime();
    let peers = far_ends(calls)
        .into_iter()
        .map(|(caller, agent)| Peers {
            caller_target: agent.local_addr().expect("agent"),
            agent_target: caller.local_addr().expect("caller"),
            agent_pt: 0,
            caller,
            agent,
        })
        .collect();
    let out = measure(&rt, &tids, peers, secs, |c| c.received.load(Relaxed));
    rt.shutdown_timeout(Duration::from_millis(100));
    out
}

/// The baseline's forwarding on io_uring (`rtp_relay_uring.rs`): what batching the system
/// calls across sockets would save. `Err` says why it did not run (io_uring unavailable).
fn run_uring_forwarder(calls: usize, secs: f64) -> Result<Outcome, String> {
    let (rt, tids) = relay_runtime();
    let ends = far_ends(calls);
    let addrs: Vec<(SocketAddr, SocketAddr)> = ends
        .iter()
        .map(|(c, a)| {
            (
                c.local_addr().expect("caller"),
                a.local_addr().expect("agent"),
            )
        })
        .collect();
    let fwd = uring::start(&addrs).map_err(|e| format!("io_uring: {e}"))?;
    let peers = ends
        .into_iter()
        .zip(&fwd.ports)
        .map(|((caller, agent), &(a, b))| Peers {
            caller_target: a,
            agent_target: b,
            agent_pt: 0,
            caller,
            agent,
        })
        .collect();
    let f = Arc::clone(&fwd.forwarded);
    let out = measure(&rt, &tids, peers, secs, move |_| f.load(Relaxed));
    fwd.stop.store(true, Relaxed);
    fwd.thread
        .join()
        .map_err(|_| "io_uring forwarder panicked".to_owned())?;
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(out)
}

const NFT_TABLE: &str = "sb_rtp_bench";

fn nft(script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Kernel-side forwarding, for comparison: no process in the media path. Each call has two
/// "relay ports" that nothing listens on; nftables NAT rewrites a packet sent to the caller-side
/// port into one from the agent-side port to the agent (and back), and conntrack carries every
/// later packet of the flow — what an in-kernel RTP forwarder does, without its RTP checks
/// (sequence, SSRC, payload type, source latching, counters). Needs `nft` and CAP_NET_ADMIN;
/// `Err` says why it did not run.
fn run_kernel_nat(calls: usize, secs: f64, base_port: u16) -> Result<Outcome, String> {
    let (rt, tids) = relay_runtime();
    let ends = far_ends(calls);
    let port = |i: usize, k: usize| base_port.saturating_add(u16::try_from(i * 2 + k).unwrap_or(0));
    let (mut to_far, mut from_near, mut peers) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (caller, agent)) in ends.into_iter().enumerate() {
        let (a, b) = (port(i, 0), port(i, 1));
        let (c, g) = (
            caller.local_addr().expect("caller").port(),
            agent.local_addr().expect("agent").port(),
        );
        to_far.push(format!("{a} : 127.0.0.1 . {g}, {b} : 127.0.0.1 . {c}"));
        from_near.push(format!("{g} : 127.0.0.1 . {b}, {c} : 127.0.0.1 . {a}"));
        peers.push(Peers {
            caller_target: SocketAddr::from(([127, 0, 0, 1], a)),
            agent_target: SocketAddr::from(([127, 0, 0, 1], b)),
            agent_pt: 0,
            caller,
            agent,
        });
    }
    let last = port(calls, 0);
    let _ = nft(&format!("delete table ip {NFT_TABLE}\n"));
    let script = [
        format!("table ip {NFT_TABLE} {{"),
        format!(
            "map to_far {{ type inet_service : ipv4_addr . inet_service; elements = {{ {} }}; }}",
            to_far.join(", ")
        ),
        format!(
            "map from_near {{ type inet_service : ipv4_addr . inet_service; elements = {{ {} }}; }}",
            from_near.join(", ")
        ),
        "chain out {".to_owned(),
        "type nat hook output priority -100; policy accept;".to_owned(),
        format!("ip daddr 127.0.0.1 udp dport {base_port}-{last} dnat ip to udp dport map @to_far"),
        "}".to_owned(),
        "chain post {".to_owned(),
        "type nat hook postrouting priority 100; policy accept;".to_owned(),
        "ct status dnat snat ip to udp dport map @from_near".to_owned(),
        "}".to_owned(),
        "}".to_owned(),
    ];
    nft(&(script.join("\n") + "\n"))?;
    let out = measure(&rt, &tids, peers, secs, |c| c.received.load(Relaxed));
    if let Err(e) = nft(&format!("delete table ip {NFT_TABLE}\n")) {
        eprintln!("rtp_relay: could not remove nftables table {NFT_TABLE}: {e}");
    }
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(out)
}

fn report(label: &str, calls: usize, secs: f64, o: &Outcome) {
    let per_call = o.relay_cpu / calls as f64 / secs;
    println!(
        "{label:<28} calls {calls:>4}  relayed {:>8.0} pkt/s  relay CPU {:>5.2} s ({:>5.1} %)  process CPU {:>5.2} s  CPU per call {:>7.3} ms/s  ≈{:>6.0} calls/core  loss {:.3} %",
        o.relayed_per_sec,
        o.relay_cpu,
        100.0 * o.relay_cpu / secs,
        o.process_cpu,
        per_call * 1000.0,
        if per_call > 0.0 {
            1.0 / per_call
        } else {
            f64::INFINITY
        },
        o.loss * 100.0
    );
}

fn main() {
    let secs: f64 = std::env::var("RTP_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0);
    let port: u16 = std::env::var("RTP_BENCH_PORT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24_000);
    // Ports nothing listens on and no far end takes (below the servers' RTP ranges and the
    // kernel's ephemeral range): the NAT rules rewrite whatever loopback traffic goes to them.
    let nat_port: u16 = std::env::var("RTP_BENCH_NAT_PORT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7_000);
    println!("rtp_relay: {secs} s per scenario, 50 packets/s each way per call, 1 relay thread");
    let mut rows = Vec::new();
    for &calls in &[50usize, 200, 500] {
        let base = run_forwarder(calls, secs);
        report("baseline forwarder", calls, secs, &base);
        let relay = run_relay(calls, secs, false, port);
        report("switchboard relay (PCMU)", calls, secs, &relay);
        let uring = run_uring_forwarder(calls, secs);
        match &uring {
            Ok(u) => report("forwarder on io_uring", calls, secs, u),
            Err(e) => println!("forwarder on io_uring @{calls}: skipped: {e}"),
        }
        rows.push((calls, base, relay, uring.ok()));
    }
    let transcoding = run_relay(200, secs, true, port);
    report("switchboard relay PCMU<->PCMA", 200, secs, &transcoding);
    // What relaying adds to the far ends' own cost, user space against the kernel.
    for &calls in &[200usize, 500] {
        let direct = run_direct(calls, secs);
        report("no relay (far ends direct)", calls, secs, &direct);
        let relay = run_relay(calls, secs, false, port);
        match run_kernel_nat(calls, secs, nat_port) {
            Ok(kernel) => {
                report("kernel NAT (nftables)", calls, secs, &kernel);
                let added = |o: &Outcome| {
                    (o.process_cpu - direct.process_cpu) / calls as f64 / secs * 1000.0
                };
                println!(
                    "added CPU per call @{calls}: switchboard relay {:.3} ms/s (relay threads {:.3}), kernel NAT {:.3} ms/s; loss {:.3} % / {:.3} %",
                    added(&relay),
                    relay.relay_cpu / calls as f64 / secs * 1000.0,
                    added(&kernel),
                    relay.loss * 100.0,
                    kernel.loss * 100.0
                );
            }
            Err(e) => println!("kernel NAT (nftables) @{calls}: skipped: {e}"),
        }
    }
    let ratio = |a: &Outcome, b: &Outcome| {
        if b.relay_cpu > 0.0 {
            a.relay_cpu / b.relay_cpu
        } else {
            f64::NAN
        }
    };
    for (calls, base, relay, uring) in &rows {
        let uring = uring.as_ref().map_or_else(
            || "io_uring forwarder not run".to_owned(),
            |u| format!("io_uring forwarder/baseline CPU {:.2}x", ratio(u, base)),
        );
        println!(
            "ratio @{calls} calls: relay/baseline CPU {:.2}x, throughput {:.3}x; {uring}",
            ratio(relay, base),
            relay.relayed_per_sec / base.relayed_per_sec.max(1.0)
        );
    }
}
