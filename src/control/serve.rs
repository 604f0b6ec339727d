//! Running the whole server: binding every socket (or taking them over from
//! the running server, [`super::takeover`]), starting the data-plane
//! threads and the control plane's runtime, and running until SIGTERM or
//! SIGINT, or until a new process takes over. This is the one place that
//! knows which thread does what.
//!
//! Threads: one UDP worker per core (`net::udp`), one TCP thread with its
//! own runtime (`net::tcp`), the control socket's thread, and this thread,
//! which runs the control plane (probes, admin API, signals, cookie
//! rotation) on a current-thread runtime; a reload compiles its table on a
//! blocking-pool thread.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::takeover::{self, Handoff, Handover, Kind, Probe, TakeoverError};
use super::{ControlPlane, Publisher};
use crate::admin;
use crate::fleet::keeper::{self, Keeper};
use crate::fleet::transport;
use crate::net::holder::{self, Proto};
use crate::net::{tcp, udp};
use crate::tls::peer::{PeerTls, certificate_names};

/// Whether to take over from a running server of the same config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Takeover {
    /// Start afresh; refuse if a server of this config is running.
    #[default]
    No,
    /// Take over; fail if no server of this config is running.
    Required,
    /// Take over if a server of this config is running, else start afresh.
    IfRunning,
}

/// How `serve` starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub takeover: Takeover,
    /// How long the process taken over may finish its TCP connections.
    pub grace: Duration,
    /// The global arguments a successor started by SIGUSR2 gets (the log
    /// format), placed before `serve`.
    pub global_args: Vec<OsString>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            takeover: Takeover::No,
            grace: Duration::from_secs(5),
            global_args: Vec::new(),
        }
    }
}

/// Every socket the server serves on.
struct Sockets {
    udp: Vec<socket2::Socket>,
    tcp: Vec<std::net::TcpListener>,
    admin: std::net::TcpListener,
    fleet: Option<std::net::TcpListener>,
}

impl Sockets {
    /// Duplicates of every socket, for handing them over to a successor.
    fn offer(&self) -> std::io::Result<Vec<(Kind, OwnedFd)>> {
        let mut offer = Vec::new();
        for s in &self.udp {
            offer.push((Kind::Udp, OwnedFd::from(s.try_clone()?)));
        }
        for l in &self.tcp {
            offer.push((Kind::Tcp, OwnedFd::from(l.try_clone()?)));
        }
        offer.push((Kind::Admin, OwnedFd::from(self.admin.try_clone()?)));
        if let Some(l) = &self.fleet {
            offer.push((Kind::Fleet, OwnedFd::from(l.try_clone()?)));
        }
        Ok(offer)
    }
}

