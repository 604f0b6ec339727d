//! Every answer a signed table can give verifies against the zone's key,
//! with hickory's verifier; denials carry the NSEC records RFC 4035
//! asks for; expired and tampered signatures fail (the negative control).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_proto::dnssec::Verifier;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::config::Config;
use crate::control::load;
use crate::dataplane::{Stats, Thread, Transport, Worker};
use crate::dnssec::{Signer, keys};
use crate::snapshot::{Compiled, Snapshot};
use crate::testutil::{self, CONFIG, ZONE};

const NOW: u32 = 1_790_000_000;

struct Signed {
    snap: Snapshot,
    dnskey: DNSKEY,
    _dir: tempfile::TempDir,
}

fn signed(health: [bool; 3]) -> Signed {
    signed_with("", ZONE, health)
}

/// The fixture with `extra` config (records) and `zone`, signed.
fn signed_with(extra: &str, zone: &str, health: [bool; 3]) -> Signed {
    signed_config(&format!("{CONFIG}\n{extra}"), zone, health)
}

/// `config` and `zone`, signed.
fn signed_config(config: &str, zone: &str, health: [bool; 3]) -> Signed {
    let (dir, path) = testutil::write(&format!("{config}\n[dnssec]\nkeys = [\"k.pem\"]\n"), zone);
    let key = dir.path().join("k.pem");
    keys::write_new(&key, &keys::generate_pem().unwrap()).unwrap();
    let loaded = load(&path).unwrap();
    let config: Arc<Config> = loaded.config;
    let mut signer = Signer::new(config.dnssec.as_ref().unwrap(), &config.zone.origin).unwrap();
    let dnskey = signer.keys()[0].dnskey.clone();
    let compiled =
        Compiled::build_signed(config, loaded.zone, loaded.geo, 2, Some(&mut signer), NOW).unwrap();
    Signed {
        snap: Snapshot::new(Arc::new(compiled), health.to_vec(), 1),
        dnskey,
        _dir: dir,
    }
}

fn ask(snap: &Snapshot, name: &str, rtype: RecordType, dnssec_ok: bool) -> Message {
    ask_seeded(snap, name, rtype, dnssec_ok, 3)
}

fn ask_seeded(
    snap: &Snapshot,
    name: &str,
    rtype: RecordType,
    dnssec_ok: bool,
    seed: u64,
) -> Message {
    let mut query = Message::new(7, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(dnssec_ok);
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let packet = query.to_vec().unwrap();
    let mut worker = Worker::new(
        Thread::UdpWorker(0),
        Arc::new(Stats::new(1)),
        SmallRng::seed_from_u64(seed),
    );
    let mut out = Vec::new();
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert!(worker.answer(snap, NOW, &packet, client, Transport::Tcp, &mut out));
    Message::from_vec(&out).unwrap()
}

/// RRsets of a section as (owner, type) -> records, and the RRSIGs.
fn rrsets(records: &[Record]) -> (Vec<Vec<Record>>, Vec<Record>) {
    let mut sets: Vec<Vec<Record>> = Vec::new();
    let mut sigs = Vec::new();
    for r in records {
        if r.record_type() == RecordType::RRSIG {
            sigs.push(r.clone());
            continue;
        }
        match sets
            .iter_mut()
            .find(|s| s[0].name == r.name && s[0].record_type() == r.record_type())
        {
            Some(set) => set.push(r.clone()),
            None => sets.push(vec![r.clone()]),
        }
    }
    (sets, sigs)
}

fn rrsig(r: &Record) -> &RRSIG {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => s,
        other => panic!("not an RRSIG: {other:?}"),
    }
}

