//! The per-region health state machine, pure and synchronous: probe
//! outcomes and operator commands in, transitions out.
//!
//! ```text
//!   up --(failure_threshold failures)--> down --(recovery_threshold successes)--> up
//!                                          |                                 (automatic)
//!                                          +--(same, recovery = manual)--> awaiting_readmit --readmit--> up
//! ```
//! A forced state (`up`/`down`) overrides the probes' verdict for routing
//! without stopping them, as gdnsd's admin_state does.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::Recovery;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Up,
    Down,
    AwaitingReadmit,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::AwaitingReadmit => "awaiting_readmit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forced {
    Up,
    Down,
}

/// Thresholds from `[health]`.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub failure_threshold: u32,
    pub recovery_threshold: u32,
    pub recovery: Recovery,
}

/// A change of a region's routing-relevant state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct RegionHealth {
    /// The verdict that routes: this instance's own observation, or the
    /// fleet's when there is one, with manual recovery's hold.
    pub state: State,
    pub forced: Option<Forced>,
    /// This instance's own observation, from its probes and the
    /// thresholds: what it tells its peers.
    pub observed_up: bool,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub last_check: Option<SystemTime>,
    pub last_error: Option<String>,
    pub latency: Option<Duration>,
    /// Whether any probe has run since start.
    pub checked: bool,
}

impl RegionHealth {
    /// A region starting in `state` (its last known one, or up).
    pub fn new(state: State, forced: Option<Forced>) -> RegionHealth {
        RegionHealth {
            state,
            forced,
            observed_up: state != State::Down,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_check: None,
            last_error: None,
            latency: None,
            checked: false,
        }
    }

    /// Whether the data plane may send clients here.
    pub fn healthy(&self) -> bool {
        match self.forced {
            Some(Forced::Up) => true,
            Some(Forced::Down) => false,
            None => self.state == State::Up,
        }
    }

