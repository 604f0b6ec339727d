//! UDP: for every listen address, one SO_REUSEPORT socket per worker, each
//! served by its own thread in a batched receive/answer/send loop. The
//! kernel spreads clients over the sockets, so workers share nothing but
//! the snapshot they load.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keiko_udp::Batch;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use socket2::{Domain, Protocol, Socket, Type};

use super::client_ip;
use crate::dataplane::{Shutdown, Stats, Thread, Transport, Worker, unix_seconds};
use crate::snapshot::Table;

/// How often an idle worker looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(200);

/// Binds `workers` reuseport sockets on `addr` (all bound before any thread
/// starts, so a bind error leaves nothing running).
pub(crate) fn bind(addr: SocketAddr, workers: usize) -> io::Result<Vec<Socket>> {
    (0..workers.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.set_reuse_port(true)?;
            if let Err(e) = keiko_udp::omit_path_mtu_discovery(&socket, addr.is_ipv6()) {
                tracing::warn!(%addr, error = %e, "cannot turn off path MTU discovery");
            }
            socket.set_recv_buffer_size(4 << 20).ok();
            socket.set_send_buffer_size(4 << 20).ok();
            socket.set_read_timeout(Some(POLL))?;
            socket.bind(&addr.into())?;
            Ok(socket)
        })
        .collect()
}

/// Starts one thread per socket; the `i`-th socket is [`Thread::UdpWorker`]
/// `i` (sockets come address by address, as [`bind`] made them).
pub(crate) fn spawn(
    sockets: Vec<Socket>,
    table: Table,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) -> io::Result<Vec<JoinHandle<()>>> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let rng = SmallRng::seed_from_u64(rand::random());
            let worker = Worker::new(Thread::UdpWorker(i), stats.clone(), rng);
            let batch = Batch::new()?;
            let (table, shutdown) = (table.clone(), shutdown.clone());
            std::thread::Builder::new()
                .name(format!("dns-udp-{i}"))
                .spawn(move || serve(socket, batch, worker, table, shutdown))
        })
        .collect()
}

fn serve(socket: Socket, mut batch: Batch, mut worker: Worker, table: Table, shutdown: Shutdown) {
    // Loads the current snapshot with one atomic read when it has not changed.
    let mut table = arc_swap::Cache::new(table);
    let mut receive_errors = LogLimit::default();
    while !shutdown.load(Ordering::Relaxed) {
        let n = match batch.receive(&socket) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                if let Some(suppressed) = receive_errors.admit(Instant::now()) {
                    tracing::warn!(error = %e, suppressed, "UDP receive failed");
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // One snapshot and one clock reading per batch: a swap takes effect
        // at the next batch.
        let snap = table.load();
        let now = unix_seconds();
        // A bug that panics on some packet must cost that batch, not the
        // worker: without this the thread would be gone for good.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch.process(n, |packet, peer, out| {
                worker.answer(snap, now, packet, client_ip(peer), Transport::Udp, out)
            })
        }));
        match answered {
            Ok(()) => {
                let failed = batch.flush(&socket);
                if failed > 0 {
                    worker.row().send_errors(failed);
                }
            }
            Err(_) => tracing::error!(
                "a UDP batch panicked and was dropped; this is a bug, please report it"
            ),
        }
    }
}

/// At most one log line per [`LogLimit::EVERY`] for a recurring error, so
/// a socket failing on every call cannot flood the log; the line that is
/// written says how many were left out since the last one.
#[derive(Debug, Default)]
struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    const EVERY: Duration = Duration::from_secs(1);

    /// Whether to log an error seen at `now`; if so, how many were
    /// suppressed before it.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Self::EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_logged_at_most_once_a_second_with_the_count_left_out() {
        let mut limit = LogLimit::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(limit.admit(at(0)), Some(0), "the first is logged");
        for ms in [10, 20, 500, 999] {
            assert_eq!(limit.admit(at(ms)), None);
        }
        assert_eq!(limit.admit(at(1000)), Some(4));
        assert_eq!(limit.admit(at(1500)), None);
        assert_eq!(limit.admit(at(5000)), Some(1));
    }
}