/// Serves `config_path` until a stop signal or a takeover. Errors carry
/// what was being started; the caller reports them.
pub fn serve(config_path: &Path, options: &Options) -> anyhow::Result<()> {
    let publisher = Arc::new(
        Publisher::start(config_path)
            .with_context(|| format!("cannot start with {}", config_path.display()))?,
    );
    let config = publisher.loaded().config;
    // Taken at start, like the listen addresses: the statistics have one
    // row per worker.
    let workers = config.server.udp_workers();
    let shutdown = Arc::new(AtomicBool::new(false));
    let control_path = takeover::socket_path(&config.server.state_dir);

    let mut handover = match options.takeover {
        Takeover::No => {
            refuse_if_running(&control_path)?;
            None
        }
        Takeover::Required => Some(takeover::take_over(&control_path)?),
        Takeover::IfRunning => match takeover::take_over(&control_path) {
            Ok(h) => Some(h),
            Err(TakeoverError::NotRunning { path }) => {
                tracing::info!(
                    path = %path.display(),
                    "no running keiko-dns to take over; starting afresh"
                );
                None
            }
            Err(e) => return Err(e.into()),
        },
    };
    if let Some(h) = &handover {
        tracing::info!(
            pid = h.old_pid,
            sockets = h.len(),
            "received the running server's sockets"
        );
    }

    let sockets = bind_all(&config, workers, handover.as_mut())?;
    let peer_tls = config
        .fleet
        .as_ref()
        .map(PeerTls::load)
        .transpose()
        .context("cannot set up the fleet's TLS")?;
    let control_listener = match handover.as_mut().and_then(Handover::take_control) {
        Some(l) => Some(l),
        None => match takeover::bind(&control_path) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(
                    path = %control_path.display(),
                    error = %e,
                    "cannot create the control socket: this process cannot be taken over"
                );
                None
            }
        },
    };
    let offer = sockets
        .offer()
        .context("cannot keep the sockets for a takeover")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("control")
        .build()
        .context("cannot start the control runtime")?;
    // The health monitor publishes the states remembered in state_dir
    // before the first query is read: a restart during an outage must not
    // hand out a dead region even for a moment.
    let plane = Arc::new(runtime.block_on(async { ControlPlane::start(publisher.clone()) }));

    let udp_count = sockets.udp.len();
    let udp_threads = udp::spawn(
        sockets.udp,
        publisher.table(),
        publisher.stats(),
        shutdown.clone(),
    )
    .context("cannot start UDP workers")?;
    let tcp_server = tcp::spawn(
        sockets.tcp,
        publisher.table(),
        publisher.stats(),
        config.server.tcp_threads,
    )
    .context("cannot start the TCP thread")?;
    // Answering now: the process taken over may stop.
    let took_over = handover.is_some();
    if let Some(h) = handover {
        h.finish(options.grace);
        takeover::notify_systemd(&format!("MAINPID={}", std::process::id()));
    }
    takeover::notify_systemd("READY=1");
    let handoff = Arc::new(Handoff::default());
    let owns_control_socket = match control_listener {
        Some(listener) => {
            takeover::spawn_server(listener, offer, handoff.clone())
                .context("cannot serve the control socket")?;
            true
        }
        None => false,
    };
    tracing::info!(
        dns = ?config.server.dns_listen,
        admin = %config.server.admin_listen,
        zone = %config.zone.origin,
        workers = udp_count,
        took_over,
        "keiko-dns serving"
    );
    let successor = Successor {
        config: std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_owned()),
        options: options.clone(),
    };
    let grace = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(sockets.admin)
            .context("cannot serve the admin API")?;
        tokio::spawn(admin::serve(listener, plane.clone()));
        if let (Some(keeper), Some(listener), Some(tls)) = (&plane.fleet, sockets.fleet, &peer_tls)
        {
            start_fleet(keeper.clone(), &plane, listener, tls)?;
        }
        tokio::spawn(successor.start_on_sigusr2());
        let grace = tokio::select! {
            stopped = plane.run_until_stopped() => stopped.map(|()| None),
            grace = handoff.handed_over() => Ok(Some(grace)),
        };
        plane.monitor.stop();
        grace
    })?;

    // Every UDP worker finishes the batch in hand: what it read is
    // answered, what it did not is read by the new process.
    shutdown.store(true, Ordering::Relaxed);
    for t in udp_threads {
        let _ = t.join();
    }
    match grace {
        Some(grace) => {
            let clean = tcp_server.drain(grace);
            tracing::info!(tcp_connections_finished = clean, "stopped after a takeover");
        }
        None => {
            // The socket file goes with this process, unless a takeover
            // under way has just made it the new process's.
            if owns_control_socket && handoff.close() {
                let _ = std::fs::remove_file(&control_path);
            }
            tracing::info!("stopped");
        }
    }
    Ok(())
}

/// A second `serve` of a config that is already served stops here, before
/// it binds anything (its UDP sockets would join the running server's
/// reuseport groups and take a share of its queries).
fn refuse_if_running(control_path: &Path) -> anyhow::Result<()> {
    match takeover::probe(control_path) {
        Probe::Absent => Ok(()),
        Probe::Live(Some(pid)) => anyhow::bail!(
            "keiko-dns pid {pid} ({}) is already serving this config (control socket {}); \
             use `keiko-dns serve --takeover` to replace it",
            holder::command_line(pid),
            control_path.display()
        ),
        Probe::Live(None) => anyhow::bail!(
            "a keiko-dns is already serving this config (control socket {}); \
             use `keiko-dns serve --takeover` to replace it",
            control_path.display()
        ),
        Probe::Unusable(e) => {
            // Not provably live: binding (TCP first) finds out.
            tracing::warn!(
                path = %control_path.display(),
                error = %e,
                "cannot ask the control socket whether a server is running"
            );
            Ok(())
        }
    }
}

