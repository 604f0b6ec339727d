//! The static part of the zone: an RFC 1035 master file read with hickory's
//! parser, checked for the mistakes an authoritative server must not serve.
//!
//! hickory's parser reports no line numbers, so errors are located by
//! re-parsing growing prefixes of the file cut at whole entries: the first
//! prefix that shows the problem ends at the offending entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

/// The records of one owner name, grouped by type in file order.
pub type Node = BTreeMap<RecordType, Vec<Record>>;

#[derive(Debug, Clone)]
pub struct Zone {
    pub origin: Name,
    pub soa: Record,
    /// Owner name (lowercase) to its records.
    pub nodes: BTreeMap<Name, Node>,
    pub serial: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{}: cannot read zone file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

type Parsed = BTreeMap<Name, Node>;

impl Zone {
    pub fn load(path: &Path, origin: &Name) -> Result<Zone, ZoneError> {
        let text = std::fs::read_to_string(path).map_err(|source| ZoneError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, origin)
    }

    pub fn parse(path: &Path, text: &str, origin: &Name) -> Result<Zone, ZoneError> {
        let invalid = |line, message: String| ZoneError::Invalid {
            path: path.to_owned(),
            line,
            message,
        };
        let parse = |text: &str| parse_text(path, text, origin);
        let nodes = match parse(text) {
            Ok(nodes) => nodes,
            Err(message) => {
                let line = locate(text, |prefix| parse(prefix).is_err());
                return Err(invalid(line, message));
            }
        };
        if let Some((line, message)) = first_problem(text, &nodes, origin, &parse) {
            return Err(invalid(line, message));
        }
        let apex = nodes.get(origin);
        let soa = apex
            .and_then(|n| n.get(&RecordType::SOA))
            .and_then(|s| s.first())
            .cloned()
            .ok_or_else(|| invalid(1, format!("no SOA record at the apex {origin}")))?;
        if apex.is_none_or(|n| !n.contains_key(&RecordType::NS)) {
            return Err(invalid(1, format!("no NS records at the apex {origin}")));
        }
        let serial = match &soa.data {
            RData::SOA(s) => s.serial,
            _ => 0,
        };
        Ok(Zone {
            origin: origin.clone(),
            soa,
            nodes,
            serial,
        })
    }

    /// TTL for negative answers (RFC 2308): min(SOA TTL, SOA MINIMUM).
    pub fn negative_ttl(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(s) => self.soa.ttl.min(s.minimum),
            _ => self.soa.ttl,
        }
    }

    pub fn contains(&self, name: &Name) -> bool {
        self.nodes.contains_key(&name.to_lowercase())
    }
}

fn parse_text(path: &Path, text: &str, origin: &Name) -> Result<Parsed, String> {
    let (_, sets) = Parser::new(text, Some(path.to_owned()), Some(origin.clone()))
        .parse()
        .map_err(|e| e.to_string())?;
    let mut nodes: Parsed = BTreeMap::new();
    for (_, set) in sets {
        for record in set.records_without_rrsigs() {
            let mut record = record.clone();
            record.name = record.name.to_lowercase();
            nodes
                .entry(record.name.clone())
                .or_default()
                .entry(record.record_type())
                .or_default()
                .push(record);
        }
    }
    Ok(nodes)
}

/// Content checks the parser does not make, each located at its entry.
fn first_problem(
    text: &str,
    nodes: &Parsed,
    origin: &Name,
    parse: &dyn Fn(&str) -> Result<Parsed, String>,
) -> Option<(usize, String)> {
    let at = |name: &Name, pred: &dyn Fn(&Node) -> bool| {
        locate(text, |prefix| {
            parse(prefix).is_ok_and(|n| n.get(name).is_some_and(pred))
        })
    };
    for (name, node) in nodes {
        if !origin.zone_of(name) {
            let line = at(name, &|_| true);
            return Some((
                line,
                format!("{name} is outside the zone {origin} (out-of-zone data)"),
            ));
        }
        if name.is_wildcard() {
            let line = at(name, &|_| true);
            return Some((line, format!("{name}: wildcard names are not supported")));
        }
        for (rtype, records) in node {
            if let Some(r) = records.iter().find(|r| r.dns_class != DNSClass::IN) {
                let line = at(name, &|_| true);
                return Some((
                    line,
                    format!(
                        "{name} {rtype}: class {} is not supported; use IN",
                        r.dns_class
                    ),
                ));
            }
        }
        if node.contains_key(&RecordType::CNAME) && node.len() > 1 {
            let line = at(name, &|n| n.contains_key(&RecordType::CNAME) && n.len() > 1);
            return Some((
                line,
                format!("{name} has a CNAME beside other data (RFC 1034 section 3.6.2)"),
            ));
        }
        if node.get(&RecordType::CNAME).is_some_and(|c| c.len() > 1) {
            let line = at(name, &|n| {
                n.get(&RecordType::CNAME).is_some_and(|c| c.len() > 1)
            });
            return Some((line, format!("{name} has more than one CNAME")));
        }
        if name != origin && node.contains_key(&RecordType::NS) {
            let line = at(name, &|n| n.contains_key(&RecordType::NS));
            return Some((
                line,
                format!("{name}: delegations below the apex are not supported"),
            ));
        }
        if name != origin && node.contains_key(&RecordType::SOA) {
            let line = at(name, &|n| n.contains_key(&RecordType::SOA));
            return Some((
                line,
                format!("{name}: an SOA record belongs only at the apex {origin}"),
            ));
        }
    }
    if nodes
        .get(origin)
        .and_then(|n| n.get(&RecordType::SOA))
        .is_some_and(|s| s.len() > 1)
    {
        let line = at(origin, &|n| {
            n.get(&RecordType::SOA).is_some_and(|s| s.len() > 1)
        });
        return Some((line, "more than one SOA record at the apex".into()));
    }
    None
}

