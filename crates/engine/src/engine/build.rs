//! Building an engine from its configuration: agents, roles and skills interned, chains
//! resolved with their overflow steps, availability indices laid out.

use super::*;

pub(super) fn cfg_err(key: String, message: impl Into<String>) -> EngineError {
    EngineError::Config {
        key,
        message: message.into(),
    }
}

pub(super) fn intern(names: &mut Vec<String>, map: &mut HashMap<String, u32>, name: &str) -> u32 {
    if let Some(&i) = map.get(name) {
        return i;
    }
    let i = names.len() as u32;
    names.push(name.to_owned());
    map.insert(name.to_owned(), i);
    i
}

impl Engine {
    /// Builds an engine. Every agent starts `logged_out`. Errors name the config key at fault.
    pub fn new(cfg: EngineConfig) -> Result<Engine, EngineError> {
        if cfg.agents.len() >= NONE as usize {
            return Err(cfg_err("agents".into(), "too many agents"));
        }
        let mut agent_by_id = HashMap::new();
        for (i, a) in cfg.agents.iter().enumerate() {
            if agent_by_id.insert(a.id.clone(), i as u32).is_some() {
                return Err(cfg_err(
                    format!("agents[{i}].id"),
                    format!("duplicate agent {:?}", a.id),
                ));
            }
        }
        let mut role_names = Vec::new();
        let mut role_map = HashMap::new();
        let mut skill_names = Vec::new();
        let mut skill_map = HashMap::new();
        let mut agents = Vec::with_capacity(cfg.agents.len());
        for (i, a) in cfg.agents.iter().enumerate() {
            let roles = a
                .roles
                .iter()
                .map(|r| intern(&mut role_names, &mut role_map, r))
                .collect();
            let skills = a
                .skills
                .iter()
                .map(|(s, l)| (intern(&mut skill_names, &mut skill_map, s), *l))
                .collect();
            let default_substitute = match &a.substitute {
                None => NONE,
                Some(s) => *agent_by_id.get(s).ok_or_else(|| {
                    cfg_err(
                        format!("agents[{i}].substitute"),
                        format!("unknown agent {s:?}"),
                    )
                })?,
            };
            agents.push(AgentInfo {
                id: a.id.clone(),
                name: a.name.clone(),
                roles,
                skills,
                default_substitute,
                lists: Vec::new(),
                hints: Vec::new(),
            });
        }
        let mut queue_by_name = HashMap::new();
        for (i, q) in cfg.queues.iter().enumerate() {
            if queue_by_name.insert(q.name.clone(), i as u32).is_some() {
                return Err(cfg_err(
                    format!("queues[{i}].name"),
                    format!("duplicate queue {:?}", q.name),
                ));
            }
        }
        let resolve = |step: &Step,
                       key: String,
                       role_names: &mut Vec<String>,
                       role_map: &mut HashMap<String, u32>| {
            Ok::<_, EngineError>(match step {
                Step::AssignedManager => TemplateKind::AssignedManager,
                Step::Agent(id) => TemplateKind::Agent(
                    *agent_by_id
                        .get(id)
                        .ok_or_else(|| cfg_err(key, format!("unknown agent {id:?}")))?,
                ),
                Step::Role(r) => TemplateKind::Role(intern(role_names, role_map, r)),
                Step::Queue(q) => TemplateKind::Queue(
                    *queue_by_name
                        .get(q)
                        .ok_or_else(|| cfg_err(key, format!("unknown queue {q:?}")))?,
                ),
            })
        };
        let mut overflow = Vec::with_capacity(cfg.queues.len());
        for (i, q) in cfg.queues.iter().enumerate() {
            overflow.push(match &q.overflow {
                None => None,
                Some(step) => Some(TemplateStep {
                    label: step.to_string().into(),
                    kind: resolve(
                        step,
                        format!("queues[{i}].overflow"),
                        &mut role_names,
                        &mut role_map,
                    )?,
                }),
            });
        }
        let mut chains = Vec::with_capacity(Class::ALL.len());
        for class in Class::ALL {
            let (steps, origin) = match cfg.routing.get(&class) {
                Some(s) => (s.clone(), "routing"),
                None => (default_chain(class), "built-in chain"),
            };
            if steps.is_empty() {
                return Err(cfg_err(
                    format!("routing.{}", class.as_str()),
                    "empty route chain",
                ));
            }
            let mut chain = Vec::new();
            for (i, step) in steps.iter().enumerate() {
                let key = format!("routing.{}[{i}]", class.as_str());
                let kind = resolve(step, key.clone(), &mut role_names, &mut role_map).map_err(|e| match e {
                    EngineError::Config { key, message } if origin != "routing" => EngineError::Config {
                        key,
                        message: format!("{message} (needed by the {origin}; define it or override routing.{})", class.as_str()),
                    },
                    e => e,
                })?;
                let of_queue = if let TemplateKind::Queue(q) = kind {
                    Some(q)
                } else {
                    None
                };
                chain.push(TemplateStep {
                    label: step.to_string().into(),
                    kind,
                });
                if let Some(ov) = of_queue.and_then(|q| overflow.get(q as usize).cloned().flatten())
                {
                    chain.push(ov);
                }
            }
            if chain.len() > 64 {
                return Err(cfg_err(
                    format!("routing.{}", class.as_str()),
                    "more than 64 steps",
                ));
            }
            chains.push(chain);
        }
        let queue_chains: Vec<Vec<TemplateStep>> = cfg
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let mut chain = vec![TemplateStep {
                    label: format!("queue:{}", q.name).into(),
                    kind: TemplateKind::Queue(i as u32),
                }];
                chain.extend(overflow.get(i).cloned().flatten());
                chain
            })
            .collect();
        let mut skill_kinds: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); skill_names.len()];
        let mut queues = Vec::with_capacity(cfg.queues.len());
        for q in &cfg.queues {
            let skill = intern(&mut skill_names, &mut skill_map, &q.skill);
            if skill_kinds.len() < skill_names.len() {
                skill_kinds.resize(skill_names.len(), BTreeSet::new());
            }
            if let Some(set) = skill_kinds.get_mut(skill as usize) {
                set.insert(hint_kind(q.strategy) as usize);
            }
            queues.push(QueueRt {
                cfg: q.clone(),
                skill,
                waiting: WaitList::new(),
                rr_cursor: AtomicU32::new(0),
                agents: Vec::new(),
                entered: AtomicU64::new(0),
                answered: AtomicU64::new(0),
                answered_within: AtomicU64::new(0),
                abandoned: AtomicU64::new(0),
                overflowed: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
                wait_total: AtomicU64::new(0),
                unlisted: AtomicU64::new(0),
            });
        }
        for (ai, a) in agents.iter_mut().enumerate() {
            let ai = ai as u32;
            a.lists.push(ListRef::Agent(ai));
            a.lists.extend(a.roles.iter().map(|&r| ListRef::Role(r)));
            for (qi, q) in queues.iter_mut().enumerate() {
                if a.skills.iter().any(|&(s, _)| s == q.skill) {
                    a.lists.push(ListRef::Queue(qi as u32));
                    q.agents.push(ai);
                }
            }
        }
        // Availability indices: per skill a queue uses (keys for its queues' strategies), per
        // role a chain uses (longest idle first).
        let mut avail = Vec::new();
        let mut skill_avail = vec![None; skill_kinds.len()];
        for (s, kinds) in skill_kinds.iter().enumerate() {
            if kinds.is_empty() {
                continue;
            }
            let members = agents
                .iter()
                .enumerate()
                .filter_map(|(ai, a)| {
                    a.skills
                        .iter()
                        .find(|&&(sk, _)| sk as usize == s)
                        .map(|&(_, level)| (level, ai as u32))
                })
                .collect();
            if let Some(slot) = skill_avail.get_mut(s) {
                *slot = Some(avail.len());
            }
            avail.push(AvailIndex::new(members, kinds));
        }
        let agent_chains: Vec<Vec<TemplateStep>> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                vec![TemplateStep {
                    label: format!("agent:{}", a.id).into(),
                    kind: TemplateKind::Agent(i as u32),
                }]
            })
            .collect();
        let idle_only = BTreeSet::from([HintKind::Idle as usize]);
        let mut role_avail = vec![None; role_names.len()];
        for (r, slot) in role_avail.iter_mut().enumerate() {
            let used = chains
                .iter()
                .chain(queue_chains.iter())
                .flatten()
                .any(|t| matches!(t.kind, TemplateKind::Role(x) if x as usize == r));
            if used {
                let members = agents
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.roles.iter().any(|&x| x as usize == r))
                    .map(|(ai, _)| (0, ai as u32))
                    .collect();
                *slot = Some(avail.len());
                avail.push(AvailIndex::new(members, &idle_only));
            }
        }
        for (ix, index) in avail.iter().enumerate() {
            for (pos, &a) in index.members.iter().enumerate() {
                if let Some(info) = agents.get_mut(a as usize) {
                    info.hints.push((ix, pos));
                }
            }
        }
        let mut class_priority = [0u8; 7];
        for (c, p) in &cfg.class_priority {
            if let Some(slot) = class_priority.get_mut(c.index()) {
                *slot = *p;
            }
        }
        let slots = agents
            .iter()
            .map(|a| {
                CachePadded::new(AgentSlot {
                    word: AtomicU64::new(pack(AgentStateKind::LoggedOut, 0, 0)),
                    state_since: AtomicU64::new(0),
                    idle_since: AtomicU64::new(0),
                    calls_today: AtomicU64::new(0),
                    talk_ms_today: AtomicU64::new(0),
                    no_answer_streak: AtomicU32::new(0),
                    substitute: AtomicU32::new(a.default_substitute),
                })
            })
            .collect();
        // Transfers to a role: roles the chains use have an availability index and route like
        // a `role:` step; a role no chain uses gets no index (it would cost every availability
        // change) and is served by its members as `agent:` steps, in configuration order.
        let role_chains: Vec<Vec<TemplateStep>> = role_names
            .iter()
            .enumerate()
            .map(|(r, name)| {
                let label: Arc<str> = format!("role:{name}").into();
                if role_avail.get(r).is_some_and(Option::is_some) {
                    vec![TemplateStep {
                        label,
                        kind: TemplateKind::Role(r as u32),
                    }]
                } else {
                    agents
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.roles.iter().any(|&x| x as usize == r))
                        .map(|(ai, _)| TemplateStep {
                            label: Arc::clone(&label),
                            kind: TemplateKind::Agent(ai as u32),
                        })
                        .collect()
                }
            })
            .collect();
        Ok(Engine {
            no_answer_limit: cfg.no_answer_limit.max(1),
            other_wait_ms: secs_to_ms(cfg.other_manager_wait_s),
            step_wait_ms: secs_to_ms(cfg.step_wait_s.max(1)),
            chain_max_ms: secs_to_ms(cfg.max_wait_s.max(1)),
            role_present: role_names.iter().map(|_| AtomicU32::new(0)).collect(),
            skill_present: skill_names.iter().map(|_| AtomicU32::new(0)).collect(),
            sl_threshold_ms: secs_to_ms(cfg.service_level_threshold_s),
            seed: cfg.seed,
            default_ring_ms: secs_to_ms(cfg.default_ring_timeout_s),
            default_wrap_ms: secs_to_ms(cfg.default_wrap_up_s),
            ring_all_limit: cfg.ring_all_limit.max(1),
            class_priority,
            agent_lists: agents.iter().map(|_| WaitList::new()).collect(),
            role_lists: role_names.iter().map(|_| WaitList::new()).collect(),
            role_names,
            ids: agents.iter().map(|a| a.id.as_str()).collect(),
            id_ends: agents
                .iter()
                .scan(0u32, |end, a| {
                    *end = end.saturating_add(a.id.len() as u32);
                    Some(*end)
                })
                .collect(),
            avail,
            skill_avail,
            role_avail,
            agents,
            slots,
            agent_by_id,
            queues,
            queue_by_name,
            chains,
            queue_chains,
            agent_chains,
            role_chains,
            calls: std::array::from_fn(|_| OrderedMap::new()),
            next_call: AtomicU64::new(1),
            rng_counter: AtomicU64::new(0),
            timers: OrderedMap::new(),
            ring_sets: OrderedMap::new(),
            reasons: OrderedMap::new(),
            offers: Fifo::new(),
            events: EventLog::new(),
        })
    }
}
