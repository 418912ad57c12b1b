//! The RTP port pool: even RTP ports (RTCP on the next odd port) from the configured
//! inclusive range, bound on the media bind address, returned to the pool on drop.
//!
//! Allocation walks the range round-robin from where the last one stopped, so a port
//! freed by a finished call is not handed out again at once (late packets of the old call
//! would otherwise reach the new one). A port another process holds is skipped.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use crate::error::{MediaError, Result};

#[derive(Debug)]
struct PoolState {
    next: u16,
    used: BTreeSet<u16>,
}

/// A pool of RTP/RTCP port pairs.
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    bind_ip: IpAddr,
    state: Mutex<PoolState>,
}

/// One bound RTP/RTCP socket pair.
#[derive(Debug)]
pub struct PortPair {
    /// RTP socket (even port), non-blocking.
    pub rtp: UdpSocket,
    /// RTCP socket (RTP + 1), non-blocking.
    pub rtcp: UdpSocket,
    /// The reservation; keep it alive as long as the sockets.
    pub lease: PortLease,
}

impl PortPair {
    /// The RTP port (RTCP is this + 1).
    pub fn port(&self) -> u16 {
        self.lease.port
    }
}

/// A reserved port pair; the ports return to the pool when this is dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: Arc<PortPool>,
}

impl PortLease {
    /// The RTP port (RTCP is this + 1).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.release(self.port);
    }
}

impl PortPool {
    /// A pool over the inclusive range `[first, last]`; it must contain at least one even
    /// port whose odd neighbour is also in range, and not start at 0.
    pub fn new(first: u16, last: u16, bind_ip: IpAddr) -> Result<Arc<Self>> {
        let bad = |reason| MediaError::BadPortRange {
            first,
            last,
            reason,
        };
        if first == 0 {
            return Err(bad("port 0 is not a port"));
        }
        if first > last {
            return Err(bad("first is greater than last"));
        }
        let first_even = first.saturating_add(first % 2);
        if first_even >= last {
            return Err(bad("needs an even port and the next one for RTCP"));
        }
        Ok(Arc::new(PortPool {
            first: first_even,
            last,
            bind_ip,
            state: Mutex::new(PoolState {
                next: first_even,
                used: BTreeSet::new(),
            }),
        }))
    }

    /// Number of RTP/RTCP pairs in the range.
    pub fn capacity(&self) -> usize {
        usize::from((self.last - self.first).div_ceil(2))
    }

    /// Pairs currently allocated.
    pub fn in_use(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .used
            .len()
    }

    /// Binds the next free even port and its RTCP neighbour.
    pub fn allocate(self: &Arc<Self>) -> Result<PortPair> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..self.capacity() {
            let port = st.next;
            st.next = match port.checked_add(2) {
                Some(p) if p < self.last => p,
                _ => self.first,
            };
            if st.used.contains(&port) {
                continue;
            }
            let Ok(rtp) = bind(self.bind_ip, port) else {
                continue;
            };
            let Ok(rtcp) = bind(self.bind_ip, port + 1) else {
                continue;
            };
            st.used.insert(port);
            return Ok(PortPair {
                rtp,
                rtcp,
                lease: PortLease {
                    port,
                    pool: Arc::clone(self),
                },
            });
        }
        Err(MediaError::PortsExhausted {
            first: self.first,
            last: self.last,
        })
    }

    fn release(&self, port: u16) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .used
            .remove(&port);
    }
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::new(ip, port))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn range_validation() {
        assert!(PortPool::new(0, 10, LO).is_err());
        assert!(PortPool::new(30_010, 30_000, LO).is_err());
        assert!(PortPool::new(30_001, 30_002, LO).is_err());
        assert!(PortPool::new(30_000, 30_000, LO).is_err());
        assert_eq!(PortPool::new(30_001, 30_005, LO).unwrap().capacity(), 2);
        assert_eq!(PortPool::new(30_001, 30_004, LO).unwrap().capacity(), 1);
        assert_eq!(PortPool::new(30_000, 30_003, LO).unwrap().capacity(), 2);
        assert_eq!(PortPool::new(65_534, 65_535, LO).unwrap().capacity(), 1);
    }

    #[test]
    fn allocates_even_pairs_round_robin_and_releases() {
        let pool = PortPool::new(28_300, 28_305, LO).unwrap();
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let c = pool.allocate().unwrap();
        assert_eq!((a.port(), b.port(), c.port()), (28_300, 28_302, 28_304));
        assert_eq!(a.rtcp.local_addr().unwrap().port(), 28_301);
        assert!(matches!(
            pool.allocate(),
            Err(MediaError::PortsExhausted { .. })
        ));
        drop(b);
        assert_eq!(pool.in_use(), 2);
        let d = pool.allocate().unwrap();
        assert_eq!(d.port(), 28_302);
        drop((a, c, d));
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn skips_ports_held_elsewhere() {
        let squatter = UdpSocket::bind((LO, 28_321)).unwrap();
        let pool = PortPool::new(28_320, 28_323, LO).unwrap();
        assert_eq!(pool.allocate().unwrap().port(), 28_322);
        drop(squatter);
    }
}
