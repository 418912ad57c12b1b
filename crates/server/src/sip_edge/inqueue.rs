//! The bounded way from the socket tasks to the endpoint task, in two lanes.
//!
//! Every datagram and framed stream message waits here until the endpoint task takes it.
//! Each lane is bounded by message count and by bytes (`[sip] inbound_queue_messages` and
//! `inbound_queue_bytes`), so a flood costs at most that much memory. A full lane drops
//! what UDP brings (the peer retransmits, as after a full socket buffer) and counts it;
//! a stream connection waits for room instead (TCP carries its backpressure to the peer).
//!
//! The **priority** lane holds what keeps calls in progress working and what the trunks
//! send: responses, in-dialog requests (a To tag), ACK and CANCEL, and INVITEs from a
//! source inside a trunk's `allow` networks; connection notices go there too and are never
//! dropped (there is at most one pair per connection slot). Everything else — REGISTER,
//! OPTIONS, INVITEs from unknown sources, garbage — takes the **normal** lane, and the
//! endpoint task drains the priority lane first. Telling the lanes apart needs a look at the
//! start line and the To header: [`peek`] is a byte scan written here because no crate
//! classifies without a full parse, and a misjudged message only changes its lane.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use tokio::sync::Notify;

use crate::sip_edge::transport::Inbound;

/// Per-lane bounds.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most messages waiting in one lane.
    pub messages: usize,
    /// Most bytes of messages waiting in one lane.
    pub bytes: usize,
}

/// Which lane a message takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Priority = 0,
    Normal = 1,
}

/// What [`peek`] makes of the first bytes of a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peeked {
    Response,
    /// A request: whether it is an INVITE, whether it belongs to a dialog or a call being
    /// ended (To tag, ACK, CANCEL).
    Request {
        invite: bool,
        in_dialog: bool,
    },
    /// Not recognisable as SIP (the endpoint answers or drops it).
    Unknown,
}

