//! A hybrid logical clock (Kulkarni et al., 2014): wall-clock milliseconds
//! in the high 48 bits, a counter in the low 16. It never goes backwards,
//! and a time read after taking a peer's stamp is later than that stamp, so
//! a command made after seeing another one orders after it whatever the
//! clocks of the two machines say.
//!
//! Thirty lines are not worth a dependency (uhlc brings its own rand and
//! logging); this clock also has nothing to configure.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const COUNTER_BITS: u32 = 16;

#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: Mutex<u64>,
}

impl Clock {
    /// A new time, later than every time this clock gave or took.
    pub(crate) fn now(&self) -> u64 {
        self.now_at(wall())
    }

    /// Takes a time seen in a peer's message, so later reads order after it.
    pub(crate) fn witness(&self, seen: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = (*last).max(seen);
    }

    fn now_at(&self, wall: u64) -> u64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = (wall << COUNTER_BITS).max(*last + 1);
        *last
    }
}

fn wall() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The wall-clock part of a clock time, in milliseconds since the epoch.
#[cfg(test)]
fn millis(time: u64) -> u64 {
    time >> COUNTER_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards_and_orders_after_what_it_saw() {
        let clock = Clock::default();
        let a = clock.now_at(1_000);
        let b = clock.now_at(1_000);
        let c = clock.now_at(900);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(millis(a), 1_000);
        // A peer whose clock runs an hour ahead.
        let ahead = 3_600_000 << COUNTER_BITS;
        clock.witness(ahead);
        let d = clock.now_at(1_001);
        assert!(d > ahead);
        clock.witness(5);
        assert!(clock.now_at(1_002) > d, "an old stamp does not rewind it");
    }
}
