//! Proposals waiting for their entry to be applied, matched by (index, term) as TiKV does: an
//! entry at the proposal's index with another term means a new leader replaced it, so the
//! proposal was not applied and can be retried.

use std::collections::VecDeque;

/// A proposal whose entry was appended at `index` in `term`.
#[derive(Debug)]
pub struct PendingProposal<R> {
    /// Log index of the proposal's entry.
    pub index: u64,
    /// Term in which it was proposed.
    pub term: u64,
    /// Where the result goes.
    pub reply: R,
}

/// Proposals in log order.
#[derive(Debug)]
pub struct PendingProposals<R> {
    queue: VecDeque<PendingProposal<R>>,
}

impl<R> Default for PendingProposals<R> {
    fn default() -> Self {
        PendingProposals { queue: VecDeque::new() }
    }
}

impl<R> PendingProposals<R> {
    /// Records a proposal. Indices increase within a term; a lower index means the log was
    /// truncated by a new leader, so earlier proposals at or above it are stale.
    pub fn push(&mut self, index: u64, term: u64, reply: R) -> Vec<PendingProposal<R>> {
        let mut stale = Vec::new();
        while self.queue.back().is_some_and(|p| p.index >= index) {
            if let Some(p) = self.queue.pop_back() {
                stale.push(p);
            }
        }
        self.queue.push_back(PendingProposal { index, term, reply });
        stale
    }

    /// Removes and returns every proposal with index <= `last_index`, in order.
    pub fn take_up_to(&mut self, last_index: u64) -> Vec<PendingProposal<R>> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|p| p.index <= last_index) {
            if let Some(p) = self.queue.pop_front() {
                out.push(p);
            }
        }
        out
    }

    /// Removes every proposal (the replica stepped down or stops).
    pub fn take_all(&mut self) -> Vec<PendingProposal<R>> {
        self.queue.drain(..).collect()
    }

    /// Number of proposals waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_come_out_in_index_order_and_truncation_marks_them_stale() {
        let mut p = PendingProposals::default();
        assert!(p.push(5, 1, "a").is_empty());
        assert!(p.push(6, 1, "b").is_empty());
        assert!(p.push(7, 1, "c").is_empty());
        let stale = p.push(6, 2, "d");
        assert_eq!(stale.iter().map(|s| s.reply).collect::<Vec<_>>(), vec!["c", "b"]);
        let done = p.take_up_to(6);
        assert_eq!(
            done.iter().map(|d| (d.index, d.term)).collect::<Vec<_>>(),
            vec![(5, 1), (6, 2)]
        );
        assert!(p.is_empty());
    }
}
