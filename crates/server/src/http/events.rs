//! The live event stream (`GET /api/v1/events`): call and agent events fanned out to every
//! subscriber. Slow subscribers lose old events (a broadcast channel), never slow calls down.

use serde::Serialize;
use tokio::sync::broadcast;

/// One event of the live stream, serialised as JSON with a `type` field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A caller entered the queue engine.
    CallEnqueued {
        call: u64,
        caller: String,
        class: String,
        purpose: String,
    },
    /// Agents are being rung for a call.
    CallOffered {
        call: u64,
        agents: Vec<String>,
        route: String,
    },
    /// An agent answered.
    CallAnswered { call: u64, agent: String },
    /// A call ended.
    CallEnded {
        call: u64,
        outcome: String,
        hangup_side: String,
    },
    /// An agent's state changed.
    AgentState { agent: String, state: String },
    /// An agent asked a supervisor for help on a call (`POST /api/v1/calls/{id}/escalate`).
    Escalation {
        id: String,
        call_id: String,
        agent: Option<String>,
        note: String,
        created_at: String,
    },
    /// A supervisor acknowledged an escalation.
    EscalationAcked { id: String, by: String },
}

impl LiveEvent {
    /// The SSE `event:` name.
    /// Whether an agent token may see this event: its own state, offers to it and the rest of
    /// the calls offered to it (`own_calls`, kept by the subscriber), its own escalations.
    pub fn visible_to(&self, agent: &str, own_calls: &mut std::collections::HashSet<u64>) -> bool {
        match self {
            LiveEvent::CallOffered { call, agents, .. } => {
                let own = agents.iter().any(|a| a == agent);
                if own {
                    own_calls.insert(*call);
                }
                own
            }
            LiveEvent::CallAnswered { call, .. } => own_calls.contains(call),
            LiveEvent::CallEnded { call, .. } => own_calls.remove(call),
            LiveEvent::CallEnqueued { .. } | LiveEvent::EscalationAcked { .. } => false,
            LiveEvent::AgentState { agent: a, .. } => a == agent,
            LiveEvent::Escalation { agent: a, .. } => a.as_deref() == Some(agent),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::CallEnqueued { .. } => "call_enqueued",
            LiveEvent::CallOffered { .. } => "call_offered",
            LiveEvent::CallAnswered { .. } => "call_answered",
            LiveEvent::CallEnded { .. } => "call_ended",
            LiveEvent::AgentState { .. } => "agent_state",
            LiveEvent::Escalation { .. } => "escalation",
            LiveEvent::EscalationAcked { .. } => "escalation_acked",
        }
    }
}

/// Sender side of the live stream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus(broadcast::Sender<LiveEvent>);

impl EventBus {
    pub fn new(capacity: usize) -> EventBus {
        EventBus(broadcast::channel(capacity).0)
    }

    /// Publishes to whoever listens; nobody listening is fine.
    pub fn send(&self, event: LiveEvent) {
        let _ = self.0.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_sees_only_its_own_state_calls_and_escalations() {
        let mut own = std::collections::HashSet::new();
        let offered = |call, agents: &[&str]| LiveEvent::CallOffered {
            call,
            agents: agents.iter().map(|a| (*a).to_owned()).collect(),
            route: String::new(),
        };
        let ended = |call| LiveEvent::CallEnded {
            call,
            outcome: "answered".into(),
            hangup_side: "caller".into(),
        };
        assert!(offered(1, &["ana", "marko"]).visible_to("ana", &mut own));
        assert!(!offered(2, &["marko"]).visible_to("ana", &mut own));
        let answered = |call| LiveEvent::CallAnswered {
            call,
            agent: "marko".into(),
        };
        // Ana sees how the call offered to her ended, even when marko took it.
        assert!(answered(1).visible_to("ana", &mut own));
        assert!(!answered(2).visible_to("ana", &mut own));
        assert!(ended(1).visible_to("ana", &mut own));
        assert!(
            !ended(1).visible_to("ana", &mut own),
            "forgotten once ended"
        );
        let state = |agent: &str| LiveEvent::AgentState {
            agent: agent.into(),
            state: "break".into(),
        };
        assert!(state("ana").visible_to("ana", &mut own));
        assert!(!state("marko").visible_to("ana", &mut own));
        let enqueued = LiveEvent::CallEnqueued {
            call: 3,
            caller: "+1".into(),
            class: "standard".into(),
            purpose: "order".into(),
        };
        assert!(!enqueued.visible_to("ana", &mut own));
        let escalation = |agent: &str| LiveEvent::Escalation {
            id: "e".into(),
            call_id: "c".into(),
            agent: Some(agent.into()),
            note: String::new(),
            created_at: String::new(),
        };
        assert!(escalation("ana").visible_to("ana", &mut own));
        assert!(!escalation("marko").visible_to("ana", &mut own));
        assert!(own.is_empty());
    }
}
