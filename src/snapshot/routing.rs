//! Health-dependent choices, computed once per snapshot for every class of
//! client so a query only indexes a table.

use crate::config::{Config, RegionId};

/// A region picked for a class of clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub region: RegionId,
    /// No candidate was healthy; this is the answer as if all were.
    pub fail_open: bool,
}

/// Regions to draw from by weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightTable {
    /// (cumulative weight, region); draws are uniform in `0..total`.
    pub entries: Box<[(u32, RegionId)]>,
    pub fail_open: bool,
}

impl WeightTable {
    pub fn total(&self) -> u32 {
        self.entries.last().map_or(0, |e| e.0)
    }

    /// The region for a draw `x` in `0..total()`.
    pub fn pick(&self, x: u32) -> RegionId {
        // Binary search: a hundred regions cost no more than three.
        let i = self.entries.partition_point(|e| e.0 <= x);
        self.entries
            .get(i)
            .or(self.entries.last())
            .map_or(0, |e| e.1)
    }

    /// Each region's share in percent.
    pub fn shares(&self) -> Vec<(RegionId, f64)> {
        let total = f64::from(self.total().max(1));
        let mut prev = 0;
        self.entries
            .iter()
            .map(|&(cum, r)| {
                let share = f64::from(cum - prev) * 100.0 / total;
                prev = cum;
                (r, share)
            })
            .collect()
    }
}

/// The candidates a client may be given: a residency block's regions, or all.
pub fn allowed(config: &Config, residency: Option<usize>) -> Vec<RegionId> {
    match residency.and_then(|i| config.residency.get(i)) {
        Some(block) => {
            let mut ids = block.regions.clone();
            ids.sort_by_key(|&r| config.regions[r].priority);
            ids
        }
        None => config.by_priority(),
    }
}

/// `failover`: the healthy candidate with the lowest priority number.
pub fn failover(config: &Config, healthy: &[bool], residency: Option<usize>) -> Choice {
    let candidates = allowed(config, residency);
    first_healthy(&candidates, healthy).unwrap_or(Choice {
        region: candidates.first().copied().unwrap_or(0),
        fail_open: true,
    })
}

/// `geo`: the first healthy region of the client's list, then the other
/// healthy candidates by priority; a residency block narrows both.
pub fn geo(
    config: &Config,
    healthy: &[bool],
    list: &[RegionId],
    residency: Option<usize>,
) -> Choice {
    let candidates = allowed(config, residency);
    let list: Vec<RegionId> = list
        .iter()
        .copied()
        .filter(|r| candidates.contains(r))
        .collect();
    if let Some(choice) =
        first_healthy(&list, healthy).or_else(|| first_healthy(&candidates, healthy))
    {
        return choice;
    }
    Choice {
        region: list.first().or(candidates.first()).copied().unwrap_or(0),
        fail_open: true,
    }
}

/// `weighted`: healthy candidates by weight; all candidates when none is
/// healthy; equal shares when every weight in play is zero.
pub fn weighted(config: &Config, healthy: &[bool], residency: Option<usize>) -> WeightTable {
    let candidates = allowed(config, residency);
    let live: Vec<RegionId> = candidates.iter().copied().filter(|&r| healthy[r]).collect();
    let fail_open = live.is_empty();
    let pool = if fail_open { candidates } else { live };
    let zero = pool.iter().all(|&r| config.regions[r].weight == 0);
    let mut cum = 0u32;
    let entries = pool
        .iter()
        .filter_map(|&r| {
            let w = if zero { 1 } else { config.regions[r].weight };
            (w > 0).then(|| {
                cum = cum.saturating_add(w);
                (cum, r)
            })
        })
        .collect();
    WeightTable { entries, fail_open }
}

fn first_healthy(list: &[RegionId], healthy: &[bool]) -> Option<Choice> {
    list.iter().find(|&&r| healthy[r]).map(|&region| Choice {
        region,
        fail_open: false,
    })
}
