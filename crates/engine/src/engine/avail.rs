//! Availability indices (per skill and per role bitmaps with strategy keys) and the agent
//! selection that scans them.

use super::*;

/// Which agent-global key orders a strategy's choice within a skill level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HintKind {
    Idle = 0,
    Index = 1,
    Calls = 2,
    Talk = 3,
}

pub(super) fn hint_kind(s: Strategy) -> HintKind {
    match s {
        Strategy::LongestIdle => HintKind::Idle,
        Strategy::FewestCalls => HintKind::Calls,
        Strategy::LeastTalkTime => HintKind::Talk,
        Strategy::RoundRobin | Strategy::RingAll | Strategy::Random | Strategy::Linear => {
            HintKind::Index
        }
    }
}

/// The available agents of one skill (or role), as a *hint*: one bit per member, plus each
/// member's strategy keys as they were when it became available.
///
/// Members have fixed positions, ordered by (level desc, agent index), so a level is a
/// contiguous range of bits and index order within a level is bit order. Publishing or
/// withdrawing an agent is one `fetch_or` / `fetch_and` per skill — no search, no allocation
/// (a lock-free ordered map here cost a skip-list search per skill × strategy key on every
/// availability change). A claim always re-validates the agent word, so a set bit whose agent
/// is no longer available (a *stale* bit) only costs a look; the invariant the engine keeps is
/// the other direction: **an available agent's bits are set** once its publisher has run
/// (see [`Engine::unindex`]). Keys only order the choice; a key that moved during a scan is
/// made up for by a final pass in index order, so a live agent is never passed over.
pub(super) struct AvailIndex {
    /// Agent indices by (level desc, index asc).
    pub(super) members: Vec<u32>,
    /// Level ranges over `members`, best level first: `start..end`.
    pub(super) levels: Vec<(usize, usize)>,
    /// Bit p set: `members[p]` is (probably) available.
    pub(super) bits: Vec<AtomicU64>,
    /// Per [`HintKind`] with a key (idle since, calls today, talk today), when a queue on this
    /// skill uses it: each member's key at the moment it became available.
    pub(super) keys: [Option<Vec<AtomicU64>>; 4],
}

impl AvailIndex {
    pub(super) fn new(mut members: Vec<(u8, u32)>, kinds: &BTreeSet<usize>) -> AvailIndex {
        members.sort_by_key(|&(level, a)| (u8::MAX - level, a));
        let mut levels: Vec<(usize, usize)> = Vec::new();
        for (p, w) in members.windows(2).enumerate() {
            if let [(l0, _), (l1, _)] = w
                && l0 != l1
            {
                levels.push((levels.last().map_or(0, |l| l.1), p + 1));
            }
        }
        if !members.is_empty() {
            levels.push((levels.last().map_or(0, |l| l.1), members.len()));
        }
        let n = members.len();
        AvailIndex {
            members: members.into_iter().map(|(_, a)| a).collect(),
            levels,
            bits: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            keys: std::array::from_fn(|k| {
                (k != HintKind::Index as usize && kinds.contains(&k))
                    .then(|| (0..n).map(|_| AtomicU64::new(0)).collect())
            }),
        }
    }

    pub(super) fn set(&self, pos: usize, on: bool) {
        if let Some(w) = self.bits.get(pos / 64) {
            let bit = 1u64 << (pos % 64);
            if on {
                w.fetch_or(bit, SeqCst);
            } else {
                w.fetch_and(!bit, SeqCst);
            }
        }
    }

    /// Calls `f` with every set position in `start..end`, in order, until it breaks.
    pub(super) fn each_set(
        &self,
        start: usize,
        end: usize,
        mut f: impl FnMut(usize) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut p = start;
        while p < end {
            let wi = p / 64;
            let Some(word) = self.bits.get(wi) else { break };
            let mut w = (word.load(SeqCst) >> (p % 64)) << (p % 64);
            let word_end = (wi + 1) * 64;
            if end < word_end {
                w &= (1u64 << (end % 64)) - 1;
            }
            while w != 0 {
                f(wi * 64 + w.trailing_zeros() as usize)?;
                w &= w - 1;
            }
            p = word_end;
        }
        ControlFlow::Continue(())
    }
}

impl Engine {
    pub(super) fn hint_value(slot: &AgentSlot, kind: usize) -> u64 {
        match kind {
            0 => slot.idle_since.load(SeqCst),
            2 => slot.calls_today.load(SeqCst),
            3 => slot.talk_ms_today.load(SeqCst),
            _ => 0,
        }
    }

    /// Publishes agent `a` as available in its skills' and roles' indices: keys first, then
    /// the bit.
    pub(super) fn index(&self, a: u32) {
        let (Some(info), Some(slot)) = (self.agents.get(a as usize), self.slots.get(a as usize))
        else {
            return;
        };
        for &(ix, pos) in &info.hints {
            let Some(index) = self.avail.get(ix) else {
                continue;
            };
            for (kind, keys) in index.keys.iter().enumerate() {
                if let Some(k) = keys.as_ref().and_then(|keys| keys.get(pos)) {
                    // Keys only order the choice (see `AvailIndex`); the SeqCst `fetch_or`
                    // below is what publishes the agent.
                    k.store(Self::hint_value(slot, kind), Relaxed);
                }
            }
            index.set(pos, true);
        }
    }

