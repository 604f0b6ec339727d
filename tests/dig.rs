//! The server as operators see it through the real `dig` (Debian dnsutils).
//! A missing `dig` fails these tests: they must never pass without running.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;

/// `dig` on PATH; fails the test with how to get it otherwise.
fn dig_path() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("dig"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("dig not found: run tests/run.sh, which installs dnsutils"))
}

/// Runs `dig @127.0.0.1 -p PORT ARGS...` against `server`. Short
/// timeouts, so a server that does not answer fails fast instead of
/// hanging; `+tries=2` absorbs one lost datagram.
fn dig_output(server: &Server, args: &[&str]) -> Output {
    let addr = server.dns_addr();
    Command::new(dig_path())
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("run dig")
}

/// dig's stdout, asserting it exited 0 (it does for any DNS answer, even
/// NXDOMAIN; not for no answer at all).
fn dig(server: &Server, args: &[&str]) -> String {
    let out = dig_output(server, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dig {args:?} exited with {}:\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `dig +short` lines.
fn short(server: &Server, name: &str, extra: &[&str]) -> Vec<String> {
    let name = fqdn(name);
    let mut args = vec![name.as_str(), "+short"];
    args.extend_from_slice(extra);
    dig(server, &args).lines().map(str::to_owned).collect()
}

/// Asserts dig's full output has `needle`, comparing with runs of blanks
/// squashed (dig aligns columns with tabs that depend on name lengths).
fn assert_has(output: &str, needle: &str) {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squash(output).contains(&squash(needle)),
        "{needle:?} not in dig output:\n{output}"
    );
}

/// The flags of dig's `;; flags: qr aa rd;` line.
fn flags(output: &str) -> Vec<String> {
    let line = output
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or_else(|| panic!("no flags line in:\n{output}"));
    let flags = line
        .trim_start_matches(";; flags:")
        .split(';')
        .next()
        .unwrap();
    flags.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn dig_short_answers_for_steered_names() {
    let server = Server::start_default();
    let us = REGIONS[0];
    assert_eq!(short(&server, FAILOVER_NAME, &[]), [us.v4.to_string()]);
    assert_eq!(
        short(&server, FAILOVER_NAME, &["AAAA"]),
        [us.v6.to_string()]
    );
    assert_eq!(
        short(&server, FAILOVER_NAME, &["+tcp"]),
        [us.v4.to_string()]
    );
    assert_eq!(
        short(&server, FAILOVER_NAME, &["AAAA", "+tcp"]),
        [us.v6.to_string()]
    );
    for (name, region) in REGION_NAMES.iter().zip(REGIONS) {
        assert_eq!(short(&server, name, &[]), [region.v4.to_string()], "{name}");
        assert_eq!(
            short(&server, name, &["AAAA"]),
            [region.v6.to_string()],
            "{name}"
        );
    }
    let weighted = short(&server, WEIGHTED_NAME, &[]);
    let known: Vec<String> = REGIONS.iter().map(|r| r.v4.to_string()).collect();
    assert!(
        weighted.len() == 1 && known.contains(&weighted[0]),
        "{weighted:?}"
    );
}

#[test]
fn dig_sees_an_authoritative_answer_with_ttl() {
    let server = Server::start_default();
    let out = dig(&server, &[&fqdn(FAILOVER_NAME), "A"]);
    assert_has(&out, "status: NOERROR");
    let flags = flags(&out);
    assert!(flags.contains(&"aa".into()), "aa in {flags:?}");
    assert!(!flags.contains(&"ra".into()), "no ra in {flags:?}");
    let answer = format!(
        "{}\t{STEERED_TTL}\tIN\tA\t{}",
        fqdn(FAILOVER_NAME),
        REGIONS[0].v4
    );
    assert_has(&out, &answer);
}

#[test]
fn dig_sees_nxdomain_with_the_soa() {
    let server = Server::start_default();
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&server, &[&fqdn("no-such-name"), "A", transport]);
        assert_has(&out, "status: NXDOMAIN");
        assert!(flags(&out).contains(&"aa".into()), "aa set:\n{out}");
        assert_has(&out, ";; AUTHORITY SECTION:");
        assert_has(
            &out,
            &format!("{ORIGIN} 300 IN SOA ns1.{ORIGIN} hostmaster.{ORIGIN}"),
        );
    }
}

#[test]
fn dig_follows_the_static_cname() {
    let server = Server::start_default();
    assert_eq!(
        short(&server, "www", &[]),
        [fqdn("status"), "192.0.2.80".into()]
    );
}

#[test]
fn dig_gets_the_nsid() {
    let server = Server::start_default();
    let out = dig(&server, &[&fqdn("status"), "+nsid"]);
    // dig prints the NSID as hex and, when printable, as text.
    assert_has(&out, "; NSID:");
    assert_has(&out, "(\"ns1.test\")");
    assert_has(&out, "udp: 1232");
}

#[test]
fn dig_retries_a_truncated_answer_over_tcp() {
    // About 2.3 kB: more than any UDP answer we send.
    let server = Server::start(&default_config(), &zone_with(&txt_rrset("big", 20)));
    let out = dig(&server, &[&fqdn("big"), "TXT", "+bufsize=1232"]);
    assert_has(&out, ";; Truncated, retrying in TCP mode.");
    assert_has(&out, "ANSWER: 20,");
}

#[test]
fn dig_sees_refused_outside_the_zone_and_for_zone_transfers() {
    let server = Server::start_default();
    let out = dig(&server, &["example.org.", "A"]);
    assert_has(&out, "status: REFUSED");
    // dig exits non-zero when a transfer fails, so the output is read as is.
    let axfr = dig_output(&server, &[ORIGIN, "AXFR"]);
    let text = String::from_utf8_lossy(&axfr.stdout);
    assert_has(&text, "Transfer failed.");
}

#[test]
fn dig_sees_badvers_for_edns_version_1() {
    let server = Server::start_default();
    let out = dig(&server, &[&fqdn("status"), "+edns=1", "+noednsnegotiation"]);
    assert_has(&out, "status: BADVERS");
    assert_has(&out, "EDNS: version: 0");
}