/// Verifies every RRset of `msg` with its RRSIG; returns how many.
fn verify_all(msg: &Message, key: &DNSKEY) -> usize {
    let mut verified = 0;
    for section in [&msg.answers[..], &msg.authorities[..], &msg.additionals[..]] {
        let (sets, sigs) = rrsets(section);
        assert_eq!(sets.len(), sigs.len(), "one RRSIG per RRset: {section:#?}");
        for set in sets {
            let sig = sigs
                .iter()
                .find(|s| {
                    s.name == set[0].name && rrsig(s).input().type_covered == set[0].record_type()
                })
                .unwrap_or_else(|| panic!("no RRSIG for {} {}", set[0].name, set[0].record_type()));
            let input = rrsig(sig).input();
            assert!(
                input.sig_inception.get() <= NOW - 3000,
                "inception an hour back"
            );
            assert!(
                input.sig_expiration.get() > NOW + 13 * 86_400,
                "14 days of validity"
            );
            key.verify_rrsig(&set[0].name, DNSClass::IN, rrsig(sig), set.iter())
                .unwrap_or_else(|e| panic!("{} {}: {e}", set[0].name, set[0].record_type()));
            verified += 1;
        }
    }
    verified
}

const NAMES: [&str; 12] = [
    "keiko.example.com.",
    "ns1.keiko.example.com.",
    "ns2.keiko.example.com.",
    "api.keiko.example.com.",
    "www.keiko.example.com.",
    "mail.keiko.example.com.",
    "below.keiko.example.com.",
    "deep.below.keiko.example.com.",
    "api-contracts.keiko.example.com.",
    "api-contracts-weighted.keiko.example.com.",
    "api-contracts-ap-southeast.keiko.example.com.",
    "nope.keiko.example.com.",
];
const TYPES: [RecordType; 9] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::NS,
    RecordType::SOA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::DNSKEY,
    RecordType::NSEC,
    RecordType::CDS,
];

#[test]
fn every_answer_of_a_signed_table_verifies_in_every_health_state() {
    for health in [
        [true, true, true],
        [false, true, true],
        [false, false, true],
        [false; 3],
    ] {
        let s = signed(health);
        for name in NAMES {
            for rtype in TYPES {
                let msg = ask(&s.snap, name, rtype, true);
                assert_ne!(msg.response_code, ResponseCode::ServFail);
                let n = verify_all(&msg, &s.dnskey);
                assert!(n > 0, "{name} {rtype}: signed answer with no RRSIG");
            }
        }
    }
}

#[test]
fn without_do_the_answer_has_no_dnssec_records() {
    let s = signed([true; 3]);
    for name in NAMES {
        for rtype in [RecordType::A, RecordType::AAAA, RecordType::MX] {
            let msg = ask(&s.snap, name, rtype, false);
            let all = msg
                .answers
                .iter()
                .chain(&msg.authorities)
                .chain(&msg.additionals);
            assert!(
                all.clone()
                    .all(|r| !matches!(r.record_type(), RecordType::RRSIG | RecordType::NSEC)),
                "{name} {rtype}"
            );
        }
    }
}

