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
    /// (cumulative weight, region), for shares and explanations.
    pub entries: Box<[(u32, RegionId)]>,
    /// Walker's alias table over the same weights: a draw costs two random
    /// numbers and one comparison however many regions there are.
    columns: Box<[Column]>,
    pub fail_open: bool,
}

/// One column of the alias table: draws below `keep` (out of the total
/// weight) give `region`, the rest give `alias`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    keep: u32,
    region: RegionId,
    alias: RegionId,
}

impl WeightTable {
    fn new(entries: Box<[(u32, RegionId)]>, fail_open: bool) -> WeightTable {
        let columns = alias_columns(&entries);
        WeightTable {
            entries,
            columns,
            fail_open,
        }
    }

    pub fn total(&self) -> u32 {
        self.entries.last().map_or(0, |e| e.0)
    }

    /// A region drawn by weight; `draw(n)` is uniform in `0..n`.
    pub fn pick(&self, draw: &mut dyn FnMut(u32) -> u32) -> RegionId {
        let column = self
            .columns
            .get(draw(self.columns.len().max(1) as u32) as usize);
        match column {
            Some(c) if draw(self.total().max(1)) < c.keep => c.region,
            Some(c) => c.alias,
            None => 0,
        }
    }

    /// Each region's share in percent.
    pub fn shares(&self) -> Vec<(RegionId, f64)> {
        let total = f64::from(self.total().max(1));
        weights(&self.entries)
            .map(|(r, w)| (r, f64::from(w) * 100.0 / total))
            .collect()
    }
}

/// Each region's own weight, from the cumulative entries.
fn weights(entries: &[(u32, RegionId)]) -> impl Iterator<Item = (RegionId, u32)> + '_ {
    let mut prev = 0;
    entries.iter().map(move |&(cum, r)| {
        let weight = cum - prev;
        prev = cum;
        (r, weight)
    })
}

/// Vose's construction of the alias table, in integers so every region's
/// probability is exactly its weight over the total: each of the n columns
/// holds `total` units, region i brings `weight_i * n` of them; a column
/// short of `total` is topped up from one that has too many.
fn alias_columns(entries: &[(u32, RegionId)]) -> Box<[Column]> {
    let n = entries.len() as u64;
    let total = entries.last().map_or(0, |e| e.0);
    let mut units: Vec<u64> = weights(entries).map(|(_, w)| u64::from(w) * n).collect();
    let mut columns: Vec<Column> = entries
        .iter()
        .map(|&(_, region)| Column {
            keep: total,
            region,
            alias: region,
        })
        .collect();
    let full = u64::from(total);
    let (mut short, mut over): (Vec<usize>, Vec<usize>) =
        (0..entries.len()).partition(|&i| units[i] < full);
    while let (Some(&s), Some(&o)) = (short.last(), over.last()) {
        short.pop();
        // units[s] < full = total, so it fits the u32 `keep`.
        columns[s].keep = units[s] as u32;
        columns[s].alias = columns[o].region;
        units[o] -= full - units[s];
        if units[o] < full {
            over.pop();
            short.push(o);
        }
    }
    // What is left is exactly full (the arithmetic is exact) and keeps
    // its own region.
    columns.into_boxed_slice()
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
    let order = geo_order(config, list, residency);
    first_healthy(&order, healthy).unwrap_or(Choice {
        region: order.first().copied().unwrap_or(0),
        fail_open: true,
    })
}

/// The order `geo` tries regions in: the client's list narrowed to the
/// allowed candidates, then the other candidates by priority.
pub fn geo_order(config: &Config, list: &[RegionId], residency: Option<usize>) -> Vec<RegionId> {
    let candidates = allowed(config, residency);
    let mut order: Vec<RegionId> = list
        .iter()
        .copied()
        .filter(|r| candidates.contains(r))
        .collect();
    let rest: Vec<RegionId> = candidates
        .into_iter()
        .filter(|r| !order.contains(r))
        .collect();
    order.extend(rest);
    order
}

/// What part of a location decided a lookup in the config: the country
/// code, the continent code, or neither (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy<'a> {
    Country(&'a str),
    Continent(&'a str),
    Default,
}

impl std::fmt::Display for MatchedBy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchedBy::Country(c) => write!(f, "country {c}"),
            MatchedBy::Continent(c) => write!(f, "continent {c}"),
            MatchedBy::Default => f.write_str("default"),
        }
    }
}

/// The `[geoip]` preference list of a location: its country's list, else
/// its continent's, else `default`.
pub fn preference_list<'c, 'a>(
    config: &'c Config,
    country: Option<&'a str>,
    continent: Option<&'a str>,
) -> (&'c [RegionId], MatchedBy<'a>) {
    if let Some((c, list)) = country.and_then(|c| config.geoip.countries.get(c).map(|l| (c, l))) {
        return (list, MatchedBy::Country(c));
    }
    if let Some((c, list)) = continent.and_then(|c| config.geoip.continents.get(c).map(|l| (c, l)))
    {
        return (list, MatchedBy::Continent(c));
    }
    (&config.geoip.default, MatchedBy::Default)
}