    /// The state shown to operators: a forced state wins.
    pub fn effective_label(&self) -> &'static str {
        match self.forced {
            Some(Forced::Up) => "up",
            Some(Forced::Down) => "down",
            None => self.state.as_str(),
        }
    }

    /// Takes one probe outcome and lets this instance's own observation
    /// decide: the verdict of an instance without peers. Returns the
    /// change it causes, if any (reported even while a forced state
    /// decides routing).
    pub fn observe(
        &mut self,
        rules: &Rules,
        ok: bool,
        reason: Option<&str>,
        latency: Duration,
        at: SystemTime,
    ) -> Option<Transition> {
        let why = self.look(rules, ok, reason, latency, at)?;
        self.decide(rules, !self.observed_up, why)
    }

    /// Takes one probe outcome into this instance's own observation;
    /// returns why the observation flipped, if it did.
    pub fn look(
        &mut self,
        rules: &Rules,
        ok: bool,
        reason: Option<&str>,
        latency: Duration,
        at: SystemTime,
    ) -> Option<String> {
        self.checked = true;
        self.last_check = Some(at);
        self.latency = Some(latency);
        if ok {
            self.consecutive_successes += 1;
            self.consecutive_failures = 0;
            self.last_error = None;
        } else {
            self.consecutive_failures += 1;
            self.consecutive_successes = 0;
            self.last_error = Some(reason.unwrap_or("unhealthy").to_owned());
        }
        if self.observed_up && self.consecutive_failures >= rules.failure_threshold {
            self.observed_up = false;
            return Some(format!(
                "{} consecutive failures: {}",
                self.consecutive_failures,
                self.last_error.as_deref().unwrap_or("unhealthy")
            ));
        }
        if !self.observed_up && self.consecutive_successes >= rules.recovery_threshold {
            self.observed_up = true;
            return Some(format!(
                "{} consecutive successes",
                self.consecutive_successes
            ));
        }
        None
    }

    /// Moves the verdict to `down` or up (held awaiting readmit under
    /// manual recovery); `why` says what decided it.
    pub fn decide(&mut self, rules: &Rules, down: bool, why: String) -> Option<Transition> {
        let next = match (self.state, down) {
            (State::Up | State::AwaitingReadmit, true) => State::Down,
            (State::Down, false) => match rules.recovery {
                Recovery::Automatic => State::Up,
                Recovery::Manual => State::AwaitingReadmit,
            },
            (same, _) => same,
        };
        if next == self.state {
            return None;
        }
        let reason = if next == State::AwaitingReadmit {
            format!("{why}; recovery is manual, awaiting readmit")
        } else {
            why
        };
        let from = self.state.as_str();
        self.state = next;
        Some(Transition {
            from,
            to: next.as_str(),
            reason,
        })
    }

    /// Applies an operator's forced state (`None` hands back to probes).
    pub fn force(&mut self, forced: Option<Forced>) -> Option<Transition> {
        if self.forced == forced {
            return None;
        }
        let before = self.effective_label();
        self.forced = forced;
        let reason = match forced {
            Some(Forced::Up) => "forced up by operator".to_owned(),
            Some(Forced::Down) => "forced down by operator".to_owned(),
            None => "handed back to health checks by operator".to_owned(),
        };
        Some(Transition {
            from: before,
            to: self.effective_label(),
            reason,
        })
    }

    /// Re-admits a region that recovered under manual recovery.
    pub fn readmit(&mut self) -> Result<Transition, &'static str> {
        match self.state {
            State::AwaitingReadmit => {
                let before = self.effective_label();
                self.state = State::Up;
                Ok(Transition {
                    from: before,
                    to: self.effective_label(),
                    reason: "re-admitted by operator".to_owned(),
                })
            }
            State::Up => Err("is already up"),
            State::Down => Err("has not recovered yet: it is still failing its health checks"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO: Rules = Rules {
        failure_threshold: 3,
        recovery_threshold: 2,
        recovery: Recovery::Automatic,
    };
    const MANUAL: Rules = Rules {
        recovery: Recovery::Manual,
        ..AUTO
    };

    fn step(h: &mut RegionHealth, rules: &Rules, ok: bool) -> Option<Transition> {
        h.observe(
            rules,
            ok,
            Some("connection refused"),
            Duration::from_millis(5),
            SystemTime::now(),
        )
    }

    #[test]
    fn goes_down_after_the_failure_threshold_and_not_before() {
        let mut h = RegionHealth::new(State::Up, None);
        assert_eq!(step(&mut h, &AUTO, false), None);
        assert_eq!(step(&mut h, &AUTO, false), None);
        assert!(h.healthy());
        let t = step(&mut h, &AUTO, false).expect("down");
        assert_eq!((t.from, t.to), ("up", "down"));
        assert_eq!(t.reason, "3 consecutive failures: connection refused");
        assert!(!h.healthy());
    }

    #[test]
    fn one_success_resets_the_failure_count() {
        let mut h = RegionHealth::new(State::Up, None);
        step(&mut h, &AUTO, false);
        step(&mut h, &AUTO, false);
        step(&mut h, &AUTO, true);
        step(&mut h, &AUTO, false);
        assert_eq!(
            step(&mut h, &AUTO, false),
            None,
            "no flapping on isolated failures"
        );
    }

    #[test]
    fn recovers_automatically_after_the_recovery_threshold() {
        let mut h = RegionHealth::new(State::Down, None);
        assert_eq!(step(&mut h, &AUTO, true), None);
        let t = step(&mut h, &AUTO, true).expect("up");
        assert_eq!((t.from, t.to), ("down", "up"));
    }

    #[test]
    fn manual_recovery_waits_for_readmit() {
        let mut h = RegionHealth::new(State::Down, None);
        assert!(h.readmit().is_err(), "not recovered yet");
        step(&mut h, &MANUAL, true);
        let t = step(&mut h, &MANUAL, true).expect("awaiting");
        assert_eq!(t.to, "awaiting_readmit");
        assert!(!h.healthy(), "stays out until readmitted");
        for _ in 0..5 {
            assert_eq!(step(&mut h, &MANUAL, true), None);
        }
        let t = h.readmit().expect("readmit");
        assert_eq!((t.from, t.to), ("awaiting_readmit", "up"));
        assert!(h.healthy());
    }

    #[test]
    fn forced_states_override_probes() {
        let mut h = RegionHealth::new(State::Up, None);
        let t = h.force(Some(Forced::Down)).expect("change");
        assert_eq!((t.from, t.to), ("up", "down"));
        assert!(!h.healthy());
        for _ in 0..3 {
            step(&mut h, &AUTO, true);
        }
        assert!(!h.healthy(), "probes do not undo a forced state");
        assert_eq!(h.force(Some(Forced::Down)), None, "no change, no event");
        let t = h.force(None).expect("auto");
        assert_eq!((t.from, t.to), ("down", "up"));
        assert!(h.healthy());
    }

    #[test]
    fn probe_transitions_under_a_forced_state_are_still_reported() {
        let mut h = RegionHealth::new(State::Up, Some(Forced::Up));
        for _ in 0..2 {
            step(&mut h, &AUTO, false);
        }
        let t = step(&mut h, &AUTO, false).expect("recorded");
        assert_eq!(h.state, State::Down);
        assert!(h.healthy(), "forced up still routes");
        assert_eq!((t.from, t.to), ("up", "down"));
    }
}
