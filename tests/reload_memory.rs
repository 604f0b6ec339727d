//! Reloads keep memory flat: a reload replaces the routing table and its
//! answer counters, and nothing of the old one stays behind but the sums.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use common::Server;
use hickory_proto::rr::RecordType;

const RELOADS: usize = 200;

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
fn two_hundred_reloads_keep_memory_flat_and_answer_counts_whole() {
    let server = Server::start_default();
    // Settle the allocator and the lazily built parts first.
    for _ in 0..20 {
        server.query_udp("api-contracts", RecordType::A);
        reload(&server);
    }
    let table_before = gauge(&server, "keiko_routing_table_bytes ");
    let rss_before = resident_kib(server.pid());
    for _ in 0..RELOADS {
        server.query_udp("api-contracts", RecordType::A);
        reload(&server);
    }
    let table_after = gauge(&server, "keiko_routing_table_bytes ");
    let rss_after = resident_kib(server.pid());
    eprintln!(
        "after {RELOADS} reloads: routing table {table_before} -> {table_after} bytes, \
         resident {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(
        table_before, table_after,
        "the routing table and the answer history must not grow with reloads"
    );
    // Before counters were bounded a reload kept about 6 KiB for good
    // (1.2 MiB over 200); allocator noise stays well under this.
    assert!(
        rss_after <= rss_before + 400,
        "resident memory grew from {rss_before} to {rss_after} KiB over {RELOADS} reloads"
    );
    // Every answer was counted once, whichever table served it.
    let metrics = server.get("/metrics").body;
    let served: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("keiko_dns_answers_total{record=\"api-contracts\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(served, (20 + RELOADS) as u64);
}
