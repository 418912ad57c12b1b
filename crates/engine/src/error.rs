//! The engine's one error type.

use crate::model::{AgentIdx, CallId};

/// Everything the engine can refuse. Configuration errors name the key path they come from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A value that does not parse (strategy, step, class, purpose).
    #[error("invalid {what}: {value:?}")]
    BadValue {
        /// What was being parsed.
        what: &'static str,
        /// The offending text.
        value: String,
    },
    /// Configuration refers to something that does not exist or is duplicated.
    #[error("{key}: {message}")]
    Config {
        /// Key path, e.g. `routing.key[1]` or `queues[2].overflow`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No call with this id is known (already ended, or never routed).
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    /// No agent with this index or id.
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    /// The agent is not ringing for this call.
    #[error("agent {agent:?} is not ringing for call {call}")]
    NotRinging {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentIdx,
    },
    /// The call is not in a state that allows this (e.g. hang-up of a call that is not talking).
    #[error("call {call} is {state}")]
    WrongCallState {
        /// The call.
        call: CallId,
        /// Its current state.
        state: &'static str,
    },
    /// The agent is talking; state changes wait until the call ends.
    #[error("agent {0:?} is on a call")]
    AgentOnCall(AgentIdx),
    /// No step of the call's chain can ever take it (e.g. every queue is full).
    #[error("no route for call {0}")]
    NoRoute(CallId),
}
