//! INTERIM: replaced by the GeoIP module (being written separately).
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

pub struct GeoDb {
    path: PathBuf,
}

pub struct Location {
    pub country: Option<String>,
    pub continent: Option<String>,
    pub network: ipnet::IpNet,
}

impl GeoDb {
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        Err(GeoError::Invalid {
            path: path.to_owned(),
            reason: "interim".into(),
        })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn describe(&self) -> String {
        String::new()
    }
    pub fn locate(&self, _ip: IpAddr) -> Result<Location, GeoError> {
        Err(GeoError::Invalid {
            path: self.path.clone(),
            reason: "interim".into(),
        })
    }
    pub fn compile(
        &self,
        _c: &mut dyn FnMut(Option<&str>, Option<&str>) -> u32,
    ) -> Result<ClientMap, GeoError> {
        Ok(ClientMap::uniform(0))
    }
}

pub struct ClientMap {
    value: u32,
}

impl ClientMap {
    pub fn uniform(value: u32) -> ClientMap {
        ClientMap { value }
    }
    pub fn lookup(&self, _ip: IpAddr) -> (u32, u8) {
        (self.value, 0)
    }
    pub fn node_count(&self) -> usize {
        1
    }
    pub fn memory_bytes(&self) -> usize {
        4
    }
}
