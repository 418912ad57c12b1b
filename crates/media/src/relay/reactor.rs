//! The relay threads. Each owns one `mio` poll (epoll, edge-triggered) over the sockets of
//! every session it was given, a timer heap for the paced streams (music, prompts), and a
//! channel through which session handles add, command and remove their sessions (an eventfd
//! [`Waker`] interrupts the poll). Sessions are spread over the threads round-robin.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;
use tokio::sync::{mpsc, oneshot};

use super::batch::{BATCH, RecvBatch};
use super::core::{Core, finish_recording};
use super::{Command, LegKind, Sockets};
use crate::clock;
use crate::error::{MediaError, Result};
use crate::stats::{Tally, TotalCounters};

const WAKER: Token = Token(usize::MAX);
/// `recvmmsg` batches taken from one socket before the other ready sockets get their turn.
const BATCHES_PER_TURN: usize = 8;
/// RTCP datagrams read from one socket per turn.
const RTCP_PER_TURN: usize = 64;
/// Socket tokens per session: caller RTP, caller RTCP, agent RTP, agent RTCP.
const TOKENS_PER_SESSION: usize = 4;

/// One session as its relay thread holds it.
pub(crate) struct Entry {
    pub id: u64,
    pub core: Core,
    pub sockets: Sockets,
    pub commands: mpsc::Receiver<Command>,
    pub span: tracing::Span,
    /// The deadline this session has in the timer heap (entries that differ are stale).
    scheduled: Option<Instant>,
}

impl Entry {
    pub(crate) fn new(
        id: u64,
        core: Core,
        sockets: Sockets,
        commands: mpsc::Receiver<Command>,
        span: tracing::Span,
    ) -> Self {
        Entry {
            id,
            core,
            sockets,
            commands,
            span,
            scheduled: None,
        }
    }
}

enum Msg {
    Add(Box<Entry>),
    Commands(u64),
    Remove(u64),
    Shutdown,
}

/// The handle of one relay thread. The thread ends when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct Shard {
    tx: Sender<Msg>,
    waker: Waker,
}

impl Shard {
    fn post(&self, m: Msg) -> bool {
        if self.tx.send(m).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "relay thread could not be woken");
        }
        true
    }

    /// Hands a new session to the thread.
    pub(crate) fn add(&self, entry: Entry) -> Result<()> {
        if self.post(Msg::Add(Box::new(entry))) {
            Ok(())
        } else {
            Err(MediaError::SessionClosed)
        }
    }

    /// The session has commands waiting in its channel.
    pub(crate) fn commands(&self, id: u64) {
        self.post(Msg::Commands(id));
    }

    /// The session's handle is gone: close its sockets and free its ports.
    pub(crate) fn remove(&self, id: u64) {
        self.post(Msg::Remove(id));
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.post(Msg::Shutdown);
    }
}

/// The relay threads of one [`crate::Media`].
#[derive(Debug)]
pub(crate) struct Relay {
    shards: Vec<Arc<Shard>>,
    next_shard: AtomicUsize,
    next_id: AtomicU64,
}