/// The line of the first entry at which `shows_problem` turns true for the
/// prefix of `text` ending after that entry (1 when it never does).
fn locate(text: &str, shows_problem: impl Fn(&str) -> bool) -> usize {
    let ends = entry_ends(text);
    // Binary search: the smallest prefix, cut after a whole entry, that shows it.
    let (mut lo, mut hi) = (0usize, ends.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if shows_problem(&text[..ends[mid].1]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    ends.get(lo).map_or(1, |&(line, _)| line)
}

/// For each entry of a master file: the line it starts on and the byte
/// offset just past its end (entries span lines inside parentheses).
fn entry_ends(text: &str) -> Vec<(usize, usize)> {
    let mut ends = Vec::new();
    let (mut depth, mut quoted, mut comment, mut escaped) = (0i32, false, false, false);
    let (mut line, mut start_line, mut has_content) = (1usize, 1usize, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\n' => {
                comment = false;
                if depth <= 0 && !quoted {
                    if has_content {
                        ends.push((start_line, i + 1));
                    }
                    has_content = false;
                    depth = 0;
                    start_line = line + 1;
                }
                line += 1;
            }
            _ if comment => {}
            b'\\' => escaped = true,
            b'"' => quoted = !quoted,
            _ if quoted => {}
            b';' => comment = true,
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' | b'\t' | b'\r' => {}
            _ => {
                if !has_content {
                    start_line = line;
                }
                has_content = true;
            }
        }
    }
    if has_content {
        ends.push((start_line, text.len()));
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn origin() -> Name {
        Name::from_str("keiko.example.com.").unwrap()
    }

    const GOOD: &str = "$ORIGIN keiko.example.com.\n$TTL 3600\n\
@ IN SOA ns1 hostmaster (\n  2026112601 7200 3600 1209600 300 )\n\
@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.53\nns2 IN AAAA 2001:db8::53\n\
www IN CNAME api\napi IN A 192.0.2.1\n@ IN MX 10 mail\nmail IN A 192.0.2.25\n\
@ IN TXT \"v=spf1 -all\"\n@ IN CAA 0 issue \"letsencrypt.org\"\na.b.c IN A 192.0.2.9\n";

    fn parse(text: &str) -> Result<Zone, ZoneError> {
        Zone::parse(Path::new("test.zone"), text, &origin())
    }

    #[test]
    fn loads_a_complete_zone() {
        let zone = parse(GOOD).unwrap();
        assert_eq!(zone.serial, 2026112601);
        assert_eq!(zone.negative_ttl(), 300);
        assert!(zone.contains(&Name::from_str("WWW.keiko.example.com.").unwrap()));
        assert!(zone.contains(&Name::from_str("a.b.c.keiko.example.com.").unwrap()));
    }

    fn error_line(text: &str) -> (usize, String) {
        match parse(text) {
            Err(ZoneError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn syntax_error_names_its_line() {
        let text = format!("{GOOD}bad IN A 300.1.2.3\nok IN A 192.0.2.2\n");
        let (line, _) = error_line(&text);
        assert_eq!(line, 16);
    }

    #[test]
    fn out_of_zone_data_is_refused() {
        let (line, message) = error_line(&format!("{GOOD}other.example.net. IN A 192.0.2.1\n"));
        assert_eq!(line, 16);
        assert!(message.contains("outside the zone"), "{message}");
    }

    #[test]
    fn cname_beside_other_data_is_refused() {
        let (line, message) = error_line(&format!("{GOOD}www IN A 192.0.2.3\n"));
        assert_eq!(line, 16);
        assert!(message.contains("CNAME beside other data"), "{message}");
    }

    #[test]
    fn missing_soa_is_refused() {
        let (_, message) =
            error_line("$ORIGIN keiko.example.com.\n@ 60 IN NS ns1\nns1 60 IN A 192.0.2.1\n");
        assert!(message.contains("no SOA"), "{message}");
    }

    #[test]
    fn entries_span_parentheses() {
        let ends = entry_ends("a ( 1\n 2 ) ; c\n\n b\n");
        assert_eq!(ends.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 4]);
    }
}
