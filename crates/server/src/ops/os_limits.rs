//! What the server asks of the kernel at start: open files for its sockets, and buffer room
//! on the UDP SIP sockets for bursts. Each outcome is logged, because both fail quietly:
//! past the open-files limit `accept` and `bind` fail with "Too many open files" (HTTP,
//! SQLite, RTP ports), and past a full receive buffer the kernel drops datagrams without
//! anyone seeing (lost ACKs: 200s retransmitted, calls held for 32 s). It also turns
//! transparent huge pages off for itself ([`no_huge_pages`]): faulting them in stalls the
//! SIP path.

use std::io;

use tokio::net::UdpSocket;
use tracing::{info, warn};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. A call holds a descriptor per RTP
/// socket (two per leg) plus its share of the SIP and database connections: 5,000 calls in
/// flight need more than the usual soft limit of 1,024.
pub fn raise_open_files() {
    let before = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft).ok();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) if Some(now) == before => info!(limit = now, "open files limit (the hard limit)"),
        Ok(now) => info!(
            before = before.unwrap_or(0),
            now, "open files limit raised to the hard limit"
        ),
        Err(e) => warn!(
            error = %e,
            limit = before.unwrap_or(0),
            "cannot raise the open files limit; calls beyond it will fail"
        ),
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on its
/// regions (`MADV_HUGEPAGE`), so the first touch of a fresh 2 MiB region — a transaction
/// table growing, a new arena — zeroes the whole huge page inside the page fault, on
/// whichever thread touched it. Measured in the load harness's 500 calls/s latency pass
/// (perf with call graphs beside a capture): the clusters of INVITEs delayed 3–20 ms on a
/// fresh server were a worker in `clear_page_rep` under `do_huge_pmd_anonymous_page`,
/// 1 ms per page, several pages in a row. With 4 KiB pages the cost is spread over the
/// touches that need it.
pub fn no_huge_pages() {
    match nix::sys::prctl::set_thp_disable(true) {
        Ok(()) => info!("transparent huge pages off for this process"),
        Err(e) => warn!(error = %e, "cannot turn transparent huge pages off"),
    }
}

/// Asks for `kib` KiB of receive and send buffer on a UDP SIP socket and reports what the
/// kernel granted. Linux caps the request at `net.core.rmem_max` / `wmem_max` and reports
/// twice the granted size (its bookkeeping overhead), so the grant is compared at half.
pub fn size_udp_buffers(socket: &UdpSocket, kib: usize) -> io::Result<(usize, usize)> {
    let want = kib.saturating_mul(1024);
    let sock = socket2::SockRef::from(socket);
    sock.set_recv_buffer_size(want)?;
    sock.set_send_buffer_size(want)?;
    let (recv, send) = (sock.recv_buffer_size()?, sock.send_buffer_size()?);
    let addr = socket.local_addr()?;
    if recv / 2 < want || send / 2 < want {
        warn!(
            %addr,
            asked_kib = kib,
            receive_kib = recv / 2 / 1024,
            send_kib = send / 2 / 1024,
            "the kernel capped the SIP socket buffers; raise net.core.rmem_max and \
             net.core.wmem_max to at least the asked size, or bursts will be dropped"
        );
    } else {
        info!(%addr, receive_kib = recv / 2 / 1024, send_kib = send / 2 / 1024, "SIP socket buffers");
    }
    Ok((recv / 2, send / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn buffers_are_granted_up_to_the_kernel_cap() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // 64 KiB is below every kernel's default cap: granted in full.
        let (recv, send) = size_udp_buffers(&socket, 64).unwrap();
        assert_eq!((recv, send), (64 * 1024, 64 * 1024));
        // An absurd request is capped, never an error.
        let (recv, _) = size_udp_buffers(&socket, 1 << 30).unwrap();
        assert!(recv < (1 << 30) * 1024);
    }
}
