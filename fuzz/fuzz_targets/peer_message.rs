//! Arbitrary bytes as a fleet peer's message body: parsing, limits, the
//! vantage record and the command book; see `keiko_dns::fleet::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    keiko_dns::fleet::fuzzing::peer_message(bytes);
});