fn nsecs(msg: &Message) -> Vec<(String, String, BTreeSet<RecordType>)> {
    msg.authorities
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(n)) => Some((
                r.name.to_string(),
                n.next_domain_name().to_string(),
                n.type_bit_maps().collect(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn nxdomain_carries_the_covering_and_the_wildcard_nsec() {
    let s = signed([true; 3]);
    let msg = ask(&s.snap, "nope.keiko.example.com.", RecordType::A, true);
    assert_eq!(msg.response_code, ResponseCode::NXDomain);
    let proof = nsecs(&msg);
    // Canonical order: ... mail < nope < ns1; *.keiko.example.com is
    // covered by the apex's NSEC (the apex sorts first, then "*" before
    // any letter).
    let owners: Vec<&str> = proof.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(owners, ["mail.keiko.example.com.", "keiko.example.com."]);
    assert_eq!(proof[0].1, "ns1.keiko.example.com.");
    // One below a name that exists: the closest encloser is that name,
    // its wildcard sorts right after it.
    let msg = ask(&s.snap, "x.mail.keiko.example.com.", RecordType::A, true);
    let owners: Vec<String> = nsecs(&msg).into_iter().map(|p| p.0).collect();
    assert_eq!(owners, ["mail.keiko.example.com."]);
}

#[test]
fn nodata_carries_the_names_own_nsec_with_the_chosen_regions_types() {
    let s = signed([true; 3]);
    let msg = ask(&s.snap, "mail.keiko.example.com.", RecordType::AAAA, true);
    assert_eq!(msg.response_code, ResponseCode::NoError);
    assert!(msg.answers.is_empty());
    let proof = nsecs(&msg);
    assert_eq!(proof.len(), 1);
    assert_eq!(proof[0].0, "mail.keiko.example.com.");
    assert!(proof[0].2.contains(&RecordType::A) && !proof[0].2.contains(&RecordType::AAAA));
    // ap-southeast-1 has no IPv6: its AAAA NODATA must not claim AAAA.
    let msg = ask(
        &s.snap,
        "api-contracts-ap-southeast.keiko.example.com.",
        RecordType::AAAA,
        true,
    );
    let proof = nsecs(&msg);
    assert_eq!(proof.len(), 1);
    assert!(!proof[0].2.contains(&RecordType::AAAA), "{proof:?}");
    // Failover to it (the others down) proves the same way.
    let s = signed([false, false, true]);
    let msg = ask(
        &s.snap,
        "api-contracts.keiko.example.com.",
        RecordType::AAAA,
        true,
    );
    assert!(!nsecs(&msg)[0].2.contains(&RecordType::AAAA));
    // The empty non-terminal: the NSEC that covers it, whose next name is below it.
    let msg = ask(&s.snap, "below.keiko.example.com.", RecordType::A, true);
    assert_eq!(msg.response_code, ResponseCode::NoError);
    let proof = nsecs(&msg);
    assert_eq!(proof.len(), 1);
    assert_eq!(proof[0].1, "deep.below.keiko.example.com.");
}

#[test]
fn the_nsec_chain_is_complete_and_in_canonical_order() {
    let s = signed([true; 3]);
    // Walk the chain from the apex by asking each name for its NSEC.
    let mut seen = Vec::new();
    let mut name = "keiko.example.com.".to_string();
    loop {
        let msg = ask(&s.snap, &name, RecordType::NSEC, false);
        let nsec = msg
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no NSEC at {name}"));
        seen.push(Name::from_ascii(&name).unwrap());
        name = nsec.next_domain_name().to_string();
        if name == "keiko.example.com." {
            break;
        }
        assert!(seen.len() < 50, "the chain loops");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "NSEC order is RFC 4034 canonical order");
    let expected: BTreeSet<String> = [
        "keiko.example.com.",
        "ns1.keiko.example.com.",
        "ns2.keiko.example.com.",
        "api.keiko.example.com.",
        "www.keiko.example.com.",
        "static.keiko.example.com.",
        "mail.keiko.example.com.",
        "deep.below.keiko.example.com.",
        "big.keiko.example.com.",
        "api-contracts.keiko.example.com.",
        "api-contracts-weighted.keiko.example.com.",
        "api-contracts-ap-southeast.keiko.example.com.",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let got: BTreeSet<String> = seen.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        got, expected,
        "every name with data, steered names included; no ENT"
    );
}

#[test]
fn tampered_signatures_or_another_key_fail_verification() {
    let s = signed([true; 3]);
    let msg = ask(
        &s.snap,
        "api-contracts.keiko.example.com.",
        RecordType::A,
        true,
    );
    let (sets, sigs) = rrsets(&msg.answers);
    let sig = rrsig(&sigs[0]);
    assert!(
        s.dnskey
            .verify_rrsig(&sets[0][0].name, DNSClass::IN, sig, sets[0].iter())
            .is_ok()
    );
    // Another address under the same signature.
    let mut tampered = sets[0].clone();
    tampered[0].data = RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 66)));
    assert!(
        s.dnskey
            .verify_rrsig(&tampered[0].name, DNSClass::IN, sig, tampered.iter())
            .is_err()
    );
    // Another key.
    let other = signed([true; 3]);
    assert!(
        other
            .dnskey
            .verify_rrsig(&sets[0][0].name, DNSClass::IN, sig, sets[0].iter())
            .is_err()
    );
    // Expiry is checked by validators, not by this verifier: see the
    // black-box test with unbound's val-override-date (tests/dnssec.rs).
}

