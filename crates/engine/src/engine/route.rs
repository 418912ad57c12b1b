//! A call's chain resolved from its template, and the route trace written into every offer.

use super::*;

impl Engine {
    pub(super) fn resolve_chain(
        &self,
        template: &[TemplateStep],
        class: Class,
        client: Option<&Client>,
        base: u8,
    ) -> Vec<CallStep> {
        template
            .iter()
            .map(|t| {
                let (target, manager) = match t.kind {
                    TemplateKind::Agent(a) => (Target::Agent(a), NONE),
                    TemplateKind::Role(r) => (Target::Role(r), NONE),
                    TemplateKind::Queue(q) => (Target::Queue(q), NONE),
                    TemplateKind::AssignedManager => {
                        match client
                            .and_then(|c| c.manager.as_deref())
                            .and_then(|m| self.agent_by_id.get(m).copied())
                        {
                            None => (Target::Nobody, NONE),
                            Some(m) if self.kind_of(m) == AgentStateKind::Absent => {
                                let sub = self
                                    .slots
                                    .get(m as usize)
                                    .map_or(NONE, |s| s.substitute.load(SeqCst));
                                if sub != NONE
                                    && sub != m
                                    && self.slots.get(sub as usize).is_some()
                                    && self.kind_of(sub) != AgentStateKind::Absent
                                {
                                    (Target::Agent(sub), m)
                                } else {
                                    (Target::Nobody, m)
                                }
                            }
                            Some(m) => (Target::Agent(m), m),
                        }
                    }
                };
                let prio = match target {
                    Target::Queue(q) => self
                        .queues
                        .get(q as usize)
                        .and_then(|q| q.cfg.class_priority.get(&class).copied())
                        .unwrap_or(base),
                    _ => base,
                };
                CallStep {
                    target,
                    manager,
                    prio,
                }
            })
            .collect()
    }

    /// The explanation of an offer from step `served` to `agents`, written into one string
    /// (it is built on every offer, so no intermediate strings).
    pub(super) fn trace(&self, cell: &CallCell, served: usize, agents: &[AgentIdx]) -> String {
        self.trace_steps(cell, served + 1, Some(served), agents)
    }

    /// The explanation of a call no agent took: each of the first `reached` steps with why it
    /// did not serve (`queue:orders(max wait) > agent:fina(break)`).
    pub(super) fn trace_unserved(&self, cell: &CallCell, reached: usize) -> String {
        self.trace_steps(cell, reached, None, &[])
    }

    fn trace_steps(
        &self,
        cell: &CallCell,
        upto: usize,
        served: Option<usize>,
        agents: &[AgentIdx],
    ) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(48 * upto);
        for (i, step) in cell.steps.iter().enumerate().take(upto) {
            let served_here = served == Some(i);
            if i > 0 {
                out.push_str(" > ");
            }
            out.push_str(
                self.template(cell.template)
                    .get(i)
                    .map_or("?", |t| &t.label),
            );
            out.push('(');
            // Writing into a String cannot fail.
            let _ = if step.manager != NONE {
                let m = self.id_of(step.manager);
                match step.target {
                    Target::Agent(s) if s != step.manager => {
                        if served_here {
                            write!(out, "{m}: absent → {}", self.id_of(s))
                        } else {
                            write!(
                                out,
                                "{m}: absent → {}: {}",
                                self.id_of(s),
                                self.kind_of(s).as_str()
                            )
                        }
                    }
                    Target::Agent(_) if served_here => write!(out, "{m}"),
                    Target::Agent(_) => {
                        write!(out, "{m}: {}", self.kind_of(step.manager).as_str())
                    }
                    _ => write!(out, "{m}: absent → no substitute"),
                }
            } else if served_here {
                for (n, &AgentIdx(a)) in agents.iter().enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(self.id_of(a));
                }
                Ok(())
            } else {
                out.push_str(match step.target {
                    Target::Nobody => "no manager",
                    Target::Agent(a) => self.kind_of(a).as_str(),
                    Target::Role(_) => "none available",
                    Target::Queue(_) if cell.is_registered(i) => "max wait",
                    Target::Queue(_) => "full",
                });
                Ok(())
            };
            out.push(')');
        }
        out
    }
}
