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
    /// The file it was read from, for problems found later.
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{}: cannot read zone file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(ZoneProblem),
}

/// One problem in a zone file, as `file:line:col: key: message`, where the
/// key is the offending entry (or owner and type) as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneProblem {
    /// The zone file, or the `$INCLUDE` file the problem is in.
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ZoneProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: ", self.path.display(), self.line, self.col)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
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
        let invalid = |line, key: &str, message: String| {
            ZoneError::Invalid(problem(path, text, line, key, message))
        };
        let parse = |text: &str| parse_text(path, text, origin);
        let nodes = match parse(text) {
            Ok(nodes) => nodes,
            Err(message) => {
                let line = locate(text, |prefix| parse(prefix).is_err());
                return Err(ZoneError::Invalid(syntax_problem(
                    path, text, line, &message, &parse,
                )));
            }
        };
        if let Some((line, key, message)) = first_problem(text, &nodes, origin, &parse) {
            return Err(invalid(line, &key, message));
        }
        let apex = nodes.get(origin);
        let soa = apex
            .and_then(|n| n.get(&RecordType::SOA))
            .and_then(|s| s.first())
            .cloned()
            .ok_or_else(|| {
                invalid(
                    1,
                    "",
                    format!("no SOA record at the apex {origin}; a zone starts with one"),
                )
            })?;
        if apex.is_none_or(|n| !n.contains_key(&RecordType::NS)) {
            return Err(invalid(
                1,
                "",
                format!("no NS records at the apex {origin}; name at least one name server"),
            ));
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
            path: path.to_owned(),
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

    /// Whether `name` exists in the zone: it owns records, or names below it
    /// do (an empty non-terminal answers NODATA, not NXDOMAIN).
    pub fn has_name(&self, name: &Name) -> bool {
        let name = name.to_lowercase();
        self.nodes.contains_key(&name) || self.nodes.keys().any(|n| name.zone_of(n))
    }

    /// A problem with `owner`'s `rtype` records found after loading, located
    /// by reading the file again (only ever done for an error).
    pub fn problem_at(&self, owner: &Name, rtype: RecordType, message: String) -> ZoneProblem {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let line = locate(&text, |prefix| {
            parse_text(&self.path, prefix, &self.origin)
                .is_ok_and(|n| n.get(owner).is_some_and(|node| node.contains_key(&rtype)))
        });
        problem(
            &self.path,
            &text,
            line,
            &format!("{owner} {rtype}"),
            message,
        )
    }
}

/// A problem at the entry starting on `line` of `text`; `key` defaults to
/// the entry as written.
/// Why `name` is not a usable name: a `*` label anywhere but first (RFC
/// 4592 wildcards are `*` as the leftmost label only), or a label that
/// holds a `*` among other characters, which is no wildcard at all.
pub fn misplaced_star(name: &Name) -> Option<String> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let (last, rest) = labels.split_first()?;
    let rest_star = rest.iter().any(|l| l.contains(&b'*'));
    let first_bad = last.contains(&b'*') && *last != b"*";
    (rest_star || first_bad).then(|| {
        format!(
            "{name}: a '*' is a wildcard only as the whole leftmost label (RFC 4592), \
             e.g. \"*.tenants\"; anywhere else it is not allowed"
        )
    })
}

fn problem(path: &Path, text: &str, line: usize, key: &str, message: String) -> ZoneProblem {
    let written = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let col = written.chars().take_while(|c| c.is_whitespace()).count() + 1;
    ZoneProblem {
        path: path.to_owned(),
        line,
        col,
        key: key.to_owned(),
        message,
    }
}

/// The entry starting on `line`, comment and extra blanks dropped, short
/// enough to quote: it names the bad value, which the parser's words do not.
fn entry_text(text: &str, line: usize) -> String {
    let written = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let code = written.split(';').next().unwrap_or("");
    let words: Vec<&str> = code.split_whitespace().collect();
    let mut entry = words.join(" ");
    if entry.chars().count() > 72 {
        entry = entry.chars().take(69).collect::<String>() + "...";
    }
    entry
}

/// A parse error located at `line`, in the operator's words. When the entry
/// there is an `$INCLUDE`, the problem is looked for inside that file, so
/// the error names it and its own line.
fn syntax_problem(
    path: &Path,
    text: &str,
    line: usize,
    message: &str,
    parse: &dyn Fn(&str) -> Result<Parsed, String>,
) -> ZoneProblem {
    let entry = entry_text(text, line);
    let message = parser_words(message);
    let Some(file) = include_file(&entry) else {
        return problem(path, text, line, &entry, message);
    };
    let included = path.parent().unwrap_or(Path::new("/")).join(file);
    let Ok(inner) = std::fs::read_to_string(&included) else {
        return problem(
            path,
            text,
            line,
            &entry,
            format!("cannot read the $INCLUDE file {}", included.display()),
        );
    };
    // The entries before the $INCLUDE set its $ORIGIN and $TTL context.
    let before = text
        .lines()
        .take(line.saturating_sub(1))
        .collect::<Vec<_>>()
        .join("\n");
    let inner_line = locate(&inner, |prefix| {
        parse(&format!("{before}\n{prefix}")).is_err()
    });
    let mut found = problem(
        &included,
        &inner,
        inner_line,
        &entry_text(&inner, inner_line),
        message,
    );
    found.message += &format!(" (in {}, included from {}:{line})", file, path.display());
    found
}

