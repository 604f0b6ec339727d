//! Arbitrary UTF-8 into `Config::parse`: it may reject, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = keiko_dns::config::Config::parse(Path::new("/nonexistent/keiko-fuzz/keiko.toml"), text);
});
