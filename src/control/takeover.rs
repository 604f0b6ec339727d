//! Takeover restarts: a new keiko-dns process takes the running one's
//! sockets, so a restart or a binary upgrade loses no query (docs/reference.md
//! §8).
//!
//! Every server listens on a control socket, `state_dir/control.sock` (a
//! Unix `SOCK_SEQPACKET` socket, mode 0600: only its user, or root, can
//! connect). One message a packet:
//!
//! - `status` → `{"pid": N}`: who serves this config (a second `serve` of
//!   it asks this and refuses to start);
//! - `takeover PID` → a manifest `{"pid": N, "sockets": [KIND, ...]}`, then
//!   the sockets themselves in that order, by `SCM_RIGHTS`, at most
//!   [`keiko_udp::MAX_FDS`] a message (each `fds`): every UDP socket of
//!   every DNS address (one per worker, all of a reuseport group), the TCP
//!   listeners, the admin and fleet listeners and the control socket
//!   itself. The new process starts answering on them and sends
//!   `ready GRACE_MS`; the old one replies `stopping` and stops: its UDP
//!   workers finish the batch in hand (datagrams it has not read stay in
//!   the shared socket for the new process), it accepts nothing more, gives
//!   TCP connections in progress up to the grace period, and exits 0.
//!
//! Because the control socket itself is handed over, its path never goes
//! away: the old process leaves the file alone, the new one keeps it and
//! removes it when it stops for good. A takeover that fails midway (the new
//! process dies before `ready`) leaves the old one serving as before.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::sync::Notify;

/// The control socket's file name in `state_dir`.
pub const SOCKET_FILE: &str = "control.sock";

/// How long either side waits for the other's next message.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the old process waits for the new one to say it answers.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest grace period a new process may ask the old one for.
const MAX_GRACE: Duration = Duration::from_secs(600);
/// The longest message either side sends (a manifest of a few hundred
/// sockets is a few kilobytes).
const MAX_MESSAGE: usize = 64 * 1024;

const STATUS: &str = "status";
const TAKEOVER: &str = "takeover";
const READY: &str = "ready";
const STOPPING: &str = "stopping";
const FDS: &str = "fds";

/// The control socket of the server whose state is in `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

/// What a passed socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A DNS UDP socket (one of a reuseport group).
    Udp,
    /// A DNS TCP listener.
    Tcp,
    Admin,
    Fleet,
    Control,
}

impl Kind {
    fn socket_type(self) -> Type {
        match self {
            Kind::Udp => Type::DGRAM,
            Kind::Tcp | Kind::Admin | Kind::Fleet => Type::STREAM,
            Kind::Control => Type::SEQPACKET,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    pid: u32,
    sockets: Vec<Kind>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Status {
    pid: u32,
}

/// Why a takeover could not get the running server's sockets.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error(
        "--takeover: no running keiko-dns to take over: nothing listens on {} \
         (use --takeover-or-start to start anyway)",
        .path.display()
    )]
    NotRunning { path: PathBuf },
    #[error("--takeover: cannot take over from the keiko-dns at {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("--takeover: the keiko-dns at {} did not hand over its sockets: {what}", .path.display())]
    Protocol { path: PathBuf, what: String },
}

fn connect(path: &Path) -> io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.set_write_timeout(Some(IO_TIMEOUT))?;
    socket.connect(&SockAddr::unix(path)?)?;
    Ok(socket)
}

/// Nothing listens there: no file, or a file left by a process that died.
fn nobody_listens(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

fn send(socket: &Socket, text: &str) -> io::Result<()> {
    keiko_udp::send_with_fds(socket, text.as_bytes(), &[])
}

/// One message; a closed peer is an error.
fn receive(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    match keiko_udp::recv_with_fds(socket, buf)? {
        (0, fds) if fds.is_empty() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the other process closed the control connection",
        )),
        got => Ok(got),
    }
}

