//! The control plane as the admin API and the signal handler drive it:
//! the routing table's owner and the health monitor, changed together.

use std::sync::Arc;

use super::{Control, ControlError};
use crate::health::Monitor;

pub struct Plane {
    pub control: Arc<Control>,
    pub monitor: Arc<Monitor>,
}

impl Plane {
    /// Starts health checking over an already loaded `control`. Must run
    /// inside the control plane's tokio runtime.
    pub fn start(control: Arc<Control>) -> Plane {
        let config = control.loaded().config;
        let monitor = Monitor::start(&config, control.clone());
        Plane { control, monitor }
    }

    /// Reloads config, zone and GeoIP database, then points the health
    /// checker at the new regions. The old state keeps serving on error.
    pub async fn reload(&self) -> Result<(), Arc<ControlError>> {
        let control = self.control.clone();
        // Compiling a large GeoIP database takes a while: off the runtime.
        let result = tokio::task::spawn_blocking(move || control.reload())
            .await
            .unwrap_or_else(|e| Err(ControlError::Panicked(e.to_string())));
        match result {
            Ok(()) => {
                self.monitor.reconfigure(&self.control.loaded().config);
                Ok(())
            }
            Err(e) => Err(Arc::new(e)),
        }
    }
}
