//! Turns the parsed schema into a [`Config`], collecting every problem.
//!
//! This is the one validation pass: `check`, start and reload all go
//! through it, so whatever `serve` would refuse, `check` refuses too. Each
//! section of the file has its own submodule; the checks that need the
//! zone file or the GeoIP database run here too, when [`Files::Read`] asks
//! for them, against the files the config names.

mod dnssec;
mod fleet;
mod geo;
mod health;
mod notify;
mod records;
mod server;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::diag::{Diagnostic, Sink};
use super::schema;
use super::*;
use crate::geo::GeoDb;
use crate::zone::Zone;

#[cfg(test)]
pub(crate) use health::probe_target;

/// Whether validation also reads the zone file and the GeoIP database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Files {
    /// The config text alone (and its `health.ca_file` and `[fleet]`
    /// certificate files): for unit tests,
    /// fuzzing and commands that never answer queries.
    ConfigOnly,
    /// Everything a snapshot is compiled from.
    Read,
}

/// A config checked as a whole, with the files it names when they were read.
pub(super) struct Validated {
    pub config: Config,
    pub zone: Option<Zone>,
    pub geo: Option<GeoDb>,
}

pub(super) fn validate(
    path: &Path,
    text: &str,
    token_env: Option<String>,
    files: Files,
) -> Result<Validated, Vec<Diagnostic>> {
    let mut sink = Sink::new(path, text);
    let file: schema::File = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let key = key_at(text, span.start);
            sink.error(span, key, plain_words(e.message()));
            return Err(sink.found);
        }
    };
    let dir = path.parent().unwrap_or(Path::new("/")).to_owned();
    let mut v = Validator {
        sink,
        dir,
        region_ids: HashMap::new(),
        zone_file_at: 0..0,
        geoip_database_at: 0..0,
        cname_at: Vec::new(),
    };
    let config = v.config(path, file, token_env);
    let (zone, geo) = match files {
        Files::ConfigOnly => (None, None),
        Files::Read => v.files(&config),
    };
    if v.sink.found.is_empty() {
        Ok(Validated { config, zone, geo })
    } else {
        Err(v.sink.found)
    }
}

struct Validator<'a> {
    sink: Sink<'a>,
    dir: PathBuf,
    region_ids: HashMap<String, RegionId>,
    /// Where `zone.file` and `geoip.database` are written, for errors about
    /// the files they name.
    zone_file_at: Range<usize>,
    geoip_database_at: Range<usize>,
    /// Where each CNAME region's `cname` is written (region index, span).
    cname_at: Vec<(usize, Range<usize>)>,
}