/// Whether a server answers on the control socket at `path`.
#[derive(Debug)]
pub(crate) enum Probe {
    /// Nothing listens (no file, or a stale one).
    Absent,
    /// A live server, and its pid when it said.
    Live(Option<u32>),
    /// The socket exists but cannot be used (e.g. another user's).
    Unusable(io::Error),
}

/// Asks the control socket at `path` who serves there.
pub(crate) fn probe(path: &Path) -> Probe {
    let socket = match connect(path) {
        Ok(s) => s,
        Err(e) if nobody_listens(&e) => return Probe::Absent,
        Err(e) => return Probe::Unusable(e),
    };
    let mut buf = [0u8; 256];
    let pid = send(&socket, STATUS)
        .and_then(|()| receive(&socket, &mut buf))
        .ok()
        .and_then(|(n, _)| serde_json::from_slice::<Status>(&buf[..n]).ok())
        .map(|s| s.pid);
    Probe::Live(pid)
}

/// The running server's sockets, received; the new process takes what its
/// config names and then releases the old one with [`Handover::finish`].
pub(crate) struct Handover {
    conn: Socket,
    path: PathBuf,
    pub old_pid: u32,
    sockets: Vec<(Kind, Socket)>,
}

/// Asks the server listening at `path` for its sockets.
pub(crate) fn take_over(path: &Path) -> Result<Handover, TakeoverError> {
    let io_error = |source| TakeoverError::Io {
        path: path.to_owned(),
        source,
    };
    let protocol = |what: String| TakeoverError::Protocol {
        path: path.to_owned(),
        what,
    };
    let conn = connect(path).map_err(|e| {
        if nobody_listens(&e) {
            TakeoverError::NotRunning {
                path: path.to_owned(),
            }
        } else {
            io_error(e)
        }
    })?;
    send(&conn, &format!("{TAKEOVER} {}", std::process::id())).map_err(io_error)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, _) = receive(&conn, &mut buf).map_err(io_error)?;
    let manifest: Manifest = serde_json::from_slice(&buf[..n])
        .map_err(|e| protocol(format!("unreadable manifest ({e})")))?;
    let mut fds = Vec::with_capacity(manifest.sockets.len());
    while fds.len() < manifest.sockets.len() {
        let (n, got) = receive(&conn, &mut buf).map_err(io_error)?;
        if &buf[..n] != FDS.as_bytes() {
            return Err(protocol("an unexpected message among the sockets".into()));
        }
        fds.extend(got);
    }
    if fds.len() != manifest.sockets.len() {
        return Err(protocol(format!(
            "{} sockets announced, {} sent",
            manifest.sockets.len(),
            fds.len()
        )));
    }
    let mut sockets = Vec::with_capacity(fds.len());
    for (kind, fd) in manifest.sockets.into_iter().zip(fds) {
        let socket = Socket::from(fd);
        match socket.r#type() {
            Ok(t) if t == kind.socket_type() => sockets.push((kind, socket)),
            _ => return Err(protocol(format!("a {kind:?} socket of the wrong type"))),
        }
    }
    Ok(Handover {
        conn,
        path: path.to_owned(),
        old_pid: manifest.pid,
        sockets,
    })
}

fn bound_to(socket: &Socket, addr: SocketAddr) -> bool {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .is_some_and(|a| a == addr)
}

