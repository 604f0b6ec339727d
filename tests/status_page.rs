//! Black-box tests of the status page (`GET /`, docs/reference.md §4.2): one
//! self-contained HTML document that refreshes itself, rendered in a real
//! headless Chromium against a running server. The test checks the DOM
//! after the page's script ran (three regions, a forced-down region shown
//! as such, steered answers, the failover timeline) and saves a screenshot
//! to `target/test-artifacts/status-page.png` for people to look at.
//! The fleet panel shows only with `[fleet]`; as no fleet runs in these
//! tests, a real server's `/status` with a hand-made `fleet` and
//! `observers` is served to the page by a small loopback stand-in. The
//! DNSSEC panel is checked against a server that signs its zone, and with
//! the expiry moved near and past by the same stand-in.
//!
//! Chromium only ever talks to the server's admin port on 127.0.0.1: the
//! flags below switch off its background services, and its resolver maps
//! every host name to "not found" so nothing can leave the machine even if
//! the page referred to one. Health endpoints are stubs on 127.0.0.1.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long one Chromium run may take before the test gives up on it.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(40);

fn fast_config() -> String {
    format!(
        "{}\n[health]\ninterval = \"500ms\"\ntimeout = \"500ms\"\nfast_interval = \"500ms\"\n",
        default_config()
    )
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// Runs headless Chromium on `url` with `extra` flags in a fresh profile;
/// kills it if it hangs.
fn chromium(url: &str, extra: &[&str]) -> Output {
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "Chromium only loads loopback: {url}"
    );
    if !Path::new(CHROMIUM).exists() {
        panic!("chromium not found: run tests/run.sh (it installs Debian's chromium package)");
    }
    let profile = tempfile::Builder::new()
        .prefix("keiko-chromium-")
        .tempdir()
        .expect("temp profile");
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-dev-shm-usage",
        "--no-pings",
        "--hide-scrollbars",
        // Every name but the loopback address resolves to nothing.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        // Let the page's script run (and refresh once) before the dump.
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn chromium");
    // Read the pipes on threads so a chatty Chromium cannot block on them.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// The text of the element whose opening tag contains `marker`, up to the
/// next element that carries the same kind of marker (a crude but
/// dependency-free way to look inside one region card of the dump).
fn section<'a>(dom: &'a str, marker: &str, next: &str) -> &'a str {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in the rendered page:\n{dom}"));
    let rest = &dom[start + marker.len()..];
    let end = rest.find(next).unwrap_or(rest.len());
    &rest[..end]
}

/// Text content of an HTML fragment: tags dropped, whitespace collapsed.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_page_is_one_self_contained_document_that_refreshes_itself() {
    let server = Server::start(&fast_config(), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    let HttpReply {
        status,
        head,
        body: html,
    } = server.get("/");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    let lower = html.to_ascii_lowercase();
    assert!(lower.starts_with("<!doctype html>"), "not an HTML document");
    // No external assets: nothing fetched from anywhere but this server.
    for attr in ["src=", "href=", "url(", "@import"] {
        for (i, _) in lower.match_indices(attr) {
            let after = lower[i + attr.len()..].trim_start_matches(['"', '\'', ' ']);
            assert!(
                !after.starts_with("http://")
                    && !after.starts_with("https://")
                    && !after.starts_with("//"),
                "external asset at {:?}",
                &html[i..(i + 80).min(html.len())]
            );
        }
    }
    assert!(!lower.contains("<link"), "no linked stylesheets or icons");
    // The current status is embedded (the page works before any refresh)
    // and refreshed from /status.
    for region in REGIONS {
        assert!(html.contains(region.name), "{} not embedded", region.name);
    }
    assert!(
        html.contains("fetch(\"/status\""),
        "the page must refresh from /status"
    );
    assert!(
        html.contains("setInterval("),
        "the page must refresh periodically"
    );
}

