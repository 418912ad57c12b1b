//! The relay behind every [`crate::Session`]: a few relay threads (one per core), each
//! driving many calls' sockets over one epoll instance ([`reactor`]), with each call's
//! state in a [`core::Core`].
//!
//! Per packet the work is: one `recvmmsg` per ready socket (which also tells that the socket
//! is drained, so no extra `recvfrom` returns `EAGAIN`), the header checked and rewritten,
//! the payload copied once into the outgoing datagram (transcoded when the laws differ), and
//! one `sendto`. No allocation and no task wake-up per packet; sessions are added, commanded
//! and removed through a channel and an eventfd waker.

mod batch;
mod core;
mod reactor;

use std::net::SocketAddr;
use std::path::PathBuf;

use mio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::error::{MediaError, Result};
use crate::g711::Codec;
use crate::ports::{PortLease, PortPair};
use crate::recording::RecordingWriter;
use crate::session::PromptEnd;
use crate::sounds::Samples;

pub(crate) use self::core::Core;
pub(crate) use reactor::{Entry, Relay, Shard};

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegKind {
    Caller,
    Agent,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LegParams {
    pub remote: Option<SocketAddr>,
    pub codec: Codec,
    pub telephone_event: Option<u8>,
    /// The party multiplexes RTCP on the RTP port (RFC 5761): no RTCP socket is needed.
    pub rtcp_mux: bool,
}

pub(crate) enum ModeCmd {
    Music,
    Prompts(Vec<Samples>, oneshot::Sender<PromptEnd>),
    Bridge,
    /// The party of that leg put the call on hold (`true`) or resumed it.
    Hold(LegKind, bool),
}

pub(crate) enum Command {
    SetLeg(LegKind, LegParams),
    Mode(ModeCmd),
    StartRecording(RecordingWriter),
    StopRecording(oneshot::Sender<Result<Option<PathBuf>>>),
    Close(oneshot::Sender<()>),
}

/// The sockets of one leg: RTP, and RTCP on the next port only once the party's SDP is
/// known and does not multiplex RTCP (RTCP on demand: a leg without a party yet, such as the
/// agent leg of a queued call, holds one socket).
pub(crate) struct LegSockets {
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
    rtcp_addr: SocketAddr,
}

impl LegSockets {
    /// The pool bound both ports, so the RTCP port was free; it is closed here and bound
    /// again when a party that needs it appears (the pool keeps it reserved for the call).
    fn new(pair: PortPair) -> Result<(Self, PortLease)> {
        let rtcp_addr = pair
            .rtcp
            .local_addr()
            .map_err(|e| MediaError::io("RTCP socket address", e))?;
        drop(pair.rtcp);
        Ok((
            LegSockets {
                rtp: UdpSocket::from_std(pair.rtp),
                rtcp: None,
                rtcp_addr,
            },
            pair.lease,
        ))
    }
}

/// Both legs' sockets and the port reservations they hold.
pub(crate) struct Sockets {
    caller: LegSockets,
    agent: LegSockets,
    _leases: (PortLease, PortLease),
}

impl Sockets {
    pub(crate) fn new(caller: PortPair, agent: PortPair) -> Result<Self> {
        let (caller, caller_lease) = LegSockets::new(caller)?;
        let (agent, agent_lease) = LegSockets::new(agent)?;
        Ok(Sockets {
            caller,
            agent,
            _leases: (caller_lease, agent_lease),
        })
    }

    fn leg(&self, leg: LegKind) -> &LegSockets {
        match leg {
            LegKind::Caller => &self.caller,
            LegKind::Agent => &self.agent,
        }
    }

    fn leg_mut(&mut self, leg: LegKind) -> &mut LegSockets {
        match leg {
            LegKind::Caller => &mut self.caller,
            LegKind::Agent => &mut self.agent,
        }
    }

    fn rtp(&self, leg: LegKind) -> &UdpSocket {
        &self.leg(leg).rtp
    }
}
