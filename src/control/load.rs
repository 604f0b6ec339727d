//! Loading everything a snapshot is compiled from: config, zone file and
//! GeoIP database, checked against each other.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ConfigError, Diagnostic};
use crate::geo::{GeoDb, GeoError};
use crate::health::probe::{ProbeError, Prober};
use crate::zone::{Zone, ZoneError};

/// The inputs of a snapshot, all valid together.
#[derive(Clone)]
pub struct Loaded {
    pub config: Arc<Config>,
    pub zone: Arc<Zone>,
    pub geo: Option<Arc<GeoDb>>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("GeoIP database: {0}")]
    Geo(#[from] GeoError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Conflict(Vec<Diagnostic>),
    #[error("{}: health.ca_file: {source}", config.display())]
    CaFile {
        config: PathBuf,
        source: Box<ProbeError>,
    },
}

pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let config = Config::load(path)?;
    let zone = Zone::load(&config.zone.file, &config.zone.origin)?;
    let conflicts: Vec<Diagnostic> = config
        .records
        .iter()
        .filter(|r| zone.contains(&r.name))
        .map(|r| {
            config.record_error(
                r,
                format!(
                    "{} is steered here and also has records in the zone file {}; keep it in one place",
                    r.name,
                    config.zone.file.display()
                ),
            )
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(LoadError::Conflict(conflicts));
    }
    // A CA file that cannot be used would fail every https probe and take
    // every region out: refuse it here, where a reload keeps the old config.
    if let Some(ca) = &config.health.ca_file {
        Prober::new(Some(ca), config.health.timeout).map_err(|source| LoadError::CaFile {
            config: config.path.clone(),
            source: Box::new(source),
        })?;
    }
    let geo = match &config.geoip.database {
        Some(path) => Some(Arc::new(GeoDb::open(path)?)),
        None => None,
    };
    Ok(Loaded {
        config: Arc::new(config),
        zone: Arc::new(zone),
        geo,
    })
}
