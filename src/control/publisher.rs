//! The routing table's only writer: it owns the loaded inputs and the
//! health view. Every change (reload, probe verdict, forced state) ends in
//! [`Publisher::publish`], which builds a new snapshot and swaps it in; the
//! data plane never waits for any of this.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::answers::{AnswerHistory, AnswerTotals};
use super::load::{LoadError, Loaded, load};
use crate::config::{AllDown, Policy};
use crate::dataplane::{Stats, unix_seconds};
use crate::dnssec::Signer;
use crate::dnssec::keys::KeyError;
use crate::guard::cookie::CookieKeys;
use crate::health::Publish;
use crate::snapshot::{BuildError, Compiled, NO_LOCATION, Snapshot, Table};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("cannot build the routing table: {0}")]
    Build(#[from] BuildError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("reload failed unexpectedly: {0}")]
    Panicked(String),
}

/// Owner of the routing table and of what it is built from.
pub struct Publisher {
    config_path: PathBuf,
    table: Table,
    stats: Arc<Stats>,
    inner: Mutex<Inner>,
    /// The zone's keys and the signatures of the live table, when signed;
    /// locked only while a table is built.
    signer: Mutex<Option<Signer>>,
    version: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

struct Inner {
    loaded: Loaded,
    compiled: Arc<Compiled>,
    /// Effective health by region name (survives reloads that keep the name).
    healthy: Vec<(String, bool)>,
    /// Answer counts of the tables reloads replaced.
    answers: AnswerHistory,
    cookies: Arc<CookieKeys>,
}

impl Publisher {
    /// Loads `config_path` and publishes the first snapshot, every region
    /// healthy; the health monitor publishes remembered states before the
    /// data plane starts.
    /// One row of statistics per UDP worker (`server.udp_workers`, taken
    /// at start) plus the TCP row.
    pub fn start(config_path: &Path) -> Result<Publisher, ControlError> {
        let loaded = load(config_path)?;
        let stats = Arc::new(Stats::new(loaded.config.server.udp_workers()));
        let signer = Mutex::new(None);
        let compiled = Arc::new(compile(&loaded, &stats, &signer, true)?);
        let healthy: Vec<(String, bool)> = loaded
            .config
            .regions
            .iter()
            .map(|r| (r.name.clone(), true))
            .collect();
        let snapshot = Snapshot::new(compiled.clone(), healthy.iter().map(|h| h.1).collect(), 1);
        let cookies = snapshot.cookies.clone();
        Ok(Publisher {
            config_path: config_path.to_owned(),
            table: Arc::new(ArcSwap::from_pointee(snapshot)),
            stats,
            inner: Mutex::new(Inner {
                loaded,
                compiled,
                healthy,
                answers: AnswerHistory::default(),
                cookies,
            }),
            signer,
            version: AtomicU64::new(1),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        })
    }

    pub fn table(&self) -> Table {
        self.table.clone()
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.table.load_full()
    }

    pub fn loaded(&self) -> Loaded {
        self.lock().loaded.clone()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// (successful, failed) reloads so far.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed),
        )
    }

    /// Steered answers served since start, by (record, region), across
    /// every reload.
    pub fn answer_totals(&self) -> AnswerTotals {
        let mut inner = self.lock();
        let current = inner.compiled.counters.clone();
        inner.answers.totals(&current)
    }

