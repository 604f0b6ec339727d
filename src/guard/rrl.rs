//! Response rate limiting, as BIND and Knot do it: identical responses to
//! one client network are limited to `responses_per_second`, the excess is
//! dropped, and every `slip`-th drop is sent truncated (TC=1) so a real
//! resolver behind a spoofed-looking flood can still get through over TCP.
//!
//! State is a fixed table of atomic buckets shared by all workers: no
//! allocation and no lock per query; two keys landing in one bucket simply
//! take it over from each other, which only ever errs towards answering.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use rustc_hash::FxHasher;

use crate::config::RateLimit;

const BUCKETS: usize = 1 << 16;

struct Bucket {
    key: AtomicU64,
    /// High 32 bits: the second of the last update; low 32: credit (i32).
    state: AtomicU64,
}

pub struct RateLimiter {
    rate: i32,
    /// Credit never falls below this: a client that stops sending is
    /// answered again after at most `window`.
    floor: i32,
    slip: u32,
    v4_prefix: u8,
    v6_prefix: u8,
    exempt: Vec<IpNet>,
    buckets: Box<[Bucket]>,
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    Drop,
    /// Send it truncated, with TC set and no records.
    Slip,
}

impl RateLimiter {
    pub fn new(config: &RateLimit) -> RateLimiter {
        let rate = i32::try_from(config.responses_per_second).unwrap_or(i32::MAX);
        let window = i32::try_from(config.window.as_secs()).unwrap_or(3600);
        RateLimiter {
            rate,
            floor: rate.saturating_mul(window).saturating_neg(),
            slip: config.slip,
            v4_prefix: config.ipv4_prefix_length,
            v6_prefix: config.ipv6_prefix_length,
            exempt: config.exempt.clone(),
            buckets: (0..BUCKETS)
                .map(|_| Bucket {
                    key: AtomicU64::new(0),
                    state: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    pub fn exempt(&self, client: IpAddr) -> bool {
        self.exempt.iter().any(|n| n.contains(&client))
    }

    /// Accounts one response of `kind` (a hash of what makes responses
    /// identical) to `client` at second `now`. `drops` is the caller's
    /// running count of drops, for slipping.
    pub fn decide(&self, client: IpAddr, kind: u64, now: u32, drops: &mut u32) -> Decision {
        if self.allow(self.key(client, kind), now) {
            return Decision::Send;
        }
        *drops = drops.wrapping_add(1);
        if self.slip > 0 && drops.is_multiple_of(self.slip) {
            Decision::Slip
        } else {
            Decision::Drop
        }
    }

    fn key(&self, client: IpAddr, kind: u64) -> u64 {
        let mut h = FxHasher::default();
        match client {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.v4_prefix))
                    .unwrap_or(0);
                (4u8, u32::from(v4) & mask).hash(&mut h);
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.v6_prefix))
                    .unwrap_or(0);
                (6u8, u128::from(v6) & mask).hash(&mut h);
            }
        }
        kind.hash(&mut h);
        h.finish() | 1
    }

    fn allow(&self, key: u64, now: u32) -> bool {
        let bucket = &self.buckets[(key as usize) & (BUCKETS - 1)];
        if bucket.key.load(Ordering::Relaxed) != key {
            bucket.key.store(key, Ordering::Relaxed);
            bucket
                .state
                .store(pack(now, self.rate - 1), Ordering::Relaxed);
            return true;
        }
        let mut old = bucket.state.load(Ordering::Relaxed);
        loop {
            let (second, credit) = unpack(old);
            let elapsed = i64::from(now.saturating_sub(second));
            let refilled =
                (i64::from(credit) + elapsed * i64::from(self.rate)).min(i64::from(self.rate));
            let credit = (refilled - 1).max(i64::from(self.floor)) as i32;
            match bucket.state.compare_exchange_weak(
                old,
                pack(now, credit),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return credit >= 0,
                Err(current) => old = current,
            }
        }
    }
}

fn pack(second: u32, credit: i32) -> u64 {
    (u64::from(second) << 32) | u64::from(credit as u32)
}

fn unpack(v: u64) -> (u32, i32) {
    ((v >> 32) as u32, v as u32 as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(rps: u32, slip: u32) -> RateLimiter {
        RateLimiter::new(&RateLimit {
            responses_per_second: rps,
            window: Duration::from_secs(5),
            slip,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
        })
    }

    fn count(l: &RateLimiter, client: &str, kind: u64, now: u32, n: usize) -> [usize; 3] {
        let mut drops = 0;
        let mut seen = [0; 3];
        for _ in 0..n {
            seen[l.decide(client.parse().unwrap(), kind, now, &mut drops) as usize] += 1;
        }
        seen
    }

    #[test]
    fn identical_responses_beyond_the_rate_are_dropped_and_slipped() {
        let l = limiter(10, 2);
        let [send, drop, slip] = count(&l, "198.51.100.7", 42, 1000, 30);
        assert_eq!(send, 10);
        assert_eq!((drop, slip), (10, 10), "every 2nd drop slips");
    }

    #[test]
    fn clients_in_one_prefix_share_a_limit_and_other_prefixes_do_not() {
        let l = limiter(5, 0);
        assert_eq!(count(&l, "198.51.100.7", 1, 1000, 5)[0], 5);
        assert_eq!(count(&l, "198.51.100.99", 1, 1000, 5)[0], 0, "same /24");
        assert_eq!(count(&l, "198.51.101.7", 1, 1000, 5)[0], 5, "other /24");
        assert_eq!(
            count(&l, "198.51.100.7", 2, 1000, 5)[0],
            5,
            "other response"
        );
    }

    #[test]
    fn credit_comes_back_with_time_up_to_one_second_worth() {
        let l = limiter(5, 0);
        count(&l, "2001:db8::1", 1, 1000, 5);
        assert_eq!(count(&l, "2001:db8::2", 1, 1000, 1)[0], 0, "same /56");
        assert_eq!(count(&l, "2001:db8::1", 1, 1001, 10)[0], 4);
        assert_eq!(
            count(&l, "2001:db8::1", 1, 1100, 10)[0],
            5,
            "capped at the rate"
        );
    }

    #[test]
    fn a_flood_stays_limited_for_at_most_the_window() {
        let l = limiter(2, 0);
        count(&l, "203.0.113.1", 9, 1000, 1000);
        assert_eq!(
            count(&l, "203.0.113.1", 9, 1003, 1)[0],
            0,
            "still paying off the flood"
        );
        assert_eq!(
            count(&l, "203.0.113.1", 9, 1006, 1)[0],
            1,
            "answered after the window"
        );
    }

    #[test]
    fn exempt_networks_are_recognised() {
        let l = limiter(1, 0);
        assert!(l.exempt("127.0.0.9".parse().unwrap()));
        assert!(!l.exempt("198.51.100.1".parse().unwrap()));
    }
}