/// Takes each socket the config names from `handover`, or binds it. TCP
/// listeners are bound before any UDP socket: an address held by another
/// server fails there, naming the holder, before a UDP socket of ours could
/// join its reuseport group.
fn bind_all(
    config: &crate::config::Config,
    workers: usize,
    mut handover: Option<&mut Handover>,
) -> anyhow::Result<Sockets> {
    let mut listener = |kind: Kind,
                        addr: SocketAddr,
                        bind: fn(SocketAddr) -> std::io::Result<std::net::TcpListener>|
     -> anyhow::Result<std::net::TcpListener> {
        if let Some(l) = handover
            .as_deref_mut()
            .and_then(|h| h.take_listener(kind, addr))
        {
            return Ok(l);
        }
        bind(addr).map_err(|e| holder::explain(Proto::Tcp, addr, e))
    };
    let mut tcp = Vec::new();
    for &addr in &config.server.dns_listen {
        tcp.push(
            listener(Kind::Tcp, addr, tcp::bind)
                .with_context(|| format!("cannot bind TCP {addr}"))?,
        );
    }
    let admin_addr = config.server.admin_listen;
    let admin = listener(Kind::Admin, admin_addr, admin::bind)
        .with_context(|| format!("cannot bind the admin API on {admin_addr}"))?;
    let fleet = match &config.fleet {
        Some(f) => Some(
            listener(Kind::Fleet, f.listen, bind_fleet)
                .with_context(|| format!("cannot bind the fleet endpoint on {}", f.listen))?,
        ),
        None => None,
    };
    let mut udp = Vec::new();
    for &addr in &config.server.dns_listen {
        // Every socket of the group handed over is served (a datagram
        // queued on one nobody reads would be lost); more join it when
        // this process has more workers.
        let mut group = handover
            .as_deref_mut()
            .map(|h| h.take_udp(addr))
            .unwrap_or_default();
        if group.len() < workers {
            group.extend(
                udp::bind(addr, workers - group.len())
                    .map_err(|e| holder::explain(Proto::Udp, addr, e))
                    .with_context(|| format!("cannot bind UDP {addr}"))?,
            );
        }
        udp.extend(group);
    }
    Ok(Sockets {
        udp,
        tcp,
        admin,
        fleet,
    })
}

fn bind_fleet(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The process SIGUSR2 starts to take this one over: this binary's path as
/// it was started (after a binary upgrade, the new binary at that path)
/// with `serve --takeover` and the same config. Under systemd it runs in
/// the service's own cgroup and sandbox, and names itself the main process.
struct Successor {
    config: PathBuf,
    options: Options,
}

impl Successor {
    async fn start_on_sigusr2(self) {
        let mut usr2 = match signal(SignalKind::user_defined2()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGUSR2: no takeover by signal");
                return;
            }
        };
        while usr2.recv().await.is_some() {
            self.start();
        }
    }

    fn start(&self) {
        let program = std::env::args_os()
            .next()
            .unwrap_or_else(|| OsString::from("keiko-dns"));
        let mut command = std::process::Command::new(&program);
        command
            .args(&self.options.global_args)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--takeover")
            .arg("--takeover-grace")
            .arg(humantime::format_duration(self.options.grace).to_string())
            .stdin(std::process::Stdio::null());
        match command.spawn() {
            Ok(mut child) => {
                tracing::info!(
                    program = %program.to_string_lossy(),
                    pid = child.id(),
                    "SIGUSR2: started a new process to take over"
                );
                // Reaped here while this process lives; a failure is logged
                // (this process then serves on).
                let _ = std::thread::Builder::new()
                    .name("successor".into())
                    .spawn(move || match child.wait() {
                        Ok(status) if !status.success() => tracing::error!(
                            %status,
                            "the process started to take over failed; serving on"
                        ),
                        _ => {}
                    });
            }
            Err(e) => tracing::error!(
                program = %program.to_string_lossy(),
                error = %e,
                "SIGUSR2: cannot start a new process to take over"
            ),
        }
    }
}

/// The fleet's peer endpoint, its pushes to every peer and the tick that
/// lets peers go stale, all on the control plane's runtime.
fn start_fleet(
    keeper: Arc<Keeper>,
    plane: &ControlPlane,
    listener: std::net::TcpListener,
    tls: &PeerTls,
) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::from_std(listener).context("cannot serve the fleet endpoint")?;
    tokio::spawn(transport::serve(
        listener,
        tls.server_config(),
        certificate_names,
        keeper.clone(),
    ));
    transport::spawn_pushers(
        keeper.peer_urls(),
        tls.client_config(),
        certificate_names,
        keeper,
    )
    .context("cannot start pushing to the fleet's peers")?;
    tokio::spawn(keeper::tick(plane.monitor.clone()));
    Ok(())
}
