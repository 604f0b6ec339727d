//! The admin API's connections, served with hyper and guarded as DNS over
//! TCP is (docs/reference.md §4, Limits): a request head must arrive within
//! a deadline (which also closes connections idle between requests), a
//! body too, a response that the client stops reading is abandoned, heads
//! are bounded in size (bodies are bounded by the router), and connections
//! are capped, the one that has waited longest for its next request being
//! closed to make room. So slow, idle or non-reading clients cannot hold
//! the API away from an operator.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::net::slots::{self, IdleList};
use crate::net::tcp::Burst;

/// What one client may take of the admin API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a request head may take to arrive, counted from when the
    /// connection starts waiting for it: a connection idle between
    /// requests is closed after this long too.
    pub head: Duration,
    /// How long a request body may take to arrive once its head has.
    pub body: Duration,
    /// How long a response may wait for the client to read any of it.
    pub write: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 128,
            head: Duration::from_secs(5),
            body: Duration::from_secs(5),
            write: Duration::from_secs(10),
        }
    }
}

/// The largest request head: hyper's read buffer, which a head must fit
/// (431 past it). Bodies stream through it and are bounded by the router.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Header fields in one request.
const MAX_HEADERS: usize = 64;
/// How long to wait after `accept` fails (out of file descriptors, say),
/// so the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// Serves `router` on `listener` until the task is dropped, which also
/// closes every connection.
pub(crate) async fn serve(listener: TcpListener, router: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let idle = Arc::new(IdleList::default());
    let burst = Arc::new(Burst::default());
    // Owning the connection tasks here means dropping `serve` ends them.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            // Reap finished connections so the set holds live ones only.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "admin API: accept failed");
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        // Full: the connection that has waited longest for a request makes
        // room; if every one is busy, this one is refused.
        let Some(permit) = slots::admit(&slots, &idle).await else {
            tracing::debug!(%peer, "admin API: every connection busy; refused");
            continue;
        };
        let (router, idle) = (router.clone(), idle.clone());
        let open = burst.opened();
        connections.spawn(async move {
            // Dropped in this order: the slot, then the count, whose last
            // drop of a burst gives its memory back.
            let _open = open;
            let _permit = permit;
            if let Err(e) = connection(stream, router, limits, idle).await {
                // Timeouts end connections this way: not worth more.
                tracing::debug!(%peer, error = %e, "admin API: connection ended");
            }
        });
    }
}

async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    idle: Arc<IdleList>,
) -> Result<(), hyper::Error> {
    // Answers are small and whole: send them without waiting for more.
    let _ = stream.set_nodelay(true);
    let place = Arc::new(Place::new(idle));
    // No buffers until the client sends something, so an idle flood costs
    // little memory and leaves little behind; the head deadline runs from
    // the connection's start all the same.
    let started = Instant::now();
    tokio::select! {
        ready = tokio::time::timeout(limits.head, stream.readable()) => match ready {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        },
        () = place.evicted.notified() => return Ok(()),
    }
    let first_head = limits.head.saturating_sub(started.elapsed());
    let router = TowerToHyperService::new(router);
    let service = {
        let place = place.clone();
        service_fn(move |request: hyper::Request<Incoming>| {
            // A head has arrived: this connection is busy until its
            // response is ready, and cannot be evicted meanwhile.
            place.busy();
            let body = limits.body;
            let response = router.call(request.map(|b| Deadline::new(b, body)));
            let place = place.clone();
            async move {
                let response = response.await;
                place.idle();
                response
            }
        })
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(first_head.max(Duration::from_millis(1)))
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(Stalled::new(stream, limits.write)), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => result,
        () = place.evicted.notified() => {
            // Closes at once when waiting for a request; a request that
            // has just begun is answered first.
            served.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.write, served).await {
                Ok(result) => result,
                Err(_elapsed) => Ok(()),
            }
        }
    }
}

/// One connection's place in the idle set: in it from the start and
/// whenever a response is ready, out of it while a request is handled and
/// once the connection is gone.
struct Place {
    set: Arc<IdleList>,
    evicted: Arc<Notify>,
    ticket: Mutex<Option<u64>>,
}

impl Place {
    fn new(set: Arc<IdleList>) -> Place {
        let place = Place {
            set,
            evicted: Arc::new(Notify::new()),
            ticket: Mutex::new(None),
        };
        place.idle();
        place
    }

    fn ticket(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.ticket.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the set as its newest member.
    fn idle(&self) {
        let mut ticket = self.ticket();
        if ticket.is_none() {
            *ticket = Some(self.set.join(&self.evicted));
        }
    }

    fn busy(&self) {
        if let Some(number) = self.ticket().take() {
            self.set.leave(number);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.busy();
    }
}

/// A request body that fails once its deadline has passed, so a client
/// that sends its body slowly holds its connection for a bounded time.
struct Deadline<B> {
    body: B,
    deadline: Instant,
    /// Set on the first wait, so bodies read at once need no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    fn new(body: B, within: Duration) -> Deadline<B> {
        Deadline {
            body,
            deadline: Instant::now() + within,
            sleep: None,
        }
    }
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = self.deadline;
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err("request body too slow".into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A stream whose writes fail once they have made no progress for
/// `limit`: a client that stops reading its response is closed.
struct Stalled<T> {
    inner: T,
    limit: Duration,
    /// Armed when a write first has to wait; disarmed by progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> Stalled<T> {
    fn new(inner: T, limit: Duration) -> Stalled<T> {
        Stalled {
            inner,
            limit,
            stalled: None,
        }
    }

    /// What a write that made progress (or failed) returns.
    fn moved<R>(&mut self, result: io::Result<R>) -> Poll<io::Result<R>> {
        self.stalled = None;
        Poll::Ready(result)
    }

    /// What a write that has to wait returns: pending, until the limit.
    fn waiting<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading its response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Stalled<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stalled<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => self.moved(result),
            Poll::Pending => self.waiting(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => self.moved(result),
            Poll::Pending => self.waiting(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => self.moved(result),
            Poll::Pending => self.waiting(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[tokio::test]
    async fn the_longest_waiting_connection_is_evicted_and_busy_ones_never() {
        let set = Arc::new(IdleList::default());
        let (first, second) = (Place::new(set.clone()), Place::new(set.clone()));
        first.busy();
        assert!(set.evict_oldest(), "the second waits");
        tokio::time::timeout(Duration::from_millis(100), second.evicted.notified())
            .await
            .expect("the waiting one is told to close");
        assert!(!set.evict_oldest(), "the busy one is never evicted");
        // Idle again after its response: now it can be.
        first.idle();
        assert!(set.evict_oldest());
        drop((first, second));
        assert!(set.is_empty());
    }

    #[tokio::test]
    async fn a_rejoining_connection_goes_to_the_back() {
        let set = Arc::new(IdleList::default());
        let (a, b) = (Place::new(set.clone()), Place::new(set.clone()));
        a.busy();
        a.idle();
        assert!(set.evict_oldest());
        tokio::time::timeout(Duration::from_millis(100), b.evicted.notified())
            .await
            .expect("b has waited longer than a, which was just served");
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_fails_at_its_deadline() {
        struct Never;
        impl Body for Never {
            type Data = Bytes;
            type Error = Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
                Poll::Pending
            }
        }
        let mut body = Deadline::new(Never, Duration::from_millis(50));
        let started = Instant::now();
        let frame = tokio::time::timeout(
            Duration::from_secs(5),
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
        )
        .await
        .expect("the deadline ends the wait");
        assert!(matches!(frame, Some(Err(_))), "fails, not ends");
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
