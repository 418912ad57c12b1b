//! Calls through the public API: routing a call along a chain, reports of offers, hang-ups.

use super::*;

impl Engine {
    // ---- calls -----------------------------------------------------------------------------

    /// Routes a call whose client the caller already looked up: classifies it, walks its
    /// route chain and either offers it at once (see [`Engine::next_offer`]) or lets it wait.
    /// `Err(NoRoute)` when no step of the chain can ever take it.
    pub fn route_call(&self, now: Time, req: CallRequest) -> Result<CallId, EngineError> {
        let class = classify(req.client.as_ref(), req.purpose);
        let template_ref = match req.queue {
            Some(q) => TemplateRef::Queue(q.0 as usize),
            None => TemplateRef::Class(class.index()),
        };
        self.route_along(now, req, class, template_ref)
    }

    /// Routes a call to one named target instead of its class chain: a blind transfer to
    /// `agent:<id>`, `role:<role>` or `queue:<name>` (whose overflow still applies). The
    /// client and purpose still give the class (priority, the record).
    pub fn route_call_to(
        &self,
        now: Time,
        req: CallRequest,
        target: &Step,
    ) -> Result<CallId, EngineError> {
        let class = classify(req.client.as_ref(), req.purpose);
        let unknown = |what: &'static str, value: &str| EngineError::BadValue {
            what,
            value: value.to_owned(),
        };
        let template_ref = match target {
            Step::Agent(id) => TemplateRef::Agent(
                self.agent_by_id
                    .get(id)
                    .copied()
                    .ok_or_else(|| unknown("agent", id))? as usize,
            ),
            Step::Role(role) => TemplateRef::Role(
                self.role_names
                    .iter()
                    .position(|r| r == role)
                    .ok_or_else(|| unknown("role", role))?,
            ),
            Step::Queue(name) => TemplateRef::Queue(
                self.queue_by_name
                    .get(name)
                    .copied()
                    .ok_or_else(|| unknown("queue", name))? as usize,
            ),
            Step::AssignedManager => TemplateRef::Class(class.index()),
        };
        self.route_along(now, req, class, template_ref)
    }

    pub(super) fn route_along(
        &self,
        now: Time,
        req: CallRequest,
        class: Class,
        template_ref: TemplateRef,
    ) -> Result<CallId, EngineError> {
        let _batch = self.events.batch();
        let id = self.next_call.fetch_add(1, SeqCst);
        let base_prio = req
            .priority
            .unwrap_or_else(|| self.class_priority.get(class.index()).copied().unwrap_or(0));
        let template = self.template(template_ref);
        let steps = self.resolve_chain(template, class, req.client.as_ref(), base_prio);
        // A chain that reaches nobody (every step's agents logged out or absent) is refused
        // at once: the caller hears a short message instead of waiting for its bound.
        if !steps.iter().any(|s| self.staffed(s.target)) {
            return Err(EngineError::NoRoute(CallId(id)));
        }
        let cell = Arc::new(CallCell {
            id: CallId(id),
            template: template_ref,
            enqueued_at: now,
            steps,
            status: AtomicU64::new(mk_status(CS_WAITING, NONE)),
            frontier: AtomicU32::new(1),
            frontier_since: AtomicU64::new(now.as_millis()),
            registered: AtomicU64::new(0),
            attempts: AtomicU32::new(0),
            offer_seq: AtomicU32::new(0),
            ringing: AtomicU32::new(0),
            last_no_answer: AtomicU32::new(NONE),
            offered_step: AtomicU32::new(0),
            stats_queue: AtomicU32::new(NONE),
            answered_at: AtomicU64::new(0),
            unlisted: AtomicU32::new(0),
            held: AtomicU32::new(0),
        });
        self.call_shard(id).insert(id, cell.clone());
        // Fast path: nobody waits in the first step's list, so no earlier call has a claim on
        // its agents, and a call no other thread can see yet needs no place in the list to be
        // offered. It takes its place (by its arrival key) only if it has to wait after all,
        // here or when its offer fails (see `release_ring`).
        let fast = self.nobody_waiting_first(&cell);
        match fast {
            Some(first_queue) => {
                cell.unlisted.store(1, SeqCst);
                if let Some(q) = first_queue {
                    self.count_entry(&cell, q);
                    if let Some(rt) = self.queues.get(q as usize) {
                        rt.unlisted.fetch_add(1, SeqCst);
                    }
                }
            }
            None => self.register(&cell, 0),
        }
        let queue = match cell.stats_queue.load(SeqCst) {
            NONE => None,
            q => Some(QueueIdx(q)),
        };
        self.events.push(Event::CallEnqueued {
            call: cell.id,
            class,
            queue,
            at: now,
        });
        if fast.is_some() {
            let attempt = self.try_step_direct(now, &cell, 0);
            if let Attempt::Offered = attempt {
                return Ok(cell.id);
            }
            self.listed(&cell);
            if let Attempt::CallTaken = attempt {
                return Ok(cell.id);
            }
            self.register_at(&cell, 0, false);
        }
        self.dispatch_call(now, &cell);
        if cell.registered.load(SeqCst) == 0 && cell.leave_waiting() {
            self.call_shard(id).remove(&id);
            return Err(EngineError::NoRoute(cell.id));
        }
        Ok(cell.id)
    }

    /// The call entered queue `q`: the first queue it enters is the one its statistics count.
    pub(super) fn count_entry(&self, cell: &CallCell, q: u32) {
        if let Some(rt) = self.queues.get(q as usize)
            && cell
                .stats_queue
                .compare_exchange(NONE, q, SeqCst, SeqCst)
                .is_ok()
        {
            rt.entered.fetch_add(1, SeqCst);
        }
    }

    /// The call no longer waits unlisted (answered, gone, or now in a waiting list).
    pub(super) fn listed(&self, cell: &CallCell) {
        if cell.unlisted.swap(0, SeqCst) == 1
            && let Some(rt) = self.queues.get(cell.stats_queue.load(SeqCst) as usize)
        {
            rt.unlisted.fetch_sub(1, SeqCst);
        }
    }

    /// For the arrival fast path: `Some(queue)` when nobody waits in the list of the call's
    /// first step (and the step is a list a call may wait in), with the step's queue if any.
    pub(super) fn nobody_waiting_first(&self, cell: &CallCell) -> Option<Option<u32>> {
        let step = cell.steps.first()?;
        if self.list_of(step.target)?.maybe_nonempty() {
            return None;
        }
        match step.target {
            Target::Queue(q) => {
                let rt = self.queues.get(q as usize)?;
                (rt.cfg.max_len != Some(0)).then_some(Some(q))
            }
            _ => Some(None),
        }
    }

    /// Reports what became of an offer (or that the caller left).
    pub fn report(&self, now: Time, call: CallId, outcome: Outcome) -> Result<(), EngineError> {
        let _batch = self.events.batch();
        let cell = self.cell(call)?;
        match outcome {
            Outcome::Answered(a) => self.answered(now, &cell, a.0),
            // A decline ends the offer at once and, like a ring timeout, counts as a
            // no-answer of that agent (PRODUCT §3, "Agent answers that are not yes").
            Outcome::Rejected(a) | Outcome::NoAnswer(a) => {
                let slot = self.slot(a.0)?;
                let ringing_us = rings_for(slot.word.load(SeqCst), call.0);
                if !ringing_us {
                    return Err(EngineError::NotRinging { call, agent: a });
                }
                let streak = slot.no_answer_streak.fetch_add(1, SeqCst).saturating_add(1);
                let to = if streak >= self.no_answer_limit {
                    slot.no_answer_streak.store(0, SeqCst);
                    AgentStateKind::NotReady
                } else {
                    AgentStateKind::Available
                };
                let rejected = matches!(outcome, Outcome::Rejected(_));
                self.not_answered(now, &cell, a.0, to, rejected)
            }
            Outcome::AgentGone(a) => {
                let st = cell.st();
                if status(st) == CS_TALKING && status_agent(st) == a.0 {
                    self.hangup(now, call, HangupSide::Agent)?;
                    return self.set_agent_state(now, a, AgentStateChange::LoggedOut);
                }
                self.not_answered(now, &cell, a.0, AgentStateKind::LoggedOut, false)
            }
            Outcome::CallerGone => self.caller_gone(now, &cell),
        }
    }

    /// Ends a talking call: the agent goes to wrap-up (or straight to available when the
    /// wrap-up time is zero) and their call count and talk time grow.
    pub fn hangup(&self, now: Time, call: CallId, side: HangupSide) -> Result<(), EngineError> {
        let _batch = self.events.batch();
        let cell = self.cell(call)?;
        let st = cell.st();
        if status(st) != CS_TALKING
            || cell
                .status
                .compare_exchange(st, mk_status(CS_ENDED, status_agent(st)), SeqCst, SeqCst)
                .is_err()
        {
            return Err(EngineError::WrongCallState {
                call,
                state: status_name(cell.st()),
            });
        }
        let a = status_agent(st);
        let talk_ms = now.millis_since(Time::from_millis(cell.answered_at.load(SeqCst)));
        let wrap_ms = match cell
            .steps
            .get(cell.offered_step.load(SeqCst) as usize)
            .map(|s| s.target)
        {
            Some(Target::Queue(q)) => self
                .queues
                .get(q as usize)
                .map_or(self.default_wrap_ms, |q| secs_to_ms(q.cfg.wrap_up_s)),
            _ => self.default_wrap_ms,
        };
        self.call_shard(call.0).remove(&call.0);
        if let Some(slot) = self.slots.get(a as usize) {
            slot.calls_today.fetch_add(1, SeqCst);
            slot.talk_ms_today.fetch_add(talk_ms, SeqCst);
            slot.idle_since.store(now.as_millis(), SeqCst);
            let w = slot.word.load(SeqCst);
            if tag(w) == AgentStateKind::OnCall && call_of(w) == call.0 & CALL_MASK {
                if wrap_ms > 0 {
                    if self.move_agent(now, a, w, AgentStateKind::WrapUp, call.0) {
                        self.timers.insert(
                            TimerKey {
                                at: now.plus_millis(wrap_ms).as_millis(),
                                kind: T_WRAPUP,
                                id: u64::from(a),
                                aux: call.0,
                            },
                            (),
                        );
                    }
                } else if self.move_agent(now, a, w, AgentStateKind::Available, 0) {
                    self.dispatch_agent(now, a);
                }
            }
        }
        self.events.push(Event::CallEnded {
            call,
            agent: AgentIdx(a),
            talk_ms,
            side,
            at: now,
        });
        Ok(())
    }
}