    /// Heap bytes of the live table plus the answer history kept for
    /// metrics.
    pub fn memory_bytes(&self) -> usize {
        let inner = self.lock();
        inner.compiled.memory_bytes() + inner.answers.memory_bytes()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every
        // field is replaced whole), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads config, zone and GeoIP database. On any error the old
    /// snapshot keeps serving and the error is returned for reporting.
    pub fn reload(&self) -> Result<(), ControlError> {
        let started = Instant::now();
        let result = self.try_reload();
        match &result {
            Ok(()) => {
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "reloaded config, zone and GeoIP database"
                );
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("reload failed, still serving the previous config:\n{e}");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<(), ControlError> {
        let loaded = load(&self.config_path)?;
        let compiled = Arc::new(compile(&loaded, &self.stats, &self.signer, true)?);
        self.install(loaded, compiled);
        Ok(())
    }

    /// Unix time when the live table's signatures must be re-made
    /// (`refresh` before the earliest expires); `None` when unsigned.
    pub fn resign_at(&self) -> Option<u32> {
        let inner = self.lock();
        let dnssec = inner.loaded.config.dnssec.as_ref()?;
        let summary = inner.compiled.dnssec.as_ref()?;
        Some(Signer::resign_at(summary, dnssec.refresh))
    }

    /// Rebuilds the table from the inputs already loaded, re-signing what
    /// is about to expire (and nothing else). On error the old table keeps
    /// serving.
    pub fn resign(&self) -> Result<(), ControlError> {
        let loaded = self.loaded();
        let compiled = Arc::new(compile(&loaded, &self.stats, &self.signer, false)?);
        if let Some(s) = &compiled.dnssec {
            tracing::info!(
                signatures = s.signatures,
                earliest_expiration = s.earliest_expiration,
                "re-signed the zone"
            );
        }
        self.install(loaded, compiled);
        Ok(())
    }

    /// Swaps a newly compiled table in, keeping health by region name.
    fn install(&self, loaded: Loaded, compiled: Arc<Compiled>) {
        let mut inner = self.lock();
        let old: Vec<(String, bool)> = std::mem::take(&mut inner.healthy);
        inner.healthy = loaded
            .config
            .regions
            .iter()
            .map(|r| {
                let was = old
                    .iter()
                    .find(|(n, _)| *n == r.name)
                    .is_none_or(|(_, h)| *h);
                (r.name.clone(), was)
            })
            .collect();
        let replaced = std::mem::replace(&mut inner.compiled, compiled);
        let counters = replaced.counters.clone();
        // The old table goes first, so the history sees whether any
        // snapshot still counts into its matrix.
        drop(replaced);
        inner.answers.retire(counters);
        if let Some(current) = loaded.config.server.cookie_secret
            && inner.cookies.current != current
        {
            inner.cookies = Arc::new(CookieKeys {
                current,
                previous: Some(inner.cookies.current),
            });
        }
        inner.loaded = loaded;
        self.publish(&inner);
    }

    /// Sets the effective health of regions by name and publishes the new
    /// routing at once. Returns the snapshot version now serving.
    pub fn set_health(&self, updates: &[(&str, bool)]) -> u64 {
        let mut inner = self.lock();
        for (name, healthy) in updates {
            if let Some(slot) = inner.healthy.iter_mut().find(|(n, _)| n == name) {
                slot.1 = *healthy;
            }
        }
        self.publish(&inner)
    }

    /// The failover name's answer (A and AAAA) for a client with no
    /// location: what status views and failover events show.
    pub fn failover_answer(&self) -> Vec<String> {
        let snap = self.snapshot();
        let config = snap.config();
        let Some(record) = config.records.iter().find(|r| r.policy == Policy::Failover) else {
            return Vec::new();
        };
        let (choice, _) = snap.steer(record.policy, NO_LOCATION, &mut |_| 0);
        let region = &config.regions[choice.region];
        region.answer_texts()
    }

    /// Replaces the cookie secret, keeping the old one valid (RFC 9018
    /// section 4.2). A secret set in config is shared with other servers
    /// and left alone.
    pub fn rotate_cookie_secret(&self) {
        let mut inner = self.lock();
        if inner.loaded.config.server.cookie_secret.is_some() {
            return;
        }
        inner.cookies = Arc::new(inner.cookies.rotated());
        self.publish(&inner);
        tracing::debug!("rotated the DNS cookie secret");
    }

    fn publish(&self, inner: &Inner) -> u64 {
        let version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
        let healthy = inner.healthy.iter().map(|h| h.1).collect();
        let snapshot = Snapshot::with_cookies(
            inner.compiled.clone(),
            healthy,
            version,
            inner.cookies.clone(),
        );
        if snapshot.failover_default().fail_open {
            let config = snapshot.config();
            let by = |policy: AllDown| -> Vec<String> {
                config
                    .records
                    .iter()
                    .filter(|r| r.on_all_down == policy && !matches!(r.policy, Policy::Region(_)))
                    .map(|r| crate::snapshot::relative(&r.name, &config.zone.origin))
                    .collect()
            };
            let (nodata, servfail) = (by(AllDown::NoData), by(AllDown::ServFail));
            if nodata.is_empty() && servfail.is_empty() {
                tracing::warn!("no region is healthy: answering as if all were (fail open)");
            } else {
                tracing::warn!(
                    nodata = nodata.join(",").as_str(),
                    servfail = servfail.join(",").as_str(),
                    "no region is healthy: answering as if all were (fail open), except the \
                     records whose on_all_down is nodata or servfail"
                );
            }
        }
        self.table.store(Arc::new(snapshot));
        version
    }
}

/// Compiles `loaded`, signed when it has `[dnssec]`. With `fresh_keys`
/// the key files are read again (start, reload) and the signatures made
/// with a key that still signs are kept; the signer is replaced only when
/// the build succeeds.
fn compile(
    loaded: &Loaded,
    stats: &Stats,
    signer: &Mutex<Option<Signer>>,
    fresh_keys: bool,
) -> Result<Compiled, ControlError> {
    let config = &loaded.config;
    let build = |signer: Option<&mut Signer>| {
        Compiled::build_signed(
            config.clone(),
            loaded.zone.clone(),
            loaded.geo.clone(),
            stats.rows(),
            signer,
            unix_seconds(),
        )
    };
    let mut slot = signer.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dnssec) = &config.dnssec else {
        *slot = None;
        return Ok(build(None)?);
    };
    match (fresh_keys, slot.as_mut()) {
        (false, Some(current)) => Ok(build(Some(current))?),
        _ => {
            let mut next = Signer::new(dnssec, &config.zone.origin)?;
            if let Some(old) = slot.take() {
                next.adopt(old);
            }
            // Built first, installed after: a failed build keeps the old
            // signer (and its signatures) with the old table.
            match build(Some(&mut next)) {
                Ok(compiled) => {
                    *slot = Some(next);
                    Ok(compiled)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

impl Publish for Publisher {
    fn publish(&self, healthy: &[(String, bool)]) -> (Vec<String>, Vec<String>) {
        let before = self.failover_answer();
        let updates: Vec<(&str, bool)> = healthy.iter().map(|(n, h)| (n.as_str(), *h)).collect();
        self.set_health(&updates);
        (before, self.failover_answer())
    }
}
