//! Crash safety: `kill -9` at random moments while forced states change and
//! queries flow, then restart on the same `state_dir`, ten times over.
//!
//! After every crash: the server starts cleanly (answers DNS, `/ready`),
//! `regions.json` parses (it is replaced by write-then-rename),
//! `events.jsonl` loses at most its last, torn line and every event the API
//! acknowledged is there and served again by `/events`, and the forced state
//! is the last one the API acknowledged (or the one in flight).
//!
//! Everything stays on loopback; the health endpoints are the harness stubs.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const ROUNDS: usize = 10;
const REGION: &str = "us-east-1";

fn kill9(child: &mut Child) {
    signal(child.id(), libc::SIGKILL);
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status}");
}

/// Waits until the new process answers SOA over UDP and `/ready` is 200.
fn wait_serving(child: &mut Child, ws: &Workspace, dns: SocketAddr, admin: SocketAddr) -> Duration {
    let start = Instant::now();
    let client = UdpClient::new(dns, Duration::from_millis(50));
    let soa = Message::query_for(ORIGIN, RecordType::SOA);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "keiko-dns exited with {status} at start; log:\n{}",
                ws.log()
            );
        }
        if client.try_exchange(&soa).is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no DNS answer within 10 s of a restart; log:\n{}",
            ws.log()
        );
    }
    loop {
        if http_request(admin, "GET", "/ready", &[], b"").is_ok_and(|r| r.status == 200) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "/ready not 200 within 10 s of a restart; log:\n{}",
            ws.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the files in state_dir say after a crash: the events that parse,
/// in order, and whether the last line was torn.
fn check_files(state: &Path, round: usize) -> (Vec<serde_json::Value>, bool) {
    let regions = state.join("regions.json");
    if regions.exists() {
        let text = fs::read_to_string(&regions).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("round {round}: regions.json does not parse ({e}):\n{text}")
        });
        assert!(v.is_object(), "round {round}: regions.json: {text}");
    }
    let Ok(text) = fs::read_to_string(state.join("events.jsonl")) else {
        return (Vec::new(), false);
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut events = Vec::new();
    let mut torn = false;
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        match serde_json::from_str::<serde_json::Value>(line.trim_end()) {
            Ok(v) => {
                assert!(
                    line.ends_with('\n') || last,
                    "round {round}: only the last line may lack its newline"
                );
                events.push(v);
            }
            Err(_) if line.trim().is_empty() => {}
            // An earlier crash's torn line, closed by the next append.
            Err(_) if line.ends_with('\n') && !last => torn = true,
            Err(e) => {
                assert!(
                    last,
                    "round {round}: line {} is damaged ({e}): {line:?}",
                    i + 1
                );
                torn = true;
            }
        }
    }
    (events, torn)
}

/// The forced state the driver last had acknowledged, and the one in flight.
#[derive(Default, Debug, Clone)]
struct Ledger {
    acked: Option<String>,
    in_flight: Option<String>,
    /// Acknowledged events, cumulative over all rounds (reason text).
    acked_events: Vec<serde_json::Value>,
}

