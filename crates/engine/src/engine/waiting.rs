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

    /// Should the call stay at its last reached step `i` rather than move on (PRODUCT §3,
    /// "Waiting inside a chain")?
    pub(super) fn hold(&self, now: Time, cell: &CallCell, i: usize) -> Hold {
        let since = Time::from_millis(cell.frontier_since.load(SeqCst));
        match self.hold_ms(cell, i) {
            0 => Hold::Pass,
            ms if now < since.plus_millis(ms) => Hold::Until(since.plus_millis(ms)),
            _ => Hold::Pass,
        }
    }

    /// How long step `i` holds the call before the next step is reached; 0 moves on at once.
    /// A step whose agents are all logged out or absent is skipped at once. An assigned
    /// manager who is present but cannot take the call is waited for only in the `other`
    /// chain (rule 8; rule 4 skips a busy manager); a named agent up to the step wait; a
    /// queue up to its max wait; a role never (rule 4: "if none is available").
    fn hold_ms(&self, cell: &CallCell, i: usize) -> u64 {
        let Some(step) = cell.steps.get(i) else {
            return 0;
        };
        if !cell.is_registered(i) || !self.staffed(step.target) {
            return 0;
        }
        match step.target {
            Target::Agent(_) if step.manager != NONE => {
                if matches!(cell.template, TemplateRef::Class(c) if c == Class::Other.index()) {
                    self.other_wait_ms
                } else {
                    0
                }
            }
            Target::Agent(_) => self.step_wait_ms,
            Target::Queue(q) => self.queue_wait_ms(q),
            Target::Role(_) | Target::Nobody => 0,
        }
    }

    fn queue_wait_ms(&self, q: u32) -> u64 {
        self.queues
            .get(q as usize)
            .and_then(|q| q.cfg.max_wait_s)
            .map_or(self.step_wait_ms, secs_to_ms)
    }

    /// Whether anybody who could serve `target` is present (neither logged out nor absent).
    pub(super) fn staffed(&self, target: Target) -> bool {
        let count = |v: &[AtomicU32], i: u32| v.get(i as usize).is_some_and(|n| n.load(SeqCst) > 0);
        match target {
            Target::Agent(a) => present(self.kind_of(a)),
            Target::Role(r) => count(&self.role_present, r),
            Target::Queue(q) => self
                .queues
                .get(q as usize)
                .is_some_and(|rt| count(&self.skill_present, rt.skill)),
            Target::Nobody => false,
        }
    }

    /// When the call, having reached every step, stops waiting: the last step's hold (a
    /// queue's max wait, else the step wait) from when it was reached.
    fn last_step_deadline(&self, cell: &CallCell) -> Time {
        let since = Time::from_millis(cell.frontier_since.load(SeqCst));
        let ms = match cell.steps.last().map(|s| s.target) {
            Some(Target::Queue(q)) => self.queue_wait_ms(q),
            _ => self.step_wait_ms,
        };
        since.plus_millis(ms)
    }

    /// The bound of a chain without a queue step (`[routing] max_wait_s`), all steps together;
    /// a queue's chain is bounded by the queue's own waits.
    fn chain_deadline(&self, cell: &CallCell) -> Option<Time> {
        let has_queue = cell
            .steps
            .iter()
            .any(|s| matches!(s.target, Target::Queue(_)));
        (!has_queue).then(|| cell.enqueued_at.plus_millis(self.chain_max_ms))
    }

    /// Sets the timer that re-examines the call at `at` (while its frontier is `f`).
    fn wake_at(&self, cell: &CallCell, at: Time, f: u32) {
        self.timers.insert(
            TimerKey {
                at: at.as_millis(),
                kind: T_ADVANCE,
                id: cell.id.0,
                aux: u64::from(f),
            },
            (),
        );
    }

    /// Call-driven dispatch: tries every reached step in chain order; when none can serve,
    /// moves the frontier over steps that do not hold the call, registering each new step.
    /// The call is registered before agents are looked at, and an agent is published as
    /// available before calls are looked at (with a SeqCst fence on both sides), so a call
    /// and an agent that meet concurrently are never both left waiting. A waiting call past
    /// its bound (every step reached and the last one's hold over, or the chain's max wait)
    /// leaves with outcome `timeout`.
    pub(super) fn dispatch_call(&self, now: Time, cell: &Arc<CallCell>) {
        fence(SeqCst);
        let n = cell.steps.len() as u32;
        let cap = self.chain_deadline(cell);
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
            if cap.is_some_and(|c| now >= c) {
                self.expire(now, cell);
                return;
            }
            let bound = |d: Time| cap.map_or(d, |c| c.min(d));
            if f >= n {
                let deadline = bound(self.last_step_deadline(cell));
                if now >= deadline {
                    self.expire(now, cell);
                } else {
                    self.wake_at(cell, deadline, f);
                }
                return;
            }
            let last = (f - 1) as usize;
            match self.hold(now, cell, last) {
                Hold::Until(deadline) => {
                    self.wake_at(cell, bound(deadline), f);
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

    /// The waiting call's bound passed: it leaves the engine with outcome `timeout`. A call
    /// being offered is left alone; the end of its offer brings it back here. A held place
    /// (see [`Engine::hold_place`]) never times out: the bound is for callers on the line,
    /// and the place stays in every list it reached until an agent frees.
    fn expire(&self, now: Time, cell: &Arc<CallCell>) {
        if cell.is_held() {
            return;
        }
        if !cell.leave_waiting() {
            return;
        }
        let q = cell.stats_queue.load(SeqCst);
        if let Some(rt) = self.queues.get(q as usize) {
            rt.timed_out.fetch_add(1, SeqCst);
        }
        self.listed(cell);
        self.unregister_all(cell);
        self.call_shard(cell.id.0).remove(&cell.id.0);
        let reached = cell.frontier.load(SeqCst) as usize;
        self.events.push(Event::CallTimedOut {
            call: cell.id,
            queue: (q != NONE).then_some(QueueIdx(q)),
            wait_ms: now.millis_since(cell.enqueued_at),
            route: self.trace_unserved(cell, reached.max(1)),
            at: now,
        });
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
