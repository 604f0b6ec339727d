//! Loading everything a snapshot is compiled from: config, zone file and
//! GeoIP database, checked against each other by the one validation pass
//! in [`crate::config::check`], which `check`, start and reload share.

use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config, ConfigError};
use crate::geo::GeoDb;
use crate::zone::Zone;

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
    /// Every problem found in the config and the files it names.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let checked = config::check(path)?;
    Ok(Loaded {
        config: Arc::new(checked.config),
        zone: Arc::new(checked.zone),
        geo: checked.geo.map(Arc::new),
    })
}
