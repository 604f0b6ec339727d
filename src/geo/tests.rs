//! The GeoIP reader and the compiled client maps, against the project's
//! fixture and MaxMind's test databases.
//!
//! Long on purpose: the prefix-tree compiler is checked exhaustively (every
//! merge rule, both families, property tests against a brute-force lookup),
//! and those cases share one set of builders kept here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use proptest::prelude::*;

use super::client_map::Builder;
use super::{ClientMap, GeoDb, GeoError};

// ---------------------------------------------------------------------------------------
// Helpers

/// MaxMind's public test databases, copied into geoip-fixtures/maxmind.
fn maxmind(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("geoip-fixtures/maxmind")
        .join(name)
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip-fixtures/keiko-regions.mmdb")
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn open(path: &Path) -> GeoDb {
    GeoDb::open(path).unwrap_or_else(|e| panic!("{e}"))
}

type Pair = (Option<String>, Option<String>);

/// A classifier that gives each distinct (country, continent) pair its own value, so a
/// map's answer can be turned back into what the database says.
#[derive(Default)]
struct Classes {
    pairs: Vec<Pair>,
}

impl Classes {
    fn id(&mut self, country: Option<&str>, continent: Option<&str>) -> u32 {
        let pair = (country.map(str::to_owned), continent.map(str::to_owned));
        match self.pairs.iter().position(|p| *p == pair) {
            Some(i) => i as u32,
            None => {
                self.pairs.push(pair);
                (self.pairs.len() - 1) as u32
            }
        }
    }

    fn pair(&self, value: u32) -> &Pair {
        &self.pairs[value as usize]
    }
}

fn compile_classes(db: &GeoDb) -> (ClientMap, Classes) {
    let mut classes = Classes::default();
    let map = db.compile(&mut |c, k| classes.id(c, k)).unwrap();
    (map, classes)
}

/// EU -> 1, everything else (including unknown) -> 0.
fn eu(_country: Option<&str>, continent: Option<&str>) -> u32 {
    u32::from(continent == Some("EU"))
}

fn pair(country: &str, continent: &str) -> Pair {
    if country.is_empty() {
        (None, None)
    } else {
        (Some(country.to_owned()), Some(continent.to_owned()))
    }
}

/// The addresses MaxMind documents for its test databases, as GeoLite2-Country-Test has
/// them ("" = not in the database).
const KNOWN: &[(&str, &str, &str)] = &[
    ("2.125.160.216", "GB", "EU"),
    ("81.2.69.142", "GB", "EU"),
    ("89.160.20.112", "SE", "EU"),
    ("2a02:d280::1", "CZ", "EU"),
    ("216.160.83.56", "US", "NA"),
    ("50.114.0.1", "US", "NA"),
    ("202.196.224.1", "PH", "AS"),
    ("67.43.156.1", "BT", "AS"),
    ("2001:218::1", "JP", "AS"),
    ("::ffff:81.2.69.142", "GB", "EU"),
    ("::ffff:202.196.224.1", "PH", "AS"),
    // 6to4 and Teredo aliases of 81.2.69.142, which MaxMind databases carry.
    ("2002:5102:458e::1", "GB", "EU"),
    ("2001:0:5102:458e::", "GB", "EU"),
    ("175.16.199.1", "", ""),
    ("149.101.100.1", "", ""),
    ("127.0.0.1", "", ""),
    ("::1", "", ""),
    ("2001:db8::1", "", ""),
];

/// The city test database differs from the country one for two addresses.
fn known_in_city() -> Vec<(&'static str, &'static str, &'static str)> {
    KNOWN
        .iter()
        .map(|&(a, c, k)| match a {
            "175.16.199.1" => (a, "CN", "AS"),
            "50.114.0.1" => (a, "", ""),
            _ => (a, c, k),
        })
        .collect()
}

/// The prefix length of `network` in the terms of `ip`'s family (an IPv4 network found for
/// an IPv4-mapped address counts from bit 96).
fn prefix_in_terms_of(ip: IpAddr, network: IpNet) -> u8 {
    match (ip, network) {
        (IpAddr::V6(_), IpNet::V4(n)) => 96 + n.prefix_len(),
        (_, n) => n.prefix_len(),
    }
}

/// A random address inside `ip/prefix`.
fn random_within(ip: IpAddr, prefix: u8, random: u128) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(
                (u32::from(v4) & mask) | (random as u32 & !mask),
            ))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from((u128::from(v6) & mask) | (random & !mask)))
        }
    }
}

