//! Steered-answer counts across reloads. Each routing table build gets a
//! fresh record x region x worker counter matrix (the data plane counts into
//! it without contention); when a reload replaces the table, the old matrix
//! is summed into per-(record, region) totals and dropped as soon as no
//! snapshot can count into it any more. So memory is one matrix per live
//! table, and the metric never goes back.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::snapshot::AnswerCounters;

/// Answers served, by (record name, region name).
pub type AnswerTotals = BTreeMap<(String, String), u64>;

#[derive(Default)]
pub struct AnswerHistory {
    /// Sums of matrices no snapshot uses any more.
    carried: AnswerTotals,
    /// Matrices of replaced tables that a snapshot still in use (a worker's
    /// cached one, a TCP query in flight) may still count into.
    draining: Vec<Arc<AnswerCounters>>,
}

impl AnswerHistory {
    /// Takes the matrix of a table that was just replaced.
    pub fn retire(&mut self, counters: Arc<AnswerCounters>) {
        self.draining.push(counters);
        self.settle();
    }

    /// Folds every draining matrix that only this history still holds.
    fn settle(&mut self) {
        let carried = &mut self.carried;
        self.draining.retain(|counters| {
            if Arc::strong_count(counters) > 1 {
                return true;
            }
            add(carried, counters);
            false
        });
    }

    /// Totals so far with `current` (the live table's matrix) added; pairs
    /// never served are left out, so a scrape lists what was answered
    /// rather than every record x region pair.
    pub fn totals(&mut self, current: &AnswerCounters) -> AnswerTotals {
        self.settle();
        let mut all = self.carried.clone();
        for counters in &self.draining {
            add(&mut all, counters);
        }
        add(&mut all, current);
        all
    }

    /// Heap bytes held: carried totals and draining matrices.
    pub fn memory_bytes(&self) -> usize {
        let carried: usize = self
            .carried
            .keys()
            .map(|(record, region)| record.len() + region.len() + 64)
            .sum();
        carried
            + self
                .draining
                .iter()
                .map(|c| c.memory_bytes())
                .sum::<usize>()
    }
}

fn add(into: &mut AnswerTotals, counters: &AnswerCounters) {
    for (record, region, n) in counters.totals() {
        if n > 0 {
            *into
                .entry((record.to_owned(), region.to_owned()))
                .or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix() -> Arc<AnswerCounters> {
        Arc::new(AnswerCounters::new(
            vec!["api".into(), "geo".into()],
            vec!["us".into(), "eu".into()],
            2,
        ))
    }

    fn total(t: &AnswerTotals, record: &str, region: &str) -> u64 {
        t.get(&(record.to_owned(), region.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    #[test]
    fn sums_survive_replacement_and_unserved_pairs_are_left_out() {
        let mut history = AnswerHistory::default();
        let first = matrix();
        first.count(0, 0, 0);
        first.count(1, 0, 0);
        first.count(1, 1, 1);
        history.retire(first);
        assert!(history.draining.is_empty(), "nothing else holds it");
        let second = matrix();
        second.count(0, 0, 0);
        let t = history.totals(&second);
        assert_eq!(total(&t, "api", "us"), 3);
        assert_eq!(total(&t, "geo", "eu"), 1);
        assert_eq!(t.len(), 2, "{t:?}");
    }

    #[test]
    fn a_matrix_still_in_use_keeps_counting_until_released() {
        let mut history = AnswerHistory::default();
        let old = matrix();
        let in_flight = old.clone();
        history.retire(old);
        assert_eq!(history.draining.len(), 1);
        in_flight.count(0, 1, 0);
        let current = matrix();
        assert_eq!(total(&history.totals(&current), "geo", "us"), 1);
        in_flight.count(1, 1, 0);
        drop(in_flight);
        let t = history.totals(&current);
        assert!(history.draining.is_empty());
        assert_eq!(total(&t, "geo", "us"), 2);
    }

    #[test]
    fn memory_stays_bounded_over_many_replacements() {
        let mut history = AnswerHistory::default();
        for _ in 0..1000 {
            let m = matrix();
            m.count(0, 0, 1);
            history.retire(m);
        }
        assert!(history.draining.is_empty());
        assert_eq!(history.carried.len(), 1);
        assert_eq!(total(&history.totals(&matrix()), "api", "eu"), 1000);
    }
}