/// Classifies a message by its start line and To header (`To`/`t`, a `tag` parameter)
/// without parsing it.
pub fn peek(bytes: &[u8]) -> Peeked {
    let mut lines = bytes.split(|&b| b == b'\n').map(trim_cr);
    let Some(first) = lines.next() else {
        return Peeked::Unknown;
    };
    if first.starts_with(b"SIP/") {
        return Peeked::Response;
    }
    let method = first.split(|&b| b == b' ').next().unwrap_or_default();
    if method.is_empty() || !first.ends_with(b"SIP/2.0") {
        return Peeked::Unknown;
    }
    let invite = method == b"INVITE";
    let mut in_dialog = method == b"ACK" || method == b"CANCEL";
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"to") || name.eq_ignore_ascii_case(b"t") {
            in_dialog |= has_tag(value);
            break;
        }
    }
    Peeked::Request { invite, in_dialog }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Whether a To header value carries a `tag` parameter (after the URI's closing `>` when
/// there is one, so a `tag` inside the URI does not count).
fn has_tag(value: &[u8]) -> bool {
    let params = match value.iter().rposition(|&b| b == b'>') {
        Some(gt) => value.get(gt..).unwrap_or_default(),
        None => value,
    };
    params.split(|&b| b == b';').skip(1).any(|p| {
        let name = p.split(|&b| b == b'=').next().unwrap_or_default();
        name.trim_ascii().eq_ignore_ascii_case(b"tag")
    })
}

#[derive(Debug, Default)]
struct LaneState {
    items: VecDeque<(Inbound, usize)>,
    bytes: usize,
}

impl LaneState {
    /// Queues `msg`, counted as `size` bytes, when the bounds leave room; else gives it back.
    fn push(&mut self, limits: &QueueLimits, msg: Inbound, size: usize) -> Result<(), Inbound> {
        let fits =
            self.items.len() < limits.messages && self.bytes.saturating_add(size) <= limits.bytes;
        if !fits {
            return Err(msg);
        }
        self.bytes = self.bytes.saturating_add(size);
        self.items.push_back((msg, size));
        Ok(())
    }
}

/// The two lanes, their bounds and their drop counters. Many producers (the socket tasks),
/// one consumer (the endpoint task).
#[derive(Debug)]
pub struct InboundQueue {
    lanes: Mutex<[LaneState; 2]>,
    limits: QueueLimits,
    /// Sources whose INVITEs take the priority lane (every trunk's `allow`).
    trunks: Vec<IpNet>,
    ready: Notify,
    space: Notify,
    dropped: [AtomicU64; 2],
}

impl InboundQueue {
    pub fn new(limits: QueueLimits, trunks: Vec<IpNet>) -> InboundQueue {
        InboundQueue {
            lanes: Mutex::new([LaneState::default(), LaneState::default()]),
            limits,
            trunks,
            ready: Notify::new(),
            space: Notify::new(),
            dropped: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// The lane of a SIP message from `from`.
    pub fn lane_of(&self, bytes: &[u8], from: IpAddr) -> Lane {
        match peek(bytes) {
            Peeked::Response
            | Peeked::Request {
                in_dialog: true, ..
            } => Lane::Priority,
            Peeked::Request { invite: true, .. }
                if self.trunks.iter().any(|n| n.contains(&from)) =>
            {
                Lane::Priority
            }
            Peeked::Request { .. } | Peeked::Unknown => Lane::Normal,
        }
    }

    /// Messages dropped so far because their lane was full: (priority, normal).
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped[0].load(Ordering::Relaxed),
            self.dropped[1].load(Ordering::Relaxed),
        )
    }

    /// Queues a message that may be lost (a UDP datagram); `false`, counted, when its lane
    /// is full.
    pub fn offer(&self, msg: Inbound) -> bool {
        let (lane, size) = self.classify(&msg);
        match self.try_push(lane, msg, size) {
            Ok(()) => true,
            Err(_) => {
                if let Some(n) = self.dropped.get(lane as usize) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
        }
    }

    /// Queues the datagrams of one receive batch, taking them out of `msgs`, under one lock
    /// and one wake-up of the endpoint task; each goes to its lane as with [`offer`], and
    /// how many were dropped (counted) because their lane was full is returned.
    ///
    /// [`offer`]: InboundQueue::offer
    pub fn offer_all(&self, msgs: &mut Vec<Inbound>) -> usize {
        // Classified before the lock: the consumer waits on it meanwhile.
        let classes: Vec<(Lane, usize)> = msgs.iter().map(|m| self.classify(m)).collect();
        let mut dropped = [0u64; 2];
        let mut queued = false;
        {
            let mut lanes = self.lock();
            for (msg, (lane, size)) in msgs.drain(..).zip(classes) {
                let Some(state) = lanes.get_mut(lane as usize) else {
                    continue;
                };
                if state.push(&self.limits, msg, size).is_ok() {
                    queued = true;
                } else if let Some(n) = dropped.get_mut(lane as usize) {
                    *n += 1;
                }
            }
        }
        if queued {
            self.ready.notify_one();
        }
        for (counter, n) in self.dropped.iter().zip(dropped) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        usize::try_from(dropped.iter().sum::<u64>()).unwrap_or(usize::MAX)
    }

    /// Queues a message that must not be lost: a stream message waits for room in its lane;
    /// a connection notice is queued at once.
    pub async fn send(&self, msg: Inbound) {
        let (lane, size) = self.classify(&msg);
        if size == 0 {
            self.push_unbounded(msg);
            return;
        }
        let mut msg = msg;
        loop {
            let room = self.space.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(lane, msg, size) {
                Ok(()) => return,
                Err(back) => msg = back,
            }
            room.await;
        }
    }

    /// The next message, priority lane first; waits while both are empty. One consumer.
    pub async fn recv(&self) -> Inbound {
        loop {
            if let Some(msg) = self.try_recv() {
                return msg;
            }
            self.ready.notified().await;
        }
    }

    /// The next message if one is waiting, priority lane first.
    pub fn try_recv(&self) -> Option<Inbound> {
        let popped = {
            let mut lanes = self.lock();
            lanes.iter_mut().find_map(|lane| {
                let (msg, size) = lane.items.pop_front()?;
                lane.bytes = lane.bytes.saturating_sub(size);
                Some(msg)
            })
        };
        if popped.is_some() {
            self.space.notify_waiters();
        }
        popped
    }

    /// The lane and the size counted against it (0 for connection notices).
    fn classify(&self, msg: &Inbound) -> (Lane, usize) {
        match msg {
            Inbound::Datagram { from, bytes, .. } | Inbound::Stream { from, bytes, .. } => {
                (self.lane_of(bytes, from.ip()), bytes.len().max(1))
            }
            Inbound::Opened { .. } | Inbound::Closed { .. } | Inbound::Unreachable { .. } => {
                (Lane::Priority, 0)
            }
        }
    }

    fn try_push(&self, lane: Lane, msg: Inbound, size: usize) -> Result<(), Inbound> {
        {
            let mut lanes = self.lock();
            let Some(state) = lanes.get_mut(lane as usize) else {
                return Err(msg);
            };
            state.push(&self.limits, msg, size)?;
        }
        self.ready.notify_one();
        Ok(())
    }

    fn push_unbounded(&self, msg: Inbound) {
        if let Some(state) = self.lock().get_mut(Lane::Priority as usize) {
            state.items.push_back((msg, 0));
        }
        self.ready.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [LaneState; 2]> {
        // A panic while holding this lock cannot leave the lanes inconsistent (each
        // operation is a push or a pop with its byte count): carry on with the data.
        self.lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(text: &str, from: &str) -> Inbound {
        Inbound::Datagram {
            socket: 0,
            from: from.parse().unwrap(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn request(method: &str, to: &str) -> String {
        format!(
            "{method} sip:q@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK1\r\n\
             From: <sip:a@b>;tag=1\r\n{to}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n"
        )
    }

    #[test]
    fn peek_tells_responses_dialogs_and_new_requests_apart() {
        assert_eq!(
            peek(b"SIP/2.0 200 OK\r\nTo: <sip:a@b>\r\n\r\n"),
            Peeked::Response
        );
        let new_invite = request("INVITE", "To: <sip:q@192.0.2.1>");
        assert_eq!(
            peek(new_invite.as_bytes()),
            Peeked::Request {
                invite: true,
                in_dialog: false
            }
        );
        for to in [
            "To: <sip:q@192.0.2.1>;tag=abc",
            "t: <sip:q@192.0.2.1> ; TAG = abc",
            "to: sip:q@192.0.2.1;tag=abc",
        ] {
            let text = request("BYE", to);
            assert_eq!(
                peek(text.as_bytes()),
                Peeked::Request {
                    invite: false,
                    in_dialog: true
                },
                "{to}"
            );
        }
        // A `tag` URI parameter inside <> is not a To tag.
        let text = request("OPTIONS", "To: <sip:q@192.0.2.1;tag=x>");
        assert_eq!(
            peek(text.as_bytes()),
            Peeked::Request {
                invite: false,
                in_dialog: false
            }
        );
        let cancel = request("CANCEL", "To: <sip:q@192.0.2.1>");
        assert!(matches!(
            peek(cancel.as_bytes()),
            Peeked::Request {
                in_dialog: true,
                ..
            }
        ));
        assert_eq!(peek(b"\x00\x01garbage"), Peeked::Unknown);
        assert_eq!(peek(b""), Peeked::Unknown);
    }

    #[test]
    fn trunk_invites_and_dialogs_go_first_and_full_lanes_drop_and_count() {
        let limits = QueueLimits {
            messages: 3,
            bytes: 1 << 20,
        };
        let queue = InboundQueue::new(limits, vec!["10.0.0.0/8".parse().unwrap()]);
        let new_invite = request("INVITE", "To: <sip:q@192.0.2.1>");
        let bye = request("BYE", "To: <sip:q@192.0.2.1>;tag=x");
        // The normal lane fills with INVITEs from an unknown source, then drops.
        for _ in 0..4 {
            queue.offer(datagram(&new_invite, "192.0.2.9:5060"));
        }
        assert_eq!(queue.dropped(), (0, 1));
        // A trunk's INVITE and a BYE still get in, and come out first.
        assert!(queue.offer(datagram(&new_invite, "10.1.2.3:5060")));
        assert!(queue.offer(datagram(&bye, "192.0.2.9:5060")));
        let from = |msg: Inbound| match msg {
            Inbound::Datagram { from, .. } => from.ip().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(from(queue.try_recv().unwrap()), "10.1.2.3");
        assert_eq!(from(queue.try_recv().unwrap()), "192.0.2.9");
        for _ in 0..3 {
            assert_eq!(from(queue.try_recv().unwrap()), "192.0.2.9");
        }
        assert!(queue.try_recv().is_none());
    }

    /// A receive batch goes in under the same lanes and bounds as single datagrams.
    #[test]
    fn a_batch_takes_its_lanes_and_drops_what_does_not_fit() {
        let limits = QueueLimits {
            messages: 2,
            bytes: 1 << 20,
        };
        let queue = InboundQueue::new(limits, vec!["10.0.0.0/8".parse().unwrap()]);
        let new_invite = request("INVITE", "To: <sip:q@192.0.2.1>");
        let ack = request("ACK", "To: <sip:q@192.0.2.1>;tag=x");
        let mut batch = vec![
            datagram(&new_invite, "192.0.2.9:5060"),
            datagram(&new_invite, "192.0.2.9:5061"),
            datagram(&new_invite, "192.0.2.9:5062"),
            datagram(&ack, "10.0.0.1:5060"),
        ];
        assert_eq!(queue.offer_all(&mut batch), 1);
        assert!(batch.is_empty());
        assert_eq!(queue.dropped(), (0, 1));
        let port = |msg: Inbound| match msg {
            Inbound::Datagram { from, .. } => from.port(),
            other => panic!("{other:?}"),
        };
        // The ACK (priority lane) first, then the normal lane in arrival order.
        let order: Vec<u16> = std::iter::from_fn(|| queue.try_recv()).map(port).collect();
        assert_eq!(order, [5060, 5060, 5061]);
        assert_eq!(queue.offer_all(&mut Vec::new()), 0);
    }

    #[test]
    fn a_lane_is_bounded_by_bytes_and_connection_notices_always_fit() {
        let limits = QueueLimits {
            messages: 1000,
            bytes: 1000,
        };
        let queue = InboundQueue::new(limits, Vec::new());
        let big = format!("{}{}", request("OPTIONS", "To: <sip:q@x>"), "x".repeat(300));
        assert!(queue.offer(datagram(&big, "192.0.2.9:5060")));
        assert!(queue.offer(datagram(&big, "192.0.2.9:5060")));
        assert!(!queue.offer(datagram(&big, "192.0.2.9:5060")));
        assert_eq!(queue.dropped(), (0, 1));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(queue.send(Inbound::Closed { conn: 7 }));
        assert!(matches!(
            queue.try_recv(),
            Some(Inbound::Closed { conn: 7 })
        ));
        // A stream message waits for room and gets in once the endpoint task took one.
        rt.block_on(async {
            let stream = Inbound::Stream {
                conn: 1,
                transport: switchboard_sip::Transport::Tcp,
                from: "192.0.2.9:5060".parse().unwrap(),
                bytes: big.clone().into_bytes(),
            };
            let send = queue.send(stream);
            tokio::pin!(send);
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(20), send.as_mut())
                    .await
                    .is_err(),
                "no room yet"
            );
            assert!(queue.try_recv().is_some());
            send.await;
        });
        assert!(queue.try_recv().is_some());
        assert!(matches!(queue.try_recv(), Some(Inbound::Stream { .. })));
    }
}
