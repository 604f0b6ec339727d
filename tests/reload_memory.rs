//! Reloads keep memory flat: a reload replaces the routing table and its
//! answer counters, and nothing of the old one stays behind but the sums.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use common::Server;
use hickory_proto::rr::RecordType;

/// Reloads in all, and after how many the baseline is taken.
const RELOADS: usize = 1000;
const FIRST: usize = 10;
/// The bound: resident memory after every reload within 1 MiB of what it
/// was after the first ones.
const BOUND_KIB: u64 = 1024;

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

fn gauge(server: &Server, name: &str) -> f64 {
    let metrics = server.get("/metrics").body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

fn reload(server: &Server) {
    let reply = server.post("/admin/reload", "", None);
    assert_eq!(reply.status, 200, "reload: {}", reply.body);
}

#[test]
fn a_thousand_reloads_keep_memory_within_a_mebibyte_and_answer_counts_whole() {
    let server = Server::start_default();
    let started = std::time::Instant::now();
    // The first reloads settle the allocator and the lazily built parts.
    for _ in 0..FIRST {
        server.query_udp("api-contracts", RecordType::A);
        reload(&server);
    }
    let table_first = gauge(&server, "keiko_routing_table_bytes ");
    let rss_first = resident_kib(server.pid());
    let mut trace = vec![format!("{FIRST}: {rss_first}")];
    let mut peak = rss_first;
    for n in FIRST + 1..=RELOADS {
        server.query_udp("api-contracts", RecordType::A);
        reload(&server);
        if n % 100 == 0 {
            let rss = resident_kib(server.pid());
            peak = peak.max(rss);
            trace.push(format!("{n}: {rss}"));
        }
    }
    let table_after = gauge(&server, "keiko_routing_table_bytes ");
    let rss_after = resident_kib(server.pid());
    eprintln!(
        "{RELOADS} reloads in {:.1} s: routing table {table_first} -> {table_after} bytes, \
         resident KiB after reload {}",
        started.elapsed().as_secs_f64(),
        trace.join(", ")
    );
    assert_eq!(
        table_first, table_after,
        "the routing table and the answer history must not grow with reloads"
    );
    // Before counters were bounded a reload kept about 6 KiB for good
    // (almost 6 MiB over 1,000); allocator noise stays well under this.
    assert!(
        peak <= rss_first + BOUND_KIB && rss_after <= rss_first + BOUND_KIB,
        "resident memory went from {rss_first} KiB after {FIRST} reloads to {rss_after} KiB \
         after {RELOADS} (peak {peak}), more than {BOUND_KIB} KiB: {}",
        trace.join(", ")
    );
    // Every answer was counted once, whichever table served it.
    let metrics = server.get("/metrics").body;
    let served: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("keiko_dns_answers_total{record=\"api-contracts\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(served, RELOADS as u64);
}