impl Handover {
    /// How many sockets were received.
    pub(crate) fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Every received UDP socket bound to `addr`.
    pub(crate) fn take_udp(&mut self, addr: SocketAddr) -> Vec<Socket> {
        let (taken, rest) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|(k, s)| *k == Kind::Udp && bound_to(s, addr));
        self.sockets = rest;
        taken.into_iter().map(|(_, s)| s).collect()
    }

    /// The received listener of `kind` bound to `addr`.
    pub(crate) fn take_listener(&mut self, kind: Kind, addr: SocketAddr) -> Option<TcpListener> {
        let at = self
            .sockets
            .iter()
            .position(|(k, s)| *k == kind && bound_to(s, addr))?;
        Some(self.sockets.remove(at).1.into())
    }

    /// The control socket's listener.
    pub(crate) fn take_control(&mut self) -> Option<Socket> {
        let at = self.sockets.iter().position(|(k, _)| *k == Kind::Control)?;
        Some(self.sockets.remove(at).1)
    }

    /// Tells the old process that this one answers now: it stops, giving
    /// TCP connections in progress `grace`. Sockets not taken (addresses
    /// the config no longer has) are closed. Errors are logged: the old
    /// process may have stopped already, and this one serves either way.
    pub(crate) fn finish(self, grace: Duration) {
        for (kind, socket) in &self.sockets {
            let addr = socket.local_addr().ok().and_then(|a| a.as_socket());
            tracing::info!(?kind, ?addr, "closing a socket the config no longer has");
        }
        drop(self.sockets);
        let confirmed =
            send(&self.conn, &format!("{READY} {}", grace.as_millis())).and_then(|()| {
                let mut buf = [0u8; 64];
                let (n, _) = receive(&self.conn, &mut buf)?;
                Ok(&buf[..n] == STOPPING.as_bytes())
            });
        match confirmed {
            Ok(true) => tracing::info!(
                pid = self.old_pid,
                grace = %humantime::format_duration(grace),
                "took over; the previous process stops"
            ),
            Ok(false) => tracing::warn!(
                pid = self.old_pid,
                "the previous process did not confirm it stops"
            ),
            Err(e) => tracing::warn!(
                pid = self.old_pid,
                path = %self.path.display(),
                error = %e,
                "cannot tell the previous process to stop; it may have stopped already"
            ),
        }
    }
}

/// Creates the control socket at `path`, mode 0600. It is bound under a
/// temporary name and renamed into place, so it is never reachable with
/// looser permissions and a stale file of a dead process is replaced.
pub(crate) fn bind(path: &Path) -> io::Result<Socket> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
    socket.bind(&SockAddr::unix(&tmp)?)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    socket.listen(16)?;
    Ok(socket)
}

/// Where a server's handover stands, shared by the control thread and the
/// thread that runs the server.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    phase: Mutex<Phase>,
    handed_over: Notify,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Phase {
    #[default]
    Serving,
    /// Sockets sent, waiting for the new process's `ready`.
    Handing,
    /// The new process answers; this one stops, with this grace period.
    HandedOver(Duration),
    /// Stopping by a signal: no takeover is accepted any more.
    Closing,
}

impl Handoff {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once a new process has taken over; its grace period.
    pub(crate) async fn handed_over(&self) -> Duration {
        loop {
            let notified = self.handed_over.notified();
            if let Phase::HandedOver(grace) = *self.phase() {
                return grace;
            }
            notified.await;
        }
    }

    /// The grace period if a new process took over.
    pub(crate) fn grace(&self) -> Option<Duration> {
        match *self.phase() {
            Phase::HandedOver(grace) => Some(grace),
            _ => None,
        }
    }

    /// Stopping by a signal: refuses takeovers from now on; false if one
    /// is under way or done (then the control socket is the new process's
    /// and must stay).
    pub(crate) fn close(&self) -> bool {
        let mut phase = self.phase();
        match *phase {
            Phase::Serving | Phase::Closing => {
                *phase = Phase::Closing;
                true
            }
            Phase::Handing | Phase::HandedOver(_) => false,
        }
    }
}

