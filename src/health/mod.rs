//! Health checking: probes, their schedule, the per-region state machine,
//! failover history and notifications. Verdicts reach the data plane only
//! through `crate::control`.

pub mod notify;
pub mod probe;
