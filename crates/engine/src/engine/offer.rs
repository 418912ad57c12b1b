//! The offer protocol: agent moves by CAS, claims, commit, agent-driven dispatch, release of
//! a ring, and what an answer, a no-answer or a departed caller does to it.

use super::*;

impl Engine {
    /// Moves agent `a` from word `w` to `to` (with `call` for ringing/on-call/wrap-up) by one
    /// CAS; on success keeps the availability indices, `state_since` and the event stream in
    /// step.
    pub(super) fn move_agent(
        &self,
        now: Time,
        a: u32,
        w: u64,
        to: AgentStateKind,
        call: u64,
    ) -> bool {
        self.replace_agent_word(now, a, w, successor(w, to, call))
    }

    /// [`Engine::move_agent`] to the word `new`, which [`successor`] made from `w` (and
    /// which may carry [`PENDING`]).
    fn replace_agent_word(&self, now: Time, a: u32, w: u64, new: u64) -> bool {
        let Some(slot) = self.slots.get(a as usize) else {
            return false;
        };
        if slot.word.compare_exchange(w, new, SeqCst, SeqCst).is_err() {
            return false;
        }
        let (from, to) = (tag(w), tag(new));
        slot.state_since.store(now.as_millis(), SeqCst);
        if present(from) != present(to)
            && let Some(info) = self.agents.get(a as usize)
        {
            let counters = info
                .roles
                .iter()
                .filter_map(|&r| self.role_present.get(r as usize))
                .chain(
                    info.skills
                        .iter()
                        .filter_map(|&(s, _)| self.skill_present.get(s as usize)),
                );
            for n in counters {
                if present(to) {
                    n.fetch_add(1, SeqCst);
                } else {
                    n.fetch_sub(1, SeqCst);
                }
            }
        }
        if to == AgentStateKind::Available {
            self.index(a);
        }
        self.events.push(Event::AgentStateChanged {
            agent: AgentIdx(a),
            from,
            to,
            at: now,
        });
        if from == AgentStateKind::Available {
            self.unindex(now, a);
        }
        true
    }

    /// Claims an available agent for `call` (available → ringing, pending until
    /// [`Engine::commit`] confirms it). The claim is the agent word it wrote: its generation
    /// tells this claim from a later one of the same agent for the same call.
    pub(super) fn claim(&self, now: Time, a: u32, call: u64) -> Option<Claim> {
        let slot = self.slots.get(a as usize)?;
        let w = slot.word.load(SeqCst);
        if tag(w) != AgentStateKind::Available {
            return None;
        }
        self.claim_word(now, a, w, call)
    }

    pub(super) fn claim_word(&self, now: Time, a: u32, w: u64, call: u64) -> Option<Claim> {
        let word = successor(w, AgentStateKind::Ringing, call) | PENDING;
        self.replace_agent_word(now, a, w, word)
            .then_some(Claim { agent: a, word })
    }

    /// Confirms a pending claim once the call is offered: false when the agent was taken out
    /// of the claim meanwhile (a state change), which then did not release anything.
    pub(super) fn confirm(&self, c: &Claim) -> bool {
        self.slots.get(c.agent as usize).is_some_and(|slot| {
            slot.word
                .compare_exchange(c.word, c.word & !PENDING, SeqCst, SeqCst)
                .is_ok()
        })
    }

    /// Undoes this very claim if it is still pending.
    pub(super) fn unclaim_pending(&self, now: Time, c: &Claim) -> bool {
        self.move_agent(now, c.agent, c.word, AgentStateKind::Available, 0)
    }

    /// Undoes a claim, pending or committed: ringing(call) → available.
    pub(super) fn unclaim(&self, now: Time, a: u32, call: u64) -> bool {
        let Some(slot) = self.slots.get(a as usize) else {
            return false;
        };
        // A pending claim may be confirmed between our load and our CAS; that is the only
        // change that keeps the agent ringing for `call`, so two tries suffice (three to
        // spare).
        for _ in 0..3 {
            let w = slot.word.load(SeqCst);
            if tag(w) != AgentStateKind::Ringing || call_of(w) != call & CALL_MASK {
                return false;
            }
            if self.move_agent(now, a, w, AgentStateKind::Available, 0) {
                return true;
            }
        }
        false
    }