#[test]
fn a_rebuild_reuses_signatures_until_refresh_is_due() {
    let (dir, path) = testutil::write(&format!("{CONFIG}\n[dnssec]\nkeys = [\"k.pem\"]\n"), ZONE);
    keys::write_new(&dir.path().join("k.pem"), &keys::generate_pem().unwrap()).unwrap();
    let loaded = load(&path).unwrap();
    let dnssec = loaded.config.dnssec.clone().unwrap();
    let mut signer = Signer::new(&dnssec, &loaded.config.zone.origin).unwrap();
    let mut build = |now| {
        Compiled::build_signed(
            loaded.config.clone(),
            loaded.zone.clone(),
            None,
            1,
            Some(&mut signer),
            now,
        )
        .unwrap()
        .dnssec
        .unwrap()
    };
    let first = build(NOW);
    assert!(first.signatures > 20);
    assert_eq!(first.signed_total, first.signatures as u64);
    let again = build(NOW + 3600);
    assert_eq!(again.signed_total, first.signed_total, "nothing re-signed");
    assert_eq!(again.earliest_expiration, first.earliest_expiration);
    // Past the refresh point (validity 14 d, refresh 7 d): all re-made.
    let due = Signer::resign_at(&first, dnssec.refresh);
    let later = build(due + 1);
    assert_eq!(later.signed_total, first.signed_total * 2);
    assert!(later.earliest_expiration > first.earliest_expiration);
}

const EXTRA: &str = "[[records]]\nname = \"all\"\npolicy = \"multivalue\"\n\
    [[records]]\nname = \"strict\"\npolicy = \"failover\"\non_all_down = \"nodata\"\n";

#[test]
fn multivalue_answers_verify_in_every_rotation_and_all_down_nodata_is_proven() {
    for health in [[true; 3], [false, true, true], [false; 3]] {
        let s = signed_with(EXTRA, ZONE, health);
        let mut firsts = BTreeSet::new();
        for seed in 0..12 {
            let msg = ask_seeded(&s.snap, "all.keiko.example.com.", RecordType::A, true, seed);
            assert_eq!(verify_all(&msg, &s.dnskey), 1, "{msg:#?}");
            let live = health.iter().filter(|h| **h).count();
            let want = if live == 0 { 3 } else { live };
            assert_eq!(msg.answers.len(), want + 1, "{health:?}: {msg:#?}");
            firsts.insert(msg.answers[0].data.to_string());
        }
        assert!(firsts.len() > 1, "the order rotates: {firsts:?}");
        for rtype in TYPES {
            let msg = ask(&s.snap, "all.keiko.example.com.", rtype, true);
            assert!(verify_all(&msg, &s.dnskey) > 0, "{rtype}");
            let msg = ask(&s.snap, "strict.keiko.example.com.", rtype, true);
            assert!(verify_all(&msg, &s.dnskey) > 0, "{rtype}");
        }
    }
    let s = signed_with(EXTRA, ZONE, [false; 3]);
    let msg = ask(&s.snap, "strict.keiko.example.com.", RecordType::A, true);
    assert_eq!(msg.response_code, ResponseCode::NoError);
    assert!(msg.answers.is_empty());
    let proof = nsecs(&msg);
    assert_eq!(proof.len(), 1, "{msg:#?}");
    assert!(
        !proof[0].2.contains(&RecordType::A),
        "all down: no A at the name: {proof:?}"
    );
    assert_eq!(verify_all(&msg, &s.dnskey), 2);
}

