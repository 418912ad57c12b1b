//! The endpoint's deadlines: one binary heap of transaction and 2xx/ACK timers with lazy
//! deletion, and what runs when they are due.

use super::*;

impl Endpoint {
    // ----- timers ------------------------------------------------------------------------

    pub(super) fn alloc_ack_id(&mut self) -> u64 {
        self.next_ack_id = self.next_ack_id.wrapping_add(1);
        self.next_ack_id
    }

    pub(super) fn remove_pending_ack(&mut self, id: u64) {
        if let Some(p) = self.pending_acks.remove(&id)
            && self.pending_ack_index.get(&p.key) == Some(&id)
        {
            self.pending_ack_index.remove(&p.key);
        }
    }

    pub(super) fn remove_sent_ack(&mut self, id: u64) {
        if let Some(a) = self.sent_acks.remove(&id)
            && self.sent_ack_index.get(&a.key) == Some(&id)
        {
            self.sent_ack_index.remove(&a.key);
        }
    }

    /// The queue entry slot of `owner`; `None` when it is gone.
    pub(super) fn sched_mut(&mut self, owner: TimerOwner) -> Option<&mut Scheduled> {
        match owner {
            TimerOwner::Client(id) => self.clients.get_mut(&id).map(|e| &mut e.sched),
            TimerOwner::Server(id) => self.servers.get_mut(&id).map(|e| &mut e.sched),
            TimerOwner::PendingAck(id) => self.pending_acks.get_mut(&id).map(|p| &mut p.sched),
            TimerOwner::SentAck(id) => self.sent_acks.get_mut(&id).map(|a| &mut a.sched),
        }
    }

    /// Queues `owner` under its current next deadline. Every change of a transaction's
    /// timers or of a 2xx/ACK record's deadline is followed by this call.
    pub(super) fn schedule(&mut self, owner: TimerOwner) {
        let (sched, next) = match owner {
            TimerOwner::Client(id) => match self.clients.get_mut(&id) {
                Some(e) => (&mut e.sched, e.txn.next_timer().map(|t| t.0)),
                None => return,
            },
            TimerOwner::Server(id) => match self.servers.get_mut(&id) {
                Some(e) => (&mut e.sched, e.txn.next_timer().map(|t| t.0)),
                None => return,
            },
            TimerOwner::PendingAck(id) => match self.pending_acks.get_mut(&id) {
                Some(p) => {
                    let next = p.deadline();
                    (&mut p.sched, Some(next))
                }
                None => return,
            },
            TimerOwner::SentAck(id) => match self.sent_acks.get_mut(&id) {
                Some(a) => (&mut a.sched, Some(a.until)),
                None => return,
            },
        };
        self.timers.update(sched, next, owner);
    }

    /// Takes a popped queue entry off its owner; whether the entry was live.
    pub(super) fn unschedule(&mut self, at: Instant, generation: u64, owner: TimerOwner) -> bool {
        match self.sched_mut(owner) {
            Some(sched) if *sched == Some((at, generation)) => {
                *sched = None;
                true
            }
            _ => false,
        }
    }

    pub(super) fn is_live(&self, at: Instant, generation: u64, owner: TimerOwner) -> bool {
        let sched = match owner {
            TimerOwner::Client(id) => self.clients.get(&id).map(|e| e.sched),
            TimerOwner::Server(id) => self.servers.get(&id).map(|e| e.sched),
            TimerOwner::PendingAck(id) => self.pending_acks.get(&id).map(|p| p.sched),
            TimerOwner::SentAck(id) => self.sent_acks.get(&id).map(|a| a.sched),
        };
        sched.flatten() == Some((at, generation))
    }

    /// Drops stale entries from the top of the timer queue, so that [`Self::poll_timeout`]
    /// reads a live deadline. Every public method that changes timers ends with it.
    pub(super) fn settle_timers(&mut self) {
        while let Some(&Reverse((at, generation, owner))) = self.timers.heap.peek() {
            if self.is_live(at, generation, owner) {
                break;
            }
            self.timers.heap.pop();
        }
    }

    pub(super) fn client_timers(&mut self, now: Instant, due: Vec<u64>) {
        for id in due {
            for _ in 0..MAX_FIRINGS {
                let Some(e) = self.clients.get_mut(&id) else {
                    break;
                };
                let Some((at, timer)) = e.txn.next_timer().filter(|(at, _)| *at <= now) else {
                    break;
                };
                match e.txn.on_timer(at.max(now), timer) {
                    ClientAction::Retransmit => {
                        bump(&mut self.stats.retransmissions_sent);
                        self.transmits.push_back(Transmit {
                            dest: e.dest.clone(),
                            bytes: e.bytes.clone(),
                        });
                    }
                    ClientAction::Timeout => {
                        bump(&mut self.stats.transaction_timeouts);
                        self.events.push_back(Event::TransactionTimeout {
                            txn: TxnKey::Client(ClientTxnKey(id)),
                        });
                    }
                    _ => {}
                }
            }
            if self.clients.get(&id).is_some_and(|e| e.txn.is_terminated()) {
                self.remove_client(id);
            } else {
                self.schedule(TimerOwner::Client(id));
            }
        }
    }

    pub(super) fn server_timers(&mut self, now: Instant, due: Vec<u64>) {
        for id in due {
            for _ in 0..MAX_FIRINGS {
                let Some(e) = self.servers.get_mut(&id) else {
                    break;
                };
                let Some((at, timer)) = e.txn.next_timer().filter(|(at, _)| *at <= now) else {
                    break;
                };
                match e.txn.on_timer(at.max(now), timer) {
                    ServerAction::ResendResponse => {
                        if let Some(bytes) = e.last_response.clone() {
                            bump(&mut self.stats.retransmissions_sent);
                            self.transmits.push_back(Transmit {
                                dest: e.reply_to.clone(),
                                bytes,
                            });
                        }
                    }
                    ServerAction::Timeout => {
                        bump(&mut self.stats.transaction_timeouts);
                        self.events.push_back(Event::TransactionTimeout {
                            txn: TxnKey::Server(ServerTxnKey(id)),
                        });
                    }
                    ServerAction::Nothing => {}
                }
            }
            if self.servers.get(&id).is_some_and(|e| e.txn.is_terminated()) {
                self.remove_server(id);
            } else {
                self.schedule(TimerOwner::Server(id));
            }
        }
    }

    pub(super) fn ack_timers(&mut self, now: Instant, due: Vec<u64>) {
        let t2 = self.cfg.timers.t2;
        let mut timed_out = Vec::new();
        for id in due {
            let Some(p) = self.pending_acks.get_mut(&id) else {
                continue;
            };
            if p.give_up <= now {
                if !p.acked {
                    timed_out.push(p.invite_txn);
                }
                self.remove_pending_ack(id);
                continue;
            }
            if let Some(at) = p.next_retransmit
                && at <= now
                && !p.acked
            {
                bump(&mut self.stats.retransmissions_sent);
                self.transmits.push_back(Transmit {
                    dest: p.dest.clone(),
                    bytes: p.bytes.clone(),
                });
                p.interval = p.interval.saturating_mul(2).min(t2);
                p.next_retransmit = Some(now + p.interval);
            }
            self.schedule(TimerOwner::PendingAck(id));
        }
        for invite_txn in timed_out {
            bump(&mut self.stats.transaction_timeouts);
            self.events.push_back(Event::AckTimeout { invite_txn });
        }
    }
}
