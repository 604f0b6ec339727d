//! Builds the project's GeoIP fixture, `geoip-fixtures/keiko-regions.mmdb`, from its
//! human-readable source `geoip-fixtures/keiko-regions.csv`.
//!
//! ```text
//! cargo run --example build_geoip_fixtures [INPUT.csv [OUTPUT.mmdb]]
//! ```
//!
//! The output is a MaxMind DB (IPv6 tree, IPv4 at ::/96 with the usual aliases) whose records
//! have the GeoIP2-Country layout (`country.iso_code`, `country.names.en`, `continent.code`,
//! `continent.names.en`) under database type `Keiko-Regions-Country`. The build time is
//! fixed, so the same source always gives the same bytes. The file is read back with the
//! `maxminddb` crate, verified, and every source line looked up before it is written.

// A tool run by hand: a failed unwrap is a clear enough report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::error::Error;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use ipnet::IpNet;
use mmdb_writer::{IpVersion, Writer};
use serde::{Deserialize, Serialize};

/// Fixed build time (2026-01-01T00:00:00Z) for reproducible output.
const BUILD_EPOCH: u64 = 1_767_225_600;
const DATABASE_TYPE: &str = "Keiko-Regions-Country";

const CONTINENTS: &[(&str, &str)] = &[
    ("AF", "Africa"),
    ("AN", "Antarctica"),
    ("AS", "Asia"),
    ("EU", "Europe"),
    ("NA", "North America"),
    ("OC", "Oceania"),
    ("SA", "South America"),
];

/// English names of the countries the source may use; a code not listed here is an error,
/// which catches typos such as "UK".
const COUNTRIES: &[(&str, &str)] = &[
    ("AR", "Argentina"),
    ("AU", "Australia"),
    ("BR", "Brazil"),
    ("BT", "Bhutan"),
    ("CA", "Canada"),
    ("CL", "Chile"),
    ("CN", "China"),
    ("CZ", "Czechia"),
    ("DE", "Germany"),
    ("EG", "Egypt"),
    ("ES", "Spain"),
    ("FR", "France"),
    ("GB", "United Kingdom"),
    ("IE", "Ireland"),
    ("IN", "India"),
    ("IT", "Italy"),
    ("JP", "Japan"),
    ("KE", "Kenya"),
    ("KR", "South Korea"),
    ("MX", "Mexico"),
    ("NG", "Nigeria"),
    ("NL", "Netherlands"),
    ("NZ", "New Zealand"),
    ("PH", "Philippines"),
    ("SE", "Sweden"),
    ("SG", "Singapore"),
    ("US", "United States"),
    ("ZA", "South Africa"),
];

#[derive(Serialize)]
struct Named<'a> {
    code: Option<&'a str>,
    iso_code: Option<&'a str>,
    names: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct CountryRecord<'a> {
    continent: Named<'a>,
    country: Named<'a>,
}

/// What the read-back check decodes.
#[derive(Deserialize)]
struct ReadBack<'a> {
    #[serde(borrow)]
    country: Code<'a>,
    #[serde(borrow)]
    continent: Code<'a>,
}

#[derive(Deserialize)]
struct Code<'a> {
    iso_code: Option<&'a str>,
    code: Option<&'a str>,
}

struct Entry {
    line: usize,
    network: IpNet,
    country: String,
    continent: String,
}