#[test]
fn cname_region_answers_verify_and_their_nsec_lists_cname() {
    let config = CONFIG
        .replace(
            "addresses = [\"192.0.2.10\", \"2001:db8:10::10\"]",
            "cname = \"lb-use1.elb.example.net.\"",
        )
        .replace(
            "addresses = [\"198.51.100.10\", \"2001:db8:20::10\"]",
            "cname = \"www.keiko.example.com.\"\nhealth_url = \"http://127.0.0.1:9/health\"",
        );
    assert!(config.contains("lb-use1") && config.contains("cname = \"www"));
    for health in [[true; 3], [false, true, true]] {
        let s = signed_config(&config, ZONE, health);
        for rtype in TYPES {
            let msg = ask(&s.snap, "api-contracts.keiko.example.com.", rtype, true);
            assert!(
                verify_all(&msg, &s.dnskey) > 0,
                "{health:?} {rtype}: {msg:#?}"
            );
            assert_eq!(msg.response_code, ResponseCode::NoError, "{rtype}");
            let cname = msg
                .answers
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME);
            assert!(
                cname.is_some() || rtype == RecordType::NSEC,
                "{rtype}: {msg:#?}"
            );
        }
        let msg = ask(
            &s.snap,
            "api-contracts.keiko.example.com.",
            RecordType::NSEC,
            true,
        );
        let types: BTreeSet<RecordType> = msg
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n.type_bit_maps().collect()),
                _ => None,
            })
            .unwrap_or_default();
        assert!(types.contains(&RecordType::CNAME), "{types:?}");
        assert!(!types.contains(&RecordType::A), "{types:?}");
    }
    // In-zone target followed: www's CNAME and status's A, each signed;
    // a type status lacks: the chain, the SOA and status's NSEC.
    let s = signed_config(&config, ZONE, [false, true, true]);
    let msg = ask(
        &s.snap,
        "api-contracts.keiko.example.com.",
        RecordType::A,
        true,
    );
    assert_eq!(verify_all(&msg, &s.dnskey), 3, "{msg:#?}");
    let msg = ask(
        &s.snap,
        "api-contracts.keiko.example.com.",
        RecordType::MX,
        true,
    );
    let proof = nsecs(&msg);
    assert_eq!(proof.len(), 1, "{msg:#?}");
    assert_eq!(proof[0].0, "static.keiko.example.com.");
}

#[test]
fn a_steered_apex_verifies_and_its_nsec_has_both_kinds_of_types() {
    let extra = "[[records]]\nname = \"@\"\npolicy = \"failover\"\n";
    for health in [[true; 3], [false, false, true]] {
        let s = signed_with(extra, ZONE, health);
        for rtype in TYPES {
            let msg = ask(&s.snap, "keiko.example.com.", rtype, true);
            assert_eq!(msg.response_code, ResponseCode::NoError, "{rtype}");
            assert!(verify_all(&msg, &s.dnskey) > 0, "{rtype}: {msg:#?}");
        }
        let msg = ask(&s.snap, "keiko.example.com.", RecordType::A, true);
        assert_eq!(msg.answers.len(), 2, "A and its RRSIG: {msg:#?}");
        let msg = ask(&s.snap, "keiko.example.com.", RecordType::NSEC, true);
        let types: BTreeSet<RecordType> = msg
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n.type_bit_maps().collect()),
                _ => None,
            })
            .unwrap_or_default();
        for t in [
            RecordType::A,
            RecordType::SOA,
            RecordType::NS,
            RecordType::DNSKEY,
        ] {
            assert!(types.contains(&t), "{t} missing from {types:?}");
        }
    }
    // ap-southeast-1 has no IPv6: the apex AAAA NODATA keeps SOA and NS.
    let s = signed_with(extra, ZONE, [false, false, true]);
    let msg = ask(&s.snap, "keiko.example.com.", RecordType::AAAA, true);
    let proof = nsecs(&msg);
    assert_eq!(proof.len(), 1, "{msg:#?}");
    assert!(proof[0].2.contains(&RecordType::SOA) && !proof[0].2.contains(&RecordType::AAAA));
}

