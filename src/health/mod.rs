//! Health checking: probes, their schedule, the per-region state machine,
//! failover history and notifications. Verdicts reach the data plane only
//! through the [`monitor::Publish`] seam, implemented by `crate::control`.

pub mod monitor;
pub mod notify;
pub mod probe;
pub mod state;
pub mod store;

pub use monitor::{Monitor, MonitorError, Publish, RegionView};
pub use state::{Forced, State};
pub use store::Event;