    /// Withdraws agent `a` (which just left `available`) from its indices.
    ///
    /// Another thread may have made the agent available again — and set its bits — between
    /// our CAS and our clearing them. So after clearing, the word is read again: if the agent
    /// is available, this thread publishes it itself, fence and dispatch included. With every
    /// operation SeqCst, either that read sees the other thread's move (and we re-publish) or
    /// the other thread's `fetch_or` comes after our `fetch_and` (and the bits stay set): an
    /// available agent's bits are never left clear, and a call that scanned while they were
    /// clear is found by the re-publishing dispatch.
    pub(super) fn unindex(&self, now: Time, a: u32) {
        let (Some(info), Some(slot)) = (self.agents.get(a as usize), self.slots.get(a as usize))
        else {
            return;
        };
        if info.hints.is_empty() {
            return;
        }
        for &(ix, pos) in &info.hints {
            if let Some(index) = self.avail.get(ix) {
                index.set(pos, false);
            }
        }
        if tag(slot.word.load(SeqCst)) == AgentStateKind::Available {
            self.index(a);
            self.dispatch_agent(now, a);
        }
    }

    pub(super) fn live(&self, a: u32) -> bool {
        self.slots
            .get(a as usize)
            .is_some_and(|s| tag(s.word.load(SeqCst)) == AgentStateKind::Available)
    }

    /// One candidate from an index: claimed if available, except the agent who just did not
    /// answer this call (`avoid`), who is set aside as the fallback.
    pub(super) fn try_candidate(
        &self,
        now: Time,
        a: u32,
        cell: &CallCell,
        avoid: u32,
        fallback: &mut Option<u32>,
    ) -> Option<Claim> {
        if !self.live(a) {
            return None;
        }
        if a == avoid {
            *fallback = Some(a);
            return None;
        }
        self.claim(now, a, cell.id.0)
    }

    /// Claims the first available member in (level desc, key asc, index asc) order, where the
    /// key is the strategy's (`Index` has none), preferring anyone over the agent who just did
    /// not answer this call.
    pub(super) fn claim_ordered(
        &self,
        now: Time,
        index: &AvailIndex,
        kind: HintKind,
        cell: &CallCell,
    ) -> Option<Claim> {
        let avoid = cell.last_no_answer.load(SeqCst);
        let mut fallback = None;
        let keys = index.keys.get(kind as usize).and_then(Option::as_ref);
        for &(start, end) in &index.levels {
            if let Some(keys) = keys {
                // Lowest (key, position) above the last one tried — within a level, position
                // order is index order — one pass per candidate; the first candidate is nearly
                // always claimed.
                let mut after: Option<(u64, usize)> = None;
                for _ in start..end {
                    let mut best: Option<(u64, usize)> = None;
                    let _ = index.each_set(start, end, |p| {
                        if let Some(k) = keys.get(p) {
                            let c = (k.load(Relaxed), p);
                            if after.is_none_or(|x| c > x) && best.is_none_or(|b| c < b) {
                                best = Some(c);
                            }
                        }
                        ControlFlow::Continue(())
                    });
                    let Some(c) = best else { break };
                    after = Some(c);
                    let Some(&a) = index.members.get(c.1) else {
                        break;
                    };
                    if let Some(claim) = self.try_candidate(now, a, cell, avoid, &mut fallback) {
                        return Some(claim);
                    }
                }
            }
            // Index order: the order itself for `Index`; for keyed kinds the pass that finds
            // an available member whose key moved while the passes above ran.
            let got = self.claim_in_order(now, index, (start, end), cell, avoid, &mut fallback);
            if got.is_some() {
                return got;
            }
        }
        fallback.and_then(|a| self.claim(now, a, cell.id.0))
    }

    /// The first available member at positions `from..to`, in index order, that
    /// [`Engine::try_candidate`] claims (it notes a fallback on the way).
    fn claim_in_order(
        &self,
        now: Time,
        index: &AvailIndex,
        (from, to): (usize, usize),
        cell: &CallCell,
        avoid: u32,
        fallback: &mut Option<u32>,
    ) -> Option<Claim> {
        let mut got = None;
        let _ = index.each_set(from, to, |p| {
            got = index
                .members
                .get(p)
                .and_then(|&a| self.try_candidate(now, a, cell, avoid, fallback));
            if got.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        got
    }

    /// The best level with an available member: its range of positions.
    pub(super) fn best_level(&self, index: &AvailIndex) -> Option<(usize, usize)> {
        index.levels.iter().copied().find(|&(start, end)| {
            index
                .each_set(start, end, |p| match index.members.get(p) {
                    Some(&a) if self.live(a) => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                })
                .is_break()
        })
    }

    /// Claims an agent within the best level, starting at agent index `start` and wrapping.
    pub(super) fn claim_rotating(
        &self,
        now: Time,
        index: &AvailIndex,
        cell: &CallCell,
        start: impl Fn() -> u32,
    ) -> Option<Claim> {
        let avoid = cell.last_no_answer.load(SeqCst);
        for _ in 0..8 {
            let (lo, hi) = self.best_level(index)?;
            let s = start();
            let mid = lo
                + index
                    .members
                    .get(lo..hi)
                    .map_or(0, |m| m.partition_point(|&a| a < s));
            let mut fallback = None;
            for range in [(mid, hi), (lo, mid)] {
                let got = self.claim_in_order(now, index, range, cell, avoid, &mut fallback);
                if got.is_some() {
                    return got;
                }
            }
            if let Some(claim) = fallback.and_then(|a| self.claim(now, a, cell.id.0)) {
                return Some(claim);
            }
        }
        None
    }
}
