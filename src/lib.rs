//! keiko-dns: an authoritative DNS server that steers clients to healthy
//! regions by failover, weight and geography.
//!
//! The data plane (`net` -> `dataplane` -> `snapshot`) answers queries from
//! an immutable routing table; the control plane (`control`, `health`,
//! `admin`) owns everything that changes and publishes new tables. See
//! `README.md` for the picture.
// Unsafe system calls live in the keiko-udp crate.
#![forbid(unsafe_code)]

mod admin;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod dnssec;
mod explain;
pub mod fleet;
pub mod geo;
pub mod guard;
mod health;
mod net;
pub mod snapshot;
mod tls;
mod wire;
pub mod zone;

#[cfg(test)]
mod testutil;
