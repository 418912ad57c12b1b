//! The io_uring forwarder of the `rtp_relay` bench: the same plain forwarding as the baseline
//! (two sockets per call, whatever arrives on one goes out of the other, no RTP parsing), but
//! on one thread with io_uring instead of one `recvfrom` + one `sendto` system call per packet:
//! a receive is always posted on every socket, and every forward of a wake-up is submitted
//! with the next wait in one `io_uring_enter`. It measures what batching the system calls
//! across sockets would save the relay (each socket carries one packet per 20 ms, so
//! `recvmmsg`/`sendmmsg`, which batch per socket, cannot); it is a measurement, not part of
//! Switchboard.
//!
//! `io_uring` submissions hand the kernel raw pointers into buffers and message headers that
//! must outlive the operation: that needs `unsafe`, which the workspace denies everywhere
//! else. Every pointer here points into a `Box` that lives in `slots` until the ring is gone.
#![allow(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use io_uring::{IoUring, opcode, types};

const BUF: usize = 2048;
const RECV: u64 = 0;
const SEND: u64 = 1;

/// One forwarding socket: its receive side and the send it has in flight.
struct Slot {
    sock: UdpSocket,
    /// The socket whose arrivals this one sends on (the call's other relay port).
    other: usize,
    /// Where this socket sends: its far end.
    far: libc::sockaddr_in,
    recv_buf: [u8; BUF],
    recv_iov: libc::iovec,
    recv_msg: libc::msghdr,
    send_buf: [u8; BUF],
    send_iov: libc::iovec,
    send_msg: libc::msghdr,
    sending: bool,
}

fn sockaddr_in(addr: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = addr else {
        panic!("the bench runs on IPv4 loopback");
    };
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = v4.port().to_be();
    sa.sin_addr = libc::in_addr {
        s_addr: u32::from(*v4.ip()).to_be(),
    };
    sa
}

impl Slot {
    fn new(sock: UdpSocket, other: usize, far: SocketAddr) -> Box<Slot> {
        // SAFETY: iovec and msghdr are plain data; all-zero is valid (null pointers, zero
        // lengths) and they are filled in below, after the box has its final address.
        let mut s = Box::new(Slot {
            sock,
            other,
            far: sockaddr_in(far),
            recv_buf: [0; BUF],
            recv_iov: unsafe { std::mem::zeroed() },
            recv_msg: unsafe { std::mem::zeroed() },
            send_buf: [0; BUF],
            send_iov: unsafe { std::mem::zeroed() },
            send_msg: unsafe { std::mem::zeroed() },
            sending: false,
        });
        s.recv_iov.iov_base = s.recv_buf.as_mut_ptr().cast();
        s.recv_iov.iov_len = BUF;
        s.recv_msg.msg_iov = &raw mut s.recv_iov;
        s.recv_msg.msg_iovlen = 1;
        s.send_iov.iov_base = s.send_buf.as_mut_ptr().cast();
        s.send_msg.msg_iov = &raw mut s.send_iov;
        s.send_msg.msg_iovlen = 1;
        s.send_msg.msg_name = (&raw mut s.far).cast();
        s.send_msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        s
    }
}

/// The relay ports of `calls` calls (caller side, agent side) and the thread forwarding
/// between them until `stop`; `forwarded` counts the packets sent on.
pub struct UringForwarder {
    pub ports: Vec<(SocketAddr, SocketAddr)>,
    pub stop: Arc<AtomicBool>,
    pub forwarded: Arc<AtomicU64>,
    pub thread: std::thread::JoinHandle<()>,
}

/// `far_ends[i]` = (caller far end, agent far end) of call i.
pub fn start(far_ends: &[(SocketAddr, SocketAddr)]) -> std::io::Result<UringForwarder> {
    let mut slots = Vec::with_capacity(far_ends.len() * 2);
    let mut ports = Vec::with_capacity(far_ends.len());
    for (i, &(caller, agent)) in far_ends.iter().enumerate() {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        ports.push((a.local_addr()?, b.local_addr()?));
        // a talks to the caller, b to the agent; what arrives on one leaves by the other.
        slots.push((a, 2 * i + 1, caller));
        slots.push((b, 2 * i, agent));
    }
    let entries = u32::try_from((slots.len() * 2).next_power_of_two().max(64)).unwrap_or(4096);
    let ring = IoUring::new(entries)?;
    let stop = Arc::new(AtomicBool::new(false));
    let forwarded = Arc::new(AtomicU64::new(0));
    let (s, f) = (Arc::clone(&stop), Arc::clone(&forwarded));
    let thread = std::thread::Builder::new()
        .name("sb-relay-uring".into())
        // The slots hold raw pointers into themselves: built on the thread that uses them.
        .spawn(move || {
            let slots = slots
                .into_iter()
                .map(|(sock, other, far)| Slot::new(sock, other, far))
                .collect();
            run(ring, slots, &s, &f);
        })?;
    Ok(UringForwarder {
        ports,
        stop,
        forwarded,
        thread,
    })
}

fn push(ring: &mut IoUring, entry: &io_uring::squeue::Entry) {
    // SAFETY: the entry points into a boxed slot that outlives the ring (see the module doc).
    while unsafe { ring.submission().push(entry) }.is_err() {
        let _ = ring.submit();
    }
}

fn post_recv(ring: &mut IoUring, slots: &mut [Box<Slot>], i: usize) {
    let s = &mut slots[i];
    let e = opcode::RecvMsg::new(types::Fd(s.sock.as_raw_fd()), &raw mut s.recv_msg)
        .build()
        .user_data((i as u64) << 1 | RECV);
    push(ring, &e);
}

fn run(mut ring: IoUring, mut slots: Vec<Box<Slot>>, stop: &AtomicBool, forwarded: &AtomicU64) {
    for i in 0..slots.len() {
        post_recv(&mut ring, &mut slots, i);
    }
    let ts = types::Timespec::from(Duration::from_millis(50));
    let args = types::SubmitArgs::new().timespec(&ts);
    let mut done = Vec::new();
    while !stop.load(Relaxed) {
        // Posts what the last round queued and sleeps until something completes (at most
        // 50 ms, to see `stop`): one system call per wake-up, however many packets.
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::ETIME)
                    || e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => panic!("io_uring_enter: {e}"),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            let i = (ud >> 1) as usize;
            if ud & 1 == SEND {
                slots[i].sending = false;
                continue;
            }
            if let Ok(n) = usize::try_from(res) {
                let o = slots[i].other;
                if !slots[o].sending && n <= BUF {
                    let (from, to) = if i < o {
                        let (lo, hi) = slots.split_at_mut(o);
                        (&lo[i], &mut hi[0])
                    } else {
                        let (lo, hi) = slots.split_at_mut(i);
                        (&hi[0], &mut lo[o])
                    };
                    to.send_buf[..n].copy_from_slice(&from.recv_buf[..n]);
                    to.send_iov.iov_len = n;
                    to.sending = true;
                    let e = opcode::SendMsg::new(
                        types::Fd(to.sock.as_raw_fd()),
                        &raw const to.send_msg,
                    )
                    .build()
                    .user_data((o as u64) << 1 | SEND);
                    push(&mut ring, &e);
                    forwarded.fetch_add(1, Relaxed);
                }
            }
            post_recv(&mut ring, &mut slots, i);
        }
    }
    drop(ring);
    // The kernel tears a ring down asynchronously, and a receive still posted points into its
    // slot until then: the slots (and their sockets) are left to the process's exit.
    std::mem::forget(slots);
}