/// The residency block a location falls in, by country first, then by
/// continent, with what matched.
pub fn residency_block<'a>(
    config: &Config,
    country: Option<&'a str>,
    continent: Option<&'a str>,
) -> Option<(usize, MatchedBy<'a>)> {
    let find = |code: Option<&'a str>, field: fn(&crate::config::Residency) -> &[String]| {
        code.and_then(|c| {
            config
                .residency
                .iter()
                .position(|b| field(b).iter().any(|x| x == c))
                .map(|i| (i, c))
        })
    };
    find(country, |b| &b.countries)
        .map(|(i, c)| (i, MatchedBy::Country(c)))
        .or_else(|| find(continent, |b| &b.continents).map(|(i, c)| (i, MatchedBy::Continent(c))))
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
    WeightTable::new(entries, fail_open)
}

/// The regions a `multivalue` record answers from, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSet {
    /// Bit `r` set: region `r` is in the answer.
    pub mask: usize,
    /// The first of them by priority (what counters and views name).
    pub first: RegionId,
    /// No candidate was healthy: every candidate is in the set.
    pub fail_open: bool,
}

/// `multivalue`: every healthy candidate; every candidate when none is.
pub fn multivalue(config: &Config, healthy: &[bool], residency: Option<usize>) -> ValueSet {
    let candidates = allowed(config, residency);
    let live: Vec<RegionId> = candidates.iter().copied().filter(|&r| healthy[r]).collect();
    let fail_open = live.is_empty();
    let set = if fail_open { candidates } else { live };
    ValueSet {
        mask: set.iter().fold(0, |m, &r| m | (1 << r)),
        first: set.first().copied().unwrap_or(0),
        fail_open,
    }
}

/// The regions of `mask` in priority order.
pub fn members(config: &Config, mask: usize) -> Vec<RegionId> {
    config
        .by_priority()
        .into_iter()
        .filter(|&r| mask & (1 << r) != 0)
        .collect()
}

/// The addresses a multivalue answer for `mask` holds: its regions' by
/// priority, at most `max` IPv4 then at most `max` IPv6.
pub fn value_addresses(config: &Config, mask: usize, max: u8) -> Vec<std::net::IpAddr> {
    let members = members(config, mask);
    let take = usize::from(max);
    let v4 = members
        .iter()
        .flat_map(|&r| &config.regions[r].ipv4)
        .take(take)
        .map(|&a| std::net::IpAddr::V4(a));
    let v6 = members
        .iter()
        .flat_map(|&r| &config.regions[r].ipv6)
        .take(take)
        .map(|&a| std::net::IpAddr::V6(a));
    v4.chain(v6).collect()
}

fn first_healthy(list: &[RegionId], healthy: &[bool]) -> Option<Choice> {
    list.iter().find(|&&r| healthy[r]).map(|&region| Choice {
        region,
        fail_open: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(weights: &[u32]) -> WeightTable {
        let mut cum = 0;
        let entries = weights
            .iter()
            .enumerate()
            .map(|(r, &w)| {
                cum += w;
                (cum, r)
            })
            .collect();
        WeightTable::new(entries, false)
    }

    /// Every (column, unit) draw, counted per region: the alias table must
    /// give each region exactly `weight * columns` of them.
    fn counts(t: &WeightTable) -> Vec<u64> {
        let mut counts = vec![0u64; t.entries.len()];
        let n = t.columns.len() as u32;
        for column in 0..n {
            for unit in 0..t.total() {
                let mut draws = [column, unit].into_iter();
                let region = t.pick(&mut |bound| {
                    let x = draws.next().expect("two draws");
                    assert!(x < bound);
                    x
                });
                counts[region] += 1;
            }
        }
        counts
    }

    #[test]
    fn alias_draws_are_exactly_proportional_to_weight() {
        for weights in [
            vec![40, 40, 20],
            vec![1],
            vec![0, 5, 0, 1],
            vec![1, 1000],
            (0..100).map(|r| 1 + r % 7).collect(),
        ] {
            let t = table(&weights);
            let n = weights.len() as u64;
            let expected: Vec<u64> = weights.iter().map(|&w| u64::from(w) * n).collect();
            assert_eq!(counts(&t), expected, "weights {weights:?}");
        }
    }

    #[test]
    fn an_empty_table_picks_without_panicking() {
        let t = table(&[]);
        assert_eq!(t.pick(&mut |_| 0), 0);
    }
}
