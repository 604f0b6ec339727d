//! Geographic steering, black box: the real `keiko-dns` binary with the
//! project's own GeoIP fixture and MaxMind's public test databases, EDNS
//! Client Subnet (RFC 7871) over the wire, the packet source as the client,
//! health, residency, corrupt databases at start and on reload, and a real
//! recursive resolver (Debian's `unbound`) in front of the server.
//!
//! Expected answers and ECS scopes are computed independently from the
//! database files (with the `maxminddb` crate, not the server's code): the
//! country and continent of each address, and the widest prefix around it
//! whose every network steers the same way.
//!
//! Packets only ever go to 127.0.0.0/8. Addresses in ECS options are data.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use maxminddb::{LookupResult, Reader, WithinOptions};

// ---------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------

const GEO_NAME: &str = "api-contracts-geo";
const US: &str = "us-east-1";
const EU: &str = "eu-west-1";
const AP: &str = "ap-southeast-1";

/// `[geoip]` of `zones/keiko.toml`: default list and continent lists.
const DEFAULT_LIST: [&str; 3] = [US, EU, AP];
const CONTINENTS: [(&str, [&str; 3]); 6] = [
    ("NA", [US, EU, AP]),
    ("SA", [US, EU, AP]),
    ("EU", [EU, US, AP]),
    ("AF", [EU, US, AP]),
    ("AS", [AP, EU, US]),
    ("OC", [AP, US, EU]),
];
/// `[geoip.countries]` of `zones/keiko.toml`.
const DEFAULT_COUNTRIES: &[(&str, &[&str])] = &[("JP", &[AP, US, EU])];

fn region(name: &str) -> &'static Region {
    REGIONS
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no region {name}"))
}

fn v4(name: &str) -> IpAddr {
    IpAddr::V4(region(name).v4)
}

fn v6(name: &str) -> IpAddr {
    IpAddr::V6(region(name).v6)
}

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|e| panic!("bad address {text}: {e}"))
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's own fixture database.
fn fixture_db() -> PathBuf {
    let path = manifest_dir()
        .join("geoip-fixtures")
        .join("keiko-regions.mmdb");
    assert!(path.is_file(), "missing fixture {}", path.display());
    path
}

/// One of MaxMind's test databases, in `geoip-fixtures/maxmind/`.
fn maxmind_db(file: &str) -> PathBuf {
    let path = manifest_dir()
        .join("geoip-fixtures")
        .join("maxmind")
        .join(file);
    assert!(
        path.is_file(),
        "missing {}: MaxMind's test databases belong in geoip-fixtures/maxmind/",
        path.display()
    );
    path
}

fn toml_path(path: &Path) -> String {
    let text = path.to_str().expect("UTF-8 path");
    assert!(!text.contains('\''), "path with a quote: {text}");
    format!("'{text}'")
}

/// The test config (`common::default_config`, every region probed at a
/// loopback stub) plus the geo name, `[geoip]` as in `zones/keiko.toml` with
/// `countries` as the country overrides, and `[residency.eu]` if asked.
fn geo_config(database: &Path, countries: &[(&str, &[&str])], residency: bool) -> String {
    let list = |l: &[&str]| {
        let quoted: Vec<String> = l.iter().map(|r| format!("\"{r}\"")).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut text = default_config();
    text += &format!(
        "\n[[records]]\nname   = \"{GEO_NAME}\"\npolicy = \"geo\"\nttl    = {STEERED_TTL}\n"
    );
    text += &format!(
        "\n[geoip]\ndatabase = {}\ndefault  = {}\n\n[geoip.continents]\n",
        toml_path(database),
        list(&DEFAULT_LIST)
    );
    for (continent, l) in CONTINENTS {
        text += &format!("{continent} = {}\n", list(&l));
    }
    text += "\n[geoip.countries]\n";
    for (country, l) in countries {
        text += &format!("{country} = {}\n", list(l));
    }
    if residency {
        text += "\n[residency.eu]\ncontinents = [\"EU\"]\ncountries  = []\nregions    = [\"eu-west-1\"]\n";
    }
    text
}

// ---------------------------------------------------------------------------
// The expected answers, computed from the database files
// ---------------------------------------------------------------------------

/// Where the database puts an address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Loc {
    country: Option<String>,
    continent: Option<String>,
}

#[derive(serde::Deserialize)]
struct Rec {
    #[serde(default)]
    country: Option<Code>,
    #[serde(default)]
    continent: Option<Code>,
}