/// Deterministic pseudo-random numbers (splitmix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn wide(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

// ---------------------------------------------------------------------------------------
// Known addresses in MaxMind's test databases

fn check_known(file: &str, known: &[(&str, &str, &str)]) {
    let db = open(&maxmind(file));
    let (map, classes) = compile_classes(&db);
    for &(address, country, continent) in known {
        let expected = pair(country, continent);
        let located = db.locate(ip(address)).unwrap();
        assert_eq!(
            (located.country.clone(), located.continent.clone()),
            expected,
            "{file}: locate({address})"
        );
        let (value, prefix) = map.lookup(ip(address));
        assert_eq!(
            classes.pair(value),
            &expected,
            "{file}: compiled lookup of {address}"
        );
        assert!(
            prefix <= prefix_in_terms_of(ip(address), located.network),
            "{file}: {address}: scope /{prefix} narrower than its network {}",
            located.network
        );
        assert!(
            located.network.contains(&super::unmap(ip(address))),
            "{address} not in {}",
            located.network
        );
    }
}

#[test]
fn geolite2_country_known_addresses() {
    check_known("GeoLite2-Country-Test.mmdb", KNOWN);
}

#[test]
fn geolite2_city_known_addresses() {
    check_known("GeoLite2-City-Test.mmdb", &known_in_city());
}

#[test]
fn geoip2_country_opens_and_locates() {
    let db = open(&maxmind("GeoIP2-Country-Test.mmdb"));
    let found = db.locate(ip("89.160.20.112")).unwrap();
    assert_eq!(found.country.as_deref(), Some("SE"));
    assert_eq!(found.continent.as_deref(), Some("EU"));
    assert_eq!(found.network, "89.160.20.112/28".parse::<IpNet>().unwrap());
}

#[test]
fn describe_names_type_date_version_and_nodes() {
    let db = open(&maxmind("GeoLite2-Country-Test.mmdb"));
    let line = db.describe();
    assert!(line.contains("GeoLite2-Country"), "{line}");
    assert!(line.contains("IPv6"), "{line}");
    assert!(line.contains("1505 nodes"), "{line}");
    assert!(line.contains("built 20"), "{line}");
    assert!(!line.contains('\n'));
    assert_eq!(db.path(), maxmind("GeoLite2-Country-Test.mmdb"));
}

#[test]
fn utc_date_is_the_civil_date() {
    assert_eq!(super::utc_date(0), "1970-01-01");
    assert_eq!(super::utc_date(951_782_400), "2000-02-29");
    assert_eq!(super::utc_date(1_767_225_600), "2026-01-01");
    assert_eq!(super::utc_date(1_767_225_599), "2025-12-31");
}

// ---------------------------------------------------------------------------------------
// Merging and the prefix lengths lookups report

#[test]
fn sibling_networks_with_one_value_merge_one_bit_wider() {
    // In the fixture 127.0.8.0/24 is DE and 127.0.9.0/24 FR: two records, one continent.
    let db = open(&fixture());
    let map = db.compile(&mut eu).unwrap();
    let de = db.locate(ip("127.0.8.1")).unwrap();
    assert_eq!(de.network.prefix_len(), 24);
    assert_eq!(map.lookup(ip("127.0.8.1")), (1, 23));
    assert_eq!(map.lookup(ip("127.0.9.200")), (1, 23));
    assert_eq!(map.lookup(ip("2001:db8:8::1")), (1, 47));
    assert_eq!(map.lookup(ip("2001:db8:9:ffff::1")), (1, 47));
    // GB's sibling 127.0.3.0/24 is SG: no merge.
    assert_eq!(map.lookup(ip("127.0.2.1")), (1, 24));
    // 127.0.0.0/24 (unknown) and 127.0.1.0/24 (US) are both "not EU": merged to /23, no
    // further, since 127.0.2.0/24 is EU.
    assert_eq!(map.lookup(ip("127.0.0.1")), (0, 23));
    // Mapped addresses: IPv4 answer, prefix in IPv6 terms.
    assert_eq!(map.lookup(ip("::ffff:127.0.8.1")), (1, 96 + 23));

    // With one value per country nothing merges: the network itself is the scope.
    let mut classes = Classes::default();
    let by_country = db.compile(&mut |c, _| classes.id(c, None)).unwrap();
    assert_eq!(by_country.lookup(ip("127.0.8.1")).1, 24);
    assert_eq!(by_country.lookup(ip("2001:db8:8::1")).1, 48);
}

