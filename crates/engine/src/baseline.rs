//! For benchmarks only: the same API behind one global `Mutex`, the classic call-center design
//! (one lock around all queue state, as in Asterisk `app_queue`). It runs the very same routing
//! code as [`Engine`], so a benchmark comparing the two measures the locking discipline alone,
//! not differences between data structures.

use std::sync::Mutex;

use crate::config::EngineConfig;
use crate::engine::{Engine, QueueEngine};
use crate::error::EngineError;
use crate::model::{
    AgentIdx, AgentStateChange, CallId, CallRequest, Event, HangupSide, Offer, Outcome, Time,
};

/// [`Engine`] serialised by one `Mutex`. Not for production use.
#[derive(Debug)]
pub struct MutexEngine(Mutex<Engine>);

impl MutexEngine {
    /// Builds the engine inside the lock.
    pub fn new(cfg: EngineConfig) -> Result<MutexEngine, EngineError> {
        Engine::new(cfg).map(|e| MutexEngine(Mutex::new(e)))
    }

    fn with<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        // A poisoned lock means a panic elsewhere already failed the benchmark; go on.
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }
}

impl QueueEngine for MutexEngine {
    fn route_call(&self, now: Time, req: CallRequest) -> Result<CallId, EngineError> {
        self.with(|e| e.route_call(now, req))
    }
    fn next_offer(&self) -> Option<Offer> {
        self.with(Engine::next_offer)
    }
    fn report(&self, now: Time, call: CallId, outcome: Outcome) -> Result<(), EngineError> {
        self.with(|e| e.report(now, call, outcome))
    }
    fn hangup(&self, now: Time, call: CallId, side: HangupSide) -> Result<(), EngineError> {
        self.with(|e| e.hangup(now, call, side))
    }
    fn set_agent_state(
        &self,
        now: Time,
        agent: AgentIdx,
        change: AgentStateChange,
    ) -> Result<(), EngineError> {
        self.with(|e| e.set_agent_state(now, agent, change))
    }
    fn handle_timeout(&self, now: Time) {
        self.with(|e| e.handle_timeout(now));
    }
    fn poll_event(&self) -> Option<Event> {
        self.with(Engine::poll_event)
    }
    fn poll_offers(&self) -> Vec<Offer> {
        self.with(Engine::poll_offers)
    }
    fn drain_events(&self, out: &mut Vec<Event>) {
        self.with(|e| out.extend(std::iter::from_fn(|| e.poll_event())));
    }
}
