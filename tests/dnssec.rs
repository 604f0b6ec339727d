//! DNSSEC as the outside world checks it, with tools that did not write
//! the signatures: a validating `unbound` whose trust anchor is the
//! served DNSKEY (AD on every answer, positive and negative, steered or
//! not, before and after a failover; SERVFAIL with a wrong anchor or
//! past the signatures' expiry), BIND's `delv` ("fully validated"), and
//! dnspython checking every RRset of DO answers.
//!
//! Packets only ever go to 127.0.0.0/8. A missing tool fails the test
//! with how to install it.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::fleet::{FleetOptions, TestFleet};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

const GEO_NAME: &str = "api-contracts-geo";

/// A P-256 key in PKCS#8 PEM, mode 0600, made by the test itself.
fn key_file(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.to_str().unwrap())
}

/// The test config with a geo record over the project's GeoIP fixture and
/// `[dnssec]` signing with `key`.
fn signed_config(key: &Path) -> String {
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip-fixtures/keiko-regions.mmdb");
    let mut text = default_config();
    text += &format!(
        "\n[[records]]\nname   = \"{GEO_NAME}\"\npolicy = \"geo\"\nttl    = {STEERED_TTL}\n"
    );
    text += &format!(
        "\n[geoip]\ndatabase = {}\ndefault  = [\"us-east-1\", \"eu-west-1\", \"ap-southeast-1\"]\n\
         \n[geoip.continents]\nEU = [\"eu-west-1\", \"us-east-1\", \"ap-southeast-1\"]\n\
         AS = [\"ap-southeast-1\", \"eu-west-1\", \"us-east-1\"]\n",
        toml_path(&db)
    );
    text += &format!("\n[dnssec]\nkeys = [{}]\n", toml_path(key));
    text
}

fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: run tests/run.sh, which installs {package}"))
}

/// `dig` output for `args` against the server.
fn dig(server: &Server, args: &[&str]) -> String {
    let addr = server.dns_addr();
    let out = Command::new(tool("dig", "dnsutils"))
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "dig {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The served DNSKEY RRset as `dig` prints it: the trust anchor.
fn served_dnskey(server: &Server) -> String {
    let text = dig(server, &[ORIGIN, "DNSKEY", "+noall", "+answer"]);
    assert!(text.contains("DNSKEY\t257 3 13 "), "{text}");
    text
}

struct Signed {
    server: Server,
    _keys: tempfile::TempDir,
}

fn start_signed() -> Signed {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), "zone.pem");
    let server = Server::start(&signed_config(&key), &default_zone());
    Signed {
        server,
        _keys: keys,
    }
}

fn assert_validated(unbound: &Unbound, m: &Message, what: &str, rcode: ResponseCode) {
    assert_eq!(
        m.metadata.response_code,
        rcode,
        "{what}: {m:#?}\nunbound log:\n{}",
        unbound.log()
    );
    assert!(
        m.metadata.authentic_data,
        "{what}: AD not set: {m:#?}\nunbound log:\n{}",
        unbound.log()
    );
}

fn v4(m: &Message) -> Vec<IpAddr> {
    addresses(m)
}

