//! For benchmarks only: the same API behind one global `Mutex`, the classic call-center design
//! (one lock around all queue state, as in Asterisk `app_queue`). It runs the very same routing
//! code as [`Engine`], so a benchmark comparing the two measures the locking discipline alone,
//! not differences between data structures.

use std::sync::Mutex;

use crate::config::EngineConfig;
use crate::engine::{Engine, QueueEngine};
use crate::error::EngineError;

/// [`Engine`] serialised by one `Mutex`. Not for production use.
#[derive(Debug)]
pub struct MutexEngine(Mutex<Engine>);

impl MutexEngine {
    /// Builds the engine inside the lock.
    pub fn new(cfg: EngineConfig) -> Result<MutexEngine, EngineError> {
        Engine::new(cfg).map(|e| MutexEngine(Mutex::new(e)))
    }
}

impl QueueEngine for MutexEngine {
    fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        // A poisoned lock means a panic elsewhere already failed the benchmark; go on.
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }
}
