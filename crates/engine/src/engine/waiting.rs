//! Waiting lists and the call's walk along its chain: registering in step lists, holding at a
//! step, moving the frontier on, and serving a step in list order.

use super::*;

/// Position in a waiting list: higher priority first, then arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct WaitKey {
    pub(super) prio_rev: u8,
    pub(super) seq: u64,
}

/// A waiting list: calls by (priority desc, arrival).
pub(super) struct WaitList {
    pub(super) map: OrderedMap<WaitKey, Arc<CallCell>>,
    /// Incremented before every insert (see [`Engine::register`]), decremented after every
    /// successful remove, so it is never below the number of entries: zero means "nothing to
    /// scan". Agent-side dispatch reads it after its SeqCst fence, which orders it against a
    /// caller's increment the same way the scan itself would be (see
    /// [`Engine::dispatch_agent`]). A call registered twice under the same key leaves it one
    /// too high: a wasted scan, never a missed call.
    pub(super) count: AtomicU64,
}

impl WaitList {
    pub(super) fn new() -> WaitList {
        WaitList {
            map: OrderedMap::new(),
            count: AtomicU64::new(0),
        }
    }
    pub(super) fn remove(&self, key: &WaitKey) -> bool {
        let removed = self.map.remove(key);
        if removed {
            self.count.fetch_sub(1, SeqCst);
        }
        removed
    }
    pub(super) fn maybe_nonempty(&self) -> bool {
        self.count.load(SeqCst) != 0
    }
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
    pub(super) fn scan(
        &self,
        from: Bound<&WaitKey>,
        f: impl FnMut(&WaitKey, &Arc<CallCell>) -> ControlFlow<()>,
    ) {
        self.map.scan(from, f);
    }
}

impl Engine {
    pub(super) fn list(&self, lr: ListRef) -> Option<&WaitList> {
        match lr {
            ListRef::Agent(a) => self.agent_lists.get(a as usize),
            ListRef::Role(r) => self.role_lists.get(r as usize),
            ListRef::Queue(q) => self.queues.get(q as usize).map(|q| &q.waiting),
        }
    }

    pub(super) fn list_of(&self, target: Target) -> Option<&WaitList> {
        match target {
            Target::Agent(a) => self.list(ListRef::Agent(a)),
            Target::Role(r) => self.list(ListRef::Role(r)),
            Target::Queue(q) => self.list(ListRef::Queue(q)),
            Target::Nobody => None,
        }
    }

    /// Puts the call into the waiting list of step `i` (a full queue is skipped).
    pub(super) fn register(&self, cell: &Arc<CallCell>, i: usize) {
        self.register_at(cell, i, true);
    }

    /// [`Engine::register`]; `check_full: false` for a call the queue already admitted (one
    /// served at once on arrival whose offer failed).
    pub(super) fn register_at(&self, cell: &Arc<CallCell>, i: usize, check_full: bool) {
        let (Some(step), Some(key)) = (cell.steps.get(i), cell.key(i)) else {
            return;
        };
        if let Target::Queue(q) = step.target
            && let Some(rt) = self.queues.get(q as usize)
        {
            if check_full && rt.cfg.max_len.is_some_and(|max| rt.waiting.len() >= max) {
                return;
            }
            self.count_entry(cell, q);
        }
        if let Some(list) = self.list_of(step.target) {
            // Counted before the bit is set: whoever sees the bit sees the count include this
            // call (`try_step` relies on it).
            list.count.fetch_add(1, SeqCst);
            cell.registered.fetch_or(1u64 << i, SeqCst);
            list.map.insert(key, cell.clone());
        }
    }

    pub(super) fn unregister_all(&self, cell: &CallCell) {
        let mask = cell.registered.load(SeqCst);
        for (i, step) in cell.steps.iter().enumerate() {
            if i < 64
                && mask & (1u64 << i) != 0
                && let (Some(list), Some(key)) = (self.list_of(step.target), cell.key(i))
            {
                list.remove(&key);
            }
        }
    }