#[test]
fn merging_is_recursive() {
    let mut builder = Builder::new(0);
    for (net, value) in [
        ("10.0.0.0/26", 7),
        ("10.0.0.64/26", 7),
        ("10.0.0.128/25", 7),
        ("10.0.1.0/24", 3),
    ] {
        builder.insert(net.parse().unwrap(), value).unwrap();
    }
    let map = builder.finish(false, false).unwrap();
    assert_eq!(map.lookup(ip("10.0.0.1")), (7, 24));
    assert_eq!(map.lookup(ip("10.0.0.255")), (7, 24));
    assert_eq!(map.lookup(ip("10.0.1.1")), (3, 24));
    // 10.0.2.0/23 is unknown (0), and so is everything up to 10.0.0.0/8's siblings...
    assert_eq!(map.lookup(ip("10.0.2.1")), (0, 23));
    assert_eq!(map.lookup(ip("192.0.2.1")), (0, 1));
    // No IPv6 tree: every IPv6 address is unknown with scope 0.
    assert_eq!(map.lookup(ip("2001:db8::1")), (0, 0));
    // Only the path to the /24 leaves remains: one 4-bit node at each of depths 0, 4, ... 20.
    assert_eq!(map.node_count(), 6);
}

#[test]
fn later_inserts_override_and_uniform_maps_are_one_leaf() {
    let mut builder = Builder::new(0);
    builder.insert("0.0.0.0/0".parse().unwrap(), 5).unwrap();
    builder.insert("10.0.0.0/8".parse().unwrap(), 6).unwrap();
    builder.insert("10.0.0.0/8".parse().unwrap(), 5).unwrap();
    let map = builder.finish(false, false).unwrap();
    assert_eq!(map.lookup(ip("10.1.2.3")), (5, 0));
    assert_eq!(map.node_count(), 0);
}

#[test]
fn uniform_map() {
    let map = ClientMap::uniform(9);
    for address in [
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "2001:db8::1",
        "::ffff:1.2.3.4",
    ] {
        assert_eq!(map.lookup(ip(address)), (9, 0), "{address}");
    }
    assert_eq!(map.node_count(), 0);
    assert!(map.memory_bytes() >= std::mem::size_of::<ClientMap>());
}

/// Every address inside a reported prefix has the reported value, both in the map and in
/// the database itself (through `locate`), and the prefix is never narrower than the
/// database network. Addresses are drawn around every network of the database, plus
/// IPv4-mapped, alias and fully random ones.
fn check_prefixes_never_lie(file: &Path, samples_per_network: usize, seed: u64) {
    let db = open(file);
    let classify =
        |located: &super::Location| eu(located.country.as_deref(), located.continent.as_deref());
    let truth = |address: IpAddr| classify(&db.locate(address).unwrap());
    let map = db.compile(&mut eu).unwrap();

    let mut starts: Vec<IpNet> = Vec::new();
    let families: &[&str] = if db.reader.metadata().ip_version == 6 {
        &["0.0.0.0/0", "::/0"]
    } else {
        &["0.0.0.0/0"]
    };
    for cidr in families {
        db.walk(cidr.parse().unwrap(), &mut |network, _| {
            starts.push(network);
            Ok(())
        })
        .unwrap();
    }
    assert!(
        starts.len() > 2,
        "{}: only {} networks",
        file.display(),
        starts.len()
    );

    let mut rng = Rng(seed);
    let mut probes: Vec<IpAddr> = Vec::new();
    for network in &starts {
        for _ in 0..samples_per_network {
            let inside = random_within(network.network(), network.prefix_len(), rng.wide());
            probes.push(inside);
            if let IpAddr::V4(v4) = inside {
                probes.push(IpAddr::V6(v4.to_ipv6_mapped()));
                // 6to4 alias of the same address.
                let six_to_four =
                    (0x2002_u128 << 112) | (u128::from(u32::from(v4)) << 80) | (rng.wide() >> 48);
                probes.push(IpAddr::V6(Ipv6Addr::from(six_to_four)));
            }
        }
    }
    for _ in 0..500 {
        probes.push(IpAddr::V4(Ipv4Addr::from(rng.next() as u32)));
        probes.push(IpAddr::V6(Ipv6Addr::from(rng.wide())));
    }

    for address in probes {
        let (value, prefix) = map.lookup(address);
        let located = db.locate(address).unwrap();
        assert_eq!(
            value,
            classify(&located),
            "{}: value of {address}",
            file.display()
        );
        assert!(
            prefix <= prefix_in_terms_of(address, located.network),
            "{}: {address}: /{prefix} narrower than {}",
            file.display(),
            located.network
        );
        let max = if address.is_ipv4() { 32 } else { 128 };
        assert!(prefix <= max);
        // Both ends of the reported network and a few addresses in between.
        let mut inside = vec![
            random_within(address, prefix, 0),
            random_within(address, prefix, u128::MAX),
        ];
        inside.extend((0..4).map(|_| random_within(address, prefix, rng.wide())));
        for other in inside {
            assert_eq!(
                map.lookup(other).0,
                value,
                "{}: {other} within {address}/{prefix}",
                file.display()
            );
            assert_eq!(
                truth(other),
                value,
                "{}: database disagrees for {other} within {address}/{prefix}",
                file.display()
            );
        }
    }
}