impl Validator<'_> {
    fn err(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.sink.error(span, key, message);
    }

    fn config(&mut self, path: &Path, file: schema::File, token_env: Option<String>) -> Config {
        let health = self.health(file.health);
        let regions = self.regions(file.regions, &health);
        let zone = self.zone(file.zone);
        let server = self.server(file.server, token_env);
        let rate_limit = self.rate_limit(file.rate_limit);
        let geoip = self.geoip(file.geoip, &regions);
        let residency = self.residency(file.residency);
        let records = self.records(file.records, &zone.origin);
        let networks = self.networks(file.networks);
        self.cname_rules(&records, &regions, &zone.origin);
        let notify = self.notify(file.notify);
        let fleet = self.fleet(file.fleet, &server);
        let dnssec = self.dnssec(file.dnssec);
        if records.iter().any(|r| r.policy == Policy::Geo) && geoip.database.is_none() {
            self.err(
                0..0,
                "geoip.database",
                "a record has policy \"geo\" but no [geoip] database is set",
            );
        }
        if !residency.is_empty() && geoip.database.is_none() {
            self.err(
                0..0,
                "geoip.database",
                "[residency] blocks need a [geoip] database to locate clients",
            );
        }
        Config {
            path: path.to_owned(),
            server,
            zone,
            health,
            rate_limit,
            geoip,
            residency,
            regions,
            records,
            networks,
            notify,
            fleet,
            dnssec,
        }
    }

    /// Reads the zone file and GeoIP database and checks them against the
    /// config. A zone whose origin is itself invalid is not read: every
    /// name in it would be reported as outside the zone.
    fn files(&mut self, config: &Config) -> (Option<Zone>, Option<GeoDb>) {
        let zone = if config.zone.origin.is_root() {
            None
        } else {
            self.load_zone(config)
        };
        if let Some(zone) = &zone {
            self.against_zone(config, zone);
        }
        let geo = match &config.geoip.database {
            Some(path) => match GeoDb::open(path) {
                Ok(db) => Some(db),
                Err(e) => {
                    self.err(
                        self.geoip_database_at.clone(),
                        "geoip.database",
                        e.to_string(),
                    );
                    None
                }
            },
            None => None,
        };
        (zone, geo)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    fn int_in(&mut self, v: &Spanned<i64>, key: &str, min: i64, max: i64) -> u32 {
        let n = *v.get_ref();
        if n < min || n > max {
            self.err(
                v.span(),
                key,
                format!("{n} is out of range; allowed: {min} to {max}"),
            );
            return min.max(0) as u32;
        }
        n as u32
    }

    /// Resolves a list of region names, reporting unknown and repeated ones.
    fn region_list(&mut self, key: &str, list: &Spanned<Vec<Spanned<String>>>) -> Vec<RegionId> {
        if list.get_ref().is_empty() {
            self.err(list.span(), key, "name at least one region");
        }
        let mut ids = Vec::new();
        for name in list.get_ref() {
            match self.region_ids.get(name.get_ref()) {
                Some(&id) if ids.contains(&id) => self.err(
                    name.span(),
                    key,
                    format!("region {:?} is listed twice", name.get_ref()),
                ),
                Some(&id) => ids.push(id),
                None => {
                    let known = self.known_regions();
                    self.err(
                        name.span(),
                        key,
                        format!(
                            "unknown region {:?}; defined regions: {known}",
                            name.get_ref()
                        ),
                    )
                }
            }
        }
        ids
    }

    fn known_regions(&self) -> String {
        let mut names: Vec<(&RegionId, &String)> =
            self.region_ids.iter().map(|(n, i)| (i, n)).collect();
        names.sort();
        names
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The dotted key whose value sits at byte `offset`, e.g. `health.interval`
/// or `regions.weight`: the parser's errors carry a position, not a key.
/// An error on a table header (`[fleet]`) is about that table's own key,
/// not about the table before it.
fn key_at(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if let Some(header) = table_header(line) {
        return header;
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| unquote_key(k))
        .unwrap_or_default();
    let table = before[..line_start]
        .lines()
        .rev()
        .find_map(|l| table_header(l.trim()))
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}

/// `records` for `[[records]]`, `geoip.countries` for `[geoip.countries]`.
fn table_header(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let end = inner.find(']')?;
    let name = inner[..end].trim_start_matches('[');
    Some(unquote_key(name))
}

/// A dotted key as written (`a . "b"`), without quotes or spaces.
fn unquote_key(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

/// The parser's message in an operator's words: serde names Rust types
/// ("expected i64") and calls keys "fields"; neither means anything to
/// someone editing a TOML file.
fn plain_words(message: &str) -> String {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, allowed) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return match allowed {
            "" => format!("unknown key {field}; this table takes no such key"),
            allowed => format!(
                "unknown key {field}; allowed: {}",
                list_words(allowed.trim_start_matches("one of "))
            ),
        };
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (value, allowed) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!(
            "{} is not allowed; use {}",
            value.replace('`', "\""),
            allowed.trim_start_matches("one of ").replace('`', "\"")
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("the required key {field} is missing");
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (found, wanted) = rest.split_once(", expected ").unwrap_or((rest, "a value"));
            return format!(
                "expected {}, found {}",
                type_words(wanted),
                found_words(found)
            );
        }
    }
    message.to_owned()
}

fn type_words(wanted: &str) -> String {
    match wanted {
        "i64" | "u64" | "i32" | "u32" | "u8" | "u16" => "a whole number".into(),
        "a sequence" => "a list [...]".into(),
        "a map" | "struct" => "a table".into(),
        "a boolean" => "true or false".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.into(),
    }
}

fn found_words(found: &str) -> String {
    for (serde, plain) in [
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("string ", "the string "),
        ("boolean ", ""),
    ] {
        if let Some(value) = found.strip_prefix(serde) {
            return format!("{plain}{}", value.replace('`', ""));
        }
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a table".into(),
        other => other.into(),
    }
}

/// "`a`, `b`, `c`" stays; "`a` or `b`" stays: only the backticks of serde's
/// list go, so the allowed keys read as written in the file.
fn list_words(list: &str) -> String {
    list.replace('`', "")
}

fn valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::{key_at, plain_words};

    #[test]
    fn a_table_header_is_its_own_key() {
        let text = "[server]\nregion = \"x\"\n[[records]]\nname = \"a\"\n[fleet]\nx = 1\n";
        assert_eq!(key_at(text, text.find("[fleet]").unwrap()), "fleet");
        assert_eq!(key_at(text, text.find("x = 1").unwrap()), "fleet.x");
        assert_eq!(key_at(text, text.find("name").unwrap()), "records.name");
        let text = "[geoip . \"countries\"]\nJP = 1\n";
        assert_eq!(key_at(text, text.find("JP").unwrap()), "geoip.countries.JP");
    }

    #[test]
    fn serde_wording_is_translated() {
        assert_eq!(
            plain_words("invalid type: string \"forty\", expected i64"),
            "expected a whole number, found the string \"forty\""
        );
        assert_eq!(
            plain_words("unknown variant `sometimes`, expected `automatic` or `manual`"),
            "\"sometimes\" is not allowed; use \"automatic\" or \"manual\""
        );
        assert_eq!(
            plain_words("unknown field `listen`, expected one of `dns_listen`, `region`"),
            "unknown key `listen`; allowed: dns_listen, region"
        );
        assert_eq!(
            plain_words("missing field `zone`"),
            "the required key `zone` is missing"
        );
    }
}
