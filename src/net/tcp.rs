//! DNS over TCP (RFC 7766): length-prefixed messages, several per
//! connection, answered in order. Connections are capped in number; when
//! the cap is reached the connection that has waited longest for its next
//! query is closed to make room (RFC 7766 section 6.2.3), and a client that
//! sends too slowly is closed, so idle or slow clients cannot lock others
//! out. What a connection queues is bounded too: a client that does not
//! read its answers is read no further, and closed when they stay unread
//! past the idle limit. Runs on its own small runtime (one thread, or
//! `server.tcp_threads`), apart from the control plane.
//!
//! A takeover drains it ([`TcpServer::drain`]): accepting stops (the
//! listeners now belong to the new process, which accepts what is queued),
//! each connection answers every query it has read and closes once no new
//! one arrives within [`DRAIN_IDLE`], and whatever is still open when the
//! grace period ends is closed.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::client_ip;
use super::slots::{self, IdleList};
use crate::dataplane::{MAX_MESSAGE, Stats, Thread, Transport, Worker, unix_seconds};
use crate::snapshot::Table;

/// Limits for TCP clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    /// How long a connection may wait for its next query.
    pub idle: Duration,
    /// How long one query may take to arrive once it has started.
    pub read: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            idle: Duration::from_secs(10),
            read: Duration::from_secs(5),
        }
    }
}

/// Binds a listener (std, so the caller can bind before any runtime exists).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// How long a connection of a draining server waits for its next query
/// before it closes: long enough for a client in mid-pipeline to send
/// its next query, short enough to end well within the grace period.
pub(crate) const DRAIN_IDLE: Duration = Duration::from_millis(500);

/// Whether the server is draining; `Some(grace)` once it is.
type Draining = watch::Receiver<Option<Duration>>;

/// Resolves once `draining` says the server drains (never if the sender
/// is gone without draining).
async fn drain_started(draining: &mut Draining) {
    if draining.wait_for(Option::is_some).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Accepts connections on `listener` until the server drains, then waits
/// until every connection it accepted has closed.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    table: Table,
    stats: Arc<Stats>,
    limits: Limits,
    mut draining: Draining,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve TCP");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let idle = Arc::new(IdleList::default());
    let burst = Arc::new(Burst::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = drain_started(&mut draining) => break,
        };
        let (stream, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Full: the longest-idle connection makes room; if every one is
        // busy, this one is refused (RFC 7766 6.2.2).
        let Some(permit) = slots::admit(&slots, &idle).await else {
            continue;
        };
        let (table, stats, idle, burst) =
            (table.clone(), stats.clone(), idle.clone(), burst.clone());
        let draining = draining.clone();
        let open = burst.opened();
        tokio::spawn(async move {
            let rng = SmallRng::seed_from_u64(rand::random());
            let worker = Worker::new(Thread::Tcp, stats, rng);
            if let Err(e) = connection(stream, peer, table, worker, limits, &idle, draining).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
            drop(permit);
            drop(open);
        });
    }
    // Draining: the listener closes here (its queue stays with the process
    // that took it over); every slot back means every connection is done.
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    table: Table,
    mut worker: Worker,
    limits: Limits,
    idle: &IdleList,
    mut draining: Draining,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    // A connection costs no buffer until its client sends something: an
    // idle flood holds little memory, and leaves little behind.
    {
        let waiting = idle.enter();
        tokio::select! {
            ready = tokio::time::timeout(limits.idle, stream.readable()) => match ready {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(()),
            },
            () = waiting.evicted.notified() => return Ok(()),
        }
    }
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(READ_BUFFER, read);
    // Grows to the largest query this client has sent (most are under
    // 512 bytes), instead of holding 64 KiB for every connection.
    let mut query = Vec::new();
    // Framed answers not yet handed to the socket: they leave together
    // when the client's pipeline is drained, or as soon as they reach
    // MAX_PENDING, so the queue never holds more than that and one answer.
    let mut pending = Vec::new();
    let client = client_ip(peer);
    let too_slow =
        |what: &'static str| move |_| std::io::Error::new(std::io::ErrorKind::TimedOut, what);
    loop {
        if read.buffer().is_empty() {
            // About to wait for the client: send what pipelined queries
            // produced first, in as few segments as possible.
            send(&mut write, &mut pending, limits).await?;
            let waiting = idle.enter();
            tokio::select! {
                got = tokio::time::timeout(limits.idle, read.fill_buf()) => match got {
                    Ok(Ok([])) | Err(_) => return Ok(()),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                },
                () = waiting.evicted.notified() => return Ok(()),
                // Draining: every query read is answered (and flushed
                // above); close once the client has nothing more to send.
                () = async {
                    drain_started(&mut draining).await;
                    tokio::time::sleep(DRAIN_IDLE).await;
                } => return Ok(()),
            }
        }
        let mut len = [0u8; 2];
        tokio::time::timeout(limits.read, read.read_exact(&mut len))
            .await
            .map_err(too_slow("query arrived too slowly"))??;
        let len = usize::from(u16::from_be_bytes(len));
        if query.len() < len {
            query.resize(len, 0);
        }
        let packet = &mut query[..len];
        tokio::time::timeout(limits.read, read.read_exact(packet))
            .await
            .map_err(too_slow("query arrived too slowly"))??;
        // Each query is a batch of one: the clock is read once per query.
        let now = unix_seconds();
        // The answer is copied out before anything awaits: another
        // connection on this thread writes the same scratch buffer.
        let answered = SCRATCH.with_borrow_mut(|response| {
            if !worker.answer(&table.load(), now, packet, client, Transport::Tcp, response) {
                return false;
            }
            pending.extend_from_slice(&(response.len() as u16).to_be_bytes());
            pending.extend_from_slice(response);
            true
        });
        if !answered {
            return Ok(());
        }
        // A client that does not read its answers is read no further: the
        // queue goes to the socket (whose own buffer takes what it can)
        // before another query is read.
        if pending.len() >= MAX_PENDING {
            send(&mut write, &mut pending, limits).await?;
        }
    }
}