#[test]
fn prefixes_never_lie_geolite2_country() {
    check_prefixes_never_lie(&maxmind("GeoLite2-Country-Test.mmdb"), 2, 1);
}

#[test]
fn prefixes_never_lie_geolite2_city() {
    check_prefixes_never_lie(&maxmind("GeoLite2-City-Test.mmdb"), 2, 2);
}

#[test]
fn prefixes_never_lie_fixture() {
    check_prefixes_never_lie(&fixture(), 20, 3);
}

/// Against a plain IPv4 database (no IPv6 tree, no aliases).
#[test]
fn ipv4_only_database() {
    let mut writer = mmdb_writer::Writer::builder("GeoIP2-Country")
        .ip_version(mmdb_writer::IpVersion::V4)
        .description(&[("en", "v4 test")])
        .build();
    let record = |country: &str, continent: &str| {
        mmdb_writer::Value::map([
            (
                "country",
                mmdb_writer::Value::map([("iso_code", mmdb_writer::Value::from(country))]),
            ),
            (
                "continent",
                mmdb_writer::Value::map([("code", mmdb_writer::Value::from(continent))]),
            ),
        ])
    };
    writer
        .insert_value("10.1.0.0/16".parse::<IpNet>().unwrap(), record("DE", "EU"))
        .unwrap();
    writer
        .insert_value("10.2.0.0/16".parse::<IpNet>().unwrap(), record("US", "NA"))
        .unwrap();
    let file = temp_file(&writer.to_bytes().unwrap());
    let db = open(file.path());
    assert!(db.describe().contains("IPv4"));
    let map = db.compile(&mut eu).unwrap();
    assert_eq!(map.lookup(ip("10.1.2.3")), (1, 16));
    assert_eq!(map.lookup(ip("::ffff:10.1.2.3")), (1, 96 + 16));
    assert_eq!(map.lookup(ip("2001:db8::1")), (0, 0));
    let located = db.locate(ip("2001:db8::1")).unwrap();
    assert_eq!((located.country, located.continent), (None, None));
    let located = db.locate(ip("::ffff:10.2.0.1")).unwrap();
    assert_eq!(located.country.as_deref(), Some("US"));
    check_prefixes_never_lie(file.path(), 50, 4);
}

// ---------------------------------------------------------------------------------------
// Broken and unsuitable files

fn assert_error_names_path(result: Result<GeoDb, GeoError>, path: &Path) -> GeoError {
    let error = match result {
        Ok(_) => panic!("{} opened", path.display()),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "message without the path: {message}"
    );
    error
}

#[test]
fn corrupt_node_count_is_rejected() {
    let path = maxmind("GeoIP2-City-Test-Invalid-Node-Count.mmdb");
    let error = assert_error_names_path(GeoDb::open(&path), &path);
    assert!(matches!(error, GeoError::Invalid { .. }), "{error:?}");
}

