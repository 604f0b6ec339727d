//! Shared harness for the black-box integration tests: writes a config and
//! a zone file into a temporary folder, runs the real `keiko-dns` binary on
//! free loopback ports, and talks DNS and HTTP to it over real sockets.
//!
//! One module per job; everything is re-exported here, so a test file says
//! `mod common; use common::*;`.
//!
//! Each test binary compiles this harness on its own and uses a different
//! part of it, so an item or re-export unused in one binary is not dead:
//! hence the `dead_code` and `unused_imports` allowances below. Items that
//! no test binary uses are removed (build the tests with the allowances
//! taken out to see which those are).

#[allow(dead_code)]
pub mod dns;
#[allow(dead_code)]
pub mod fixtures;
#[allow(dead_code)]
pub mod fleet;
#[allow(dead_code)]
pub mod http;
#[allow(dead_code)]
pub mod process;
#[allow(dead_code)]
pub mod unbound;

#[allow(unused_imports)]
pub use {dns::*, fixtures::*, http::*, process::*, unbound::*};