    /// Tries to find and claim agents for step `i` and offer them the call.
    pub(super) fn try_step_direct(&self, now: Time, cell: &Arc<CallCell>, i: usize) -> Attempt {
        let Some(step) = cell.steps.get(i) else {
            return Attempt::NoAgent;
        };
        let call = cell.id.0;
        // One claim for every strategy but `ring_all`: no vector for it.
        let one = match step.target {
            Target::Nobody => return Attempt::NoAgent,
            Target::Agent(a) => self.claim(now, a, call),
            Target::Role(r) => {
                let Some(index) = self
                    .role_avail
                    .get(r as usize)
                    .copied()
                    .flatten()
                    .and_then(|ix| self.avail.get(ix))
                else {
                    return Attempt::NoAgent;
                };
                self.claim_ordered(now, index, HintKind::Idle, cell)
            }
            Target::Queue(q) => {
                let Some(rt) = self.queues.get(q as usize) else {
                    return Attempt::NoAgent;
                };
                let strategy = rt.cfg.strategy;
                let Some(index) = self
                    .skill_avail
                    .get(rt.skill as usize)
                    .copied()
                    .flatten()
                    .and_then(|ix| self.avail.get(ix))
                else {
                    return Attempt::NoAgent;
                };
                match strategy {
                    Strategy::RingAll => {
                        let Some((lo, hi)) = self.best_level(index) else {
                            return Attempt::NoAgent;
                        };
                        let mut got = Vec::new();
                        let _ = index.each_set(lo, hi, |p| {
                            if got.len() >= self.ring_all_limit {
                                return ControlFlow::Break(());
                            }
                            if let Some(c) =
                                index.members.get(p).and_then(|&a| self.claim(now, a, call))
                            {
                                got.push(c);
                            }
                            ControlFlow::Continue(())
                        });
                        if got.is_empty() {
                            return Attempt::NoAgent;
                        }
                        return self.commit(now, cell, i, &got, true);
                    }
                    Strategy::RoundRobin => {
                        let c = self.claim_rotating(now, index, cell, || rt.rr_cursor.load(SeqCst));
                        if let Some(c) = c {
                            rt.rr_cursor.store(c.agent.wrapping_add(1), SeqCst);
                        }
                        c
                    }
                    Strategy::Random => {
                        let n = rt.agents.len().max(1) as u32;
                        let pick = || {
                            use rand::{Rng, SeedableRng};
                            let c = self.rng_counter.fetch_add(1, SeqCst);
                            let mut rng =
                                rand::rngs::SmallRng::seed_from_u64(self.seed ^ c.rotate_left(17));
                            rt.agents
                                .get(rng.random_range(0..n) as usize)
                                .copied()
                                .unwrap_or(0)
                        };
                        self.claim_rotating(now, index, cell, pick)
                    }
                    _ => self.claim_ordered(now, index, hint_kind(strategy), cell),
                }
            }
        };
        match one {
            Some(c) => self.commit(now, cell, i, std::slice::from_ref(&c), true),
            None => Attempt::NoAgent,
        }
    }

    /// Second half of an offer: the agents are claimed; move the call waiting → offered.
    /// If another thread offered (or the caller withdrew) the call first, the claims are
    /// undone and, when `redispatch`, the agents look for other calls.
    pub(super) fn commit(
        &self,
        now: Time,
        cell: &Arc<CallCell>,
        i: usize,
        claims: &[Claim],
        redispatch: bool,
    ) -> Attempt {
        let call = cell.id.0;
        let marker = match claims {
            [one] => one.agent,
            _ => RING_ALL,
        };
        // Only this commit's own pending claims are undone: the same agent may meanwhile
        // have been claimed again, for this very call, by another thread.
        let undo = |claims: &[Claim]| {
            for c in claims {
                if self.unclaim_pending(now, c) && redispatch {
                    self.dispatch_agent(now, c.agent);
                }
            }
        };
        let seq = cell.offer_seq.fetch_add(1, SeqCst).wrapping_add(1);
        let offered = mk_offered(seq, marker);
        if cell
            .status
            .compare_exchange(mk_status(CS_WAITING, NONE), offered, SeqCst, SeqCst)
            .is_err()
        {
            undo(claims);
            return Attempt::CallTaken;
        }
        cell.ringing.store(claims.len() as u32, SeqCst);
        cell.offered_step.store(i as u32, SeqCst);
        if marker == RING_ALL {
            self.ring_sets
                .insert(call, Arc::new(claims.iter().map(|c| c.agent).collect()));
            // A caller who left between the CAS and the insert found no ring set to release.
            if cell.st() != offered {
                self.ring_sets.remove(&call);
                undo(claims);
                return Attempt::CallTaken;
            }
        }
        // Confirm the claims. A claim lost meanwhile (a state change took the agent while it
        // was pending) released nothing, so it is released here: each claimed agent is
        // released exactly once, by whoever moves it out of `ringing` after its confirmation
        // or by this loop, and the release that empties the offer puts the call back.
        let mut agents = Vec::with_capacity(claims.len());
        for c in claims {
            if self.confirm(c) {
                agents.push(AgentIdx(c.agent));
            } else if self.release_ring(now, cell) {
                return Attempt::CallTaken;
            }
        }
        let attempt = cell.attempts.fetch_add(1, SeqCst).saturating_add(1);
        let (queue, ring_ms) = match cell.steps.get(i).map(|s| s.target) {
            Some(Target::Queue(q)) => (
                Some(QueueIdx(q)),
                self.queues
                    .get(q as usize)
                    .map_or(self.default_ring_ms, |q| secs_to_ms(q.cfg.ring_timeout_s)),
            ),
            _ => (None, self.default_ring_ms),
        };
        let offer = Offer {
            call: cell.id,
            route: self.trace(cell, i, &agents),
            agents,
            queue,
            ring_timeout_ms: ring_ms,
            attempt,
        };
        self.events.push(Event::CallOffered {
            offer: offer.clone(),
            at: now,
        });
        self.offers.push(offer);
        Attempt::Offered
    }

