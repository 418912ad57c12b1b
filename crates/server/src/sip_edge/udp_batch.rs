//! Batched datagram I/O on the UDP SIP sockets: one `recvmmsg` takes up to [`BATCH`]
//! datagrams off a socket, one `sendmmsg` hands a socket up to [`BATCH`] datagrams, each
//! with its own destination. At 2,000 calls/s the SIP socket carries some 20,000 datagrams a
//! second each way; one system call per datagram was the receive loop's and the endpoint
//! task's largest kernel cost.
//!
//! Written here over `nix`'s safe `recvmmsg`/`sendmmsg` rather than taken from quinn-udp:
//! quinn-udp is built for QUIC (GSO/GRO segmentation, ECN and packet-info control messages,
//! one destination per batch) and has no call that sends many datagrams to many peers in one
//! system call, which is what a SIP endpoint's transmits are.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};

/// Most datagrams one system call moves.
pub const BATCH: usize = 32;

/// One received datagram: its source and length, or that it was larger than the slot.
#[derive(Debug, Clone, Copy)]
struct Received {
    from: Option<SocketAddr>,
    len: usize,
    truncated: bool,
}

/// What one [`RecvBatch::recv`] took off the socket, slot by slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A datagram that fits its slot.
    Data { from: SocketAddr, bytes: &'a [u8] },
    /// A datagram larger than a slot: its tail was cut off by the kernel.
    Oversized { from: SocketAddr },
}

/// Receive slots for [`BATCH`] datagrams of up to `slot` bytes each, reused for every call.
///
/// The system call's headers (`MultiHeaders`) hold raw pointers, so they are not `Send` and
/// cannot live in a task across an `await`: each call builds them afresh (one allocation of
/// a few KiB per batch, against one system call saved per datagram).
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    got: Vec<Received>,
}

impl RecvBatch {
    /// Slots of `slot` bytes (a datagram of exactly `slot` bytes or more reads as oversized
    /// when `slot` is one more than the largest message allowed).
    pub fn new(slot: usize) -> RecvBatch {
        RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; slot]).collect(),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// One `recvmmsg` on a non-blocking socket: how many datagrams it took (at least one),
    /// or `WouldBlock` when none was waiting.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        self.got.clear();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut slots: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(b.as_mut_slice())])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slots.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        for r in results {
            self.got.push(Received {
                from: r.address.as_ref().and_then(std_addr),
                len: r.bytes,
                truncated: r.flags.contains(MsgFlags::MSG_TRUNC),
            });
        }
        Ok(self.got.len())
    }

    /// The datagrams of the last [`recv`](Self::recv), in arrival order (one whose source
    /// cannot be read, which UDP never delivers, is skipped).
    pub fn datagrams(&self) -> impl Iterator<Item = Datagram<'_>> {
        self.got.iter().zip(&self.bufs).filter_map(|(r, buf)| {
            let from = r.from?;
            if r.truncated {
                return Some(Datagram::Oversized { from });
            }
            let bytes = buf.get(..r.len)?;
            Some(Datagram::Data { from, bytes })
        })
    }
}

/// One `sendmmsg` of the first (up to [`BATCH`]) datagrams of `out`, each to its own
/// destination, on a non-blocking socket: how many the kernel took (at least one), or the
/// error of the first, whose `WouldBlock` means the send buffer is full.
pub fn send_batch(socket: &impl AsRawFd, out: &[(SocketAddr, Vec<u8>)]) -> io::Result<usize> {
    let chunk = out.get(..out.len().min(BATCH)).unwrap_or_default();
    let slices: Vec<[IoSlice<'_>; 1]> = chunk
        .iter()
        .map(|(_, bytes)| [IoSlice::new(bytes)])
        .collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|(addr, _)| Some(SockaddrStorage::from(*addr)))
        .collect();
    let none: [ControlMessage<'_>; 0] = [];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        addrs,
        none,
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    Ok(sent.count())
}

fn std_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Datagrams from two peers come out of one receive in order with their sources; one
    /// larger than a slot reads as oversized; a send reaches several destinations at once.
    #[test]
    fn batches_carry_sources_lengths_and_destinations() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let to = rx.local_addr().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = RecvBatch::new(9);
        assert_eq!(
            batch.recv(&rx).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.send_to(b"one", to).unwrap();
        b.send_to(b"two!", to).unwrap();
        a.send_to(b"much too long", to).unwrap();
        assert_eq!(batch.recv(&rx).unwrap(), 3);
        let got: Vec<_> = batch.datagrams().collect();
        let (fa, fb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(
            got,
            [
                Datagram::Data {
                    from: fa,
                    bytes: b"one"
                },
                Datagram::Data {
                    from: fb,
                    bytes: b"two!"
                },
                Datagram::Oversized { from: fa },
            ]
        );

        let out = vec![
            (fa, b"to a".to_vec()),
            (fb, b"to b".to_vec()),
            (fa, b"again a".to_vec()),
        ];
        assert_eq!(send_batch(&rx, &out).unwrap(), 3);
        let mut buf = [0u8; 16];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"to a"[..], to));
        let (n, _) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"again a");
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"to b");
    }

    /// More than a batch: one send takes the first [`BATCH`], the caller sends the rest.
    #[test]
    fn a_send_takes_at_most_one_batch() {
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let at = peer.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.set_nonblocking(true).unwrap();
        let out: Vec<_> = (0..BATCH + 5).map(|i| (at, vec![i as u8])).collect();
        assert_eq!(send_batch(&tx, &out).unwrap(), BATCH);
        assert_eq!(send_batch(&tx, &out[BATCH..]).unwrap(), 5);
        let mut buf = [0u8; 4];
        for i in 0..BATCH + 5 {
            let (n, _) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], [i as u8]);
        }
    }
}