#[test]
fn a_validating_resolver_sets_ad_on_every_answer() {
    let s = start_signed();
    let anchor = served_dnskey(&s.server);
    let unbound = Unbound::start_with(
        s.server.ws.dns_port,
        Some(Validation {
            anchor: &anchor,
            date: None,
        }),
    );
    let ok = ResponseCode::NoError;
    // Static data, the apex, negative answers.
    for (name, rtype, rcode) in [
        (ORIGIN, RecordType::SOA, ok),
        (ORIGIN, RecordType::NS, ok),
        (ORIGIN, RecordType::DNSKEY, ok),
        (ORIGIN, RecordType::CDS, ok),
        (ORIGIN, RecordType::MX, ok),
        ("www", RecordType::A, ok),
        ("www", RecordType::TXT, ok),
        ("no-such-name", RecordType::A, ResponseCode::NXDomain),
        (
            "deeper.no-such-name",
            RecordType::AAAA,
            ResponseCode::NXDomain,
        ),
        (FAILOVER_NAME, RecordType::MX, ok),
        (FAILOVER_NAME, RecordType::AAAA, ok),
    ] {
        let m = unbound.resolve(name, rtype, None);
        assert_validated(&unbound, &m, &format!("{name} {rtype}"), rcode);
    }
    // Each region by name, and geo answers for several client subnets.
    for (i, name) in REGION_NAMES.iter().enumerate() {
        let m = unbound.resolve(name, RecordType::A, None);
        assert_validated(&unbound, &m, name, ok);
        assert_eq!(v4(&m), vec![IpAddr::V4(REGIONS[i].v4)]);
        let m = unbound.resolve(name, RecordType::AAAA, None);
        assert_validated(&unbound, &m, name, ok);
    }
    for (subnet, region) in [
        (("81.2.69.142", 32), 1),   // GB: Europe
        (("216.160.83.56", 32), 0), // US
        (("202.196.224.1", 32), 2), // PH: Asia
        (("89.160.20.112", 28), 1), // SE
    ] {
        let m = unbound.resolve(GEO_NAME, RecordType::A, Some(subnet));
        assert_validated(&unbound, &m, &format!("geo {subnet:?}"), ok);
        assert_eq!(v4(&m), vec![IpAddr::V4(REGIONS[region].v4)], "{subnet:?}");
    }
    // Failover and weighted, before and after forced failovers: every
    // region's answer validates.
    let m = unbound.resolve(FAILOVER_NAME, RecordType::A, None);
    assert_validated(&unbound, &m, "failover", ok);
    assert_eq!(v4(&m), vec![IpAddr::V4(REGIONS[0].v4)]);
    let m = unbound.resolve(WEIGHTED_NAME, RecordType::A, None);
    assert_validated(&unbound, &m, "weighted", ok);
    for (down, expect) in [(vec![0], 1), (vec![0, 1], 2)] {
        for region in &down {
            let reply = s.server.post(
                &format!("/admin/regions/{}/state", REGIONS[*region].name),
                r#"{"state":"down"}"#,
                None,
            );
            assert_eq!(reply.status, 200, "{reply:?}");
        }
        // A fresh resolver each time: the answers above are cached.
        let fresh = Unbound::start_with(
            s.server.ws.dns_port,
            Some(Validation {
                anchor: &anchor,
                date: None,
            }),
        );
        for name in [FAILOVER_NAME, WEIGHTED_NAME] {
            let m = fresh.resolve(name, RecordType::A, None);
            assert_validated(&fresh, &m, &format!("{name} with {down:?} down"), ok);
            let got = v4(&m);
            if name == FAILOVER_NAME {
                assert_eq!(got, vec![IpAddr::V4(REGIONS[expect].v4)], "{name}");
            } else {
                assert!(
                    down.iter().all(|d| got != vec![IpAddr::V4(REGIONS[*d].v4)]),
                    "weighted answered a region that is down: {got:?}"
                );
            }
            let m = fresh.resolve(name, RecordType::AAAA, None);
            assert_validated(&fresh, &m, &format!("{name} AAAA with {down:?} down"), ok);
        }
    }
}

#[test]
fn a_wrong_trust_anchor_or_a_date_past_expiry_is_servfail() {
    let s = start_signed();
    let anchor = served_dnskey(&s.server);
    // Negative controls: the same queries must fail validation.
    let wrong_ds = format!("{ORIGIN} 3600 IN DS 12345 13 2 {}\n", "AB".repeat(32));
    let far = (chrono_like_now_plus_days(60)).to_string();
    for (why, anchor, date) in [
        ("a DS of another key", wrong_ds.as_str(), None),
        ("60 days later", anchor.as_str(), Some(far.as_str())),
    ] {
        let unbound = Unbound::start_with(s.server.ws.dns_port, Some(Validation { anchor, date }));
        for (name, rtype) in [
            (FAILOVER_NAME, RecordType::A),
            ("www", RecordType::A),
            ("no-such-name", RecordType::A),
        ] {
            let q = unbound.query(name, rtype, None);
            let m = UdpClient::new(unbound.addr, std::time::Duration::from_secs(3)).exchange(&q);
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::ServFail,
                "{why}: {name} {rtype} must not validate: {m:#?}"
            );
        }
    }
}