#[derive(serde::Deserialize)]
struct Code {
    #[serde(default)]
    iso_code: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

fn loc_of(result: &LookupResult<'_, Vec<u8>>) -> Loc {
    let rec: Option<Rec> = result.decode().expect("decode record");
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    match rec {
        None => Loc {
            country: None,
            continent: None,
        },
        Some(r) => Loc {
            country: nonempty(r.country.and_then(|c| c.iso_code)),
            continent: nonempty(r.continent.and_then(|c| c.code)),
        },
    }
}

/// The steering rules of a test config, as docs/reference.md §3.5 states them.
struct Rules {
    countries: Vec<(String, Vec<&'static str>)>,
    residency: bool,
}

impl Rules {
    fn new(countries: &[(&str, &[&'static str])], residency: bool) -> Rules {
        Rules {
            countries: countries
                .iter()
                .map(|(c, l)| (c.to_string(), l.to_vec()))
                .collect(),
            residency,
        }
    }

    /// Country list, else continent list, else `default`.
    fn list(&self, loc: &Loc) -> Vec<&'static str> {
        if let Some(country) = &loc.country
            && let Some((_, l)) = self.countries.iter().find(|(c, _)| c == country)
        {
            return l.clone();
        }
        if let Some(continent) = &loc.continent
            && let Some((_, l)) = CONTINENTS.iter().find(|(c, _)| c == continent)
        {
            return l.to_vec();
        }
        DEFAULT_LIST.to_vec()
    }

    fn resident(&self, loc: &Loc) -> bool {
        self.residency && loc.continent.as_deref() == Some("EU")
    }

    /// The geo answer with every region healthy.
    fn geo_region(&self, loc: &Loc) -> &'static str {
        if self.resident(loc) {
            EU
        } else {
            self.list(loc)[0]
        }
    }

    /// What a geo answer depends on: the list and the residency block.
    fn geo_key(&self, loc: &Loc) -> (Vec<&'static str>, bool) {
        (self.list(loc), self.resident(loc))
    }
}

/// A database file opened for the expectations (not the server's reader).
struct Db {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
}

impl Db {
    fn open(path: &Path) -> Db {
        Db {
            reader: Reader::open_readfile(path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
            path: path.to_path_buf(),
        }
    }

    /// Location and prefix length of the database network holding `ip`.
    fn locate(&self, ip: IpAddr) -> (Loc, u8) {
        let result = self.reader.lookup(ip).expect("lookup");
        let network = result.network().expect("network");
        assert_eq!(
            network.ip().is_ipv4(),
            ip.is_ipv4(),
            "{ip} in {}: network {network}",
            self.path.display()
        );
        (loc_of(&result), network.prefix())
    }

    /// The widest prefix around `ip` whose every address has the same
    /// `key` as `ip` (never narrower than the database network itself). A
    /// part of a block the iteration does not cover (IPv4 aliases inside the
    /// IPv6 tree) counts as different.
    fn widest<K: PartialEq>(&self, ip: IpAddr, key: &dyn Fn(&Loc) -> K) -> u8 {
        let (loc, db_prefix) = self.locate(ip);
        let want = key(&loc);
        let (bits, min) = if ip.is_ipv4() { (32u32, 0u8) } else { (128, 1) };
        let mut scope = db_prefix;
        for p in (min..db_prefix).rev() {
            let block = format!("{}/{p}", mask(ip, p));
            let within = self
                .reader
                .within(
                    block.parse().unwrap(),
                    WithinOptions::default().include_networks_without_data(),
                )
                .expect("within");
            let mut covered: u128 = 0;
            let mut same = true;
            for item in within {
                let item = item.expect("network");
                let net = item.network().expect("network");
                if key(&loc_of(&item)) != want {
                    same = false;
                    break;
                }
                covered += 1u128 << (bits - u32::from(net.prefix()));
            }
            if !same || covered != 1u128 << (bits - u32::from(p)) {
                break;
            }
            scope = p;
        }
        scope
    }
}

// ---------------------------------------------------------------------------
// DNS helpers
// ---------------------------------------------------------------------------

/// A query for `name` carrying ECS `addr/prefix` (host bits cleared).
fn ecs_query(name: &str, rtype: RecordType, addr: IpAddr, prefix: u8) -> Message {
    Message::query_for(&fqdn(name), rtype).with_subnet(mask(addr, prefix), prefix)
}

/// Sends `query` over UDP from `source` (any 127.0.0.0/8 address, so the
/// server sees that packet source) and returns the answer.
fn exchange_from(server: &Server, source: IpAddr, query: &Message) -> Message {
    assert!(source.is_loopback());
    let socket = UdpSocket::bind((source, 0))
        .unwrap_or_else(|e| panic!("cannot bind a UDP socket to {source}: {e}"));
    socket.connect(server.dns_addr()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let bytes = query.bytes();
    let mut buf = vec![0u8; 65535];
    for _ in 0..3 {
        let _ = socket.send(&bytes);
        while let Ok(n) = socket.recv(&mut buf) {
            let answer = parse(&buf[..n]);
            if answer.metadata.id == query.metadata.id {
                return answer;
            }
        }
    }
    panic!("no answer from the server to {source}");
}

fn a_query(name: &str) -> Message {
    Message::query_for(&fqdn(name), RecordType::A)
}

/// Asserts the answer echoes `addr/prefix` (RFC 7871 7.2.1: family, source
/// prefix and address) and returns its scope prefix.
fn echoed_scope(m: &Message, addr: IpAddr, prefix: u8, what: &str) -> u8 {
    let s =
        answer_subnet(m).unwrap_or_else(|| panic!("{what}: no ECS option in the answer: {m:#?}"));
    assert_eq!(
        (s.addr(), s.source_prefix()),
        (mask(addr, prefix), prefix),
        "{what}: ECS family/address/source prefix not echoed: {s:?}"
    );
    s.scope_prefix()
}

fn the_address(m: &Message, what: &str) -> IpAddr {
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{what}: {m:#?}"
    );
    assert!(m.metadata.authoritative, "{what}: AA must be set: {m:#?}");
    let addrs = addresses(m);
    assert_eq!(addrs.len(), 1, "{what}: one address expected: {m:#?}");
    addrs[0]
}

/// Which region an A or AAAA address belongs to.
fn region_of(addr: IpAddr) -> &'static str {
    REGIONS
        .iter()
        .find(|r| IpAddr::V4(r.v4) == addr || IpAddr::V6(r.v6) == addr)
        .map(|r| r.name)
        .unwrap_or_else(|| panic!("{addr} belongs to no region"))
}

/// Polls `f` until it returns true, for at most 5 s.
fn wait_for(what: &str, server: &Server, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within 5 s; server log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Geo answers and ECS scopes against a database
// ---------------------------------------------------------------------------

/// One ECS client: address, source prefix, the country the documentation
/// gives it (None: unknown), and the region the default config sends it to.
struct Client {
    addr: &'static str,
    prefix: u8,
    country: Option<&'static str>,
    region: &'static str,
}

const fn client(
    addr: &'static str,
    prefix: u8,
    country: Option<&'static str>,
    region: &'static str,
) -> Client {
    Client {
        addr,
        prefix,
        country,
        region,
    }
}

/// The addresses MaxMind's test databases document, which the project's
/// fixture carries too.
const MAXMIND_CLIENTS: &[Client] = &[
    client("81.2.69.142", 32, Some("GB"), EU),
    client("81.2.69.142", 31, Some("GB"), EU),
    client("2.125.160.216", 32, Some("GB"), EU),
    client("2.125.160.216", 29, Some("GB"), EU),
    client("89.160.20.112", 32, Some("SE"), EU),
    client("2a02:d280::1", 128, Some("CZ"), EU),
    client("2a02:d280::1", 56, Some("CZ"), EU),
    client("216.160.83.56", 32, Some("US"), US),
    client("202.196.224.1", 32, Some("PH"), AP),
    client("67.43.156.1", 32, Some("BT"), AP),
    client("2001:218::1", 128, Some("JP"), AP),
    client("2001:218::1", 48, Some("JP"), AP),
    client("149.101.100.1", 32, None, US),
    client("127.0.0.1", 32, None, US),
];

/// Unknown in the Country databases, but a Chinese city in the City one.
const COUNTRY_DB_UNKNOWN: Client = client("175.16.199.1", 32, None, US);
/// In the Country databases only (the City one does not know it: default).
const COUNTRY_DB_US: Client = client("50.114.0.1", 24, Some("US"), US);
const CITY_DB_UNKNOWN: Client = client("50.114.0.1", 24, None, US);

/// The fixture's own loopback and documentation networks.
const FIXTURE_CLIENTS: &[Client] = &[
    client("127.0.1.1", 32, Some("US"), US),
    client("127.0.2.1", 32, Some("GB"), EU),
    client("127.0.3.1", 32, Some("SG"), AP),
    client("127.0.4.1", 32, Some("AU"), AP),
    client("127.0.5.1", 32, Some("BR"), US),
    client("127.0.6.1", 32, Some("ZA"), EU),
    client("127.0.7.1", 32, Some("JP"), AP),
    client("127.0.8.1", 32, Some("DE"), EU),
    client("127.0.9.200", 32, Some("FR"), EU),
    client("2001:db8:2::1", 128, Some("GB"), EU),
    client("2001:db8:8::1", 64, Some("DE"), EU),
    client("2001:db8:b::1", 56, Some("IN"), AP),
    client("192.0.2.70", 32, Some("GB"), EU),
    client("198.51.100.130", 32, Some("JP"), AP),
    client("203.0.113.1", 32, Some("CA"), US),
    client("::1", 128, None, US),
];

/// Queries every client's A and AAAA for the geo name, and A for the
/// failover and weighted names, and checks answers and ECS echo and scope
/// against what `db` and the default rules (with residency) say.
fn check_geo_answers(server: &Server, db: &Db, clients: &[&Client]) {
    let rules = Rules::new(DEFAULT_COUNTRIES, true);
    let udp = server.udp();
    for c in clients {
        let addr = ip(c.addr);
        let what = format!("{}/{} via {}", c.addr, c.prefix, db.path.display());
        let located = mask(addr, c.prefix);
        let (loc, db_prefix) = db.locate(located);
        assert_eq!(
            loc.country.as_deref(),
            c.country,
            "{what}: the database does not say what its documentation says ({loc:?})"
        );
        let expected = rules.geo_region(&loc);
        assert_eq!(expected, c.region, "{what}: rules vs table");
        let geo_scope = db.widest(located, &|l| rules.geo_key(l));
        let residency_scope = db.widest(located, &|l| rules.resident(l));

        for rtype in [RecordType::A, RecordType::AAAA] {
            let m = udp.exchange(&ecs_query(GEO_NAME, rtype, addr, c.prefix));
            let got = the_address(&m, &format!("{what} {rtype}"));
            let want = if rtype == RecordType::A {
                v4(c.region)
            } else {
                v6(c.region)
            };
            assert_eq!(
                got,
                want,
                "{what} {rtype}: geo answer from {} instead of {} ({loc:?})",
                region_of(got),
                c.region
            );
            let scope = echoed_scope(&m, addr, c.prefix, &what);
            assert!(
                scope > 0 && scope <= db_prefix,
                "{what}: geo scope /{scope} must be non-zero and at least as wide as the \
                 database network /{db_prefix}"
            );
            assert_eq!(
                scope, geo_scope,
                "{what}: geo scope /{scope}, but the widest prefix with the same steering is \
                 /{geo_scope} (database network /{db_prefix}, {loc:?})"
            );
        }

        // Failover and weighted depend on the client once residency exists.
        for name in [FAILOVER_NAME, WEIGHTED_NAME] {
            let m = udp.exchange(&ecs_query(name, RecordType::A, addr, c.prefix));
            let got = region_of(the_address(&m, &format!("{what} {name}")));
            if rules.resident(&loc) {
                assert_eq!(got, EU, "{what} {name}: an EU resident got {got}");
            } else if name == FAILOVER_NAME {
                assert_eq!(got, US, "{what} {name}");
            }
            let scope = echoed_scope(&m, addr, c.prefix, &what);
            assert!(
                scope > 0,
                "{what} {name}: with residency configured the answer depends on the client, \
                 so the scope must be non-zero"
            );
            assert_eq!(
                scope, residency_scope,
                "{what} {name}: scope /{scope}, but the widest prefix with the same residency is \
                 /{residency_scope}"
            );
        }

        // Answers that do not depend on the client: scope 0.
        for (name, rtype) in [
            ("api-contracts-us-east", RecordType::A),
            ("api-contracts-eu-west", RecordType::AAAA),
            ("@", RecordType::SOA),
            ("status", RecordType::A),
            ("no-such-name", RecordType::A),
        ] {
            let m = udp.exchange(&ecs_query(name, rtype, addr, c.prefix));
            assert!(m.metadata.authoritative, "{what} {name}: {m:#?}");
            let scope = echoed_scope(&m, addr, c.prefix, &format!("{what} {name}"));
            assert_eq!(
                scope, 0,
                "{what} {name} {rtype}: static answers have scope 0"
            );
        }
        assert_eq!(
            addresses(&udp.exchange(&ecs_query(
                "api-contracts-us-east",
                RecordType::A,
                addr,
                c.prefix
            ))),
            vec![v4(US)],
            "{what}: region names are not steered"
        );
    }
}

#[test]
fn geo_answers_and_scopes_with_the_project_fixture() {
    let path = fixture_db();
    let db = Db::open(&path);
    let server = Server::start(&geo_config(&path, DEFAULT_COUNTRIES, true), &default_zone());
    let mut clients: Vec<&Client> = MAXMIND_CLIENTS.iter().chain(FIXTURE_CLIENTS).collect();
    clients.extend([&COUNTRY_DB_UNKNOWN, &COUNTRY_DB_US]);
    check_geo_answers(&server, &db, &clients);

    // The scopes the fixture documents: DE and FR merge into 127.0.8.0/23,
    // GB (with an Asian sibling) keeps /24; the IPv6 mirror likewise.
    let udp = server.udp();
    for (addr, prefix, scope) in [
        ("127.0.8.1", 32, 23),
        ("127.0.9.1", 32, 23),
        ("127.0.2.1", 32, 24),
        ("81.2.69.142", 32, 24),
        ("2001:db8:9::1", 128, 47),
        ("2001:db8:2::1", 64, 48),
    ] {
        let m = udp.exchange(&ecs_query(GEO_NAME, RecordType::A, ip(addr), prefix));
        assert_eq!(region_of(the_address(&m, addr)), EU, "{addr}");
        assert_eq!(
            echoed_scope(&m, ip(addr), prefix, addr),
            scope,
            "{addr}/{prefix}: documented scope"
        );
    }
    // ECS over TCP is read the same way.
    let m = server.exchange_tcp(&ecs_query(GEO_NAME, RecordType::A, ip("202.196.224.1"), 32));
    assert_eq!(region_of(the_address(&m, "TCP PH")), AP);
    assert_eq!(
        echoed_scope(&m, ip("202.196.224.1"), 32, "TCP PH"),
        db.widest(ip("202.196.224.1"), &|l| Rules::new(
            DEFAULT_COUNTRIES,
            true
        )
        .geo_key(l))
    );
}

#[test]
fn geo_answers_and_scopes_with_maxmind_country_test_db() {
    let path = maxmind_db("GeoLite2-Country-Test.mmdb");
    let db = Db::open(&path);
    let server = Server::start(&geo_config(&path, DEFAULT_COUNTRIES, true), &default_zone());
    let mut clients: Vec<&Client> = MAXMIND_CLIENTS.iter().collect();
    clients.extend([&COUNTRY_DB_UNKNOWN, &COUNTRY_DB_US]);
    check_geo_answers(&server, &db, &clients);
}

#[test]
fn geo_answers_and_scopes_with_maxmind_city_test_db() {
    let path = maxmind_db("GeoLite2-City-Test.mmdb");
    let db = Db::open(&path);
    let server = Server::start(&geo_config(&path, DEFAULT_COUNTRIES, true), &default_zone());
    let mut clients: Vec<&Client> = MAXMIND_CLIENTS.iter().collect();
    clients.push(&CITY_DB_UNKNOWN);
    check_geo_answers(&server, &db, &clients);
    // The City database places 175.16.199.1 (unknown in the Country one)
    // in China: Asia.
    let (loc, _) = db.locate(ip("175.16.199.1"));
    assert_eq!(loc.continent.as_deref(), Some("AS"), "{loc:?}");
    let m = server.query_udp_ecs("175.16.199.1");
    assert_eq!(region_of(the_address(&m, "CN")), AP);
}

trait EcsExt {
    fn query_udp_ecs(&self, addr: &str) -> Message;
}

impl EcsExt for Server {
    fn query_udp_ecs(&self, addr: &str) -> Message {
        self.exchange_udp(&ecs_query(GEO_NAME, RecordType::A, ip(addr), 32))
    }
}

// ---------------------------------------------------------------------------
// The packet source as the client; ECS source prefix 0; invalid ECS
// ---------------------------------------------------------------------------

#[test]
fn without_ecs_the_packet_source_is_the_client() {
    let path = fixture_db();
    let server = Server::start(&geo_config(&path, DEFAULT_COUNTRIES, true), &default_zone());
    for (source, want) in [
        ("127.0.2.1", EU), // GB
        ("127.0.8.9", EU), // DE
        ("127.0.1.1", US), // US
        ("127.0.3.1", AP), // SG
        ("127.0.7.1", AP), // JP
        ("127.0.4.1", AP), // AU
        ("127.0.0.1", US), // unknown: default
    ] {
        // Plain query, and with EDNS but no ECS: no ECS option comes back.
        for query in [a_query(GEO_NAME), a_query(GEO_NAME).with_edns(1232)] {
            let m = exchange_from(&server, ip(source), &query);
            let got = region_of(the_address(&m, source));
            assert_eq!(got, want, "query from {source} answered from {got}");
            assert!(
                answer_subnet(&m).is_none(),
                "ECS option without one asked: {m:#?}"
            );
        }
        // Source prefix 0: "use no client information" (RFC 7871 7.1.2):
        // answered by the packet source, scope 0, option echoed, for
        // either family in the option.
        for zero in [
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ] {
            let query = a_query(GEO_NAME).with_subnet(zero, 0);
            let m = exchange_from(&server, ip(source), &query);
            let got = region_of(the_address(&m, source));
            assert_eq!(got, want, "{source} with ECS {zero}/0 answered from {got}");
            let s = answer_subnet(&m).unwrap_or_else(|| panic!("ECS /0 not echoed: {m:#?}"));
            assert_eq!(s.addr().is_ipv4(), zero.is_ipv4(), "family echoed: {s:?}");
            assert_eq!((s.source_prefix(), s.scope_prefix()), (0, 0), "{s:?}");
        }
    }
    // ECS (when present and non-zero) beats the packet source.
    let m = exchange_from(
        &server,
        ip("127.0.2.1"),
        &a_query(GEO_NAME).with_subnet(ip("67.43.156.1"), 32),
    );
    assert_eq!(region_of(the_address(&m, "BT from GB source")), AP);
    let m = exchange_from(
        &server,
        ip("127.0.3.1"),
        &a_query(GEO_NAME).with_subnet(ip("127.0.0.1"), 32),
    );
    assert_eq!(region_of(the_address(&m, "unknown ECS from SG source")), US);
}

/// A raw A query for `name` whose OPT record carries one option.
fn raw_query_with_option(id: u16, name: &str, code: u16, data: &[u8]) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in fqdn(name).trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, A, IN
    q.extend_from_slice(&[0, 0, 41]); // OPT
    q.extend_from_slice(&1232u16.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 0]);
    q.extend_from_slice(&(4 + data.len() as u16).to_be_bytes());
    q.extend_from_slice(&code.to_be_bytes());
    q.extend_from_slice(&(data.len() as u16).to_be_bytes());
    q.extend_from_slice(data);
    q
}

fn ecs_option(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
    let mut v = family.to_be_bytes().to_vec();
    v.extend_from_slice(&[source, scope]);
    v.extend_from_slice(addr);
    v
}

#[test]
fn invalid_ecs_options_are_formerr() {
    let path = fixture_db();
    let mut server = Server::start(&geo_config(&path, DEFAULT_COUNTRIES, true), &default_zone());
    let client = server.udp();
    let mut v6_17 = vec![0x2a, 0x02, 0xd2, 0x80];
    v6_17.resize(17, 0);
    let mut v6_16 = vec![0x2a, 0x02, 0xd2, 0x80];
    v6_16.resize(16, 0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "IPv4 source prefix 33",
            ecs_option(1, 33, 0, &[81, 2, 69, 142, 0]),
        ),
        (
            "IPv4 source prefix 33, 4 bytes",
            ecs_option(1, 33, 0, &[81, 2, 69, 142]),
        ),
        ("IPv6 source prefix 129", ecs_option(2, 129, 0, &v6_17)),
        (
            "IPv6 source prefix 129, 16 bytes",
            ecs_option(2, 129, 0, &v6_16),
        ),
        (
            "IPv4 /23 with bit 23 set",
            ecs_option(1, 23, 0, &[127, 0, 9]),
        ),
        (
            "IPv4 /20 with bit 23 set",
            ecs_option(1, 20, 0, &[202, 196, 225]),
        ),
        (
            "IPv6 /29 with bit 30 set",
            ecs_option(2, 29, 0, &[0x2a, 0x02, 0xd2, 0x84]),
        ),
        (
            "IPv4 /24 with 4 address bytes",
            ecs_option(1, 24, 0, &[81, 2, 69, 0]),
        ),
        (
            "IPv4 /32 with 3 address bytes",
            ecs_option(1, 32, 0, &[81, 2, 69]),
        ),
        (
            "IPv6 /56 with 16 address bytes",
            ecs_option(2, 56, 0, &v6_16),
        ),
        (
            "IPv4 /0 with 4 address bytes",
            ecs_option(1, 0, 0, &[0, 0, 0, 0]),
        ),
        ("unknown family 3", ecs_option(3, 24, 0, &[81, 2, 69])),
        ("family 0", ecs_option(0, 24, 0, &[81, 2, 69])),
        ("empty option", vec![]),
        ("option of 2 bytes", vec![0, 1]),
        // Family and source prefix but no scope byte: FORMERR, not a panic
        // in the option reader (which takes the UDP worker down with it).
        ("option of 3 bytes", vec![0, 1, 24]),
        ("IPv6 option of 3 bytes", vec![0, 2, 0]),
    ];
    for (i, (what, data)) in cases.iter().enumerate() {
        let id = 0x4000 + i as u16;
        let raw = client
            .raw(&raw_query_with_option(id, GEO_NAME, 8, data))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no answer (alive: {}); server log:\n{}",
                    server.is_alive(),
                    server.log()
                )
            });
        assert!(raw.len() >= 12, "{what}: short answer {raw:02x?}");
        assert_eq!(u16::from_be_bytes([raw[0], raw[1]]), id, "{what}: ID");
        assert!(raw[2] & 0x80 != 0, "{what}: QR");
        let m = parse(&raw);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::FormErr,
            "{what}: expected FORMERR: {m:#?}"
        );
        assert!(m.answers.is_empty(), "{what}: {m:#?}");
    }
    // The same builder with valid options answers normally (so the cases
    // above fail for the option alone).
    for (what, data, want, scope) in [
        ("IPv4 /24", ecs_option(1, 24, 0, &[127, 0, 2]), EU, 24),
        ("IPv4 /23", ecs_option(1, 23, 0, &[127, 0, 8]), EU, 23),
        ("IPv4 /20", ecs_option(1, 20, 0, &[202, 196, 224]), AP, 20),
        // 2a02:d280::/29 is not uniform (only its /32 is CZ), so the scope
        // is longer than the source: RFC 7871 7.2.1's "not specific enough".
        (
            "IPv6 /29",
            ecs_option(2, 29, 0, &[0x2a, 0x02, 0xd2, 0x80]),
            EU,
            32,
        ),
        ("IPv4 /0", ecs_option(1, 0, 0, &[]), US, 0),
    ] {
        let raw = client
            .raw(&raw_query_with_option(7, GEO_NAME, 8, &data))
            .unwrap_or_else(|| panic!("{what}: no answer"));
        let m = parse(&raw);
        assert_eq!(region_of(the_address(&m, what)), want, "{what}");
        let s = answer_subnet(&m).unwrap_or_else(|| panic!("{what}: no ECS: {m:#?}"));
        assert_eq!(s.scope_prefix(), scope, "{what}: {s:?}");
    }
    server.assert_alive();
}

