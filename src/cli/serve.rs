//! `keiko-dns serve`: bind every socket, start the data plane threads and
//! the control plane runtime, and run until SIGTERM/SIGINT.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::admin;
use crate::control::{Control, Plane};
use crate::net::{tcp, udp};

pub fn run(path: &Path) -> ExitCode {
    match serve(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("keiko-dns: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let control = Arc::new(
        Control::start(path, workers)
            .with_context(|| format!("cannot start with {}", path.display()))?,
    );
    let config = control.loaded().config;
    let shutdown = Arc::new(AtomicBool::new(false));

    // Bind everything before starting anything, so a taken port fails cleanly.
    let mut udp_sockets = Vec::new();
    let mut tcp_listeners = Vec::new();
    for &addr in &config.server.dns_listen {
        udp_sockets
            .extend(udp::bind(addr, workers).with_context(|| format!("cannot bind UDP {addr}"))?);
        tcp_listeners.push(tcp::bind(addr).with_context(|| format!("cannot bind TCP {addr}"))?);
    }
    let admin_addr = config.server.admin_listen;
    let admin_listener = admin::bind(admin_addr)
        .with_context(|| format!("cannot bind the admin API on {admin_addr}"))?;

    // The health monitor publishes the states remembered in state_dir
    // before the first query is read: a restart during an outage must not
    // hand out a dead region even for a moment.
    // One thread is plenty for probes, the admin API and reloads (a reload
    // compiles the snapshot on a blocking-pool thread).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("control")
        .build()
        .context("cannot start the control runtime")?;
    let plane = Arc::new(runtime.block_on(async { Plane::start(control.clone()) }));

    let udp_threads = udp::spawn(
        udp_sockets,
        control.table(),
        control.stats(),
        shutdown.clone(),
    )
    .context("cannot start UDP workers")?;
    start_tcp(tcp_listeners, &control)?;
    tracing::info!(
        dns = ?config.server.dns_listen,
        admin = %config.server.admin_listen,
        zone = %config.zone.origin,
        workers,
        "keiko-dns serving"
    );
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(admin_listener)
            .context("cannot serve the admin API")?;
        tokio::spawn(admin::serve(listener, plane.clone()));
        let result = control_plane(&plane).await;
        plane.monitor.stop();
        result
    })?;

    shutdown.store(true, Ordering::Relaxed);
    for t in udp_threads {
        let _ = t.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// TCP gets its own runtime and thread, so the control plane's work never
/// delays it.
fn start_tcp(listeners: Vec<std::net::TcpListener>, control: &Control) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("dns-tcp")
        .build()
        .context("cannot start the TCP runtime")?;
    let (table, stats) = (control.table(), control.stats());
    std::thread::Builder::new()
        .name("dns-tcp".into())
        .spawn(move || {
            runtime.block_on(async move {
                let tasks: Vec<_> = listeners
                    .into_iter()
                    .map(|l| {
                        tokio::spawn(tcp::serve(
                            l,
                            table.clone(),
                            stats.clone(),
                            tcp::Limits::default(),
                        ))
                    })
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
        })
        .context("cannot start the TCP thread")?;
    Ok(())
}

const COOKIE_ROTATION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Runs until a stop signal; reloads on SIGHUP.
async fn control_plane(plane: &Plane) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    // RFC 9018 suggests rotating the cookie secret regularly; the old one
    // stays valid for one more period.
    let mut rotate = tokio::time::interval(COOKIE_ROTATION);
    rotate.tick().await;
    loop {
        tokio::select! {
            _ = rotate.tick() => plane.control.rotate_cookie_secret(),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                // Errors are logged by the reload itself; the old config keeps serving.
                let _ = plane.reload().await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    Ok(())
}
