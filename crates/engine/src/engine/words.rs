//! The two atomic words of the offer protocol: an agent's `tag | pending | generation | call`
//! and a call's `status << 56 | agent`. Packing and unpacking only.

use super::*;

// ---- the agent word: state tag | generation | call -------------------------------------------

pub(super) const TAG_SHIFT: u32 = 60;
pub(super) const GEN_SHIFT: u32 = 40;
pub(super) const GEN_MASK: u64 = (1 << 19) - 1;
/// Set on a `ringing` word while its offer is being committed (see [`Engine::commit`]): the
/// agent is claimed, but the call may not be offered to it yet.
pub(super) const PENDING: u64 = 1 << 59;
/// Calls are identified in agent words by the low 40 bits of their id (10^12 calls).
pub(super) const CALL_MASK: u64 = (1 << 40) - 1;
pub(super) const NONE: u32 = u32::MAX;
/// Shards of the call map (one under loom, whose models have a few calls).
#[cfg(not(loom))]
pub(super) const CALL_SHARDS: u64 = 64;
#[cfg(loom)]
pub(super) const CALL_SHARDS: u64 = 1;

pub(super) fn pack(kind: AgentStateKind, generation: u64, call: u64) -> u64 {
    ((kind as u64) << TAG_SHIFT) | ((generation & GEN_MASK) << GEN_SHIFT) | (call & CALL_MASK)
}
/// The word that replaces agent word `w` for state `kind` with `call`: the next generation.
pub(super) fn successor(w: u64, kind: AgentStateKind, call: u64) -> u64 {
    pack(kind, generation(w).wrapping_add(1) & GEN_MASK, call)
}
pub(super) fn tag(w: u64) -> AgentStateKind {
    AgentStateKind::from_tag(w >> TAG_SHIFT)
}
pub(super) fn generation(w: u64) -> u64 {
    (w >> GEN_SHIFT) & GEN_MASK
}
pub(super) fn call_of(w: u64) -> u64 {
    w & CALL_MASK
}
pub(super) fn pending(w: u64) -> bool {
    w & PENDING != 0
}
/// Agent `a`'s word says it rings for `call`, its offer committed.
pub(super) fn rings_for(w: u64, call: u64) -> bool {
    tag(w) == AgentStateKind::Ringing && !pending(w) && call_of(w) == call & CALL_MASK
}

// ---- the call status word: status << 56 | agent ---------------------------------------------

pub(super) const CS_WAITING: u64 = 0;
pub(super) const CS_OFFERED: u64 = 1;
pub(super) const CS_TALKING: u64 = 2;
pub(super) const CS_ENDED: u64 = 3;
pub(super) const CS_GONE: u64 = 4;
/// Agent field of a `ring_all` offer (the agents are in `ring_sets`).
pub(super) const RING_ALL: u32 = u32::MAX;

pub(super) fn status(st: u64) -> u64 {
    st >> 56
}
pub(super) fn status_agent(st: u64) -> u32 {
    (st & 0xffff_ffff) as u32
}
pub(super) fn mk_status(s: u64, agent: u32) -> u64 {
    (s << 56) | u64::from(agent)
}
/// `offered` with the call's offer sequence number, so that each offer's status word is
/// unique and "put the call back" is one CAS that only the offer's last releaser wins.
pub(super) fn mk_offered(seq: u32, agent: u32) -> u64 {
    mk_status(CS_OFFERED, agent) | (u64::from(seq & 0xff_ffff) << 32)
}
pub(super) fn status_name(st: u64) -> &'static str {
    match status(st) {
        CS_WAITING => "waiting",
        CS_OFFERED => "offered",
        CS_TALKING => "talking",
        CS_ENDED => "ended",
        _ => "gone",
    }
}