#[test]
fn truncated_files_are_rejected() {
    let bytes = std::fs::read(maxmind("GeoLite2-Country-Test.mmdb")).unwrap();
    // Cut in the metadata, in the data section, in the search tree, and to one byte.
    for len in [
        bytes.len() - 20,
        bytes.len() - 400,
        bytes.len() / 2,
        1000,
        1,
    ] {
        let file = temp_file(&bytes[..len]);
        let error = assert_error_names_path(GeoDb::open(file.path()), file.path());
        assert!(
            matches!(error, GeoError::Invalid { .. }),
            "cut at {len}: {error:?}"
        );
    }
}

#[test]
fn damaged_search_tree_is_found_at_open() {
    let bytes = std::fs::read(maxmind("GeoLite2-Country-Test.mmdb")).unwrap();
    // Node records point far past the end: lookups would fail only later; open must not.
    let mut damaged = bytes.clone();
    for byte in &mut damaged[3_000..3_600] {
        *byte = 0xff;
    }
    let file = temp_file(&damaged);
    let error = assert_error_names_path(GeoDb::open(file.path()), file.path());
    assert!(matches!(error, GeoError::Invalid { .. }), "{error:?}");
}

#[test]
fn random_bytes_empty_and_directories_are_rejected() {
    let mut rng = Rng(42);
    let noise: Vec<u8> = (0..8192).map(|_| rng.next() as u8).collect();
    let noise = temp_file(&noise);
    let error = assert_error_names_path(GeoDb::open(noise.path()), noise.path());
    assert!(matches!(error, GeoError::Invalid { .. }), "{error:?}");

    let empty = temp_file(&[]);
    let error = assert_error_names_path(GeoDb::open(empty.path()), empty.path());
    assert!(error.to_string().contains("empty"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    assert_error_names_path(GeoDb::open(dir.path()), dir.path());
}

#[test]
fn missing_file_is_an_open_error() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip-fixtures/no-such-file.mmdb");
    let error = assert_error_names_path(GeoDb::open(&path), &path);
    assert!(matches!(error, GeoError::Open { .. }), "{error:?}");
}

#[test]
fn non_geographic_databases_are_the_wrong_type() {
    for database_type in [
        "GeoLite2-ASN",
        "GeoIP2-Anonymous-IP",
        "GeoIP2-ISP",
        "MyCompany-Things",
    ] {
        let mut writer = mmdb_writer::Writer::builder(database_type)
            .description(&[("en", "not a location database")])
            .build();
        let record = mmdb_writer::Value::map([
            ("autonomous_system_number", mmdb_writer::Value::U32(64_512)),
            (
                "autonomous_system_organization",
                mmdb_writer::Value::from("Example"),
            ),
        ]);
        writer
            .insert_value("192.0.2.0/24".parse::<IpNet>().unwrap(), record)
            .unwrap();
        let file = temp_file(&writer.to_bytes().unwrap());
        let error = assert_error_names_path(GeoDb::open(file.path()), file.path());
        match error {
            GeoError::WrongType {
                database_type: found,
                ..
            } => assert_eq!(found, database_type),
            other => panic!("{database_type}: {other:?}"),
        }
    }
}

#[test]
fn geographic_types() {
    for ok in [
        "GeoIP2-Country",
        "GeoIP2-City",
        "GeoLite2-City",
        "GeoIP2-Enterprise",
        "Keiko-Regions-Country",
    ] {
        assert!(super::is_geographic_type(ok), "{ok}");
    }
    for bad in [
        "GeoLite2-ASN",
        "GeoIP2-Connection-Type",
        "GeoIP2-Domain",
        "",
        "Country",
    ] {
        assert!(!super::is_geographic_type(bad), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------
// The project's fixture

#[test]
fn fixture_locations() {
    let db = open(&fixture());
    assert!(
        db.describe().contains("Keiko-Regions-Country"),
        "{}",
        db.describe()
    );
    assert!(
        db.describe().contains("built 2026-01-01"),
        "{}",
        db.describe()
    );
    let (map, classes) = compile_classes(&db);
    let expect = [
        ("127.0.0.1", "", ""),
        ("127.0.1.1", "US", "NA"),
        ("127.0.2.1", "GB", "EU"),
        ("127.0.3.1", "SG", "AS"),
        ("127.0.4.1", "AU", "OC"),
        ("127.0.5.1", "BR", "SA"),
        ("127.0.6.1", "ZA", "AF"),
        ("127.0.7.1", "JP", "AS"),
        ("127.0.8.1", "DE", "EU"),
        ("::1", "", ""),
        ("2001:db8::1", "", ""),
        ("2001:db8:1::53", "US", "NA"),
        ("2001:db8:2::53", "GB", "EU"),
        ("2001:db8:3::53", "SG", "AS"),
        ("2001:db8:4::53", "AU", "OC"),
        ("2001:db8:5::53", "BR", "SA"),
        ("2001:db8:6::53", "ZA", "AF"),
        ("192.0.2.1", "US", "NA"),
        ("198.51.100.100", "ZA", "AF"),
        ("203.0.113.200", "NZ", "OC"),
        ("81.2.69.142", "GB", "EU"),
        ("2a02:d280::1", "CZ", "EU"),
        ("175.16.199.1", "", ""),
        ("::ffff:127.0.2.1", "GB", "EU"),
        ("2002:7f00:201::1", "GB", "EU"),
    ];
    for (address, country, continent) in expect {
        let located = db.locate(ip(address)).unwrap();
        assert_eq!(
            (located.country, located.continent),
            pair(country, continent),
            "locate({address})"
        );
        assert_eq!(
            classes.pair(map.lookup(ip(address)).0),
            &pair(country, continent),
            "lookup({address})"
        );
    }
}

/// The committed .mmdb holds exactly what its source says (a stale build fails here).
#[test]
fn fixture_matches_its_source() {
    let source = std::fs::read_to_string(fixture().with_extension("csv")).unwrap();
    let db = open(&fixture());
    let mut lines = 0;
    for line in source.lines() {
        let text = line.split('#').next().unwrap().trim();
        if text.is_empty() || text.starts_with("network,") {
            continue;
        }
        let fields: Vec<&str> = text.split(',').collect();
        let network: IpNet = fields[0].parse().unwrap();
        let located = db.locate(network.network()).unwrap();
        assert_eq!(located.network, network, "{text}");
        assert_eq!(located.country.as_deref(), Some(fields[1]), "{text}");
        assert_eq!(located.continent.as_deref(), Some(fields[2]), "{text}");
        lines += 1;
    }
    assert!(lines >= 40);
    // Every continent with a loopback network and a documentation network, in both families.
    for continent in ["NA", "SA", "EU", "AF", "AS", "OC"] {
        let has = |start: &str| {
            source
                .lines()
                .any(|l| l.starts_with(start) && l.trim_end().ends_with(&format!(",{continent}")))
        };
        assert!(has("127."), "{continent}: no loopback network");
        assert!(has("2001:db8:"), "{continent}: no 2001:db8::/32 network");
        assert!(
            has("192.0.2.") || has("198.51.100.") || has("203.0.113."),
            "{continent}: no IPv4 documentation network"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Lookups are total

fn maps() -> Vec<ClientMap> {
    let mut maps = vec![ClientMap::uniform(3)];
    for path in [
        maxmind("GeoLite2-Country-Test.mmdb"),
        maxmind("GeoLite2-City-Test.mmdb"),
        fixture(),
    ] {
        maps.push(compile_classes(&open(&path)).0);
    }
    maps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn lookup_never_panics(v4 in any::<u32>(), v6 in any::<u128>(), cut in 0u32..=128) {
        thread_local! {
            static MAPS: Vec<ClientMap> = maps();
        }
        // Addresses near the interesting corners as well as uniform ones.
        let low = u128::MAX.checked_shr(cut).unwrap_or(0);
        let candidates = [
            IpAddr::V4(Ipv4Addr::from(v4)),
            IpAddr::V6(Ipv6Addr::from(v6)),
            IpAddr::V6(Ipv4Addr::from(v4).to_ipv6_mapped()),
            IpAddr::V6(Ipv6Addr::from(v6 & low)),
            IpAddr::V6(Ipv6Addr::from((0x2002_u128 << 112) | (v6 >> 16))),
            IpAddr::V6(Ipv6Addr::from(u128::from(v4))),
        ];
        MAPS.with(|maps| {
            for map in maps {
                for address in candidates {
                    let (_, prefix) = map.lookup(address);
                    let max = if address.is_ipv4() { 32 } else { 128 };
                    prop_assert!(prefix <= max, "{} -> /{}", address, prefix);
                }
            }
            Ok(())
        })?;
    }
}

/// `cargo test --release -- --ignored --nocapture lookup_speed` prints ns per lookup and
/// compile time on a synthetic database the size of GeoLite2-Country.
#[test]
#[ignore = "timing; run in release"]
fn lookup_speed() {
    use std::time::Instant;
    let mut rng = Rng(7);
    let mut writer = mmdb_writer::Writer::builder("GeoLite2-Country")
        .description(&[("en", "synthetic")])
        .build();
    let codes = [
        ("US", "NA"),
        ("GB", "EU"),
        ("DE", "EU"),
        ("JP", "AS"),
        ("BR", "SA"),
        ("ZA", "AF"),
        ("AU", "OC"),
    ];
    let records: Vec<mmdb_writer::Value> = codes
        .iter()
        .map(|(c, k)| {
            mmdb_writer::Value::map([
                (
                    "country",
                    mmdb_writer::Value::map([("iso_code", mmdb_writer::Value::from(*c))]),
                ),
                (
                    "continent",
                    mmdb_writer::Value::map([("code", mmdb_writer::Value::from(*k))]),
                ),
            ])
        })
        .collect();
    let started = Instant::now();
    for _ in 0..300_000 {
        let len = 16 + (rng.next() % 13) as u8;
        let net = IpNet::new(IpAddr::V4(Ipv4Addr::from(rng.next() as u32)), len)
            .unwrap()
            .trunc();
        let record = records[(rng.next() % 7) as usize].clone();
        writer.insert_value(net, record).unwrap();
    }
    for _ in 0..150_000 {
        let len = 24 + (rng.next() % 25) as u8;
        let address = (0x24_u128 << 120) | (rng.wide() >> 8);
        let net = IpNet::new(IpAddr::V6(Ipv6Addr::from(address)), len)
            .unwrap()
            .trunc();
        let record = records[(rng.next() % 7) as usize].clone();
        writer.insert_value(net, record).unwrap();
    }
    let file = temp_file(&writer.to_bytes().unwrap());
    println!("built synthetic database in {:?}", started.elapsed());

    let started = Instant::now();
    let db = open(file.path());
    println!("open + verify: {:?} ({})", started.elapsed(), db.describe());
    let started = Instant::now();
    let mut classes = Classes::default();
    let map = db.compile(&mut |c, k| classes.id(c, k)).unwrap();
    println!(
        "compile: {:?}, {} nodes, {} bytes",
        started.elapsed(),
        map.node_count(),
        map.memory_bytes()
    );

    let v4: Vec<IpAddr> = (0..1 << 20)
        .map(|_| IpAddr::V4(Ipv4Addr::from(rng.next() as u32)))
        .collect();
    let v6: Vec<IpAddr> = (0..1 << 20)
        .map(|_| IpAddr::V6(Ipv6Addr::from((0x24_u128 << 120) | (rng.wide() >> 8))))
        .collect();
    // Clients cluster: a server sees the same resolvers again and again.
    let hot_v4: Vec<IpAddr> = v4
        .iter()
        .take(4096)
        .cycle()
        .take(1 << 20)
        .copied()
        .collect();
    let hot_v6: Vec<IpAddr> = v6
        .iter()
        .take(4096)
        .cycle()
        .take(1 << 20)
        .copied()
        .collect();
    let runs = [
        ("IPv4 random", &v4),
        ("IPv6 random", &v6),
        ("IPv4 4096 hot", &hot_v4),
        ("IPv6 4096 hot", &hot_v6),
    ];
    for (name, addresses) in runs {
        let started = Instant::now();
        let mut sum = 0u64;
        for round in 0..4 {
            for address in addresses {
                let (value, prefix) = map.lookup(std::hint::black_box(*address));
                sum = sum.wrapping_add(u64::from(value) + u64::from(prefix) + round);
            }
        }
        let per = started.elapsed().as_nanos() as f64 / (4 * addresses.len()) as f64;
        println!("{name} lookup: {per:.1} ns (checksum {sum})");
    }
}