    /// Agent-driven dispatch: agent `a` became available; offer it the best waiting call it
    /// can serve (highest priority, then oldest) from its own, its roles' and its queues' lists.
    pub(super) fn dispatch_agent(&self, now: Time, a: u32) {
        fence(SeqCst);
        let (Some(info), Some(slot)) = (self.agents.get(a as usize), self.slots.get(a as usize))
        else {
            return;
        };
        for _ in 0..16 {
            let w = slot.word.load(SeqCst);
            if tag(w) != AgentStateKind::Available {
                return;
            }
            // A call this agent just did not answer is taken only when nothing else waits.
            let mut best: Option<(WaitKey, Arc<CallCell>, ListRef)> = None;
            let mut fallback: Option<(WaitKey, Arc<CallCell>, ListRef)> = None;
            for &lr in &info.lists {
                // Read after the fence above: a call registered before a caller's fence is
                // counted here, or that caller's agent search sees this agent's bits.
                let Some(list) = self.list(lr).filter(|l| l.maybe_nonempty()) else {
                    continue;
                };
                let mut garbage = Vec::new();
                list.scan(Bound::Unbounded, |k, cell| match status(cell.st()) {
                    CS_WAITING => {
                        let declined = cell.last_no_answer.load(SeqCst) == a;
                        let slot = if declined { &mut fallback } else { &mut best };
                        if slot.as_ref().is_none_or(|(bk, _, _)| k < bk) {
                            *slot = Some((*k, cell.clone(), lr));
                        }
                        if declined {
                            ControlFlow::Continue(())
                        } else {
                            ControlFlow::Break(())
                        }
                    }
                    CS_OFFERED => ControlFlow::Continue(()),
                    _ => {
                        garbage.push(*k);
                        ControlFlow::Continue(())
                    }
                });
                for k in &garbage {
                    list.remove(k);
                }
            }
            let Some((_, cell, lr)) = best.or(fallback) else {
                return;
            };
            let Some(i) = cell.step_for(lr) else { continue };
            let Some(claim) = self.claim_word(now, a, w, cell.id.0) else {
                continue;
            };
            if let Attempt::Offered = self.commit(now, &cell, i, &[claim], false) {
                return;
            }
        }
    }

    /// One ringing agent let go of an offer; the last one puts the call back in its place.
    /// Returns whether this was the last one (the offer is over).
    pub(super) fn release_ring(&self, now: Time, cell: &Arc<CallCell>) -> bool {
        let prev = cell
            .ringing
            .fetch_update(SeqCst, SeqCst, |n| Some(n.saturating_sub(1)))
            .unwrap_or(0);
        if prev != 1 {
            return false;
        }
        let st = cell.st();
        if status(st) == CS_OFFERED
            && cell
                .status
                .compare_exchange(st, mk_status(CS_WAITING, NONE), SeqCst, SeqCst)
                .is_ok()
        {
            if status_agent(st) == RING_ALL {
                self.ring_sets.remove(&cell.id.0);
            }
            // Offered at once on arrival (see `route_along`): it now takes its place in the
            // first step's list, by its arrival key — the place it would have had all along.
            if cell.registered.load(SeqCst) == 0 {
                self.listed(cell);
                self.register_at(cell, 0, false);
            }
            self.dispatch_call(now, cell);
        }
        true
    }