// ---------------------------------------------------------------------------
// Country overrides and health
// ---------------------------------------------------------------------------

#[test]
fn country_overrides_and_health_with_maxmind_country_db() {
    let path = maxmind_db("GeoLite2-Country-Test.mmdb");
    let countries: &[(&str, &[&str])] =
        &[("GB", &[AP, EU, US]), ("JP", &[AP, US, EU]), ("PH", &[AP])];
    // No residency here: GB is free to go to Asia.
    let server = Server::start(&geo_config(&path, countries, false), &default_zone());
    let udp = server.udp();
    let geo = |addr: &str| -> (&'static str, u8) {
        let prefix = if ip(addr).is_ipv4() { 32 } else { 128 };
        let m = udp.exchange(&ecs_query(GEO_NAME, RecordType::A, ip(addr), prefix));
        (
            region_of(the_address(&m, addr)),
            echoed_scope(&m, ip(addr), prefix, addr),
        )
    };
    let db = Db::open(&path);
    let rules = Rules::new(countries, false);
    for (addr, want) in [
        ("81.2.69.142", AP),   // GB: the country list beats the EU list
        ("2.125.160.216", AP), // GB
        ("89.160.20.112", EU), // SE: still the EU continent list
        ("2a02:d280::1", EU),  // CZ
        ("216.160.83.56", US),
        ("67.43.156.1", AP),   // BT
        ("202.196.224.1", AP), // PH
        ("175.16.199.1", US),  // unknown
    ] {
        let (got, scope) = geo(addr);
        assert_eq!(got, want, "{addr}");
        assert_eq!(
            scope,
            db.widest(ip(addr), &|l| rules.geo_key(l)),
            "{addr}: scope"
        );
    }
    // Without residency, failover and weighted do not depend on the client.
    let m = udp.exchange(&ecs_query(
        FAILOVER_NAME,
        RecordType::A,
        ip("81.2.69.142"),
        32,
    ));
    assert_eq!(region_of(the_address(&m, "failover")), US);
    assert_eq!(echoed_scope(&m, ip("81.2.69.142"), 32, "failover"), 0);
    let m = udp.exchange(&ecs_query(
        WEIGHTED_NAME,
        RecordType::A,
        ip("81.2.69.142"),
        32,
    ));
    assert_eq!(echoed_scope(&m, ip("81.2.69.142"), 32, "weighted"), 0);

    // The first region of a list down: the next healthy one in the list.
    server.force(AP, "down");
    wait_for("BT moves off ap-southeast-1", &server, || {
        geo("67.43.156.1").0 != AP
    });
    assert_eq!(
        geo("67.43.156.1").0,
        EU,
        "BT (AS list ap, eu, us) with ap down"
    );
    assert_eq!(geo("81.2.69.142").0, EU, "GB (ap, eu, us) with ap down");
    assert_eq!(geo("2001:218::1").0, US, "JP (ap, us, eu) with ap down");
    // A list with no healthy region: the remaining healthy ones by priority.
    assert_eq!(geo("202.196.224.1").0, US, "PH (ap only) with ap down");
    assert_eq!(geo("89.160.20.112").0, EU, "SE unaffected");
    server.force(US, "down");
    wait_for("PH moves off us-east-1", &server, || {
        geo("202.196.224.1").0 != US
    });
    assert_eq!(geo("202.196.224.1").0, EU, "PH with ap and us down");
    assert_eq!(geo("2001:218::1").0, EU, "JP with ap and us down");
    assert_eq!(geo("216.160.83.56").0, EU, "US with us down");
    // Everything down: fail open, as if all were healthy.
    server.force(EU, "down");
    wait_for("fail open", &server, || geo("216.160.83.56").0 == US);
    assert_eq!(
        geo("67.43.156.1").0,
        AP,
        "BT, all down: fail open to its list"
    );
    assert_eq!(geo("89.160.20.112").0, EU, "SE, all down");
    // Back to the probes (all stubs healthy).
    for r in [US, EU, AP] {
        server.force(r, "auto");
    }
    wait_for("BT back to ap-southeast-1", &server, || {
        geo("67.43.156.1").0 == AP
    });
    assert_eq!(geo("202.196.224.1").0, AP);
    assert_eq!(geo("216.160.83.56").0, US);
}