/// YYYYMMDDHHMMSS `days` from now, for unbound's val-override-date.
fn chrono_like_now_plus_days(days: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("+{days} days"), "+%Y%m%d%H%M%S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn delv_reports_fully_validated() {
    let s = start_signed();
    let dnskey = served_dnskey(&s.server);
    let dir = tempfile::tempdir().unwrap();
    // delv's anchor file: trust-anchors { name static-key flags proto alg "key"; };
    let mut anchors = String::from("trust-anchors {\n");
    for line in dnskey.lines().filter(|l| l.contains("DNSKEY")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let key: String = fields[7..].concat();
        anchors += &format!(
            "  \"{ORIGIN}\" static-key {} {} {} \"{key}\";\n",
            fields[4], fields[5], fields[6]
        );
    }
    anchors += "};\n";
    let file = dir.path().join("anchors.conf");
    std::fs::write(&file, anchors).unwrap();
    let addr = s.server.dns_addr();
    for (name, rtype) in [
        (FAILOVER_NAME, "A"),
        (WEIGHTED_NAME, "AAAA"),
        ("www", "A"),
        ("no-such-name", "A"),
        (FAILOVER_NAME, "TXT"),
    ] {
        let out = Command::new(tool("delv", "bind9-dnsutils"))
            .arg(format!("@{}", addr.ip()))
            .args(["-p", &addr.port().to_string(), "-a"])
            .arg(&file)
            .arg(format!("+root={ORIGIN}"))
            .args([&fqdn(name), rtype])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("; fully validated")
                || text.contains("; negative response, fully validated"),
            "delv {name} {rtype}:\n{text}"
        );
    }
}

const DNSPYTHON_CHECK: &str = r#"
import sys, dns.message, dns.query, dns.dnssec, dns.rdatatype, dns.name, dns.flags
host, port, origin = sys.argv[1], int(sys.argv[2]), dns.name.from_text(sys.argv[3])
keys = dns.query.tcp(dns.message.make_query(origin, "DNSKEY", want_dnssec=True), host, port=port)
dnskey = next(r for r in keys.answer if r.rdtype == dns.rdatatype.DNSKEY)
checked = 0
for line in sys.argv[4:]:
    name, rtype = line.split("/")
    q = dns.message.make_query(dns.name.from_text(name, origin), rtype, want_dnssec=True)
    m = dns.query.tcp(q, host, port=port)
    for section in (m.answer, m.authority, m.additional):
        sigs = {(r.name, r.covers): r for r in section if r.rdtype == dns.rdatatype.RRSIG}
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sig = sigs.get((rrset.name, rrset.rdtype))
            if sig is None:
                sys.exit(f"{name}/{rtype}: no RRSIG for {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}")
            dns.dnssec.validate(rrset, sig, {origin: dnskey})
            checked += 1
print(checked)
"#;

#[test]
fn dnspython_validates_every_rrset_of_do_answers() {
    let s = start_signed();
    let probe = Command::new("python3")
        .args([
            "-c",
            "import sys, dns._features as f; sys.exit(0 if f.have('dnssec') else 1)",
        ])
        .output()
        .expect("python3 not found: run tests/run.sh");
    assert!(
        probe.status.success(),
        "dnspython with cryptography is missing: run tests/run.sh (pip install dnspython 'cryptography>=50')\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let addr = s.server.dns_addr();
    let mut args = vec![
        "-c".to_string(),
        DNSPYTHON_CHECK.to_string(),
        addr.ip().to_string(),
        addr.port().to_string(),
        ORIGIN.to_string(),
    ];
    for q in [
        "@/SOA",
        "@/NS",
        "@/DNSKEY",
        "@/CDS",
        "@/CDNSKEY",
        "@/MX",
        "@/NSEC",
        "www/A",
        "no-such-name/A",
        "api-contracts/A",
        "api-contracts/AAAA",
        "api-contracts/TXT",
        "api-contracts-weighted/A",
        "api-contracts-geo/AAAA",
        "api-contracts-ap-southeast/A",
    ] {
        args.push(q.to_string());
    }
    let out = Command::new("python3").args(&args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dnspython: {text}");
    let checked: usize = text.trim().parse().unwrap();
    assert!(checked >= 25, "only {checked} RRsets checked");
}

#[test]
fn do_answers_that_do_not_fit_are_truncated_and_complete_over_tcp() {
    let s = start_signed();
    let udp = dig(
        &s.server,
        &[ORIGIN, "NS", "+dnssec", "+bufsize=512", "+ignore"],
    );
    assert!(udp.contains(" tc") || udp.contains("tc "), "{udp}");
    let tcp = dig(&s.server, &[ORIGIN, "NS", "+dnssec", "+tcp"]);
    assert!(tcp.contains("RRSIG\tNS 13 "), "{tcp}");
    // Without DO the answer is exactly the unsigned one.
    let plain = dig(&s.server, &[FAILOVER_NAME_FQDN, "A", "+noall", "+answer"]);
    assert!(!plain.contains("RRSIG"), "{plain}");
}

const FAILOVER_NAME_FQDN: &str = "api-contracts.keiko.example.com.";

#[test]
fn every_instance_of_a_fleet_signs_with_the_same_key_and_validates() {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), "zone.pem");
    let fleet = TestFleet::start(FleetOptions {
        extra: format!("\n[dnssec]\nkeys = [{}]\n", toml_path(&key)),
        ..FleetOptions::default()
    });
    let anchors: Vec<String> = fleet.nodes.iter().map(served_dnskey).collect();
    assert!(
        anchors.iter().all(|a| *a == anchors[0]),
        "one DNSKEY: {anchors:#?}"
    );
    for node in &fleet.nodes {
        let unbound = Unbound::start_with(
            node.ws.dns_port,
            Some(Validation {
                anchor: &anchors[0],
                date: None,
            }),
        );
        for (name, rtype, rcode) in [
            (FAILOVER_NAME, RecordType::A, ResponseCode::NoError),
            (WEIGHTED_NAME, RecordType::AAAA, ResponseCode::NoError),
            ("no-such-name", RecordType::A, ResponseCode::NXDomain),
        ] {
            let m = unbound.resolve(name, rtype, None);
            assert_validated(&unbound, &m, &format!("{} {name}", node.ws.dns_port), rcode);
        }
    }
}

