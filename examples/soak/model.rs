//! What the server may answer: the regions and the two configs the soak
//! alternates, the steering rules of docs/reference.md §3.5 computed from
//! first principles (not from the server's own view), and the timeline of
//! every change the conductor makes, with the window in which the server
//! may still answer from the state before it.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The regions, in config (and priority) order.
pub(crate) const REGIONS: [Region; 3] = [
    Region {
        name: "us-east-1",
        v4: Ipv4Addr::new(192, 0, 2, 10),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x10),
    },
    Region {
        name: "eu-west-1",
        v4: Ipv4Addr::new(198, 51, 100, 10),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 0x10),
    },
    Region {
        name: "ap-southeast-1",
        v4: Ipv4Addr::new(203, 0, 113, 10),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0x30, 0, 0, 0, 0, 0x10),
    },
];
/// The region whose stand-in fails and recovers.
pub(crate) const FLAPPING: usize = 0;
/// The region of the `region`-policy name.
pub(crate) const PINNED: usize = 1;

/// The weights of config A and config B. Each gives one region weight 0,
/// so a draw of that region is a wrong answer while its config serves.
pub(crate) const WEIGHTS: [[u32; 3]; 2] = [[60, 40, 0], [0, 30, 70]];

#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub(crate) name: &'static str,
    pub(crate) v4: Ipv4Addr,
    pub(crate) v6: Ipv6Addr,
}

/// The region an address belongs to.
pub(crate) fn region_of_v4(a: Ipv4Addr) -> Option<usize> {
    REGIONS.iter().position(|r| r.v4 == a)
}
pub(crate) fn region_of_v6(a: Ipv6Addr) -> Option<usize> {
    REGIONS.iter().position(|r| r.v6 == a)
}

/// A forced state set through `POST /admin/regions/{name}/state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forced {
    Auto,
    Up,
    Down,
}

impl Forced {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Forced::Auto => "auto",
            Forced::Up => "up",
            Forced::Down => "down",
        }
    }
    fn from_u8(v: u8) -> Forced {
        match v {
            1 => Forced::Up,
            2 => Forced::Down,
            _ => Forced::Auto,
        }
    }
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Forced::Auto => 0,
            Forced::Up => 1,
            Forced::Down => 2,
        }
    }
}

/// One state the server can be in, as far as the steered answers go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct State {
    /// 0 = config A, 1 = config B.
    pub(crate) config: usize,
    /// What the stand-ins say, once the probes have seen it.
    pub(crate) probe_up: [bool; 3],
    pub(crate) forced: [Forced; 3],
}

impl State {
    /// A region gets traffic when forced up, or not forced and up (§6.2).
    fn healthy(&self, r: usize) -> bool {
        match self.forced[r] {
            Forced::Up => true,
            Forced::Down => false,
            Forced::Auto => self.probe_up[r],
        }
    }

    /// The candidates: the healthy regions, or all of them when none is
    /// (fail open, §3.5). A bit per region.
    fn candidates(&self) -> u8 {
        let healthy = (0..3)
            .filter(|&r| self.healthy(r))
            .fold(0u8, |m, r| m | 1 << r);
        if healthy == 0 { 0b111 } else { healthy }
    }

    /// The regions a `weighted` draw can give: candidates with a weight,
    /// or every candidate when all their weights are 0.
    pub(crate) fn weighted(&self) -> u8 {
        let c = self.candidates();
        let weighted = (0..3)
            .filter(|&r| c & (1 << r) != 0 && WEIGHTS[self.config][r] > 0)
            .fold(0u8, |m, r| m | 1 << r);
        if weighted == 0 { c } else { weighted }
    }

    /// The `failover` answer: the first candidate by priority.
    pub(crate) fn failover(&self) -> u8 {
        let c = self.candidates();
        1 << c.trailing_zeros()
    }
}

/// One change of one part of the state: `value` holds from `start` (when
/// the change was begun) and the previous value may still be served until
/// `end` (`f64::INFINITY` while the change is under way).
#[derive(Debug, Clone, Copy)]
struct Change {
    value: u8,
    start: f64,
    end: f64,
}

/// The history of one part of the state.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    initial: u8,
    changes: Vec<Change>,
}

impl Track {
    fn new(initial: u8) -> Track {
        Track {
            initial,
            changes: Vec::new(),
        }
    }

    /// The values the part may have had at some moment of `[from, to]`:
    /// a bit per value.
    fn possible(&self, from: f64, to: f64) -> u8 {
        let mut set = 0u8;
        // Value i holds from its change's start until the next change ends.
        let mut value = self.initial;
        let mut start = f64::NEG_INFINITY;
        for c in &self.changes {
            if start <= to && c.end >= from {
                set |= 1 << value;
            }
            value = c.value;
            start = c.start;
        }
        if start <= to {
            set |= 1 << value;
        }
        set
    }

    /// Forgets changes that ended before `t` (the checker is past them),
    /// keeping the value they left.
    fn forget_before(&mut self, t: f64) {
        // Only a prefix of changes that all ended: a later change that
        // ended early must not hide an earlier one still open.
        let keep_from = self
            .changes
            .iter()
            .position(|c| c.end >= t)
            .unwrap_or(self.changes.len());
        if keep_from > 0 {
            self.initial = self.changes[keep_from - 1].value;
            self.changes.drain(..keep_from);
        }
    }
}

