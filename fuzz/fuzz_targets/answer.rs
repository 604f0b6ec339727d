//! Arbitrary bytes into `Worker::answer`, over UDP and over TCP, with the
//! default snapshot; every answer is checked against `check::check`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use keiko_dns::dataplane::Transport;
use keiko_dns_fuzz::{answer_and_check, worker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static STATE: std::cell::RefCell<(keiko_dns::dataplane::Worker, Vec<u8>)> =
            std::cell::RefCell::new((worker(), Vec::with_capacity(65535)));
    }
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    STATE.with_borrow_mut(|(w, out)| {
        answer_and_check(w, out, data, client, Transport::Udp);
        answer_and_check(w, out, data, client, Transport::Tcp);
    });
});