impl Relay {
    /// Starts `threads` relay threads (at least one).
    pub(crate) fn new(threads: usize, totals: &Arc<TotalCounters>) -> Result<Relay> {
        let shards = (0..threads.max(1))
            .map(|i| spawn(i, Arc::clone(totals)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Relay {
            shards,
            next_shard: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        })
    }

    /// The thread for a new session, and the session's id.
    pub(crate) fn assign(&self) -> (Arc<Shard>, u64) {
        let n = self.next_shard.fetch_add(1, Relaxed);
        // `new` starts at least one thread, so the modulus is never zero.
        let shard = &self.shards[n % self.shards.len()];
        (Arc::clone(shard), self.next_id.fetch_add(1, Relaxed))
    }
}

fn spawn(index: usize, totals: Arc<TotalCounters>) -> Result<Arc<Shard>> {
    let poll = Poll::new().map_err(|e| MediaError::io("relay epoll instance", e))?;
    let waker = Waker::new(poll.registry(), WAKER)
        .map_err(|e| MediaError::io("relay waker (eventfd)", e))?;
    let (tx, rx) = channel();
    std::thread::Builder::new()
        .name(format!("sb-relay-{index}"))
        .spawn(move || Thread::new(poll, rx, totals).run())
        .map_err(|e| MediaError::io("relay thread", e))?;
    Ok(Arc::new(Shard { tx, waker }))
}

struct Thread {
    poll: Poll,
    rx: Receiver<Msg>,
    totals: Arc<TotalCounters>,
    tally: Tally,
    sessions: Slab<Entry>,
    ids: HashMap<u64, usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    batch: RecvBatch,
    /// Sockets left readable at the end of their turn (served again before sleeping).
    backlog: Vec<Token>,
    turn: Vec<Token>,
    rtcp_buf: Box<[u8; 2048]>,
}

fn leg_of(token: Token) -> (usize, LegKind, bool) {
    let key = token.0 / TOKENS_PER_SESSION;
    let slot = token.0 % TOKENS_PER_SESSION;
    let leg = if slot < 2 {
        LegKind::Caller
    } else {
        LegKind::Agent
    };
    (key, leg, slot % 2 == 1)
}

fn token_of(key: usize, leg: LegKind, rtcp: bool) -> Token {
    let slot = match leg {
        LegKind::Caller => 0,
        LegKind::Agent => 2,
    } + usize::from(rtcp);
    Token(key.saturating_mul(TOKENS_PER_SESSION).saturating_add(slot))
}

fn reschedule(timers: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>, e: &mut Entry, key: usize) {
    let due = e.core.next_deadline();
    if due != e.scheduled {
        e.scheduled = due;
        if let Some(at) = due {
            timers.push(Reverse((at, key, e.id)));
        }
    }
}

/// Registers (or, when the party multiplexes RTCP, closes) the RTCP socket of `leg`.
fn sync_rtcp(registry: &Registry, e: &mut Entry, key: usize, leg: LegKind, mux: bool) {
    let socks = e.sockets.leg_mut(leg);
    match (&mut socks.rtcp, mux) {
        (Some(_), true) => {
            socks.rtcp = None;
            tracing::debug!(?leg, "RTCP multiplexed on the RTP port; RTCP port closed");
        }
        (None, false) => match mio::net::UdpSocket::bind(socks.rtcp_addr) {
            Ok(mut s) => {
                match registry.register(&mut s, token_of(key, leg, true), Interest::READABLE) {
                    Ok(()) => socks.rtcp = Some(s),
                    Err(err) => tracing::warn!(?leg, error = %err, "RTCP socket not registered"),
                }
            }
            Err(err) => {
                tracing::warn!(?leg, addr = %socks.rtcp_addr, error = %err, "RTCP port could not be bound again");
            }
        },
        _ => {}
    }
}

enum After {
    Keep,
    Close(Option<oneshot::Sender<()>>),
}

impl Thread {
    fn new(poll: Poll, rx: Receiver<Msg>, totals: Arc<TotalCounters>) -> Self {
        Thread {
            poll,
            rx,
            totals,
            tally: Tally::default(),
            sessions: Slab::new(),
            ids: HashMap::new(),
            timers: BinaryHeap::new(),
            batch: RecvBatch::new(),
            backlog: Vec::new(),
            turn: Vec::new(),
            rtcp_buf: Box::new([0; 2048]),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.backlog.is_empty() {
                self.timers
                    .peek()
                    .map(|Reverse((at, _, _))| at.saturating_duration_since(clock::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "relay poll failed; this relay thread stops");
                return;
            }
            std::mem::swap(&mut self.backlog, &mut self.turn);
            while let Some(token) = self.turn.pop() {
                self.readable(token);
            }
            let mut woken = false;
            for ev in events.iter() {
                if ev.token() == WAKER {
                    woken = true;
                } else {
                    self.readable(ev.token());
                }
            }
            if woken && !self.messages() {
                return;
            }
            self.due_timers();
            self.tally.flush(&self.totals);
        }
    }

    fn readable(&mut self, token: Token) {
        let (key, leg, rtcp) = leg_of(token);
        let Some(e) = self.sessions.get_mut(key) else {
            return;
        };
        let span = e.span.clone();
        let _span = span.enter();
        let more = if rtcp {
            drain_rtcp(e, leg, &mut self.rtcp_buf[..])
        } else {
            drain_rtp(e, leg, &mut self.batch)
        };
        if more {
            self.backlog.push(token);
        }
        self.tally.absorb(&mut e.core.tally);
        reschedule(&mut self.timers, e, key);
    }

    /// Handles every queued message; `false` when the thread must end.
    fn messages(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Add(e)) => self.add(*e),
                Ok(Msg::Commands(id)) => self.commands(id),
                Ok(Msg::Remove(id)) => self.remove(id, None),
                Ok(Msg::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn add(&mut self, mut e: Entry) {
        let slot = self.sessions.vacant_entry();
        let key = slot.key();
        let registry = self.poll.registry();
        let mut result = Ok(());
        for leg in [LegKind::Caller, LegKind::Agent] {
            let socks = e.sockets.leg_mut(leg);
            result = result.and_then(|()| {
                registry.register(
                    &mut socks.rtp,
                    token_of(key, leg, false),
                    Interest::READABLE,
                )
            });
            if let Some(s) = socks.rtcp.as_mut() {
                result = result.and_then(|()| {
                    registry.register(s, token_of(key, leg, true), Interest::READABLE)
                });
            }
        }
        if let Err(err) = result {
            let _span = e.span.enter();
            tracing::error!(error = %err, "RTP sockets could not be registered; session dropped");
            return;
        }
        let id = e.id;
        let entry = slot.insert(e);
        reschedule(&mut self.timers, entry, key);
        self.ids.insert(id, key);
    }

    fn commands(&mut self, id: u64) {
        let Some(&key) = self.ids.get(&id) else {
            return;
        };
        let Some(e) = self.sessions.get_mut(key) else {
            return;
        };
        let registry = self.poll.registry();
        let span = e.span.clone();
        let _span = span.enter();
        let after = loop {
            match e.commands.try_recv() {
                Ok(Command::Close(done)) => break After::Close(Some(done)),
                Ok(Command::StopRecording(done)) => match e.core.take_recording() {
                    Some(rec) => finish_recording(rec, move |r| {
                        let _ = done.send(r.map(Some));
                    }),
                    None => {
                        let _ = done.send(Ok(None));
                    }
                },
                Ok(Command::SetLeg(leg, params)) => {
                    e.core.apply(Command::SetLeg(leg, params));
                    sync_rtcp(registry, e, key, leg, params.rtcp_mux);
                }
                Ok(c) => e.core.apply(c),
                Err(mpsc::error::TryRecvError::Empty) => break After::Keep,
                Err(mpsc::error::TryRecvError::Disconnected) => break After::Close(None),
            }
        };
        self.tally.absorb(&mut e.core.tally);
        match after {
            After::Keep => reschedule(&mut self.timers, e, key),
            After::Close(done) => self.remove(id, done),
        }
    }

    /// Drops the session: its sockets close (leaving the poll) and its ports go back to the
    /// pool at once; a recording in progress is completed off this thread, then `done` hears.
    fn remove(&mut self, id: u64, done: Option<oneshot::Sender<()>>) {
        let entry = self
            .ids
            .remove(&id)
            .and_then(|key| self.sessions.try_remove(key));
        let Some(mut e) = entry else {
            if let Some(done) = done {
                let _ = done.send(());
            }
            return;
        };
        self.tally.absorb(&mut e.core.tally);
        let recording = e.core.take_recording();
        let span = e.span.clone();
        drop(e);
        match recording {
            Some(rec) => finish_recording(rec, move |r| {
                if let Err(err) = r {
                    let _span = span.enter();
                    tracing::warn!(error = %err, "recording");
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }),
            None => {
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }

    fn due_timers(&mut self) {
        let now = clock::now();
        while let Some(&Reverse((at, key, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.sessions.get_mut(key) else {
                continue;
            };
            if e.id != id || e.scheduled != Some(at) {
                continue; // stale: the session was rescheduled or the slot reused
            }
            let span = e.span.clone();
            let _span = span.enter();
            e.scheduled = None;
            e.core.tick(&e.sockets);
            self.tally.absorb(&mut e.core.tally);
            reschedule(&mut self.timers, e, key);
        }
    }
}

/// Reads the RTP socket of `leg` in batches; `true` when it may still hold datagrams.
fn drain_rtp(e: &mut Entry, leg: LegKind, batch: &mut RecvBatch) -> bool {
    for _ in 0..BATCHES_PER_TURN {
        match batch.recv(e.sockets.rtp(leg)) {
            Ok(n) => {
                for i in 0..n {
                    if let Some((data, src)) = batch.get(i) {
                        e.core.on_datagram(leg, src, data, &e.sockets);
                    }
                }
                if n < BATCH {
                    return false;
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            // E.g. a queued ICMP error: the next read returns data or WouldBlock.
            Err(_) => {}
        }
    }
    true
}

/// Reads the RTCP socket of `leg`; `true` when it may still hold datagrams.
fn drain_rtcp(e: &mut Entry, leg: LegKind, buf: &mut [u8]) -> bool {
    let Some(socket) = e.sockets.leg(leg).rtcp.as_ref() else {
        return false;
    };
    for _ in 0..RTCP_PER_TURN {
        match socket.recv_from(buf) {
            Ok(_) => e.core.on_rtcp(leg),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => {}
        }
    }
    true
}