// ---------------------------------------------------------------------------
// Residency
// ---------------------------------------------------------------------------

#[test]
fn eu_residency_for_failover_weighted_and_geo() {
    let path = fixture_db();
    let server = Server::start(&geo_config(&path, DEFAULT_COUNTRIES, true), &default_zone());
    let ecs = |name: &str, addr: &str| -> &'static str {
        let m = server.exchange_udp(&ecs_query(name, RecordType::A, ip(addr), 32));
        region_of(the_address(&m, &format!("{name} for {addr}")))
    };
    let from = |name: &str, source: &str| -> &'static str {
        let m = exchange_from(&server, ip(source), &a_query(name));
        region_of(the_address(&m, &format!("{name} from {source}")))
    };
    let check_eu = |when: &str| {
        for name in [FAILOVER_NAME, GEO_NAME] {
            assert_eq!(ecs(name, "81.2.69.142"), EU, "{when}: {name} for GB (ECS)");
            assert_eq!(ecs(name, "2a02:d280::1"), EU, "{when}: {name} for CZ (ECS)");
            assert_eq!(from(name, "127.0.2.1"), EU, "{when}: {name} from GB source");
        }
        for (i, client) in ["81.2.69.142", "89.160.20.112"].iter().enumerate() {
            for n in 0..100 {
                assert_eq!(
                    ecs(WEIGHTED_NAME, client),
                    EU,
                    "{when}: weighted draw {n} for {client}"
                );
            }
            let source = ["127.0.2.1", "127.0.8.1"][i];
            for n in 0..20 {
                assert_eq!(
                    from(WEIGHTED_NAME, source),
                    EU,
                    "{when}: weighted draw {n} from {source}"
                );
            }
        }
        // `region` names are explicit and not restricted.
        assert_eq!(ecs("api-contracts-us-east", "81.2.69.142"), US, "{when}");
        assert_eq!(
            from("api-contracts-ap-southeast", "127.0.2.1"),
            AP,
            "{when}"
        );
    };
    // us-east-1 healthy and primary: a US client gets it, EU clients do not.
    assert_eq!(ecs(FAILOVER_NAME, "216.160.83.56"), US);
    assert_eq!(from(FAILOVER_NAME, "127.0.1.1"), US);
    assert_eq!(from(FAILOVER_NAME, "127.0.0.1"), US);
    let us_weighted: Vec<&str> = (0..200)
        .map(|_| ecs(WEIGHTED_NAME, "216.160.83.56"))
        .collect();
    assert!(
        us_weighted.contains(&US) && us_weighted.contains(&AP),
        "a non-resident gets every region from the weighted name"
    );
    check_eu("all healthy");

    // eu-west-1 down: EU clients still get it (fail open inside the block).
    server.force(EU, "down");
    wait_for("US clients off eu-west-1", &server, || {
        (0..50).all(|_| ecs(WEIGHTED_NAME, "216.160.83.56") != EU)
    });
    check_eu("eu-west-1 down");
    assert_eq!(
        ecs(FAILOVER_NAME, "216.160.83.56"),
        US,
        "US client, eu-west-1 down"
    );
    assert_eq!(
        ecs(GEO_NAME, "67.43.156.1"),
        AP,
        "BT client, eu-west-1 down"
    );

    // us-east-1 down too: the US client fails over outside, EU stays inside.
    server.force(US, "down");
    wait_for("US client fails over", &server, || {
        ecs(FAILOVER_NAME, "216.160.83.56") != US
    });
    assert_eq!(
        ecs(FAILOVER_NAME, "216.160.83.56"),
        AP,
        "US client, us and eu down"
    );
    check_eu("eu-west-1 and us-east-1 down");
}

