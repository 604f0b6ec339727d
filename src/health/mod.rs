//! Health checking: probes and their schedule (`monitor`), the pure record
//! of what is known about each region (`record`, `state`), failover
//! history and notifications. Verdicts reach the data plane only
//! through the [`monitor::Publish`] seam, implemented by `crate::control`.

pub mod monitor;
pub mod notify;
pub mod probe;
pub mod record;
pub mod state;
pub mod store;

pub use monitor::{Monitor, Publish, RegionView};
pub use record::{HealthRecord, Observation, RecordError};
pub use state::{Forced, State};
pub use store::Event;