/// Serves the control socket on a thread of its own until a takeover
/// completes. `offer` holds duplicates of every socket to hand over, in
/// the order they are sent.
pub(crate) fn spawn_server(
    listener: Socket,
    offer: Vec<(Kind, OwnedFd)>,
    handoff: Arc<Handoff>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("control-socket".into())
        .spawn(move || {
            loop {
                let conn = match listener.accept() {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                if conn.set_read_timeout(Some(IO_TIMEOUT)).is_err()
                    || conn.set_write_timeout(Some(IO_TIMEOUT)).is_err()
                {
                    continue;
                }
                if let Err(e) = answer(&conn, &listener, &offer, &handoff) {
                    tracing::warn!(error = %e, "control socket: request failed");
                }
                if handoff.grace().is_some() {
                    // The new process owns the control socket now.
                    return;
                }
            }
        })
}

/// Answers one control connection.
fn answer(
    conn: &Socket,
    listener: &Socket,
    offer: &[(Kind, OwnedFd)],
    handoff: &Handoff,
) -> io::Result<()> {
    let mut buf = [0u8; 256];
    let (n, _) = receive(conn, &mut buf)?;
    let request = String::from_utf8_lossy(&buf[..n]);
    let (verb, arg) = request.split_once(' ').unwrap_or((&request, ""));
    let pid = std::process::id();
    match verb {
        STATUS => send(conn, &serde_json::to_string(&Status { pid })?),
        TAKEOVER => {
            {
                let mut phase = handoff.phase();
                if *phase != Phase::Serving {
                    return Err(io::Error::other(
                        "a takeover was asked while this process is stopping",
                    ));
                }
                *phase = Phase::Handing;
            }
            tracing::info!(by = arg, "takeover asked: handing over the sockets");
            let sent = hand_over(conn, listener, offer, pid);
            let mut phase = handoff.phase();
            match sent {
                Ok(grace) => {
                    *phase = Phase::HandedOver(grace);
                    drop(phase);
                    tracing::info!(
                        by = arg,
                        grace = %humantime::format_duration(grace),
                        "handed over; stopping"
                    );
                    handoff.handed_over.notify_one();
                    Ok(())
                }
                Err(e) => {
                    *phase = Phase::Serving;
                    tracing::warn!(by = arg, error = %e, "takeover abandoned; serving on");
                    Ok(())
                }
            }
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown request {verb:?}"),
        )),
    }
}

/// Sends the manifest and the sockets, then waits for `ready`; the grace
/// period the new process asks for.
fn hand_over(
    conn: &Socket,
    listener: &Socket,
    offer: &[(Kind, OwnedFd)],
    pid: u32,
) -> io::Result<Duration> {
    let mut all: Vec<(Kind, BorrowedFd<'_>)> =
        offer.iter().map(|(k, fd)| (*k, fd.as_fd())).collect();
    all.push((Kind::Control, listener.as_fd()));
    let manifest = Manifest {
        pid,
        sockets: all.iter().map(|(k, _)| *k).collect(),
    };
    send(conn, &serde_json::to_string(&manifest)?)?;
    let fds: Vec<BorrowedFd<'_>> = all.iter().map(|(_, fd)| *fd).collect();
    for chunk in fds.chunks(keiko_udp::MAX_FDS) {
        keiko_udp::send_with_fds(conn, FDS.as_bytes(), chunk)?;
    }
    conn.set_read_timeout(Some(READY_TIMEOUT))?;
    let mut buf = [0u8; 64];
    let (n, _) = receive(conn, &mut buf)?;
    let reply = String::from_utf8_lossy(&buf[..n]);
    let grace = match reply.split_once(' ') {
        Some((READY, ms)) => ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad grace period"))?,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected `ready`, got {reply:?}"),
            ));
        }
    };
    // Past this point the new process answers: even if the reply is lost
    // this process stops.
    let _ = send(conn, STOPPING);
    Ok(grace.min(MAX_GRACE))
}

/// Tells systemd (when it started us with `NOTIFY_SOCKET`) `state`, e.g.
/// `READY=1` or `MAINPID=N`; a unit's `NotifyAccess=all` lets a process
/// that took over name itself the service's main process. Best effort.
pub(crate) fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = target.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => UnixAddr::from_abstract_name(name)?,
            None => UnixAddr::from_pathname(Path::new(&target))?,
        };
        socket.send_to_addr(state.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests;
