//! Loopback ports for the tests, claimed across the test processes that run at once.
//!
//! nextest runs every test in a process of its own, and the programs a test starts (the
//! server, SIPp, baresip, Kamailio) bind the ports the test chose for them only later. A
//! port taken from the kernel's ephemeral range (`bind(0)`, then closed) can meanwhile be
//! handed to any socket of any process — an outgoing connection, another test's probe —
//! and the program then fails to start ("Address already in use"). So ports are chosen
//! below the ephemeral range (32768+ on Linux), where the kernel never numbers a socket by
//! itself, and each one is claimed by an exclusive `flock` on a file named after it, held
//! until this process exits (the kernel drops the lock then, even on a crash):
//!
//! - 10000–19999: single ports (SIP, HTTP, TLS listeners, SIPp, baresip's SIP and control)
//!   and SIPp's media ports, four in a row;
//! - 20000–27999: blocks of 80, a test server's RTP range;
//! - 28400–29399: blocks of 20, a baresip's RTP range.
//!
//! (28000–28399 belong to the media crate's tests, 29400–32767 to the call-control
//! simulations of `calls/sim.rs`; neither is handed out here.)

use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// The claims this process holds: closing a file would release its lock.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Where the claim files are (shared by every test process on the machine).
fn claims_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("switchboard-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port claims directory");
    dir
}

/// Claims `name` for this process: false when another process (or this one) holds it.
fn claim(name: &str) -> bool {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(claims_dir().join(name))
        .expect("open a port claim file");
    if file.try_lock().is_err() {
        return false;
    }
    HELD.lock().expect("port claims").push(file);
    true
}

/// A starting point that differs between processes and between calls, so concurrent tests
/// do not all probe the same numbers first.
fn spread(count: u32) -> u32 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let calls = CALLS.fetch_add(1, Ordering::Relaxed);
    std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(calls.wrapping_mul(104_729))
        % count
}

/// The first of `count` slots (from `first`, `len` ports each) this process could claim
/// and whose ports pass `usable`.
fn claim_slot(kind: &str, first: u16, len: u16, count: u16, usable: impl Fn(u16) -> bool) -> u16 {
    let start = spread(u32::from(count));
    for i in 0..u32::from(count) {
        let slot = ((start + i) % u32::from(count)) as u16;
        let port = first + slot * len;
        if claim(&format!("{kind}-{port}")) && usable(port) {
            return port;
        }
    }
    panic!("no free {kind} slot left of {count} from port {first}");
}

/// A loopback port this process has claimed and that is free for both UDP and TCP now.
pub fn free_port() -> u16 {
    claim_slot("port", 10_000, 1, 10_000, |port| {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
}

/// The first of four consecutive claimed ports, free for UDP now: SIPp's media from `-mp`
/// (audio at the port, video two above, each with its RTCP beside it).
pub fn free_media_ports() -> u16 {
    claim_slot("port", 10_000, 4, 2_500, |first| {
        (first..first + 4).all(|port| {
            (port == first || claim(&format!("port-{port}")))
                && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        })
    })
}

/// The first port of an RTP range of 80 claimed for a test server.
pub fn server_rtp_range() -> u16 {
    claim_slot("server-rtp", 20_000, 80, 100, |_| true)
}

/// The first port of an RTP range of 20 claimed for a baresip.
pub fn baresip_rtp_range() -> u16 {
    claim_slot("baresip-rtp", 28_400, 20, 50, |_| true)
}
