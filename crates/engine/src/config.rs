//! Engine configuration, classification (PRODUCT §3) and the built-in route chains (§2 rules 3–9).

use std::collections::BTreeMap;

use crate::model::{Class, Client, ClientType, Purpose, Step, Strategy};

/// One agent, as configured (`[[agents]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentConfig {
    /// Id (SIP username), unique.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Roles (`operator`, `key_account_manager`, `department_head`, `head_of_wholesale`,
    /// `head_of_sales`, `finance`, `quality`, ...).
    pub roles: Vec<String>,
    /// Skills with levels; a higher level is offered first.
    pub skills: Vec<(String, u8)>,
    /// Default substitute (agent id) while this agent is absent.
    pub substitute: Option<String>,
}

/// One queue, as configured (`[[queues]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Name, unique (`queue:<name>` steps).
    pub name: String,
    /// Required skill.
    pub skill: String,
    /// Strategy.
    pub strategy: Strategy,
    /// How long an offer rings before the caller of the engine reports no answer.
    pub ring_timeout_s: u32,
    /// After-call work before the agent is available again.
    pub wrap_up_s: u32,
    /// After this wait the call also goes to `overflow` (and the following chain steps),
    /// keeping its place here. `None`: [`EngineConfig::step_wait_s`].
    pub max_wait_s: Option<u32>,
    /// Step that takes overflow calls.
    pub overflow: Option<Step>,
    /// Callers allowed in the queue at once; a full queue is skipped. `None`: unlimited.
    pub max_len: Option<usize>,
    /// Caller priority per class inside this queue (higher first), overriding the engine's
    /// class priority.
    pub class_priority: BTreeMap<Class, u8>,
}

impl QueueConfig {
    /// A queue with PRODUCT's example defaults (15 s ring, 5 s wrap-up, no max wait).
    pub fn new(name: &str, skill: &str) -> QueueConfig {
        QueueConfig {
            name: name.to_owned(),
            skill: skill.to_owned(),
            strategy: Strategy::LongestIdle,
            ring_timeout_s: 15,
            wrap_up_s: 5,
            max_wait_s: None,
            overflow: None,
            max_len: None,
            class_priority: BTreeMap::new(),
        }
    }
}

/// Everything the engine needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Agents, in a stable order (their [`crate::AgentIdx`]).
    pub agents: Vec<AgentConfig>,
    /// Queues, in a stable order (their [`crate::QueueIdx`]).
    pub queues: Vec<QueueConfig>,
    /// `[routing]` overrides of the built-in chains, per class.
    pub routing: BTreeMap<Class, Vec<Step>>,
    /// Consecutive no-answers after which an agent is set `not_ready`.
    pub no_answer_limit: u32,
    /// Rule 8: how long a call of the `other` class waits for its assigned manager while the
    /// manager is present but cannot take it (busy, on a break, not ready) before moving on.
    /// In every other chain a busy manager is skipped at once (rule 4: "absent or busy").
    pub other_manager_wait_s: u32,
    /// The longest a call is held at one step: a named agent (`agent:<id>`) who is busy, a
    /// queue without its own max wait, and the last step of a chain before `timeout`.
    pub step_wait_s: u32,
    /// The longest a call waits in a chain without a queue step, all steps together; then it
    /// ends with outcome `timeout` (a queue's chain is bounded by the queue's max wait, its
    /// overflow and [`EngineConfig::step_wait_s`]).
    pub max_wait_s: u32,
    /// Service-level threshold.
    pub service_level_threshold_s: u32,
    /// Seed of the `random` strategy.
    pub seed: u64,
    /// Ring timeout of offers from `agent:`, `role:` and `assigned_manager` steps.
    pub default_ring_timeout_s: u32,
    /// Wrap-up after calls offered by `agent:`, `role:` and `assigned_manager` steps.
    pub default_wrap_up_s: u32,
    /// Caller priority per class (higher first); classes not listed get 0.
    pub class_priority: BTreeMap<Class, u8>,
    /// Most agents one `ring_all` offer rings.
    pub ring_all_limit: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            agents: Vec::new(),
            queues: Vec::new(),
            routing: BTreeMap::new(),
            no_answer_limit: 3,
            other_manager_wait_s: 60,
            step_wait_s: 120,
            max_wait_s: 300,
            service_level_threshold_s: 20,
            seed: 0x5eed,
            default_ring_timeout_s: 15,
            default_wrap_up_s: 0,
            class_priority: BTreeMap::from([(Class::Key, 10)]),
            ring_all_limit: 64,
        }
    }
}

