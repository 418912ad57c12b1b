//! Held places: a caller who asked to be called back while waiting (PRODUCT §4 `[callbacks]
//! in_queue_digit`) hangs up, and the call's entry stays in every waiting list it reached,
//! at its arrival key, as a place that is no live call. It is offered like any call when it
//! reaches the head of a list and an agent frees; the caller of the engine then dials the
//! call-back with that agent. A held place never times out, and it counts neither as
//! waiting nor, when it ends, as answered or abandoned in the queue statistics: its caller's
//! wait ended when they asked for the call-back.

use super::*;

impl Engine {
    /// Turns waiting call `call` into a held place (the caller hangs up; their place is kept
    /// for the call-back). Only a call that is waiting can be held: a call being offered
    /// (agents ringing) is `Err(WrongCallState)`, as is a place already held.
    pub fn hold_place(&self, now: Time, call: CallId) -> Result<(), EngineError> {
        let _batch = self.events.batch();
        let cell = self.cell(call)?;
        let st = cell.st();
        if status(st) != CS_WAITING {
            return Err(EngineError::WrongCallState {
                call,
                state: status_name(st),
            });
        }
        // An offer racing this (another thread's agent freeing) is fine: that offer is for
        // the held place, which is what the caller of the engine expects from now on.
        if cell.held.swap(1, SeqCst) == 1 {
            return Err(EngineError::WrongCallState {
                call,
                state: "held",
            });
        }
        let q = cell.stats_queue.load(SeqCst);
        self.events.push(Event::PlaceHeld {
            call,
            queue: (q != NONE).then_some(QueueIdx(q)),
            wait_ms: now.millis_since(cell.enqueued_at),
            at: now,
        });
        Ok(())
    }

    /// Whether `call` is a held place (see [`Engine::hold_place`]).
    pub fn is_held_place(&self, call: CallId) -> bool {
        self.call_shard(call.0)
            .get(&call.0)
            .is_some_and(|c| c.is_held())
    }
}