fn name_of(table: &[(&'static str, &'static str)], code: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

fn parse(source: &str, path: &Path) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut seen_header = false;
    for (index, raw) in source.lines().enumerate() {
        let line = index + 1;
        let text = raw.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let at = |what: String| format!("{}:{line}: {what}", path.display());
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if !seen_header {
            seen_header = true;
            if fields == ["network", "country", "continent"] {
                continue;
            }
        }
        let [network, country, continent] = fields[..] else {
            return Err(at(format!(
                "expected network,country,continent, found {text:?}"
            )));
        };
        let network: IpNet = network
            .parse()
            .map_err(|e| at(format!("bad network {network:?}: {e}")))?;
        if network.trunc() != network {
            return Err(at(format!(
                "{network} has host bits set (did you mean {}?)",
                network.trunc()
            )));
        }
        if name_of(COUNTRIES, country).is_none() {
            return Err(at(format!(
                "unknown country code {country:?}: add it to COUNTRIES in this example"
            )));
        }
        if name_of(CONTINENTS, continent).is_none() {
            return Err(at(format!(
                "unknown continent code {continent:?}: one of AF AN AS EU NA OC SA"
            )));
        }
        if let Some(other) = entries
            .iter()
            .find(|e| e.network.contains(&network) || network.contains(&e.network))
        {
            return Err(at(format!(
                "{network} overlaps {} from line {}",
                other.network, other.line
            )));
        }
        entries.push(Entry {
            line,
            network,
            country: country.to_owned(),
            continent: continent.to_owned(),
        });
    }
    if entries.is_empty() {
        return Err(format!("{}: no networks", path.display()));
    }
    Ok(entries)
}

fn build(entries: &[Entry]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut writer = Writer::builder(DATABASE_TYPE)
        .ip_version(IpVersion::V6)
        .languages(["en"])
        .description(&[(
            "en",
            "keiko-dns test and demo regions (geoip-fixtures/keiko-regions.csv)",
        )])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(BUILD_EPOCH))
        .build();
    for entry in entries {
        let record = CountryRecord {
            continent: Named {
                code: Some(&entry.continent),
                iso_code: None,
                names: name_of(CONTINENTS, &entry.continent)
                    .map(|n| ("en", n))
                    .into_iter()
                    .collect(),
            },
            country: Named {
                code: None,
                iso_code: Some(&entry.country),
                names: name_of(COUNTRIES, &entry.country)
                    .map(|n| ("en", n))
                    .into_iter()
                    .collect(),
            },
        };
        writer.insert(entry.network, &record)?;
    }
    Ok(writer.to_bytes()?)
}

/// Reads the built bytes back as any consumer would and checks every source line.
fn check(bytes: Vec<u8>, entries: &[Entry]) -> Result<(), Box<dyn Error>> {
    let reader = maxminddb::Reader::from_source(bytes)?;
    reader.verify()?;
    for entry in entries {
        // The first and last address of each network.
        let last = match entry.network {
            IpNet::V4(n) => IpAddr::V4(n.broadcast()),
            IpNet::V6(n) => IpAddr::V6(n.broadcast()),
        };
        for ip in [entry.network.network(), last] {
            let got: Option<ReadBack<'_>> = reader.lookup(ip)?.decode()?;
            let got =
                got.ok_or_else(|| format!("line {}: {ip} reads back without data", entry.line))?;
            if got.country.iso_code != Some(entry.country.as_str())
                || got.continent.code != Some(entry.continent.as_str())
            {
                return Err(format!("line {}: {ip} reads back wrong", entry.line).into());
            }
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("build_geoip_fixtures: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip-fixtures");
    let mut args = std::env::args_os().skip(1);
    let input = args
        .next()
        .map_or_else(|| fixtures.join("keiko-regions.csv"), PathBuf::from);
    let output = args
        .next()
        .map_or_else(|| fixtures.join("keiko-regions.mmdb"), PathBuf::from);
    if args.next().is_some() {
        return Err("usage: build_geoip_fixtures [INPUT.csv [OUTPUT.mmdb]]".into());
    }

    let source =
        std::fs::read_to_string(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let entries = parse(&source, &input)?;
    let bytes = build(&entries)?;
    check(bytes.clone(), &entries)?;
    std::fs::write(&output, &bytes).map_err(|e| format!("{}: {e}", output.display()))?;
    println!(
        "wrote {} ({} networks, {} bytes)",
        output.display(),
        entries.len(),
        bytes.len()
    );
    Ok(())
}
