//! Query counters kept per data-plane thread, so cores never write the
//! same cache line; the metrics exporter sums the rows when it is scraped.
//! Which thread writes which row is decided here, by [`Stats::row_index`],
//! and nowhere else.

use std::sync::atomic::{AtomicU64, Ordering};

/// Response codes counted by name (RFC 6895); BADVERS is an extended code
/// carried in the OPT record. (BADCOOKIE is never sent: no policy requires
/// a server cookie.)
pub const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "NOTAUTH", "BADVERS",
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
}

impl Rcode {
    /// The 12-bit wire value.
    pub fn wire(self) -> u16 {
        match self {
            Rcode::NotAuth => 9,
            Rcode::BadVers => 16,
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
    /// Steered answers while every candidate was down, by `on_all_down`:
    /// nodata, servfail.
    pub all_down: [AtomicU64; 2],
    /// Packets not answered: unparseable, or responses sent to us.
    pub dropped: AtomicU64,
    pub truncated: AtomicU64,
    /// Dropped by response rate limiting.
    pub rate_limited: AtomicU64,
    /// Sent truncated by response rate limiting.
    pub slipped: AtomicU64,
    /// Responses answered (and counted in `responses`) that the kernel
    /// then refused to send.
    pub send_errors: AtomicU64,
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
    /// An all-down answer: 0 nodata, 1 servfail.
    pub fn all_down(&self, which: usize) {
        if let Some(c) = self.all_down.get(which) {
            bump(c);
        }
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
    pub fn send_errors(&self, n: usize) {
        self.send_errors.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A data-plane thread, as far as its counters are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thread {
    /// The `i`-th UDP worker of a listen address; worker `i` of every
    /// address shares a row, since they run on the same core budget.
    UdpWorker(usize),
    /// Every TCP connection (they share one runtime thread).
    Tcp,
}

/// Every data-plane thread's counters: one row per UDP worker, then one
/// for TCP.
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
    /// nodata, servfail.
    pub all_down: [u64; 2],
    pub dropped: u64,
    pub truncated: u64,
    pub rate_limited: u64,
    pub slipped: u64,
    pub send_errors: u64,
}

impl Stats {
    /// Rows for `udp_workers` UDP workers per listen address and for TCP.
    pub fn new(udp_workers: usize) -> Stats {
        Stats {
            rows: (0..udp_workers.max(1) + 1)
                .map(|_| WorkerStats::default())
                .collect(),
        }
    }

    /// The row `thread` writes, here and in every per-row table built with
    /// [`Stats::rows`] rows (the answer counters).
    pub fn row_index(&self, thread: Thread) -> usize {
        let udp_workers = self.rows.len() - 1;
        match thread {
            Thread::UdpWorker(i) => i % udp_workers,
            Thread::Tcp => udp_workers,
        }
    }

    pub fn row(&self, index: usize) -> &WorkerStats {
        &self.rows[index % self.rows.len()]
    }

    /// How many rows there are.
    pub fn rows(&self) -> usize {
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
            for (sum, c) in t.all_down.iter_mut().zip(&row.all_down) {
                *sum += get(c);
            }
            t.dropped += get(&row.dropped);
            t.truncated += get(&row.truncated);
            t.rate_limited += get(&row.rate_limited);
            t.slipped += get(&row.slipped);
            t.send_errors += get(&row.send_errors);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_udp_worker_and_tcp_get_rows_of_their_own() {
        let stats = Stats::new(3);
        assert_eq!(stats.rows(), 4);
        let rows: Vec<usize> = (0..3)
            .map(|i| stats.row_index(Thread::UdpWorker(i)))
            .chain([stats.row_index(Thread::Tcp)])
            .collect();
        assert_eq!(rows, [0, 1, 2, 3]);
        assert_eq!(
            stats.row_index(Thread::UdpWorker(4)),
            1,
            "worker 4 is the second worker of the second address"
        );
    }
}
