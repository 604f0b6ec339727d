//! The control plane: everything that changes (config, health, forced
//! states, cookie secrets) and the wiring that runs the server.
//!
//! - [`answers`]: steered-answer counts kept across reloads;
//! - [`load`]: reading config, zone file and GeoIP database, checked together;
//! - [`publisher`]: the routing table's only writer;
//! - [`plane`]: the running control plane (publisher + health monitor),
//!   reloads and signals;
//! - [`serve`]: binding sockets and starting every thread;
//! - [`takeover`]: the control socket, and handing the sockets over to a
//!   new process at a takeover restart.

pub mod answers;
pub mod load;
pub mod plane;
pub mod publisher;
pub mod serve;
pub mod takeover;

pub use load::{LoadError, Loaded, load};
pub use plane::ControlPlane;
pub use publisher::{ControlError, Publisher};