    /// Should the call stay at its last reached step `i` rather than move on?
    pub(super) fn hold(&self, now: Time, cell: &CallCell, i: usize) -> Hold {
        let Some(step) = cell.steps.get(i) else {
            return Hold::Pass;
        };
        let since = Time::from_millis(cell.frontier_since.load(SeqCst));
        let until = |ms: u64| {
            let deadline = since.plus_millis(ms);
            if now < deadline {
                Hold::Until(deadline)
            } else {
                Hold::Pass
            }
        };
        match step.target {
            Target::Agent(a) if cell.is_registered(i) => {
                let k = self.kind_of(a);
                if self.busy_wait_ms > 0 && (k.is_busy() || k == AgentStateKind::Available) {
                    until(self.busy_wait_ms)
                } else {
                    Hold::Pass
                }
            }
            Target::Queue(q) if cell.is_registered(i) => {
                match self.queues.get(q as usize).and_then(|q| q.cfg.max_wait_s) {
                    None => Hold::Forever,
                    Some(s) => until(secs_to_ms(s)),
                }
            }
            _ => Hold::Pass,
        }
    }

    /// Call-driven dispatch: tries every reached step in chain order; when none can serve,
    /// moves the frontier over steps that do not hold the call, registering each new step.
    /// The call is registered before agents are looked at, and an agent is published as
    /// available before calls are looked at (with a SeqCst fence on both sides), so a call
    /// and an agent that meet concurrently are never both left waiting.
    pub(super) fn dispatch_call(&self, now: Time, cell: &Arc<CallCell>) {
        fence(SeqCst);
        let n = cell.steps.len() as u32;
        for _ in 0..=n {
            if status(cell.st()) != CS_WAITING {
                return;
            }
            let f = cell.frontier.load(SeqCst).clamp(1, n.max(1));
            for i in 0..f as usize {
                if cell.is_registered(i) {
                    match self.try_step(now, cell, i) {
                        Attempt::Offered | Attempt::CallTaken => return,
                        Attempt::NoAgent => {}
                    }
                }
            }
            if f >= n {
                return;
            }
            let last = (f - 1) as usize;
            match self.hold(now, cell, last) {
                Hold::Forever => return,
                Hold::Until(deadline) => {
                    self.timers.insert(
                        TimerKey {
                            at: deadline.as_millis(),
                            kind: T_ADVANCE,
                            id: cell.id.0,
                            aux: u64::from(f),
                        },
                        (),
                    );
                    return;
                }
                Hold::Pass => {
                    if cell
                        .frontier
                        .compare_exchange(f, f + 1, SeqCst, SeqCst)
                        .is_ok()
                    {
                        cell.frontier_since.store(now.as_millis(), SeqCst);
                        if let Some(Target::Queue(q)) = cell.steps.get(last).map(|s| s.target)
                            && cell.is_registered(last)
                        {
                            if let Some(rt) = self.queues.get(q as usize) {
                                rt.overflowed.fetch_add(1, SeqCst);
                            }
                            self.events.push(Event::CallOverflowed {
                                call: cell.id,
                                queue: QueueIdx(q),
                                at: now,
                            });
                        }
                        self.register(cell, f as usize);
                        fence(SeqCst);
                    }
                }
            }
        }
    }

    /// Serves step `i` of `cell` in list order: while an earlier call waits in the same list,
    /// the agents found go to that call first (FIFO within a priority also on the call path).
    pub(super) fn try_step(&self, now: Time, cell: &Arc<CallCell>, i: usize) -> Attempt {
        let (Some(step), Some(my_key)) = (cell.steps.get(i), cell.key(i)) else {
            return Attempt::NoAgent;
        };
        let Some(list) = self.list_of(step.target) else {
            return Attempt::NoAgent;
        };
        // Each round either offers a call, or finds the head taken by another thread; the
        // bound only protects against a pathological stream of such races, after which the
        // call is served directly (never left waiting next to an idle agent).
        for _ in 0..64 {
            // The count never falls below the entries, and this call is one of them: at most
            // one means no earlier call to serve first.
            if list.count.load(SeqCst) <= 1 {
                break;
            }
            let mut head: Option<Arc<CallCell>> = None;
            list.scan(Bound::Unbounded, |k, c| {
                if *k >= my_key {
                    return ControlFlow::Break(());
                }
                if status(c.st()) == CS_WAITING {
                    head = Some(c.clone());
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            let Some(head) = head else { break };
            let Some(j) = head.steps.iter().position(|s| s.target == step.target) else {
                break;
            };
            match self.try_step_direct(now, &head, j) {
                Attempt::NoAgent => return Attempt::NoAgent,
                Attempt::Offered | Attempt::CallTaken => {}
            }
            if status(cell.st()) != CS_WAITING {
                return Attempt::CallTaken;
            }
        }
        self.try_step_direct(now, cell, i)
    }
}