#[test]
fn chromium_renders_regions_forced_state_answers_and_history() {
    let server = Server::start(&fast_config(), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    server.force("eu-west-1", "down");
    let url = format!("http://127.0.0.1:{}/", server.ws.admin_port);

    let out = chromium(&url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium --dump-dom failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(artifacts().join("status-page.dom.html"), &dom).unwrap();

    // The three regions, each as a card.
    for region in REGIONS {
        assert!(
            dom.contains(&format!("data-region=\"{}\"", region.name)),
            "no card for {}:\n{dom}",
            region.name
        );
    }
    let card = |name: &str| {
        text_of(section(
            &dom,
            &format!("data-region=\"{name}\""),
            "data-region=",
        ))
    };
    let eu = card("eu-west-1");
    assert!(eu.contains("forced down"), "eu-west-1 card: {eu}");
    assert!(eu.contains("out"), "eu-west-1 card: {eu}");
    assert!(eu.contains("0.0 %"), "eu-west-1 share: {eu}");
    let us = card("us-east-1");
    assert!(
        us.contains("serving") && !us.contains("forced"),
        "us-east-1 card: {us}"
    );
    assert!(us.contains("66.7 %"), "us-east-1 share: {us}");
    assert!(us.contains(" ms"), "us-east-1 latency: {us}");
    assert!(card("ap-southeast-1").contains("33.3 %"));

    // Every steered name with its current answer.
    let records = text_of(section(&dom, "id=\"records\"", "</table>"));
    for name in [FAILOVER_NAME, WEIGHTED_NAME] {
        assert!(records.contains(name), "{name} missing: {records}");
    }
    for name in REGION_NAMES {
        assert!(records.contains(name), "{name} missing: {records}");
    }
    assert!(records.contains("192.0.2.10"), "{records}");

    // No fleet: no fleet panel.
    assert!(
        dom.contains("<section id=\"fleet\" hidden=\"\">"),
        "fleet panel shown without a fleet"
    );
    assert!(text_of(section(&dom, "id=\"fleet-peers\"", "</tbody>")).is_empty());
    // Not signed: no DNSSEC panel, and `dnssec` is null in /status.
    assert!(
        dom.contains("<section id=\"dnssec\" hidden=\"\">"),
        "DNSSEC panel shown for an unsigned zone"
    );
    let status = server.status();
    assert!(
        status.get("dnssec").is_some_and(Value::is_null),
        "dnssec: {:?}",
        status.get("dnssec")
    );

    // The forced failover in the timeline.
    let events = text_of(section(&dom, "id=\"events\"", "</ul>"));
    assert!(
        events.contains("eu-west-1") && events.contains("up → down"),
        "timeline: {events}"
    );

    // A screenshot for people; the test only checks it was written.
    let png = artifacts().join("status-page.png");
    let _ = std::fs::remove_file(&png);
    let out = chromium(
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1100",
        ],
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}); chromium said:\n{}",
            png.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    println!("status page screenshot: {}", png.display());
}

/// The page template as the server fills it (src/admin/page.rs): the
/// status embedded in place of `/*STATUS*/null`, `</` escaped.
fn page_with(status: &Value) -> String {
    let json = serde_json::to_string(status).unwrap().replace("</", "<\\/");
    include_str!("../src/admin/page.html").replace("/*STATUS*/null", &json)
}

