//! From the configuration file to the queue engine: agents, queues, route chains and the
//! client directory the engine reads; its day (`daily`: when the daily counters reset).

pub mod daily;

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::Context as _;
use switchboard_engine::{
    AgentConfig, Class, Client, ClientDirectory, ClientType, EngineConfig, QueueConfig, Step,
};

use crate::config::Config;

fn class(name: &str) -> Option<Class> {
    name.parse().ok()
}

fn step(s: &str, path: &str) -> anyhow::Result<Step> {
    Step::from_str(s).map_err(|e| anyhow::anyhow!("{path}: {e}"))
}

/// The engine's configuration. The file was validated already; errors here name the key.
pub fn engine_config(config: &Config) -> anyhow::Result<EngineConfig> {
    let mut cfg = EngineConfig {
        no_answer_limit: config.routing.no_answer_limit,
        other_manager_wait_s: config.routing.other_manager_wait_s,
        step_wait_s: config.routing.step_wait_s,
        max_wait_s: config.routing.max_wait_s,
        service_level_threshold_s: config.routing.service_level_threshold_s,
        seed: config.routing.seed,
        ..EngineConfig::default()
    };
    cfg.agents = config
        .agents
        .iter()
        .map(|a| AgentConfig {
            id: a.id.clone(),
            name: a.name.clone().unwrap_or_else(|| a.id.clone()),
            roles: a.roles.clone(),
            skills: a.skills.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            substitute: a.substitute.clone(),
        })
        .collect();
    for (i, q) in config.queues.iter().enumerate() {
        let mut class_priority = BTreeMap::new();
        for (name, prio) in &q.priority {
            let c = class(name).with_context(|| format!("queues[{i}].priority.{name}"))?;
            class_priority.insert(c, *prio);
        }
        cfg.queues.push(QueueConfig {
            name: q.name.clone(),
            skill: q.skill.clone(),
            strategy: q.strategy,
            ring_timeout_s: q.ring_timeout_s,
            wrap_up_s: q.wrap_up_s,
            max_wait_s: Some(q.max_wait_s),
            overflow: q
                .overflow
                .as_deref()
                .map(|s| step(s, &format!("queues[{i}].overflow")))
                .transpose()?,
            max_len: usize::try_from(q.max_length).ok(),
            class_priority,
        });
    }
    for c in Class::ALL {
        let name = c.as_str();
        if let Some(chain) = config.routing.override_for(name) {
            let steps = chain
                .iter()
                .enumerate()
                .map(|(j, s)| step(s, &format!("routing.{name}[{j}]")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            cfg.routing.insert(c, steps);
        }
    }
    Ok(cfg)
}

/// The store's client directory as the engine sees it (an in-memory cache read).
#[derive(Debug, Clone)]
pub struct StoreDirectory(pub switchboard_store::Directory);

impl ClientDirectory for StoreDirectory {
    fn lookup(&self, number: &str) -> Option<Client> {
        let c = self.0.get(number)?;
        Some(Client {
            number: c.number,
            name: c.name,
            client_type: ClientType::parse(c.client_type.as_str()),
            manager: c.manager,
            region: c.region,
            overdue_debt: u64::try_from(c.overdue_debt.cents()).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_builds_an_engine() {
        let config = Config::demo();
        let cfg = engine_config(&config).unwrap();
        assert_eq!(cfg.agents.len(), config.agents.len());
        let engine = switchboard_engine::Engine::new(cfg).unwrap();
        assert!(engine.agent_idx("ana").is_some());
        assert!(engine.queue_idx("orders").is_some());
    }

    #[test]
    fn routing_overrides_reach_the_engine() {
        let text = crate::config::DEMO_CONFIG.replace(
            "[routing]\n",
            "[routing]\nkey = [\"assigned_manager\", \"queue:key_accounts\", \"role:head_of_wholesale\"]\n",
        );
        let config = Config::from_toml(&text).unwrap();
        let cfg = engine_config(&config).unwrap();
        assert_eq!(
            cfg.routing.get(&Class::Key).unwrap(),
            &vec![
                Step::AssignedManager,
                Step::Queue("key_accounts".into()),
                Step::Role("head_of_wholesale".into())
            ]
        );
    }
}
