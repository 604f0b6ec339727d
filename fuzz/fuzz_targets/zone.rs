//! Arbitrary text into `Zone::parse` with origin keiko.example.com.: it
//! may reject, never panic.
#![no_main]

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    static ORIGIN: OnceLock<Name> = OnceLock::new();
    let origin = ORIGIN.get_or_init(|| Name::from_str("keiko.example.com.").unwrap());
    // Zone files are small; keep the prefix searches of error location cheap.
    if text.len() > 4096 {
        return;
    }
    let _ = keiko_dns::zone::Zone::parse(Path::new("/nonexistent/keiko-fuzz/zone"), text, origin);
});
