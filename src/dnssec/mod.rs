//! DNSSEC for the zone: its keys and the signatures of every RRset any
//! client can receive, made when a routing table is built (the control
//! plane), never when a query is answered.
//!
//! What is signed and how negative answers are proven is decided by the
//! table build (`crate::snapshot`); this module owns the keys and the
//! signing itself.

pub mod keys;
mod signer;

pub use signer::{SignError, Signer, Summary};