// ---------------------------------------------------------------------------
// Corrupt, truncated and missing databases
// ---------------------------------------------------------------------------

const CORRUPT_DB: &str = "GeoIP2-City-Test-Invalid-Node-Count.mmdb";

/// `keiko-dns serve` with `ws`'s config, which must exit on its own within
/// 10 s (it is killed, by PID, otherwise); (exit code, stderr).
fn serve_must_exit(ws: &Workspace) -> (Option<i32>, String) {
    let log_path = ws.path().join("serve.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(ws.config_path())
        .current_dir(ws.path())
        .env_remove("KEIKO_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn keiko-dns serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve started with a bad GeoIP database; its log:\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

#[test]
fn bad_databases_are_rejected_at_start() {
    let scratch = tempfile::tempdir().unwrap();
    let truncated = scratch.path().join("keiko-regions-truncated.mmdb");
    let bytes = fs::read(fixture_db()).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let tail_cut = scratch.path().join("keiko-regions-tail-cut.mmdb");
    fs::write(&tail_cut, &bytes[..bytes.len() - 20]).unwrap();
    let empty = scratch.path().join("keiko-regions-empty.mmdb");
    fs::write(&empty, b"").unwrap();
    let missing = scratch.path().join("no-such-database.mmdb");
    for db in [maxmind_db(CORRUPT_DB), truncated, tail_cut, empty, missing] {
        let file = db.file_name().unwrap().to_str().unwrap().to_owned();
        let ws = Workspace::new(&geo_config(&db, DEFAULT_COUNTRIES, true), &default_zone());
        let out = ws.check();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "check with {file}:\n{text}");
        assert!(text.contains(&file), "check must name {file}:\n{text}");
        let (code, log) = serve_must_exit(&ws);
        assert!(
            code.is_some_and(|c| c != 0),
            "serve with {file} exited {code:?}:\n{log}"
        );
        assert!(log.contains(&file), "serve must name {file}:\n{log}");
    }
    // The control: the same config with the good fixture checks fine.
    let ws = Workspace::new(
        &geo_config(&fixture_db(), DEFAULT_COUNTRIES, true),
        &default_zone(),
    );
    let out = ws.check();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
fn bad_databases_are_rejected_on_reload() {
    // The server's database lives at a path of our own, so it can be
    // replaced the way geoipupdate does: a new file renamed over it.
    let scratch = tempfile::tempdir().unwrap();
    let live = scratch.path().join("live.mmdb");
    fs::copy(fixture_db(), &live).unwrap();
    let replace = |from: &[u8]| {
        let tmp = scratch.path().join("live.mmdb.tmp");
        fs::write(&tmp, from).unwrap();
        fs::rename(&tmp, &live).unwrap();
    };
    let good_config = geo_config(&live, DEFAULT_COUNTRIES, true);
    let mut server = Server::start(&good_config, &default_zone());
    let snapshot = |server: &Server| -> Vec<(&'static str, u8)> {
        [
            "127.0.2.1",
            "127.0.3.1",
            "127.0.8.1",
            "216.160.83.56",
            "2001:db8:7::1",
        ]
        .iter()
        .map(|a| {
            let prefix = if ip(a).is_ipv4() { 32 } else { 128 };
            let m = server.exchange_udp(&ecs_query(GEO_NAME, RecordType::A, ip(a), prefix));
            (
                region_of(the_address(&m, a)),
                echoed_scope(&m, ip(a), prefix, a),
            )
        })
        .collect()
    };
    let before = snapshot(&server);
    // US shares the default list, so its scope reaches past its /24.
    let rules = Rules::new(DEFAULT_COUNTRIES, true);
    let us_scope = Db::open(&fixture_db()).widest(ip("216.160.83.56"), &|l| rules.geo_key(l));
    assert_eq!(
        before,
        vec![(EU, 24), (AP, 24), (EU, 23), (US, us_scope), (AP, 48)],
        "fixture answers"
    );
    let corrupt = fs::read(maxmind_db(CORRUPT_DB)).unwrap();
    let fixture = fs::read(fixture_db()).unwrap();
    let expect_failed = |server: &Server, what: &str, file: &str| {
        let log = server.reload();
        assert!(
            log.to_lowercase().contains("reload failed"),
            "{what}: reload must fail:\n{log}"
        );
        assert!(
            log.contains(file),
            "{what}: the log must name {file}:\n{log}"
        );
        assert_eq!(
            snapshot(server),
            before,
            "{what}: the old database must stay in use"
        );
    };

    // 1. The config names the corrupt file.
    server.rewrite_config(&geo_config(
        &maxmind_db(CORRUPT_DB),
        DEFAULT_COUNTRIES,
        true,
    ));
    expect_failed(&server, "config naming the corrupt file", CORRUPT_DB);
    server.rewrite_config(&good_config);
    // 2. The corrupt file renamed over the configured path.
    replace(&corrupt);
    expect_failed(&server, "corrupt file over the path", "live.mmdb");
    // 3. A truncated copy.
    replace(&fixture[..fixture.len() / 2]);
    expect_failed(&server, "truncated file", "live.mmdb");
    // 4. No file at all.
    fs::remove_file(&live).unwrap();
    expect_failed(&server, "missing file", "live.mmdb");
    server.assert_alive();

    // The control: a valid, different database is picked up by the same
    // reload, so the checks above did look at the file. 127.0.2.1 is
    // unknown to MaxMind's test database: default list.
    replace(&fs::read(maxmind_db("GeoLite2-Country-Test.mmdb")).unwrap());
    let log = server.reload();
    assert!(!log.to_lowercase().contains("reload failed"), "{log}");
    let m = server.exchange_udp(&ecs_query(GEO_NAME, RecordType::A, ip("127.0.2.1"), 32));
    assert_eq!(region_of(the_address(&m, "127.0.2.1 after reload")), US);
    let m = server.exchange_udp(&ecs_query(GEO_NAME, RecordType::A, ip("81.2.69.142"), 32));
    assert_eq!(region_of(the_address(&m, "GB after reload")), EU);
    assert_eq!(
        echoed_scope(&m, ip("81.2.69.142"), 32, "GB after reload"),
        31
    );
}

// ---------------------------------------------------------------------------
// Through a real recursive resolver
// ---------------------------------------------------------------------------

#[test]
fn geo_answers_through_unbound_with_ecs() {
    let path = fixture_db();
    let server = Server::start(&geo_config(&path, DEFAULT_COUNTRIES, true), &default_zone());
    let unbound = Unbound::start(server.ws.dns_port);
    let answer = |subnet: Option<(&str, u8)>| -> IpAddr {
        let m = unbound.resolve(GEO_NAME, RecordType::A, subnet);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{subnet:?}: {m:#?}\nunbound log:\n{}",
            unbound.log()
        );
        let addrs = addresses(&m);
        assert_eq!(addrs.len(), 1, "{subnet:?}: {m:#?}");
        addrs[0]
    };
    // EU first, so its answer is in unbound's cache when the US asks.
    let eu = v4(EU);
    let us = v4(US);
    let ap = v4(AP);
    for (subnet, want, why) in [
        (("81.2.69.142", 32), eu, "GB, first: from the server"),
        (("216.160.83.56", 32), us, "US: the GB answer must not leak"),
        (("81.2.69.142", 32), eu, "GB again (cache)"),
        (("81.2.69.1", 32), eu, "GB, same /24 (cached for the scope)"),
        (("202.196.224.1", 32), ap, "PH"),
        (("216.160.83.0", 24), us, "US /24"),
        (("127.0.2.0", 24), eu, "GB /24 of the fixture"),
        (("127.0.3.0", 24), ap, "SG /24 of the fixture"),
        (("149.101.100.1", 32), us, "unknown"),
        (("67.43.156.1", 32), ap, "BT"),
        (("216.160.83.56", 32), us, "US again"),
    ] {
        let got = answer(Some(subnet));
        assert_eq!(
            got,
            want,
            "{why}: {subnet:?} got {}; unbound log:\n{}",
            region_of(got),
            unbound.log()
        );
    }
    // Without ECS unbound sends its client's address (127.0.0.1: unknown).
    assert_eq!(answer(None), us, "no ECS from the client");
    // And the failover name for an EU subnet honours residency too.
    let m = unbound.resolve(FAILOVER_NAME, RecordType::A, Some(("89.160.20.112", 32)));
    assert_eq!(addresses(&m), vec![eu], "SE via unbound, failover: {m:#?}");
    let m = unbound.resolve(FAILOVER_NAME, RecordType::A, Some(("216.160.83.56", 32)));
    assert_eq!(addresses(&m), vec![us], "US via unbound, failover: {m:#?}");
}
