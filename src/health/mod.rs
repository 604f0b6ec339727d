//! Health checking: probes and their schedule (`monitor`), the pure record
//! of what is known about each region (`record`, `state`), failover
//! history and notifications. Verdicts reach the data plane only
//! through the [`monitor::Publish`] seam, implemented by `crate::control`.

pub(crate) mod monitor;
pub(crate) mod notify;
pub(crate) mod probe;
pub(crate) mod record;
pub(crate) mod resolve;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod vantage;

pub(crate) use monitor::{Monitor, Publish};
pub(crate) use record::RecordError;
pub(crate) use state::Forced;
pub(crate) use store::Event;