/// The file an `$INCLUDE file [origin]` entry names.
fn include_file(entry: &str) -> Option<&str> {
    let mut words = entry.split_whitespace();
    let directive = words.next()?;
    if !directive.eq_ignore_ascii_case("$INCLUDE") {
        return None;
    }
    words.next().map(|f| f.trim_matches('"'))
}

/// hickory's error text without the library's own layers ("proto error:",
/// "decoding error:"), and its terse phrases in a zone editor's words.
fn parser_words(message: &str) -> String {
    let mut m = message.trim();
    for layer in ["proto error: ", "decoding error: ", "lexer error: "] {
        m = m.strip_prefix(layer).unwrap_or(m);
    }
    if let Some(kind) = m.strip_prefix("record type string unknown: ") {
        return format!("{kind:?} is not a record type (or a TTL out of range)");
    }
    if let Some(rest) = m.strip_prefix("token is missing: ") {
        return format!("the entry is incomplete: its {rest} is missing");
    }
    if let Some(rest) = m.strip_prefix("io error: ") {
        return format!("cannot read a file it includes: {rest}");
    }
    match m {
        "network address parse error: invalid IPv4 address syntax" => {
            "the address is not an IPv4 address (e.g. 192.0.2.1)".into()
        }
        "network address parse error: invalid IPv6 address syntax" => {
            "the address is not an IPv6 address (e.g. 2001:db8::1)".into()
        }
        "error parsing number: invalid digit found in string" => {
            "a number is expected where the entry has text".into()
        }
        "unclosed list, missing ')'" => "a '(' is never closed: add the missing ')'".into(),
        other => other
            .strip_prefix("network address parse error: ")
            .unwrap_or(other)
            .to_owned(),
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

/// Content checks the parser does not make, each located at its entry, as
/// (line, key, message).
fn first_problem(
    text: &str,
    nodes: &Parsed,
    origin: &Name,
    parse: &dyn Fn(&str) -> Result<Parsed, String>,
) -> Option<(usize, String, String)> {
    let at = |name: &Name, pred: &dyn Fn(&Node) -> bool| {
        locate(text, |prefix| {
            parse(prefix).is_ok_and(|n| n.get(name).is_some_and(pred))
        })
    };
    // A file written for another origin shows up as an SOA away from the
    // apex; say so, instead of what that makes of each of its names.
    let apex_soa = nodes
        .get(origin)
        .is_some_and(|n| n.contains_key(&RecordType::SOA));
    if let Some((name, _)) = nodes
        .iter()
        .find(|(name, node)| *name != origin && node.contains_key(&RecordType::SOA))
    {
        let line = at(name, &|n| n.contains_key(&RecordType::SOA));
        if apex_soa {
            return Some((
                line,
                format!("{name} SOA"),
                format!("an SOA record belongs only at the apex {origin}"),
            ));
        }
        return Some((
            line,
            format!("{name} SOA"),
            format!(
                "the zone file's origin does not match zone.origin: its SOA is at {name}, \
                 zone.origin is {origin}; fix $ORIGIN in the file or zone.origin in the config"
            ),
        ));
    }
    for (name, node) in nodes {
        if !origin.zone_of(name) {
            let line = at(name, &|_| true);
            return Some((
                line,
                name.to_string(),
                format!(
                    "{name} is outside the zone {origin} (out-of-zone data); only names ending in {origin} belong here"
                ),
            ));
        }
        if let Some(problem) = misplaced_star(name) {
            let line = at(name, &|_| true);
            return Some((line, name.to_string(), problem));
        }
        for (rtype, records) in node {
            if let Some(r) = records.iter().find(|r| r.dns_class != DNSClass::IN) {
                let line = at(name, &|_| true);
                return Some((
                    line,
                    format!("{name} {rtype}"),
                    format!("class {} is not supported; use IN", r.dns_class),
                ));
            }
        }
        if node.contains_key(&RecordType::CNAME) && node.len() > 1 {
            let line = at(name, &|n| n.contains_key(&RecordType::CNAME) && n.len() > 1);
            return Some((
                line,
                format!("{name} CNAME"),
                "a CNAME beside other data is not allowed (RFC 1034 section 3.6.2); a name with a CNAME has nothing else".into(),
            ));
        }
        if node.get(&RecordType::CNAME).is_some_and(|c| c.len() > 1) {
            let line = at(name, &|n| {
                n.get(&RecordType::CNAME).is_some_and(|c| c.len() > 1)
            });
            return Some((
                line,
                format!("{name} CNAME"),
                "more than one CNAME; a name has at most one".into(),
            ));
        }
        if name != origin && node.contains_key(&RecordType::NS) {
            let line = at(name, &|n| n.contains_key(&RecordType::NS));
            return Some((
                line,
                format!("{name} NS"),
                format!(
                    "delegations below the apex {origin} are not supported; NS records belong only at the apex"
                ),
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
        return Some((
            line,
            format!("{origin} SOA"),
            "more than one SOA record at the apex; a zone has exactly one".into(),
        ));
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
mod tests;