/// Derives the client class exactly in PRODUCT §3 order:
/// `debt` (overdue debt and purpose `order`) → `key` → `new` (unknown number or type `new`) →
/// `regional` → purpose `other` → purpose `complaint` → `standard`.
pub fn classify(client: Option<&Client>, purpose: Purpose) -> Class {
    let Some(client) = client else {
        return Class::New;
    };
    if client.overdue_debt > 0 && purpose == Purpose::Order {
        Class::Debt
    } else if client.client_type == ClientType::Key {
        Class::Key
    } else if client.client_type == ClientType::New {
        Class::New
    } else if client.client_type == ClientType::Regional {
        Class::Regional
    } else if purpose == Purpose::Other {
        Class::Other
    } else if purpose == Purpose::Complaint {
        Class::Complaint
    } else {
        Class::Standard
    }
}

/// The built-in chain of a class (PRODUCT §3, implementing §2 rules 3–9; rule 9, the
/// substitute, is part of the `assigned_manager` step).
pub fn default_chain(class: Class) -> Vec<Step> {
    let role = |r: &str| Step::Role(r.to_owned());
    let queue = |q: &str| Step::Queue(q.to_owned());
    match class {
        // Rule 5: not the order desk; the manager, else finance.
        Class::Debt => vec![Step::AssignedManager, role("finance")],
        // Rule 4.
        Class::Key => vec![
            Step::AssignedManager,
            role("key_account_manager"),
            role("head_of_wholesale"),
        ],
        // Rule 6.
        Class::New => vec![role("department_head")],
        // Rule 7.
        Class::Regional => vec![queue("regional")],
        // Rule 8.
        Class::Other => vec![Step::AssignedManager, role("head_of_sales")],
        // Rule 11.
        Class::Complaint => vec![role("quality")],
        // Rule 3: operators take orders.
        Class::Standard => vec![queue("orders")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(t: ClientType, debt: u64) -> Client {
        Client {
            number: "+100".into(),
            name: "c".into(),
            client_type: t,
            manager: Some("ana".into()),
            region: None,
            overdue_debt: debt,
        }
    }

    #[test]
    fn class_order_is_product_order() {
        use Purpose::*;
        assert_eq!(classify(None, Order), Class::New);
        assert_eq!(
            classify(Some(&client(ClientType::Key, 5)), Order),
            Class::Debt
        );
        assert_eq!(
            classify(Some(&client(ClientType::Key, 5)), Information),
            Class::Key
        );
        assert_eq!(
            classify(Some(&client(ClientType::Key, 0)), Complaint),
            Class::Key
        );
        assert_eq!(
            classify(Some(&client(ClientType::New, 0)), Other),
            Class::New
        );
        assert_eq!(
            classify(Some(&client(ClientType::Regional, 0)), Other),
            Class::Regional
        );
        assert_eq!(
            classify(Some(&client(ClientType::Retail, 0)), Other),
            Class::Other
        );
        assert_eq!(
            classify(Some(&client(ClientType::Retail, 0)), Complaint),
            Class::Complaint
        );
        assert_eq!(
            classify(Some(&client(ClientType::Retail, 0)), Information),
            Class::Standard
        );
        assert_eq!(
            classify(Some(&client(ClientType::Marketer, 0)), Order),
            Class::Standard
        );
    }

    #[test]
    fn default_chains_match_product() {
        let s = |c| {
            default_chain(c)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(s(Class::Debt), "assigned_manager,role:finance");
        assert_eq!(
            s(Class::Key),
            "assigned_manager,role:key_account_manager,role:head_of_wholesale"
        );
        assert_eq!(s(Class::New), "role:department_head");
        assert_eq!(s(Class::Regional), "queue:regional");
        assert_eq!(s(Class::Other), "assigned_manager,role:head_of_sales");
        assert_eq!(s(Class::Complaint), "role:quality");
        assert_eq!(s(Class::Standard), "queue:orders");
    }
}
