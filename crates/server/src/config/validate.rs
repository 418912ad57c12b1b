//! Semantic checks across the whole configuration file, run after parsing and before
//! anything is bound. Every error is collected, each with its key path.

use std::collections::HashSet;
use std::net::SocketAddr;

use switchboard_sip::Transport;

use super::*;

impl Config {
    /// Semantic checks across the whole file.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        self.validate_sip(&mut errors);
        self.validate_media_http_db(&mut errors);
        self.validate_trunks(&mut errors);
        let agent_ids = self.validate_agents(&mut errors);
        let queue_names = self.validate_queues(&agent_ids, &mut errors);
        self.validate_routing(&agent_ids, &queue_names, &mut errors);
        self.validate_ivr(&mut errors);
        self.validate_security(&mut errors);
        errors.extend(self.numbers.validate());
        self.wallboard.validate(&mut errors);
        let queues: Vec<&str> = self.queues.iter().map(|q| q.name.as_str()).collect();
        self.callbacks.validate(&queues, &mut errors);
        self.validate_tls(&mut errors);
        errors
    }

    fn validate_sip(&self, errors: &mut Vec<ConfigError>) {
        let sip = &self.sip;
        if sip.listen.is_empty() {
            errors.push(err("sip.listen", "at least one listen address is required"));
        }
        let mut seen = HashSet::new();
        for (i, entry) in sip.listen.iter().enumerate() {
            match ListenAddr::parse(entry) {
                Ok(addr) => {
                    if !seen.insert(addr) {
                        errors.push(err(
                            format!("sip.listen[{i}]"),
                            format!("{entry:?} is listed twice"),
                        ));
                    }
                }
                Err(message) => errors.push(err(format!("sip.listen[{i}]"), message)),
            }
        }
        if !is_hostname(&sip.domain) {
            errors.push(err(
                "sip.domain",
                format!("{:?} is not a domain name", sip.domain),
            ));
        }
        if sip.advertised_address.parse::<IpAddr>().is_err()
            && !is_hostname(&sip.advertised_address)
        {
            errors.push(err(
                "sip.advertised_address",
                format!(
                    "{:?} is neither an IP address nor a host name",
                    sip.advertised_address
                ),
            ));
        }
        if sip.t1_ms == 0 || sip.t1_ms > 10_000 {
            errors.push(err("sip.t1_ms", "must be between 1 and 10000"));
        }
        if sip.t2_ms < sip.t1_ms {
            errors.push(err("sip.t2_ms", "must not be smaller than sip.t1_ms"));
        }
        if sip.t4_ms == 0 {
            errors.push(err("sip.t4_ms", "must be positive"));
        }
        if !(1024..=1_048_576).contains(&sip.max_message_size) {
            errors.push(err(
                "sip.max_message_size",
                "must be between 1024 and 1048576 bytes",
            ));
        }
        if sip.max_transactions == 0 {
            errors.push(err("sip.max_transactions", "must be positive"));
        }
        let share = sip.max_transactions_source_share;
        if !(share > 0.0 && share <= 1.0) {
            errors.push(err(
                "sip.max_transactions_source_share",
                "must be above 0 and at most 1",
            ));
        }
        if sip.inbound_queue_messages < 16 {
            errors.push(err("sip.inbound_queue_messages", "must be at least 16"));
        }
        if sip.inbound_queue_bytes < sip.max_message_size {
            errors.push(err(
                "sip.inbound_queue_bytes",
                "must be at least sip.max_message_size",
            ));
        }
        if !(64..=1_048_576).contains(&sip.udp_buffer_kb) {
            errors.push(err(
                "sip.udp_buffer_kb",
                "must be between 64 and 1048576 KiB (the kernel caps what it grants; see the log)",
            ));
        }
        if sip.min_expires_s == 0 {
            errors.push(err("sip.min_expires_s", "must be positive"));
        }
        if sip.max_expires_s < sip.min_expires_s {
            errors.push(err(
                "sip.max_expires_s",
                "must not be smaller than sip.min_expires_s",
            ));
        }
        if sip.nonce_lifetime_s < 10 {
            errors.push(err("sip.nonce_lifetime_s", "must be at least 10 seconds"));
        }
        if sip.digest_algorithms.is_empty() {
            errors.push(err(
                "sip.digest_algorithms",
                "at least one algorithm is required",
            ));
        }
        let mut seen_alg = HashSet::new();
        for (i, alg) in sip.digest_algorithms.iter().enumerate() {
            if alg != "MD5" && alg != "SHA-256" {
                errors.push(err(
                    format!("sip.digest_algorithms[{i}]"),
                    format!("{alg:?} is not a digest algorithm (expected \"MD5\" or \"SHA-256\")"),
                ));
            } else if !seen_alg.insert(alg.as_str()) {
                errors.push(err(
                    format!("sip.digest_algorithms[{i}]"),
                    format!("{alg:?} is listed twice"),
                ));
            }
        }
        if sip.max_tcp_connections == 0 {
            errors.push(err("sip.max_tcp_connections", "must be positive"));
        }
    }

    fn validate_media_http_db(&self, errors: &mut Vec<ConfigError>) {
        let [first, last] = self.media.rtp_ports;
        if first < 1024 || first >= last {
            errors.push(err(
                "media.rtp_ports",
                format!("[{first}, {last}] must be an ascending range above 1023"),
            ));
        } else if u32::from(last) - u32::from(first) < 3 {
            errors.push(err(
                "media.rtp_ports",
                "the range needs at least 4 ports (RTP and RTCP pairs)",
            ));
        }
        if self.media.rtp_timeout_s > MAX_RTP_TIMEOUT_S {
            errors.push(err(
                "media.rtp_timeout_s",
                format!(
                    "{} is more than {MAX_RTP_TIMEOUT_S} seconds (0 disables the timeout)",
                    self.media.rtp_timeout_s
                ),
            ));
        }
        if self.http.listen.parse::<SocketAddr>().is_err() {
            errors.push(err(
                "http.listen",
                format!("{:?} is not an IP address with a port", self.http.listen),
            ));
        }
        if self.http.session_ttl_s < 60 || self.http.session_ttl_s > 7 * 86_400 {
            errors.push(err(
                "http.session_ttl_s",
                "must be between 60 seconds and 7 days (604800)",
            ));
        }
        if self.http.api_token.trim().is_empty() {
            errors.push(err("http.api_token", "must not be empty"));
        }
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            errors.push(err(
                "database.url",
                format!("{url:?} is neither a sqlite: nor a postgres:// URL"),
            ));
        }
    }

    fn validate_trunks(&self, errors: &mut Vec<ConfigError>) {
        let mut names = HashSet::new();
        for (i, trunk) in self.trunks.iter().enumerate() {
            let at = format!("trunks[{i}]");
            if trunk.name.trim().is_empty() {
                errors.push(err(format!("{at}.name"), "must not be empty"));
            } else if !names.insert(trunk.name.as_str()) {
                errors.push(err(
                    format!("{at}.name"),
                    format!("trunk {:?} is defined twice", trunk.name),
                ));
            }
            for (j, net) in trunk.allow.iter().enumerate() {
                if parse_net(net).is_none() {
                    errors.push(err(
                        format!("{at}.allow[{j}]"),
                        format!("{net:?} is not an IP network (e.g. 192.0.2.0/24 or 192.0.2.7)"),
                    ));
                }
            }
            for (did, purpose) in &trunk.dids {
                if purpose.parse::<Purpose>().is_err() {
                    errors.push(err(format!("{at}.dids.{did}"), unknown_purpose(purpose)));
                }
            }
            if trunk.username.is_some() != trunk.password.is_some() {
                errors.push(err(
                    at.clone(),
                    "username and password must be given together",
                ));
            }
            if trunk.outbound_username.is_some() != trunk.outbound_password.is_some() {
                errors.push(err(
                    at.clone(),
                    "outbound_username and outbound_password must be given together",
                ));
            }
            match trunk
                .outbound
                .as_deref()
                .map(super::outbound::OutboundTarget::parse)
            {
                Some(Err(e)) => errors.push(err(format!("{at}.outbound"), e)),
                Some(Ok(t)) if t.transport == Transport::Tls && self.tls.is_none() => {
                    errors.push(err(
                        format!("{at}.outbound"),
                        "transport=tls needs a [tls] section (its ca verifies the trunk)",
                    ));
                }
                _ => {}
            }
            if trunk.outbound.is_none()
                && (trunk.outbound_username.is_some() || trunk.caller_id.is_some())
            {
                errors.push(err(
                    format!("{at}.outbound"),
                    "outbound_username or caller_id is set but outbound (where calls go) is not",
                ));
            }
            if let Some(id) = &trunk.caller_id
                && (id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '+'))
            {
                errors.push(err(
                    format!("{at}.caller_id"),
                    format!("{id:?} is not a phone number such as +38512345678"),
                ));
            }
            if trunk.allow.is_empty() && trunk.username.is_none() {
                errors.push(err(
                    at,
                    "a trunk needs allow networks or username/password, or nobody can use it",
                ));
            }
        }
    }

    fn validate_agents(&self, errors: &mut Vec<ConfigError>) -> HashSet<&str> {
        let mut ids = HashSet::new();
        for (i, agent) in self.agents.iter().enumerate() {
            let at = format!("agents[{i}]");
            if !is_sip_user(&agent.id) {
                errors.push(err(
                    format!("{at}.id"),
                    format!(
                        "{:?} is not a valid SIP user name (letters, digits, . _ - +)",
                        agent.id
                    ),
                ));
            } else if !ids.insert(agent.id.as_str()) {
                errors.push(err(
                    format!("{at}.id"),
                    format!("agent {:?} is defined twice", agent.id),
                ));
            }
            if agent.password.is_empty() {
                errors.push(err(format!("{at}.password"), "must not be empty"));
            }
            for (j, role) in agent.roles.iter().enumerate() {
                if !is_name(role) {
                    errors.push(err(
                        format!("{at}.roles[{j}]"),
                        format!("{role:?} is not a role name (lowercase letters, digits, _)"),
                    ));
                }
            }
            for skill in agent.skills.keys() {
                if !is_name(skill) {
                    errors.push(err(
                        format!("{at}.skills.{skill}"),
                        "not a skill name (lowercase letters, digits, _)",
                    ));
                }
            }
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if let Some(sub) = &agent.substitute {
                if sub == &agent.id {
                    errors.push(err(
                        format!("agents[{i}].substitute"),
                        "an agent cannot substitute for themselves",
                    ));
                } else if !ids.contains(sub.as_str()) {
                    errors.push(err(
                        format!("agents[{i}].substitute"),
                        format!("unknown agent {sub:?}"),
                    ));
                }
            }
        }
        ids
    }

    fn validate_queues<'a>(
        &'a self,
        agent_ids: &HashSet<&str>,
        errors: &mut Vec<ConfigError>,
    ) -> HashSet<&'a str> {
        let mut names = HashSet::new();
        for (i, queue) in self.queues.iter().enumerate() {
            let at = format!("queues[{i}]");
            if !is_name(&queue.name) {
                errors.push(err(
                    format!("{at}.name"),
                    format!(
                        "{:?} is not a queue name (lowercase letters, digits, _)",
                        queue.name
                    ),
                ));
            } else if !names.insert(queue.name.as_str()) {
                errors.push(err(
                    format!("{at}.name"),
                    format!("queue {:?} is defined twice", queue.name),
                ));
            }
            if !is_name(&queue.skill) {
                errors.push(err(
                    format!("{at}.skill"),
                    format!("{:?} is not a skill name", queue.skill),
                ));
            }
            if queue.ring_timeout_s == 0 || queue.ring_timeout_s > 600 {
                errors.push(err(
                    format!("{at}.ring_timeout_s"),
                    "must be between 1 and 600",
                ));
            }
            if queue.max_wait_s == 0 {
                errors.push(err(format!("{at}.max_wait_s"), "must be positive"));
            }
            if queue.max_length == 0 {
                errors.push(err(format!("{at}.max_length"), "must be positive"));
            }
            for class in queue.priority.keys() {
                if class.parse::<Class>().is_err() {
                    let names: Vec<_> = Class::ALL.iter().map(|c| c.as_str()).collect();
                    errors.push(err(
                        format!("{at}.priority.{class}"),
                        format!(
                            "unknown client class (expected one of {})",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        // Overflow targets may name queues defined later in the file: check after collecting.
        for (i, queue) in self.queues.iter().enumerate() {
            if let Some(step) = &queue.overflow {
                let path = format!("queues[{i}].overflow");
                match parse_step(step) {
                    Ok(Step::Queue(name)) if name == queue.name => {
                        errors.push(err(path, "a queue cannot overflow into itself"));
                    }
                    Ok(step) => check_step(&step, &path, agent_ids, &names, errors),
                    Err(message) => errors.push(err(path, message)),
                }
            }
        }
        names
    }

    fn validate_routing(
        &self,
        agent_ids: &HashSet<&str>,
        queue_names: &HashSet<&str>,
        errors: &mut Vec<ConfigError>,
    ) {
        let routing = &self.routing;
        for (class, chain) in routing.chains() {
            let overridden = routing.override_for(class).is_some();
            if chain.is_empty() {
                errors.push(err(
                    format!("routing.{class}"),
                    "a route chain needs at least one step",
                ));
            }
            for (j, step) in chain.iter().enumerate() {
                let path = if overridden {
                    format!("routing.{class}[{j}]")
                } else {
                    format!("routing.{class}")
                };
                match parse_step(step) {
                    Ok(Step::Queue(name)) if !queue_names.contains(name.as_str()) => {
                        let hint = if overridden {
                            String::new()
                        } else {
                            format!(
                                " (the built-in {class} chain uses it: add a [[queues]] named {name:?} or override [routing] {class})"
                            )
                        };
                        errors.push(err(path, format!("unknown queue {name:?}{hint}")));
                    }
                    Ok(parsed) => check_step(&parsed, &path, agent_ids, queue_names, errors),
                    Err(message) => errors.push(err(path, message)),
                }
            }
        }
        if routing.no_answer_limit == 0 {
            errors.push(err("routing.no_answer_limit", "must be positive"));
        }
        if routing.busy_manager_wait_s.is_some() {
            errors.push(err(
                "routing.busy_manager_wait_s",
                "no longer supported: use other_manager_wait_s (how long a purpose-other call \
                 waits for its busy manager, rule 8; key and debt calls skip a busy manager \
                 at once) and step_wait_s (the longest any step holds a call)",
            ));
        }
        for (key, value) in [
            ("routing.step_wait_s", routing.step_wait_s),
            ("routing.max_wait_s", routing.max_wait_s),
        ] {
            if value == 0 {
                errors.push(err(key, "must be positive"));
            }
        }
        if routing.timezone.parse::<chrono_tz::Tz>().is_err() {
            errors.push(err(
                "routing.timezone",
                format!(
                    "{:?} is not an IANA time zone (e.g. \"Europe/Zagreb\")",
                    routing.timezone
                ),
            ));
        }
        if routing.service_level_threshold_s == 0 {
            errors.push(err("routing.service_level_threshold_s", "must be positive"));
        }
    }

    fn validate_ivr(&self, errors: &mut Vec<ConfigError>) {
        let Some(ivr) = &self.ivr else { return };
        for (digit, purpose) in &ivr.options {
            let is_digit = digit.len() == 1
                && digit
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
            if !is_digit {
                errors.push(err(
                    format!("ivr.options.{digit}"),
                    "the key must be one DTMF digit (0-9, * or #)",
                ));
            }
            if purpose.parse::<Purpose>().is_err() {
                errors.push(err(
                    format!("ivr.options.{digit}"),
                    unknown_purpose(purpose),
                ));
            }
        }
        if ivr.enabled && ivr.options.is_empty() {
            errors.push(err(
                "ivr.options",
                "an enabled voice menu needs at least one option",
            ));
        }
        if ivr.timeout_s == 0 {
            errors.push(err("ivr.timeout_s", "must be positive"));
        }
    }
}

/// A route step in the engine's spelling, or the message that says what is expected.
fn parse_step(step: &str) -> Result<Step, String> {
    step.parse().map_err(|_| {
        format!(
            "{step:?} is not a route step (assigned_manager, agent:<id>, role:<role>, queue:<name>)"
        )
    })
}

fn unknown_purpose(purpose: &str) -> String {
    let names: Vec<_> = Purpose::ALL.iter().map(|p| p.as_str()).collect();
    format!(
        "unknown purpose {purpose:?} (expected one of {})",
        names.join(", ")
    )
}

fn check_step(
    step: &Step,
    path: &str,
    agent_ids: &HashSet<&str>,
    queue_names: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) {
    match step {
        Step::Agent(id) if !agent_ids.contains(id.as_str()) => {
            errors.push(err(path, format!("unknown agent {id:?}")));
        }
        Step::Queue(name) if !queue_names.contains(name.as_str()) => {
            errors.push(err(path, format!("unknown queue {name:?}")));
        }
        Step::Role(role) if !is_name(role) => {
            errors.push(err(path, format!("{role:?} is not a role name")));
        }
        _ => {}
    }
}
