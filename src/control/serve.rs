//! Running the whole server: binding every socket, starting the data-plane
//! threads and the control plane's runtime, and running until SIGTERM or
//! SIGINT. This is the one place that knows which thread does what.
//!
//! Threads: one UDP worker per core (`net::udp`), one TCP thread with its
//! own runtime (`net::tcp`), and this thread, which runs the control plane
//! (probes, admin API, signals, cookie rotation) on a current-thread
//! runtime; a reload compiles its table on a blocking-pool thread.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::{ControlPlane, Publisher};
use crate::admin;
use crate::fleet::keeper::{self, Keeper};
use crate::fleet::transport;
use crate::net::{tcp, udp};
use crate::tls::peer::{PeerTls, certificate_names};

/// Serves `config_path` until a stop signal. Errors carry what was being
/// started; the caller reports them.
pub fn serve(config_path: &Path) -> anyhow::Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let publisher = Arc::new(
        Publisher::start(config_path, workers)
            .with_context(|| format!("cannot start with {}", config_path.display()))?,
    );
    let config = publisher.loaded().config;
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
    let fleet_listener = match &config.fleet {
        Some(f) => Some(
            std::net::TcpListener::bind(f.listen)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .with_context(|| format!("cannot bind the fleet endpoint on {}", f.listen))?,
        ),
        None => None,
    };
    let peer_tls = config
        .fleet
        .as_ref()
        .map(PeerTls::load)
        .transpose()
        .context("cannot set up the fleet's TLS")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("control")
        .build()
        .context("cannot start the control runtime")?;
    // The health monitor publishes the states remembered in state_dir
    // before the first query is read: a restart during an outage must not
    // hand out a dead region even for a moment.
    let plane = Arc::new(runtime.block_on(async { ControlPlane::start(publisher.clone()) }));

    let udp_threads = udp::spawn(
        udp_sockets,
        publisher.table(),
        publisher.stats(),
        shutdown.clone(),
    )
    .context("cannot start UDP workers")?;
    tcp::spawn(
        tcp_listeners,
        publisher.table(),
        publisher.stats(),
        config.server.tcp_threads,
    )
    .context("cannot start the TCP thread")?;
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
        if let (Some(keeper), Some(listener), Some(tls)) = (&plane.fleet, fleet_listener, &peer_tls)
        {
            start_fleet(keeper.clone(), &plane, listener, tls)?;
        }
        let result = plane.run_until_stopped().await;
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