/// Every part of the state the conductor changes.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    pub(crate) config: Track,
    pub(crate) probe_up: [Track; 3],
    pub(crate) forced: [Track; 3],
}

/// Which part a change is to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Config,
    ProbeUp(usize),
    Forced(usize),
}

impl Timeline {
    pub(crate) fn new() -> Timeline {
        Timeline {
            config: Track::new(0),
            probe_up: [Track::new(1), Track::new(1), Track::new(1)],
            forced: [Track::new(0), Track::new(0), Track::new(0)],
        }
    }

    fn track(&mut self, part: Part) -> &mut Track {
        match part {
            Part::Config => &mut self.config,
            Part::ProbeUp(r) => &mut self.probe_up[r],
            Part::Forced(r) => &mut self.forced[r],
        }
    }

    /// Records the start of a change; returns its index for [`Self::end`].
    pub(crate) fn begin(&mut self, part: Part, value: u8, start: f64) -> usize {
        let t = self.track(part);
        t.changes.push(Change {
            value,
            start,
            end: f64::INFINITY,
        });
        t.changes.len() - 1
    }

    /// Records when the change begun at `start` is surely complete.
    pub(crate) fn end(&mut self, part: Part, start: f64, end: f64) {
        if let Some(c) = self
            .track(part)
            .changes
            .iter_mut()
            .rev()
            .find(|c| c.start == start)
        {
            c.end = end;
        }
    }

    pub(crate) fn forget_before(&mut self, t: f64) {
        self.config.forget_before(t);
        for r in 0..3 {
            self.probe_up[r].forget_before(t);
            self.forced[r].forget_before(t);
        }
    }

    /// Every state the server may have been in during `[from, to]`.
    pub(crate) fn states(&self, from: f64, to: f64) -> Vec<State> {
        let configs = self.config.possible(from, to);
        let probes: Vec<u8> = self.probe_up.iter().map(|t| t.possible(from, to)).collect();
        let forced: Vec<u8> = self.forced.iter().map(|t| t.possible(from, to)).collect();
        let mut out = Vec::new();
        for config in bits(configs, 2) {
            for p0 in bits(probes[0], 2) {
                for p1 in bits(probes[1], 2) {
                    for p2 in bits(probes[2], 2) {
                        for f0 in bits(forced[0], 3) {
                            for f1 in bits(forced[1], 3) {
                                for f2 in bits(forced[2], 3) {
                                    out.push(State {
                                        config: usize::from(config),
                                        probe_up: [p0 == 1, p1 == 1, p2 == 1],
                                        forced: [
                                            Forced::from_u8(f0),
                                            Forced::from_u8(f1),
                                            Forced::from_u8(f2),
                                        ],
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn bits(set: u8, n: u8) -> impl Iterator<Item = u8> {
    (0..n).filter(move |v| set & (1 << v) != 0)
}

/// Names of the regions in a bit set, for reports.
pub(crate) fn names(mask: u8) -> String {
    let v: Vec<&str> = (0..3)
        .filter(|r| mask & (1 << r) != 0)
        .map(|r| REGIONS[r].name)
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(config: usize, up: [bool; 3], forced: [Forced; 3]) -> State {
        State {
            config,
            probe_up: up,
            forced,
        }
    }
    const AUTO: [Forced; 3] = [Forced::Auto; 3];

    #[test]
    fn weights_of_zero_are_never_drawn_unless_all_candidates_have_zero() {
        assert_eq!(state(0, [true; 3], AUTO).weighted(), 0b011);
        assert_eq!(state(1, [true; 3], AUTO).weighted(), 0b110);
        // Config B, ap forced down, eu down: only us is healthy, weight 0.
        let s = state(
            1,
            [true, false, true],
            [Forced::Auto, Forced::Auto, Forced::Down],
        );
        assert_eq!(s.weighted(), 0b001);
        assert_eq!(s.failover(), 0b001);
    }

    #[test]
    fn forced_up_beats_failing_probes_and_none_healthy_fails_open() {
        let s = state(
            0,
            [false, true, true],
            [Forced::Up, Forced::Auto, Forced::Auto],
        );
        assert_eq!(s.failover(), 0b001);
        let s = state(0, [false; 3], AUTO);
        assert_eq!(s.failover(), 0b001);
        assert_eq!(s.weighted(), 0b011);
    }

    #[test]
    fn a_change_allows_both_values_only_inside_its_window() {
        let mut t = Timeline::new();
        t.begin(Part::Config, 1, 10.0);
        assert_eq!(t.config.possible(10.5, 10.6), 0b11, "still open");
        t.end(Part::Config, 10.0, 11.0);
        assert_eq!(t.config.possible(5.0, 9.9), 0b01);
        assert_eq!(t.config.possible(10.5, 10.6), 0b11);
        assert_eq!(t.config.possible(11.1, 12.0), 0b10);
        t.begin(Part::Config, 0, 20.0);
        t.end(Part::Config, 20.0, 20.5);
        assert_eq!(t.config.possible(12.0, 19.0), 0b10);
        assert_eq!(t.config.possible(19.0, 20.1), 0b11);
        t.forget_before(15.0);
        assert_eq!(t.config.possible(15.0, 19.0), 0b10);
        assert_eq!(t.config.possible(21.0, 22.0), 0b01);
    }
}