    pub(super) fn answered(
        &self,
        now: Time,
        cell: &Arc<CallCell>,
        a: u32,
    ) -> Result<(), EngineError> {
        let call = cell.id;
        let slot = self.slot(a)?;
        let st = cell.st();
        if status(st) != CS_OFFERED {
            return Err(EngineError::WrongCallState {
                call,
                state: status_name(st),
            });
        }
        let w = slot.word.load(SeqCst);
        if !rings_for(w, call.0) || !self.move_agent(now, a, w, AgentStateKind::OnCall, call.0) {
            return Err(EngineError::NotRinging {
                call,
                agent: AgentIdx(a),
            });
        }
        if cell
            .status
            .compare_exchange(st, mk_status(CS_TALKING, a), SeqCst, SeqCst)
            .is_err()
        {
            // The caller left meanwhile: the agent is free again.
            let w = slot.word.load(SeqCst);
            if tag(w) == AgentStateKind::OnCall
                && call_of(w) == call.0 & CALL_MASK
                && self.move_agent(now, a, w, AgentStateKind::Available, 0)
            {
                self.dispatch_agent(now, a);
            }
            return Err(EngineError::WrongCallState {
                call,
                state: status_name(cell.st()),
            });
        }
        slot.no_answer_streak.store(0, SeqCst);
        cell.answered_at.store(now.as_millis(), SeqCst);
        let wait_ms = now.millis_since(cell.enqueued_at);
        // A held place is no caller on the line: its answer is no queue answer.
        if !cell.is_held()
            && let Some(q) = self.queues.get(cell.stats_queue.load(SeqCst) as usize)
        {
            q.answered.fetch_add(1, SeqCst);
            q.wait_total.fetch_add(wait_ms, SeqCst);
            if wait_ms <= self.sl_threshold_ms {
                q.answered_within.fetch_add(1, SeqCst);
            }
        }
        if status_agent(st) == RING_ALL
            && let Some(set) = self.ring_sets.get(&call.0)
        {
            self.ring_sets.remove(&call.0);
            for &b in set.iter().filter(|&&b| b != a) {
                if self.unclaim(now, b, call.0) {
                    self.dispatch_agent(now, b);
                }
            }
        }
        self.listed(cell);
        self.unregister_all(cell);
        let queue = match cell
            .steps
            .get(cell.offered_step.load(SeqCst) as usize)
            .map(|s| s.target)
        {
            Some(Target::Queue(q)) => Some(QueueIdx(q)),
            _ => None,
        };
        self.events.push(Event::CallAnswered {
            call,
            agent: AgentIdx(a),
            queue,
            wait_ms,
            at: now,
        });
        Ok(())
    }

    pub(super) fn not_answered(
        &self,
        now: Time,
        cell: &Arc<CallCell>,
        a: u32,
        to: AgentStateKind,
        rejected: bool,
    ) -> Result<(), EngineError> {
        let call = cell.id;
        let slot = self.slot(a)?;
        let w = slot.word.load(SeqCst);
        if !rings_for(w, call.0) || !self.move_agent(now, a, w, to, 0) {
            return Err(EngineError::NotRinging {
                call,
                agent: AgentIdx(a),
            });
        }
        cell.last_no_answer.store(a, SeqCst);
        self.events.push(Event::CallNotAnswered {
            call,
            agent: AgentIdx(a),
            rejected,
            at: now,
        });
        self.release_ring(now, cell);
        if to == AgentStateKind::Available {
            self.dispatch_agent(now, a);
        }
        Ok(())
    }

    pub(super) fn caller_gone(&self, now: Time, cell: &Arc<CallCell>) -> Result<(), EngineError> {
        let call = cell.id;
        let st = loop {
            let st = cell.st();
            match status(st) {
                CS_WAITING | CS_OFFERED => {
                    if cell
                        .status
                        .compare_exchange(st, mk_status(CS_GONE, status_agent(st)), SeqCst, SeqCst)
                        .is_ok()
                    {
                        break st;
                    }
                }
                CS_TALKING => return self.hangup(now, call, HangupSide::Caller),
                _ => {
                    return Err(EngineError::WrongCallState {
                        call,
                        state: status_name(st),
                    });
                }
            }
        };
        if status(st) == CS_OFFERED {
            let agents = match status_agent(st) {
                RING_ALL => {
                    let set = self.ring_sets.get(&call.0);
                    self.ring_sets.remove(&call.0);
                    set.map(|s| s.to_vec()).unwrap_or_default()
                }
                one => vec![one],
            };
            for b in agents {
                if self.unclaim(now, b, call.0) {
                    self.dispatch_agent(now, b);
                }
            }
        }
        let wait_ms = now.millis_since(cell.enqueued_at);
        // A held place given up (its call-back cancelled, or dialed and not taken) was
        // counted as a caller who asked for a call-back, not as an abandon.
        if !cell.is_held()
            && let Some(q) = self.queues.get(cell.stats_queue.load(SeqCst) as usize)
        {
            q.abandoned.fetch_add(1, SeqCst);
        }
        self.listed(cell);
        self.unregister_all(cell);
        self.call_shard(call.0).remove(&call.0);
        self.events.push(Event::CallAbandoned {
            call,
            wait_ms,
            at: now,
        });
        Ok(())
    }
}
