//! RTP far ends for the relay series of `benches/load`: the trunk side and the agent side of M
//! bridged calls, on two UDP sockets. It is a measuring instrument, not part of Switchboard.
//!
//! * Trunk side: every source that sends it RTP (Switchboard's caller-leg port, which starts
//!   with hold music) becomes a call; from then on it sends that call one 172-byte PCMU packet
//!   every 20 ms (50 packets/s), paced by absolute deadlines.
//! * Agent side: echoes every probe packet back to where it came from (Switchboard's agent-leg
//!   port), so each call carries 50 packets/s each way through the relay.
//!
//! Each probe payload carries a magic, a "counted" flag, the call index, a sequence number and
//! the send time, so the receiving side measures what the relay added: loss (counted packets
//! sent vs received), one-way transit (trunk → relay → agent) and round trip (trunk → relay →
//! agent → relay → trunk), and RFC 3550 interarrival jitter per stream. Only packets sent in the
//! counting window are counted; the streams run before and after it so the window sees steady
//! state. Prints one JSON object on stdout.
//!
//! With `--call-ms` it measures a series of short calls instead (the load bench's 2-s calls):
//! every source that starts sending hold music is a new call (a port that ends one call and is
//! handed to a later one is a new call again once its stream has ended and it fell silent); the
//! call gets a packet every `--interval-ms` from `--start-ms` after it was learned (time for the
//! agent leg to be bridged) until `--call-ms`, which must end before the call does. Every packet
//! is counted.
//! It runs until its standard input closes, lets the streams under way finish, waits
//! `--drain-ms` and prints the totals each way and the calls that had media both ways.
//!
//! Hand-written on std plus `socket2` for the receive buffer size (no tokio, no RTP crate): it
//! needs two sockets, two threads and a 12-byte header, and must stay cheap next to the server
//! it measures. Both sockets ask for a 4 MB receive buffer (capped by net.core.rmem_max) and the
//! kernel's drop count on them is reported, so the probe's own drops are not taken for relay loss.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

mod calls;

const MAGIC: &[u8; 4] = b"SBLP";
const PACKET: usize = 172;
const PTIME: Duration = Duration::from_millis(20);

struct Args {
    trunk_port: u16,
    agent_port: u16,
    warmup: Duration,
    window: Duration,
    drain: Duration,
    /// Per-call mode: how long each learned call is streamed (None: the counting-window mode).
    call: Option<Duration>,
    start: Duration,
    interval: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        trunk_port: 0,
        agent_port: 0,
        warmup: Duration::from_secs(2),
        window: Duration::from_secs(5),
        drain: Duration::from_millis(500),
        call: None,
        start: Duration::from_millis(250),
        interval: Duration::from_millis(200),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let n: u64 = v.parse().map_err(|_| format!("{k}: not a number: {v}"))?;
        match k.as_str() {
            "--trunk-port" => a.trunk_port = u16::try_from(n).map_err(|e| e.to_string())?,
            "--agent-port" => a.agent_port = u16::try_from(n).map_err(|e| e.to_string())?,
            "--warmup-ms" => a.warmup = Duration::from_millis(n),
            "--window-ms" => a.window = Duration::from_millis(n),
            "--drain-ms" => a.drain = Duration::from_millis(n),
            "--call-ms" => a.call = Some(Duration::from_millis(n)),
            "--start-ms" => a.start = Duration::from_millis(n),
            "--interval-ms" => a.interval = Duration::from_millis(n.max(1)),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.trunk_port == 0 || a.agent_port == 0 {
        return Err("usage: rtpprobe --trunk-port P --agent-port P [--warmup-ms N] [--window-ms N] [--drain-ms N] \
             [--call-ms N [--start-ms N] [--interval-ms N]]"
            .into());
    }
    if a.call.is_some_and(|c| c <= a.start) {
        return Err("--call-ms must be longer than --start-ms".into());
    }
    Ok(a)
}

/// Per-stream receive statistics for counted packets.
#[derive(Default)]
struct Stream {
    received: u64,
    /// The stream's first packet (sequence number 1) arrived.
    got_first: bool,
    last_transit_ns: Option<i128>,
    jitter_ns: f64,
}

#[derive(Default)]
struct Side {
    streams: HashMap<u32, Stream>,
    transits_us: Vec<u32>,
}

impl Side {
    fn record(&mut self, call: u32, seq: u32, transit_ns: i128) {
        let s = self.streams.entry(call).or_default();
        s.received += 1;
        s.got_first |= seq == 1;
        if let Some(prev) = s.last_transit_ns {
            // RFC 3550 §6.4.1: J += (|D| - J) / 16.
            let d = (transit_ns - prev).abs() as f64;
            s.jitter_ns += (d - s.jitter_ns) / 16.0;
        }
        s.last_transit_ns = Some(transit_ns);
        self.transits_us
            .push(u32::try_from(transit_ns.max(0) / 1000).unwrap_or(u32::MAX));
    }

