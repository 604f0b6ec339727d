//! The running control plane: the routing table's publisher and the
//! health monitor, changed together by the admin API and by signals.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use super::{ControlError, Publisher};
use crate::fleet::keeper::Keeper;
use crate::fleet::view::{FleetView, FleetViews};
use crate::health::Monitor;

/// RFC 9018 suggests rotating the cookie secret regularly; the old one
/// stays valid for one more period.
const COOKIE_ROTATION: Duration = Duration::from_secs(24 * 3600);
/// How often the signatures' remaining validity is checked: far below
/// any `refresh` allowed (10 minutes or more).
const RESIGN_CHECK: Duration = Duration::from_secs(60);

pub struct ControlPlane {
    pub publisher: Arc<Publisher>,
    pub monitor: Arc<Monitor>,
    /// The fleet's state when `[fleet]` is set.
    pub(crate) fleet: Option<Arc<Keeper>>,
}

impl ControlPlane {
    /// Starts health checking over an already loaded `publisher`. Must run
    /// inside the control plane's tokio runtime.
    pub fn start(publisher: Arc<Publisher>) -> ControlPlane {
        let config = publisher.loaded().config;
        let monitor = Monitor::start(&config, publisher.clone());
        let fleet = config.fleet.as_ref().map(|f| {
            Keeper::start(
                f,
                &config.server.region,
                config.server.state_dir.clone(),
                monitor.clone(),
                publisher.clone(),
            )
        });
        ControlPlane {
            publisher,
            monitor,
            fleet,
        }
    }

    /// The fleet as this instance sees it now; `None` without `[fleet]`.
    pub fn fleet_view(&self) -> Option<FleetView> {
        self.fleet.as_ref().map(|f| f.view())
    }

    /// Reloads config, zone and GeoIP database, then points the health
    /// checker at the new regions. The old state keeps serving on error.
    pub async fn reload(&self) -> Result<(), Arc<ControlError>> {
        let publisher = self.publisher.clone();
        let fleet_before = self.publisher.loaded().config.fleet.clone();
        // Compiling a large GeoIP database takes a while: off the runtime.
        let result = tokio::task::spawn_blocking(move || publisher.reload())
            .await
            .unwrap_or_else(|e| Err(ControlError::Panicked(e.to_string())));
        match result {
            Ok(()) => {
                let config = self.publisher.loaded().config;
                self.monitor.reconfigure(&config);
                let restart = match (&fleet_before, &config.fleet) {
                    (Some(old), Some(new)) => old.needs_restart_for(new),
                    (None, None) => false,
                    _ => true,
                };
                if restart {
                    tracing::warn!(
                        "[fleet] identity, endpoint, peers or certificates changed: \
                         they take effect at the next restart (down_quorum and peer_timeout apply now)"
                    );
                }
                Ok(())
            }
            Err(e) => Err(Arc::new(e)),
        }
    }

    /// Re-signs the zone once less than `refresh` of its signatures'
    /// validity remains; the signing runs off the async threads.
    async fn resign_if_due(&self) {
        let Some(due) = self.publisher.resign_at() else {
            return;
        };
        if crate::dataplane::unix_seconds() < due {
            return;
        }
        let publisher = self.publisher.clone();
        match tokio::task::spawn_blocking(move || publisher.resign()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("re-signing failed, still serving the old signatures: {e}")
            }
            Err(e) => tracing::error!("re-signing failed unexpectedly: {e}"),
        }
    }

    /// Runs until SIGTERM or SIGINT: reloads on SIGHUP, rotates the
    /// cookie secret daily and re-signs the zone when due.
    pub async fn run_until_stopped(&self) -> anyhow::Result<()> {
        let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let mut rotate = tokio::time::interval(COOKIE_ROTATION);
        rotate.tick().await;
        let mut resign = tokio::time::interval(RESIGN_CHECK);
        resign.tick().await;
        loop {
            tokio::select! {
                _ = rotate.tick() => self.publisher.rotate_cookie_secret(),
                _ = resign.tick() => self.resign_if_due().await,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    // Errors are logged by the reload itself; the old config keeps serving.
                    let _ = self.reload().await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("stopping");
        Ok(())
    }
}