/// Serves `GET /` (the page with `status` embedded) and `GET /status`
/// on 127.0.0.1 until the test process ends; returns the page's URL.
fn serve_page(status: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(head) = read_head(&mut stream) else {
                continue;
            };
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (code, kind, body) = match path {
                "/" => ("200 OK", "text/html", page_with(&status)),
                "/status" => ("200 OK", "application/json", status.to_string()),
                _ => ("404 Not Found", "text/plain", "no such path".into()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {code}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A real server's status with the fleet of three (ns1 this one, ns2 up,
/// ns3 stale and disagreeing) and each region's observers: ns2 sees
/// eu-west-1 down, ns3's observations are not fresh.
fn with_fleet(mut status: Value, isolated: bool) -> Value {
    let version = "3f2a9c1b7d4e5f60a1b2c3d4e5f60718";
    status["fleet"] = json!({
        "instance": "ns1.us-east-1",
        "down_quorum": "majority",
        "routing_version": version,
        "isolated": isolated,
        "peers": [
            {"instance": "ns2.eu-west-1", "url": "https://10.0.2.53:9400", "state": "up",
             "last_seen_seconds": 0.4, "routing_version": version, "agrees": true},
            {"instance": "ns3.ap-southeast-1", "url": "https://10.0.3.53:9400", "state": "stale",
             "last_seen_seconds": 12.5, "routing_version": "99aa00bb11cc22dd", "agrees": false},
        ],
    });
    for region in status["regions"].as_array_mut().unwrap() {
        let down_for_ns2 = region["name"] == "eu-west-1";
        region["observers"] = json!([
            {"instance": "ns1.us-east-1", "region": "us-east-1", "state": "up", "fresh": true,
             "latency_seconds": 0.001, "last_check": "2026-01-01T00:00:10Z"},
            {"instance": "ns2.eu-west-1", "region": "eu-west-1",
             "state": if down_for_ns2 { "down" } else { "up" }, "fresh": true,
             "latency_seconds": 0.08, "last_check": "2026-01-01T00:00:10Z"},
            {"instance": "ns3.ap-southeast-1", "region": "ap-southeast-1", "state": "up",
             "fresh": false, "latency_seconds": 0.2, "last_check": "2026-01-01T00:00:00Z"},
        ]);
    }
    status
}

fn dump(url: &str) -> String {
    let out = chromium(url, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium --dump-dom failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[test]
fn chromium_renders_the_fleet_panel_with_every_instance_and_vantage_point() {
    let server = Server::start(&fast_config(), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    let status = with_fleet(server.status(), false);
    let url = serve_page(status.clone());
    let dom = dump(&url);
    std::fs::write(artifacts().join("status-page-fleet.dom.html"), &dom).unwrap();

    assert!(
        dom.contains("<section id=\"fleet\">"),
        "fleet panel hidden:\n{dom}"
    );
    let head = text_of(section(&dom, "id=\"fleet-head\"", "</div>"));
    assert!(
        head.contains("ns1.us-east-1")
            && head.contains("majority")
            && head.contains("3f2a9c1b7d4e"),
        "{head}"
    );
    assert!(head.contains("2 of 3 vantage points fresh"), "{head}");
    // ns3 disagrees but is stale: every fresh peer agrees.
    assert!(
        head.contains("fleet agrees") && !head.contains("isolated"),
        "{head}"
    );

    // Every instance, this one first, with state, last seen and agreement.
    let instance = |name: &str| {
        text_of(section(
            &dom,
            &format!("<tr data-instance=\"{name}\">"),
            "</tr>",
        ))
    };
    let peers = section(&dom, "id=\"fleet-peers\"", "</tbody>");
    let first = peers.find("data-instance=").unwrap();
    assert!(
        peers[first..].starts_with("data-instance=\"ns1.us-east-1\""),
        "{peers}"
    );
    assert_eq!(
        instance("ns1.us-east-1"),
        "ns1.us-east-1 up this instance yes 3f2a9c1b7d4e"
    );
    assert_eq!(
        instance("ns2.eu-west-1"),
        "ns2.eu-west-1 up 0.4 s ago yes 3f2a9c1b7d4e"
    );
    assert_eq!(
        instance("ns3.ap-southeast-1"),
        "ns3.ap-southeast-1 stale 13 s ago no 99aa00bb11cc"
    );

    // Regions x vantage points: ns3 is not fresh ("–").
    let matrix_head = text_of(section(&dom, "id=\"fleet-matrix-head\"", "</thead>"));
    assert_eq!(
        matrix_head,
        "Region / seen from ns1.us-east-1 ns2.eu-west-1 ns3.ap-southeast-1 Verdict"
    );
    let observed = |region: &str| {
        text_of(section(
            &dom,
            &format!("<tr data-observed=\"{region}\">"),
            "</tr>",
        ))
    };
    assert_eq!(observed("us-east-1"), "us-east-1 up up – serving");
    assert_eq!(observed("eu-west-1"), "eu-west-1 up down – serving");
    assert_eq!(observed("ap-southeast-1"), "ap-southeast-1 up up – serving");

    // A screenshot for people; the test only checks it was written.
    let png = artifacts().join("status-page-fleet.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,1600",
        ],
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    println!("fleet status page screenshot: {}", png.display());

    // Isolated, and a fresh peer that disagrees: both said at the top.
    let mut alone = with_fleet(server.status(), true);
    alone["fleet"]["peers"][0]["agrees"] = json!(false);
    let head = text_of(section(
        &dump(&serve_page(alone)),
        "id=\"fleet-head\"",
        "</div>",
    ));
    assert!(head.contains("isolated: deciding alone"), "{head}");
    assert!(head.contains("disagreement"), "{head}");
}

/// Unix seconds now.
fn unix_now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

#[test]
fn a_signed_zone_shows_its_key_tags_algorithm_and_earliest_expiry() {
    // Two keys from `keiko-dns dnssec keygen`: the first signs, the second
    // is only published.
    let keys = tempfile::tempdir().unwrap();
    let mut tags = Vec::new();
    let mut paths = Vec::new();
    for name in ["signing.pem", "next.pem"] {
        let path = keys.path().join(name);
        let out = Command::new(binary())
            .args(["dnssec", "keygen", "--origin", ORIGIN, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", output_text(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ds = text
            .lines()
            .find(|l| l.contains(" IN DS "))
            .unwrap_or_else(|| panic!("no DS in:\n{text}"));
        let tag: u64 = ds.split_whitespace().nth(4).unwrap().parse().unwrap();
        tags.push(tag);
        paths.push(format!("\"{}\"", path.display()));
    }
    let config = format!(
        "{}\n[dnssec]\nkeys = [{}]\nsignature_validity = \"3d\"\nrefresh = \"1d\"\n",
        fast_config(),
        paths.join(", ")
    );
    let server = Server::start(&config, &default_zone());
    server.wait_ready(Duration::from_secs(10));

    // /status: the contract's `dnssec` object.
    let status = server.status();
    let d = &status["dnssec"];
    assert_eq!(d["algorithm"], 13, "{d}");
    assert_eq!(d["signing_key_tag"], json!(tags[0]), "{d}");
    assert_eq!(d["key_tags"], json!(tags), "{d}");
    assert!(d["signatures"].as_u64().unwrap() >= 6, "{d}");
    // Signed an hour in the past, for 3 days from there.
    let left = d["expires_in_seconds"].as_i64().unwrap();
    let want = 3 * 86_400 - 3600;
    assert!((want - 120..=want + 1).contains(&left), "{d}");
    let expiry = humantime::parse_rfc3339(d["earliest_expiration"].as_str().unwrap())
        .unwrap_or_else(|e| panic!("earliest_expiration is not RFC 3339 ({e}): {d}"));
    let expiry = expiry
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let from_now = i64::try_from(expiry).unwrap() - unix_now();
    assert!((from_now - left).abs() <= 5, "{d}");

    // The page the server renders shows them.
    let url = format!("http://127.0.0.1:{}/", server.ws.admin_port);
    let dom = dump(&url);
    std::fs::write(artifacts().join("status-page-dnssec.dom.html"), &dom).unwrap();
    assert!(
        dom.contains("<section id=\"dnssec\">"),
        "DNSSEC panel hidden for a signed zone:\n{dom}"
    );
    let panel = text_of(section(&dom, "id=\"dnssec-body\"", "</section>"));
    for needle in [
        "signed".to_owned(),
        "algorithm 13 (ECDSAP256SHA256)".to_owned(),
        format!("signing key tag {}", tags[0]),
        format!("also published {}", tags[1]),
        format!(
            "earliest expiry {}",
            d["earliest_expiration"].as_str().unwrap()
        ),
        "(in 2 d 22 h)".to_owned(),
    ] {
        assert!(panel.contains(&needle), "{needle:?} not in: {panel}");
    }
    assert!(!panel.contains("re-signing has stopped"), "{panel}");

    // Within a day, then past: amber, then red.
    let mut near = status.clone();
    near["dnssec"]["expires_in_seconds"] = json!(5 * 3600);
    let panel = text_of(section(
        &dump(&serve_page(near)),
        "id=\"dnssec-body\"",
        "</section>",
    ));
    assert!(
        panel.contains("expires within a day: re-signing has stopped")
            && panel.contains("(in 5 h 0 min)"),
        "{panel}"
    );
    let mut past = status;
    past["dnssec"]["expires_in_seconds"] = json!(-120);
    let panel = text_of(section(
        &dump(&serve_page(past)),
        "id=\"dnssec-body\"",
        "</section>",
    ));
    assert!(
        panel.contains("signatures expired 2 min ago") && panel.contains("(passed)"),
        "{panel}"
    );
}