    fn received(&self) -> u64 {
        self.streams.values().map(|s| s.received).sum()
    }

    fn summary(&mut self) -> String {
        self.transits_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.transits_us.is_empty() {
                return 0.0;
            }
            let i = ((self.transits_us.len() - 1) as f64 * p).round() as usize;
            f64::from(self.transits_us[i.min(self.transits_us.len() - 1)]) / 1000.0
        };
        let n = self.streams.len().max(1) as f64;
        let mean_jitter = self.streams.values().map(|s| s.jitter_ns).sum::<f64>() / n / 1e6;
        let max_jitter = self
            .streams
            .values()
            .map(|s| s.jitter_ns)
            .fold(0.0, f64::max)
            / 1e6;
        format!(
            "{{\"streams\":{},\"received\":{},\"transit_p50_ms\":{:.3},\"transit_p99_ms\":{:.3},\"transit_max_ms\":{:.3},\"jitter_mean_ms\":{:.3},\"jitter_max_ms\":{:.3}}}",
            self.streams.len(),
            self.received(),
            pct(0.5),
            pct(0.99),
            pct(1.0),
            mean_jitter,
            max_jitter
        )
    }
}

/// The only place that reads the OS clock: one epoch, every later time is `epoch.elapsed()`.
mod clock {
    use std::time::Instant;

    #[allow(clippy::disallowed_methods)]
    pub fn start() -> Instant {
        Instant::now()
    }
}

/// Datagrams the kernel dropped on this process's own sockets (receive buffer full): the last
/// column of `/proc/net/udp` for the two local ports. Tells the probe's drops from the relay's.
fn own_socket_drops(ports: [u16; 2]) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let port = cols.get(1)?.rsplit(':').next()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            if !ports.contains(&port) {
                return None;
            }
            cols.last()?.parse::<u64>().ok()
        })
        .sum()
}

/// A probe packet's (counted, call, sequence number, send time).
fn parse_probe(buf: &[u8]) -> Option<(bool, u32, u32, u64)> {
    let p = buf.get(12..)?;
    if p.get(..4)? != MAGIC {
        return None;
    }
    let counted = *p.get(4)? == 1;
    let call = u32::from_be_bytes(p.get(5..9)?.try_into().ok()?);
    let seq = u32::from_be_bytes(p.get(9..13)?.try_into().ok()?);
    let sent_ns = u64::from_be_bytes(p.get(13..21)?.try_into().ok()?);
    Some((counted, call, seq, sent_ns))
}