#[test]
fn a_bad_key_is_a_clear_error_and_a_reload_keeps_the_signed_table() {
    use std::os::unix::fs::PermissionsExt;
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), "zone.pem");
    let server = Server::start(&signed_config(&key), &default_zone());
    let before = served_dnskey(&server);
    let signed = |s: &Server| dig(s, &[FAILOVER_NAME_FQDN, "A", "+dnssec", "+norec"]);
    assert!(signed(&server).contains("RRSIG\tA 13 "));
    // World-readable, then not a P-256 key, then gone: each refused by
    // check and by reload, and the signed answers keep coming.
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    type Break<'a> = Box<dyn Fn() + 'a>;
    let cases: [(&str, Break); 3] = [
        (
            "readable by others",
            Box::new(|| {
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap()
            }),
        ),
        (
            "not an ECDSA P-256 key",
            Box::new(|| {
                std::fs::write(&key, p384.serialize_pem()).unwrap();
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            }),
        ),
        (
            "cannot read",
            Box::new(|| std::fs::remove_file(&key).unwrap()),
        ),
    ];
    for (problem, break_it) in cases {
        break_it();
        let check = server.ws.check();
        let text = output_text(&check);
        assert!(
            !check.status.success(),
            "check accepted a key that is {problem}"
        );
        assert!(
            text.contains("dnssec.keys") && text.contains(problem),
            "check's error names the key and the problem ({problem}):\n{text}"
        );
        let log = server.reload();
        assert!(log.contains("reload failed"), "{problem}: {log}");
        assert!(
            signed(&server).contains("RRSIG\tA 13 "),
            "{problem}: still signed"
        );
        assert_eq!(served_dnskey(&server), before, "{problem}: same key served");
    }
}

#[test]
fn wildcard_answers_and_their_denials_validate() {
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), "zone.pem");
    let zone = default_zone() + "*.apps 300 IN A 192.0.2.44\n";
    let server = Server::start(&signed_config(&key), &zone);
    let anchor = served_dnskey(&server);
    let unbound = Unbound::start_with(
        server.ws.dns_port,
        Some(Validation {
            anchor: &anchor,
            date: None,
        }),
    );
    let ok = ResponseCode::NoError;
    for (name, rtype, rcode) in [
        ("x.apps", RecordType::A, ok),
        ("Mixed.Case.apps", RecordType::A, ok),
        ("x.apps", RecordType::TXT, ok),
        ("x.nope.apps-not", RecordType::A, ResponseCode::NXDomain),
    ] {
        let m = unbound.resolve(name, rtype, None);
        assert_validated(&unbound, &m, &format!("{name} {rtype}"), rcode);
        if rtype == RecordType::A && rcode == ok {
            assert_eq!(
                v4(&m),
                vec!["192.0.2.44".parse::<IpAddr>().unwrap()],
                "{name}"
            );
            assert_eq!(
                m.answers[0].name.to_string().to_lowercase(),
                fqdn(name).to_lowercase(),
                "the owner is the query name"
            );
        }
    }
}
