//! Per-call mode (`--call-ms`): RTP both ways through every call of a series of short calls.
//!
//! The trunk side learns a call from its first hold-music packet (the source is Switchboard's
//! caller-leg port) and streams to it from `start` to `call` after that. A source is a new call
//! again only once its stream is over and it has been silent for `REUSE_GAP` (the server hands
//! freed ports to later calls; a call still hearing music is not a new one). A
//! scheduler thread sends every call's packets at absolute deadlines; the agent side echoes.
//! Every packet is counted, so the totals are exact: sent and received each way, and per call
//! whether media arrived both ways and whether every packet did.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use super::{Args, PACKET, Side, own_socket_drops, parse_probe, spawn_echo, write_probe};

/// Silence after which a caller-leg address whose stream is over counts as a new call.
const REUSE_GAP_NS: u64 = 300_000_000;

/// A call the trunk side learned: its index, Switchboard's caller-leg address and when.
struct Learned {
    call: u32,
    peer: SocketAddr,
    at_ns: u64,
}

pub fn run(
    args: &Args,
    call_len: Duration,
    trunk: &UdpSocket,
    agent: &UdpSocket,
    now_ns: impl Fn() -> u64 + Copy + Send + 'static,
) {
    let call_ns = u64::try_from(call_len.as_nanos()).unwrap_or(u64::MAX);
    let start_ns = u64::try_from(args.start.as_nanos()).unwrap_or(u64::MAX);
    let interval_ns = u64::try_from(args.interval.as_nanos()).unwrap_or(u64::MAX);
    // `closing`: standard input closed, learn no more calls; `stop`: the receivers end.
    let closing = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    {
        let closing = Arc::clone(&closing);
        thread::spawn(move || {
            let mut sink = [0u8; 256];
            while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
            closing.store(true, Ordering::Relaxed);
        });
    }
    let (tx, rx) = mpsc::channel::<Learned>();
    let trunk_rx = {
        let sock = trunk.try_clone().expect("clone");
        let (stop, closing) = (Arc::clone(&stop), Arc::clone(&closing));
        thread::spawn(move || {
            let mut side = Side::default();
            // Caller-leg address -> (end of the stream sent to it, last packet from it).
            let mut streams: HashMap<SocketAddr, (u64, u64)> = HashMap::new();
            let mut next_call: u32 = 0;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let now = now_ns();
                let known = streams.get_mut(&from);
                let new_call = match known {
                    None => true,
                    Some((end, last)) => {
                        let silent = now.saturating_sub(*last);
                        *last = now;
                        now >= *end && silent >= REUSE_GAP_NS
                    }
                };
                match parse_probe(&buf[..n]) {
                    Some((_, call, seq, sent)) => {
                        side.record(call, seq, i128::from(now) - i128::from(sent))
                    }
                    None => {
                        if new_call && !closing.load(Ordering::Relaxed) {
                            streams.insert(from, (now.saturating_add(call_ns), now));
                            let learned = Learned {
                                call: next_call,
                                peer: from,
                                at_ns: now,
                            };
                            next_call += 1;
                            if tx.send(learned).is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            side
        })
    };
    let agent_rx = spawn_echo(agent, &stop, &echoed, now_ns);

    // The scheduler: deadlines of every call's next packet, earliest first.
    let mut due: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut calls: Vec<(SocketAddr, u64, u16)> = Vec::new(); // peer, learned at, last seq
    let mut sent: Vec<u64> = Vec::new();
    let mut send_errors: u64 = 0;
    let mut pkt = [0xFFu8; PACKET];
    loop {
        let wait = match due.peek() {
            Some(Reverse((at, _))) => Duration::from_nanos(at.saturating_sub(now_ns())),
            None => Duration::from_millis(5),
        };
        match rx.recv_timeout(wait.min(Duration::from_millis(5))) {
            Ok(l) => {
                let i = usize::try_from(l.call).expect("call index");
                calls.resize(i + 1, (l.peer, 0, 0));
                sent.resize(i + 1, 0);
                calls[i] = (l.peer, l.at_ns, 0);
                due.push(Reverse((l.at_ns + start_ns, l.call)));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
        }
        let now = now_ns();
        while let Some(&Reverse((at, call))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            let i = usize::try_from(call).expect("call index");
            let (peer, learned, seq) = &mut calls[i];
            *seq = seq.wrapping_add(1);
            write_probe(&mut pkt, call, *seq, true, now_ns());
            match trunk.send_to(&pkt, *peer) {
                Ok(_) => sent[i] += 1,
                Err(_) => send_errors += 1,
            }
            let next = at + interval_ns;
            if next < *learned + call_ns {
                due.push(Reverse((next, call)));
            }
        }
        if due.is_empty() && closing.load(Ordering::Relaxed) {
            // Calls learned between the last check and `closing` are still in the channel.
            let mut late = false;
            while let Ok(l) = rx.try_recv() {
                let i = usize::try_from(l.call).expect("call index");
                calls.resize(i + 1, (l.peer, 0, 0));
                sent.resize(i + 1, 0);
                calls[i] = (l.peer, l.at_ns, 0);
                due.push(Reverse((l.at_ns + start_ns, l.call)));
                late = true;
            }
            if !late {
                break;
            }
        }
    }
    thread::sleep(args.drain);
    let own_drops = own_socket_drops([args.trunk_port, args.agent_port]);
    stop.store(true, Ordering::Relaxed);
    let mut trunk_side = trunk_rx.join().expect("trunk thread");
    let mut agent_side = agent_rx.join().expect("agent thread");
    let got = |side: &Side, call: usize| {
        u32::try_from(call)
            .ok()
            .and_then(|c| side.streams.get(&c))
            .map_or(0, |s| s.received)
    };
    let (mut both_ways, mut complete, mut none, mut first_lost) = (0u64, 0u64, 0u64, 0u64);
    for (i, &n) in sent.iter().enumerate() {
        let (to_agent, to_trunk) = (got(&agent_side, i), got(&trunk_side, i));
        // Media that reached the agent, but not the first packet: sent before the bridge?
        let first = u32::try_from(i)
            .ok()
            .and_then(|c| agent_side.streams.get(&c))
            .is_some_and(|s| s.got_first);
        if to_agent > 0 && !first {
            first_lost += 1;
        }
        if to_agent > 0 && to_trunk > 0 {
            both_ways += 1;
        }
        if n > 0 && to_agent == n && to_trunk == n {
            complete += 1;
        }
        if to_agent == 0 && to_trunk == 0 {
            none += 1;
        }
    }
    println!(
        "{{\"mode\":\"calls\",\"calls\":{},\"calls_media_both_ways\":{both_ways},\"calls_every_packet\":{complete},\
         \"calls_no_media\":{none},\"calls_first_packet_lost\":{first_lost},\"sent_to_agent\":{},\"received_at_agent\":{},\"sent_to_trunk\":{},\
         \"received_at_trunk\":{},\"send_errors\":{send_errors},\"probe_socket_drops\":{own_drops},\
         \"one_way\":{},\"round_trip\":{}}}",
        sent.len(),
        sent.iter().sum::<u64>(),
        agent_side.received(),
        echoed.load(Ordering::Relaxed),
        trunk_side.received(),
        agent_side.summary(),
        trunk_side.summary()
    );
}