/// Hands the queued answers to the socket, closing the connection (an
/// error) when the client leaves them unread past its idle limit; then
/// gives back what a burst made the queue grow to.
async fn send(
    write: &mut OwnedWriteHalf,
    pending: &mut Vec<u8>,
    limits: Limits,
) -> std::io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(limits.idle, write.write_all(pending))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client leaves its answers unread",
            )
        })??;
    pending.clear();
    pending.shrink_to(KEPT_PENDING);
    Ok(())
}

/// Unsent answers one connection may queue: past this the server reads
/// none of its queries until the socket has taken them.
pub(crate) const MAX_PENDING: usize = 16 * 1024;
/// What an idle connection keeps of its queue between bursts.
const KEPT_PENDING: usize = 4 * 1024;
/// The read buffer of a connection: several pipelined queries.
const READ_BUFFER: usize = 4 * 1024;

thread_local! {
    /// The answer being written, one per TCP thread: answers are written
    /// here (never allocating, as on UDP) and copied to their
    /// connection's queue, so a connection does not hold 64 KiB of its
    /// own.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(MAX_MESSAGE));
}

/// The TCP thread, to be drained at a takeover.
pub(crate) struct TcpServer {
    thread: std::thread::JoinHandle<bool>,
    drain: watch::Sender<Option<Duration>>,
}

impl TcpServer {
    /// Stops accepting, lets connections finish for at most `grace`, and
    /// returns once the thread is gone (every connection closed); whether
    /// every connection had finished by itself within the grace period.
    pub(crate) fn drain(self, grace: Duration) -> bool {
        let _ = self.drain.send(Some(grace));
        matches!(self.thread.join(), Ok(true))
    }
}

/// Open connections, and the most open since freed memory was last given
/// back: when a burst of connections (an idle flood, say) has mostly
/// closed, the memory its connections used is returned to the system, as
/// `free` alone would leave much of it resident (allocations that outlive
/// the burst pin the heap).
#[derive(Default)]
pub(crate) struct Burst {
    open: AtomicUsize,
    peak: AtomicUsize,
}

/// One open connection of a [`Burst`]; closes it when dropped.
pub(crate) struct Open(Arc<Burst>);

impl Burst {
    /// Connections fewer than this are not a burst worth a trim.
    const LARGE: usize = 64;

    pub(crate) fn opened(self: &Arc<Self>) -> Open {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(open, Ordering::Relaxed);
        Open(self.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let burst = &self.0;
        let open = burst.open.fetch_sub(1, Ordering::Relaxed) - 1;
        let peak = burst.peak.load(Ordering::Relaxed);
        // Down to an eighth of a large peak: the burst is over. Once per
        // burst (the peak restarts from here), so it costs nothing per
        // connection.
        if peak >= Burst::LARGE
            && open <= peak / 8
            && burst
                .peak
                .compare_exchange(peak, open, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            keiko_udp::release_free_memory();
        }
    }
}

/// Serves `listeners` on a thread of their own with its own runtime, so
/// the control plane's work never delays TCP clients. With `threads` above
/// 1 (`server.tcp_threads`) that runtime has as many worker threads, which
/// share the connections; with 1 it runs on the one thread.
pub(crate) fn spawn(
    listeners: Vec<std::net::TcpListener>,
    table: Table,
    stats: Arc<Stats>,
    threads: usize,
) -> std::io::Result<TcpServer> {
    let runtime = if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .thread_name("dns-tcp")
            .build()?
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("dns-tcp")
            .build()?
    };
    let (drain, draining) = watch::channel(None);
    let thread = std::thread::Builder::new()
        .name("dns-tcp".into())
        .spawn(move || {
            let mut grace = draining.clone();
            runtime.block_on(async move {
                let tasks: Vec<_> = listeners
                    .into_iter()
                    .map(|l| {
                        let served = serve(
                            l,
                            table.clone(),
                            stats.clone(),
                            Limits::default(),
                            draining.clone(),
                        );
                        tokio::spawn(served)
                    })
                    .collect();
                let all_done = async {
                    for t in tasks {
                        let _ = t.await;
                    }
                };
                tokio::pin!(all_done);
                // Serving: the tasks end only when draining. Draining:
                // they get the grace period, then the runtime is dropped
                // with whatever connections are left.
                tokio::select! {
                    () = &mut all_done => return true,
                    () = drain_started(&mut grace) => {}
                }
                let limit = grace.borrow().unwrap_or_default();
                tokio::time::timeout(limit, all_done).await.is_ok()
            })
        })?;
    Ok(TcpServer { thread, drain })
}