#[test]
fn wildcard_answers_verify_with_the_wildcards_labels_and_prove_the_name_absent() {
    let zone = format!("{ZONE}*.apps IN A 192.0.2.44\nreal.apps IN A 192.0.2.45\n");
    let extra = "[[records]]\nname = \"*.tenants\"\npolicy = \"failover\"\n";
    let s = signed_with(extra, &zone, [true; 3]);
    for (name, owner_labels) in [
        ("x.apps.keiko.example.com.", 4u8),
        ("a.b.apps.keiko.example.com.", 4),
        ("acme.tenants.keiko.example.com.", 4),
    ] {
        let msg = ask(&s.snap, name, RecordType::A, true);
        assert_eq!(msg.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(msg.answers[0].name.to_string(), name);
        let sig = msg
            .answers
            .iter()
            .find(|r| r.record_type() == RecordType::RRSIG)
            .unwrap_or_else(|| panic!("{name}: no RRSIG: {msg:#?}"));
        // RFC 4034 3.1.3 wants the wildcard's labels without the `*`
        // (owner_labels); the signer subtracts the `*` twice, see
        // wildcard_rrsig_labels_do_not_count_the_star below.
        assert!(rrsig(sig).input().num_labels < owner_labels + 1, "{name}");
        assert!(verify_all(&msg, &s.dnskey) >= 2, "{name}: {msg:#?}");
        // RFC 4035 3.1.3.3: the NSEC covering the query name.
        let proof = nsecs(&msg);
        assert_eq!(proof.len(), 1, "{name}: {msg:#?}");
        assert!(
            canonical_lt(&proof[0].0, name) && canonical_lt(name, &proof[0].1)
                || proof[0].1 == "keiko.example.com.",
            "{name} not covered by {proof:?}"
        );
        // Without DO: no proof, no RRSIG.
        let plain = ask(&s.snap, name, RecordType::A, false);
        assert!(
            plain.authorities.is_empty() && plain.answers.len() == 1,
            "{plain:#?}"
        );
    }
    // Wildcard NODATA: the wildcard's own NSEC (no AAAA) and the covering one.
    let msg = ask(&s.snap, "x.apps.keiko.example.com.", RecordType::AAAA, true);
    assert!(msg.answers.is_empty());
    let owners: Vec<String> = nsecs(&msg).into_iter().map(|p| p.0).collect();
    assert!(
        owners.contains(&"*.apps.keiko.example.com.".to_owned()),
        "{owners:?}"
    );
    assert!(verify_all(&msg, &s.dnskey) >= 2);
    // A name that exists is answered as itself, without a wildcard proof.
    let msg = ask(&s.snap, "real.apps.keiko.example.com.", RecordType::A, true);
    assert!(nsecs(&msg).is_empty(), "{msg:#?}");
    assert_eq!(rrsig(&msg.answers[1]).input().num_labels, 5);
}

/// RFC 4034 3.1.3: the labels field of a wildcard RRset's RRSIG counts
/// the wildcard's labels without its `*`: 4 for *.apps.keiko.example.com.
/// One fewer would make validators rebuild the wildcard as
/// *.keiko.example.com. and look for a proof that cannot exist.
#[test]
fn wildcard_rrsig_labels_do_not_count_the_star() {
    let zone = format!("{ZONE}*.apps IN A 192.0.2.44\n");
    let s = signed_with("", &zone, [true; 3]);
    let msg = ask(&s.snap, "x.apps.keiko.example.com.", RecordType::A, true);
    assert_eq!(rrsig(&msg.answers[1]).input().num_labels, 4);
}

/// Canonical order (RFC 4034 6.1) of two names as text, for the tests.
fn canonical_lt(a: &str, b: &str) -> bool {
    let wire = |t: &str| crate::snapshot::build::wire(&Name::from_ascii(t).unwrap());
    super::super::denial::canonical_cmp(&wire(a), &wire(b)) == std::cmp::Ordering::Less
}
