//! UDP: for every listen address, one SO_REUSEPORT socket per worker, each
//! served by its own thread in a batched receive/answer/send loop. The
//! kernel spreads clients over the sockets, so workers share nothing but
//! the snapshot they load.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::mmsg::Batch;
use super::{Shutdown, Table, client_ip};
use crate::dataplane::{Stats, Transport, Worker};

/// How often an idle worker looks at the shutdown flag.
const POLL: Duration = Duration::from_millis(200);

/// Binds `workers` reuseport sockets on `addr` (all bound before any thread
/// starts, so a bind error leaves nothing running).
pub fn bind(addr: SocketAddr, workers: usize) -> io::Result<Vec<Socket>> {
    (0..workers.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.set_reuse_port(true)?;
            if let Err(e) = super::sockopt::omit_path_mtu_discovery(&socket, addr.is_ipv6()) {
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

/// Starts one thread per socket; worker `i` of each address writes row `i`
/// of `stats`.
pub fn spawn(
    sockets: Vec<Socket>,
    table: Table,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) -> io::Result<Vec<JoinHandle<()>>> {
    let per_address = stats.workers().saturating_sub(1).max(1);
    sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let worker = Worker::new(i % per_address, stats.clone());
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
                tracing::warn!(error = %e, "UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // One snapshot per batch: a swap takes effect at the next batch.
        let snap = table.load();
        // A bug that panics on some packet must cost that batch, not the
        // worker: without this the thread would be gone for good.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch.process(n, |packet, peer, out| {
                worker.answer(snap, packet, client_ip(peer), Transport::Udp, out)
            })
        }));
        match answered {
            Ok(()) => batch.flush(&socket),
            Err(_) => tracing::error!(
                "a UDP batch panicked and was dropped; this is a bug, please report it"
            ),
        }
    }
}