/// One probe packet: RTP header (PCMU, SSRC from the call index) then the magic, the counted
/// flag, the call index, the sequence number and the send time.
fn write_probe(pkt: &mut [u8; PACKET], call: u32, seq: u16, counted: bool, now_ns: u64) {
    pkt[0] = 0x80;
    pkt[1] = 0; // PCMU
    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
    pkt[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    pkt[8..12].copy_from_slice(&(0x5B00_0000 | call).to_be_bytes());
    pkt[12..16].copy_from_slice(MAGIC);
    pkt[16] = u8::from(counted);
    pkt[17..21].copy_from_slice(&call.to_be_bytes());
    pkt[21..25].copy_from_slice(&u32::from(seq).to_be_bytes());
    pkt[25..33].copy_from_slice(&now_ns.to_be_bytes());
}

/// The agent side: records every counted probe packet and echoes each probe packet back to
/// where it came from (Switchboard's agent-leg port).
fn spawn_echo(
    agent: &UdpSocket,
    stop: &Arc<AtomicBool>,
    echoed: &Arc<AtomicU64>,
    now_ns: impl Fn() -> u64 + Send + 'static,
) -> thread::JoinHandle<Side> {
    let sock = agent.try_clone().expect("clone");
    let (stop, echoed) = (Arc::clone(stop), Arc::clone(echoed));
    thread::spawn(move || {
        let mut side = Side::default();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let now = now_ns();
            if let Some((counted, call, seq, sent)) = parse_probe(&buf[..n]) {
                if counted {
                    side.record(call, seq, i128::from(now) - i128::from(sent));
                }
                if sock.send_to(&buf[..n], from).is_ok() {
                    echoed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        side
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let trunk = UdpSocket::bind(("127.0.0.1", args.trunk_port)).expect("bind trunk port");
    let agent = UdpSocket::bind(("127.0.0.1", args.agent_port)).expect("bind agent port");
    for s in [&trunk, &agent] {
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let _ = socket2::SockRef::from(s).set_recv_buffer_size(4 << 20);
    }
    let epoch = clock::start();
    let now_ns = move || u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if let Some(call) = args.call {
        calls::run(&args, call, &trunk, &agent, now_ns);
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let peers: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let echoed = Arc::new(AtomicU64::new(0));

    let trunk_rx = {
        let sock = trunk.try_clone().expect("clone");
        let (stop, peers) = (Arc::clone(&stop), Arc::clone(&peers));
        thread::spawn(move || {
            let mut side = Side::default();
            let mut known: HashMap<SocketAddr, ()> = HashMap::new();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let now = now_ns();
                match parse_probe(&buf[..n]) {
                    Some((true, call, seq, sent)) => {
                        side.record(call, seq, i128::from(now) - i128::from(sent))
                    }
                    Some(_) => {}
                    None => {
                        if known.insert(from, ()).is_none() {
                            peers.lock().expect("peers").push(from);
                        }
                    }
                }
            }
            side
        })
    };
    let agent_rx = spawn_echo(&agent, &stop, &echoed, now_ns);

    let window_start = args.warmup;
    let window_end = args.warmup + args.window;
    let end = window_end + args.drain;
    let mut sent_counted: u64 = 0;
    let mut sent_total: u64 = 0;
    let mut send_errors: u64 = 0;
    let mut calls_in_window: usize = 0;
    let mut seq: Vec<u16> = Vec::new();
    let mut pkt = [0xFFu8; PACKET];
    let mut tick: u32 = 0;
    loop {
        let deadline = PTIME * tick;
        if deadline >= end {
            break;
        }
        let elapsed = epoch.elapsed();
        if deadline > elapsed {
            thread::sleep(deadline - elapsed);
        }
        tick += 1;
        let counted = deadline >= window_start && deadline < window_end;
        let targets = peers.lock().expect("peers").clone();
        if counted && calls_in_window == 0 {
            calls_in_window = targets.len();
        }
        seq.resize(targets.len(), 0);
        for (i, peer) in targets.iter().enumerate() {
            let call = u32::try_from(i).unwrap_or(u32::MAX);
            seq[i] = seq[i].wrapping_add(1);
            write_probe(&mut pkt, call, seq[i], counted, now_ns());
            match trunk.send_to(&pkt, peer) {
                Ok(_) => {
                    sent_total += 1;
                    if counted {
                        sent_counted += 1;
                    }
                }
                Err(_) => send_errors += 1,
            }
        }
    }
    let own_drops = own_socket_drops([args.trunk_port, args.agent_port]);
    stop.store(true, Ordering::Relaxed);
    let mut trunk_side = trunk_rx.join().expect("trunk thread");
    let mut agent_side = agent_rx.join().expect("agent thread");
    let calls = peers.lock().expect("peers").len();
    println!(
        "{{\"calls\":{calls},\"calls_in_window\":{calls_in_window},\"sent_total\":{sent_total},\"sent_counted\":{sent_counted},\"send_errors\":{send_errors},\"probe_socket_drops\":{own_drops},\"echoed\":{},\"window_s\":{:.3},\"one_way\":{},\"round_trip\":{}}}",
        echoed.load(Ordering::Relaxed),
        args.window.as_secs_f64(),
        agent_side.summary(),
        trunk_side.summary()
    );
}