fn forced_to_state(forced: &serde_json::Value) -> &'static str {
    match forced.as_str() {
        Some("down") => "down",
        Some("up") => "up",
        _ => "auto",
    }
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged() {
    let started = Instant::now();
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed: {seed} (set CRASH_SEED to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);

    let ws = Workspace::new(&default_config(), &default_zone());
    let state = ws.path().join("state");
    let dns = SocketAddr::from(([127, 0, 0, 1], ws.dns_port));
    let admin = SocketAddr::from(([127, 0, 0, 1], ws.admin_port));
    let ledger = Arc::new(Mutex::new(Ledger {
        acked: Some("auto".into()),
        ..Ledger::default()
    }));
    let mut on_disk_before = 0;
    let mut starts = Vec::new();

    for round in 0..=ROUNDS {
        let mut child = spawn_child(&ws, true);
        starts.push(wait_serving(&mut child, &ws, dns, admin));

        // The state after the previous crash.
        let status = http_request(admin, "GET", "/status", &[], b"")
            .expect("/status")
            .json();
        let region = status["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == REGION)
            .unwrap()
            .clone();
        let forced = forced_to_state(&region["forced"]).to_string();
        {
            let l = ledger.lock().unwrap();
            let allowed: Vec<&String> = l.acked.iter().chain(l.in_flight.iter()).collect();
            assert!(
                allowed.contains(&&forced),
                "round {round} (seed {seed}): forced state after restart is {forced}, \
                 acknowledged {:?}, in flight {:?}",
                l.acked,
                l.in_flight
            );
        }
        {
            let mut l = ledger.lock().unwrap();
            l.acked = Some(forced.clone());
            l.in_flight = None;
        }
        // The answer follows the forced state from the first query on.
        let answer =
            UdpClient::new(dns, Duration::from_secs(1)).query(FAILOVER_NAME, RecordType::A);
        let want = if forced == "down" {
            REGIONS[1].v4
        } else {
            REGIONS[0].v4
        };
        assert_eq!(
            addresses(&answer),
            vec![std::net::IpAddr::from(want)],
            "round {round}"
        );

        // /events serves what is on disk: every acknowledged event at least.
        let (on_disk, _) = check_files(&state, round);
        let served = http_request(admin, "GET", "/events?limit=1000", &[], b"")
            .expect("/events")
            .json();
        let served = served["events"].as_array().unwrap().clone();
        assert_eq!(
            served.len(),
            on_disk.len(),
            "round {round}: /events serves every event on disk"
        );
        if let (Some(newest), Some(last)) = (served.first(), on_disk.last()) {
            assert_eq!(newest["time"], last["time"], "round {round}");
            assert_eq!(newest["to"], last["to"], "round {round}");
        }
        assert!(
            on_disk.len() >= on_disk_before,
            "round {round}: events were lost"
        );

        if round == ROUNDS {
            // SIGTERM the last one and stop.
            signal(child.id(), libc::SIGTERM);
            let status = child.wait().unwrap();
            assert!(status.success(), "clean stop: {status}; log:\n{}", ws.log());
            break;
        }

        // Drive forced-state changes and queries, then kill -9.
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let driver = {
            let (stop, ledger) = (stop.clone(), ledger.clone());
            let mut next_down = forced != "down";
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let target = if next_down { "down" } else { "auto" };
                    ledger.lock().unwrap().in_flight = Some(target.to_string());
                    let body = format!(r#"{{"state":"{target}"}}"#);
                    let reply = http_request(
                        admin,
                        "POST",
                        &format!("/admin/regions/{REGION}/state"),
                        &[("Content-Type", "application/json")],
                        body.as_bytes(),
                    );
                    match reply {
                        Ok(r) if r.status == 200 => {
                            let v = r.json();
                            let mut l = ledger.lock().unwrap();
                            l.acked = Some(target.to_string());
                            l.in_flight = None;
                            if !v["event"].is_null() {
                                l.acked_events.push(v["event"].clone());
                            }
                            next_down = !next_down;
                        }
                        Ok(r) => panic!("POST state {target}: {r:?}"),
                        // The server died mid-request: stays in flight.
                        Err(_) => return,
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let querier = {
            let (stop, queries) = (stop.clone(), queries.clone());
            std::thread::spawn(move || {
                let client = UdpClient::new(dns, Duration::from_millis(100));
                let q = Message::query_for(&fqdn(FAILOVER_NAME), RecordType::A);
                while !stop.load(Ordering::Relaxed) {
                    if client.try_exchange(&q).is_some() {
                        queries.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(50..=500)));
        kill9(&mut child);
        stop.store(true, Ordering::Relaxed);
        driver.join().expect("driver");
        querier.join().expect("querier");
        assert!(
            queries.load(Ordering::Relaxed) > 0,
            "round {round}: no DNS answers"
        );

        // The files as the crash left them.
        let (on_disk, torn) = check_files(&state, round);
        let l = ledger.lock().unwrap().clone();
        // Every acknowledged event is on disk, in order; at most one more
        // (the one in flight) and maybe a torn line after them.
        let key = |e: &serde_json::Value| format!("{} {} {}", e["time"], e["from"], e["to"]);
        let disk_keys: Vec<String> = on_disk.iter().map(key).collect();
        let acked_keys: Vec<String> = l.acked_events.iter().map(key).collect();
        assert!(
            disk_keys.len() >= acked_keys.len() && disk_keys.len() <= acked_keys.len() + 1,
            "round {round} (seed {seed}): {} events on disk, {} acknowledged (torn: {torn})",
            disk_keys.len(),
            acked_keys.len()
        );
        assert_eq!(
            disk_keys[..acked_keys.len()],
            acked_keys[..],
            "round {round}: acknowledged events on disk in order"
        );
        // An in-flight event that made it to disk counts as acknowledged
        // from now on (the next server serves it).
        if disk_keys.len() > acked_keys.len() {
            ledger
                .lock()
                .unwrap()
                .acked_events
                .push(on_disk.last().unwrap().clone());
        }
        on_disk_before = on_disk.len();
    }
    let slowest = starts.iter().max().unwrap();
    eprintln!(
        "{} starts, slowest to ready {slowest:?}; {} events; took {:?}",
        starts.len(),
        ledger.lock().unwrap().acked_events.len(),
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
}
