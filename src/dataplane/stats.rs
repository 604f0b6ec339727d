//! Query counters kept per worker, so cores never write the same cache line;
//! the metrics exporter sums the rows when it is scraped.

use std::sync::atomic::{AtomicU64, Ordering};

/// Response codes counted by name (RFC 6895); BADVERS and BADCOOKIE are
/// extended codes carried in the OPT record.
pub const RCODES: [&str; 9] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "NOTAUTH",
    "BADVERS",
    "BADCOOKIE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
    NotAuth = 6,
    BadVers = 7,
    BadCookie = 8,
}

impl Rcode {
    /// The 12-bit wire value.
    pub fn wire(self) -> u16 {
        match self {
            Rcode::NotAuth => 9,
            Rcode::BadVers => 16,
            Rcode::BadCookie => 23,
            other => other as u16,
        }
    }

    pub fn from_wire(v: u8) -> Rcode {
        match v {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            9 => Rcode::NotAuth,
            _ => Rcode::ServFail,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// One worker's counters, padded to keep neighbours off its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerStats {
    pub queries: [AtomicU64; 2],
    pub responses: [AtomicU64; RCODES.len()],
    pub fail_open: AtomicU64,
    /// Packets not answered: unparseable, or responses sent to us.
    pub dropped: AtomicU64,
    pub truncated: AtomicU64,
    /// Dropped by response rate limiting.
    pub rate_limited: AtomicU64,
    /// Sent truncated by response rate limiting.
    pub slipped: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl WorkerStats {
    pub fn query(&self, t: Transport) {
        bump(&self.queries[t as usize]);
    }
    pub fn response(&self, r: Rcode) {
        bump(&self.responses[r as usize]);
    }
    pub fn fail_open(&self) {
        bump(&self.fail_open);
    }
    pub fn dropped(&self) {
        bump(&self.dropped);
    }
    pub fn truncated(&self) {
        bump(&self.truncated);
    }
    pub fn rate_limited(&self) {
        bump(&self.rate_limited);
    }
    pub fn slipped(&self) {
        bump(&self.slipped);
    }
}

/// Every worker's counters; one row per worker.
#[derive(Debug)]
pub struct Stats {
    rows: Box<[WorkerStats]>,
}

/// Summed view of all rows.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub udp: u64,
    pub tcp: u64,
    pub responses: [u64; RCODES.len()],
    pub fail_open: u64,
    pub dropped: u64,
    pub truncated: u64,
    pub rate_limited: u64,
    pub slipped: u64,
}

impl Stats {
    pub fn new(workers: usize) -> Stats {
        Stats {
            rows: (0..workers.max(1))
                .map(|_| WorkerStats::default())
                .collect(),
        }
    }

    pub fn row(&self, worker: usize) -> &WorkerStats {
        &self.rows[worker % self.rows.len()]
    }

    pub fn workers(&self) -> usize {
        self.rows.len()
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for row in self.rows.iter() {
            t.udp += get(&row.queries[0]);
            t.tcp += get(&row.queries[1]);
            for (sum, c) in t.responses.iter_mut().zip(&row.responses) {
                *sum += get(c);
            }
            t.fail_open += get(&row.fail_open);
            t.dropped += get(&row.dropped);
            t.truncated += get(&row.truncated);
            t.rate_limited += get(&row.rate_limited);
            t.slipped += get(&row.slipped);
        }
        t
    }
}
