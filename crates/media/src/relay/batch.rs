//! Batched receive: `recvmmsg(2)` (through `nix`, which wraps it safely) into buffers that
//! live as long as the relay thread, so receiving allocates nothing. A batch shorter than
//! [`BATCH`] means the socket was drained: with edge-triggered readiness that saves the
//! `recvfrom` that would only have returned `EAGAIN`.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

/// Datagrams taken per `recvmmsg` call.
pub(super) const BATCH: usize = 8;
/// Largest datagram kept (anything longer is truncated, and then not valid RTP).
const MAX_DATAGRAM: usize = 2048;

/// One thread's receive buffers.
pub(super) struct RecvBatch {
    headers: MultiHeaders<SockaddrStorage>,
    bufs: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    meta: [(usize, Option<SocketAddr>); BATCH],
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch").finish_non_exhaustive()
    }
}

impl RecvBatch {
    pub(super) fn new() -> Self {
        RecvBatch {
            headers: MultiHeaders::preallocate(BATCH, None),
            bufs: Box::new([[0; MAX_DATAGRAM]; BATCH]),
            meta: [(0, None); BATCH],
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking; `Ok(0)` never happens (an
    /// empty socket is `WouldBlock`).
    pub(super) fn recv(&mut self, socket: &impl AsRawFd) -> std::io::Result<usize> {
        let RecvBatch {
            headers,
            bufs,
            meta,
        } = self;
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
            bufs.each_mut().map(|b| [IoSliceMut::new(b)]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(std::io::Error::from)?;
        let mut n = 0;
        for (slot, msg) in meta.iter_mut().zip(results) {
            *slot = (msg.bytes, msg.address.as_ref().and_then(to_std));
            n += 1;
        }
        Ok(n)
    }

    /// Datagram `i` of the last batch and its source.
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (len, src) = *self.meta.get(i)?;
        let data = self.bufs.get(i)?.get(..len)?;
        Some((data, src?))
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_batch_means_drained_and_sources_are_kept() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = RecvBatch::new();
        let err = batch.recv(&rx).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        for i in 0..(BATCH + 3) as u8 {
            tx.send_to(&[i; 20], rx.local_addr().unwrap()).unwrap();
        }
        assert_eq!(batch.recv(&rx).unwrap(), BATCH);
        let (d, src) = batch.get(BATCH - 1).unwrap();
        assert_eq!(
            (d, src),
            (&[(BATCH - 1) as u8; 20][..], tx.local_addr().unwrap())
        );
        assert_eq!(batch.recv(&rx).unwrap(), 3);
        assert_eq!(batch.get(2).unwrap().0, &[(BATCH + 2) as u8; 20][..]);
    }
}
