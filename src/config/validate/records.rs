//! `[zone]`, `[[regions]]` and `[[records]]`: what is answered, from where,
//! and the checks of the steered names against the zone file.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::str::FromStr;

use hickory_proto::rr::{Name, RData, RecordType};
use toml::Spanned;

use super::super::schema::{self, AllDownName, PolicyName};
use super::super::{
    AllDown, Config, Diagnostic, Health, Policy, ProbeTarget, Record, Region, ZoneSource,
};
use super::{Validator, valid_label};
use crate::zone::{Zone, ZoneError, ZoneProblem};

const DEFAULT_TTL: u32 = 60;
/// Route53's limit of healthy records in a multivalue answer.
const DEFAULT_MAX_ANSWERS: u8 = 8;
/// A multivalue table holds an answer for every set of healthy regions.
const MAX_MULTIVALUE_REGIONS: usize = 8;
const MAX_TTL: i64 = i32::MAX as i64;

impl Validator<'_> {
    pub(super) fn regions(
        &mut self,
        raw: Vec<Spanned<schema::Region>>,
        health: &Health,
    ) -> Vec<Region> {
        if raw.is_empty() {
            self.err(0..0, "regions", "define at least one [[regions]] table");
        }
        let mut out = Vec::new();
        let mut priorities: HashMap<i64, String> = HashMap::new();
        for r in raw {
            let r = r.into_inner();
            let name = r.name.get_ref().clone();
            if !valid_label(&name) {
                self.err(
                    r.name.span(),
                    "regions.name",
                    "use letters, digits and '-', e.g. \"us-east-1\"",
                );
            }
            if self.region_ids.contains_key(&name) {
                self.err(
                    r.name.span(),
                    "regions.name",
                    format!("region {name:?} is defined twice"),
                );
            } else {
                self.region_ids.insert(name.clone(), out.len());
            }
            let priority = self.int_in(&r.priority, "regions.priority", 1, 1_000_000);
            if let Some(other) = priorities.insert(*r.priority.get_ref(), name.clone()) {
                self.err(
                    r.priority.span(),
                    "regions.priority",
                    format!(
                        "priority {} is also used by region {other:?}; priorities must differ",
                        r.priority.get_ref()
                    ),
                );
            }
            let weight = if *r.weight.get_ref() < 0 {
                self.err(
                    r.weight.span(),
                    "regions.weight",
                    "must not be negative (0 to 1000000)",
                );
                0
            } else {
                self.int_in(&r.weight, "regions.weight", 0, 1_000_000)
            };
            let capacity = r.capacity.map_or(100, |c| {
                self.int_in(&c, "regions.capacity", 0, u32::MAX as i64)
            });
            match reqwest::Url::parse(r.endpoint.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => self.err(
                    r.endpoint.span(),
                    "regions.endpoint",
                    format!(
                        "{:?} is not an http:// or https:// URL with a host",
                        r.endpoint.get_ref()
                    ),
                ),
            }
            let (mut ipv4, mut ipv6, mut addresses) = (Vec::new(), Vec::new(), Vec::new());
            let cname = match (&r.addresses, &r.cname) {
                (Some(_), Some(c)) => {
                    self.err(
                        c.span(),
                        "regions.cname",
                        "a region answers either addresses or a cname, not both; remove one",
                    );
                    None
                }
                (None, None) => {
                    self.err(
                        r.name.span(),
                        "regions.addresses",
                        "give addresses (IPv4 or IPv6) or a cname (a host name, e.g. \
                         \"lb-use1.elb.example.net.\")",
                    );
                    None
                }
                (None, Some(c)) => {
                    self.cname_at.push((out.len(), c.span()));
                    self.cname(c)
                }
                (Some(_), None) => None,
            };
            if let Some(list) = &r.addresses
                && list.get_ref().is_empty()
            {
                self.err(
                    list.span(),
                    "regions.addresses",
                    "give at least one IPv4 or IPv6 address",
                );
            }
            for a in r.addresses.into_iter().flat_map(Spanned::into_inner) {
                match IpAddr::from_str(a.get_ref()) {
                    Ok(ip) if addresses.contains(&ip) => self.err(
                        a.span(),
                        "regions.addresses",
                        format!("{ip} is listed twice"),
                    ),
                    Ok(ip) => {
                        addresses.push(ip);
                        match ip {
                            IpAddr::V4(v4) => ipv4.push(v4),
                            IpAddr::V6(v6) => ipv6.push(v6),
                        }
                    }
                    Err(_) => self.err(
                        a.span(),
                        "regions.addresses",
                        format!(
                            "{:?} is not an IPv4 or IPv6 address; a host name goes in cname \
                             instead of addresses: cname = \"{}\"",
                            a.get_ref(),
                            a.get_ref().trim_end_matches('.')
                        ),
                    ),
                }
            }
            let probe = match (&cname, &r.health_url) {
                (Some(target), None) => self.cname_probe(r.endpoint.get_ref(), target, health),
                _ => self.probe(
                    r.endpoint.get_ref(),
                    r.health_url.as_ref(),
                    addresses.first().copied(),
                    health,
                ),
            };
            out.push(Region {
                name,
                priority,
                weight,
                capacity,
                endpoint: r.endpoint.into_inner(),
                ipv4,
                ipv6,
                addresses,
                cname,
                health_url: r.health_url.map(Spanned::into_inner),
                expect_body: r.expect_body.map(Spanned::into_inner),
                probe,
            });
        }
        if !out.is_empty() && out.iter().all(|r| r.weight == 0) {
            self.err(
                0..0,
                "regions.weight",
                "every region has weight 0; at least one weight must be positive",
            );
        }
        out
    }

    /// A region's `cname`: a fully qualified host name.
    fn cname(&mut self, c: &Spanned<String>) -> Option<Name> {
        let text = c.get_ref();
        match Name::from_str(text) {
            Ok(n) if text.ends_with('.') && n.num_labels() >= 2 && !n.is_wildcard() => {
                Some(n.to_lowercase())
            }
            _ => {
                self.err(
                    c.span(),
                    "regions.cname",
                    format!(
                        "{text:?} is not a fully qualified host name ending in a dot, e.g. \
                         \"lb-use1.elb.example.net.\""
                    ),
                );
                None
            }
        }
    }

    /// Without `health_url`, a CNAME region is probed at its target on the
    /// endpoint's port, with Host and SNI from `endpoint`.
    fn cname_probe(&mut self, endpoint: &str, target: &Name, health: &Health) -> ProbeTarget {
        let ip = IpAddr::from([0, 0, 0, 0]);
        match super::health::probe_target(endpoint, None, ip, &health.path) {
            Ok(ProbeTarget::Http { url, .. }) => {
                let port = url.port_or_known_default().unwrap_or(443);
                let host = target.to_ascii().trim_end_matches('.').to_owned();
                ProbeTarget::HttpVia { url, host, port }
            }
            // A bad endpoint or health.path has its own check, reported once.
            _ => ProbeTarget::Tcp {
                addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            },
        }
    }

    /// Checks between records and regions: CNAME regions cannot take part
    /// in multivalue answers, and an in-zone CNAME target without
    /// `health_url` would be probed through this server.
    pub(super) fn cname_rules(&mut self, records: &[Record], regions: &[Region], origin: &Name) {
        let cnames: Vec<&Region> = regions.iter().filter(|r| r.cname.is_some()).collect();
        if let Some(first) = cnames.first() {
            for r in records {
                if matches!(r.policy, Policy::Multivalue { .. }) {
                    self.sink.error_at(
                        r.at,
                        "records.policy",
                        format!(
                            "a multivalue record answers addresses, and region {:?} is a CNAME \
                             region; CNAME regions cannot take part in multivalue answers",
                            first.name
                        ),
                    );
                }
            }
        }
        for r in records.iter().filter(|r| r.name == *origin) {
            let candidates: Vec<&Region> = match r.policy {
                Policy::Region(id) => regions.get(id).into_iter().collect(),
                _ => regions.iter().collect(),
            };
            if let Some(c) = candidates.iter().find(|c| c.cname.is_some()) {
                self.sink.error_at(
                    r.at,
                    "records.name",
                    format!(
                        "the apex cannot be a CNAME (RFC 1034: it holds the SOA and NS), and region \
                         {:?} answers one; steer the apex only over regions with addresses \
                         (policy \"region\" names one)",
                        c.name
                    ),
                );
            }
        }
        for (index, region) in regions.iter().enumerate() {
            if let Some(target) = &region.cname
                && origin.zone_of(target)
                && region.health_url.is_none()
            {
                let span = self
                    .cname_at
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map_or(0..0, |(_, s)| s.clone());
                self.err(
                    span,
                    "regions.cname",
                    format!(
                        "the cname {target} is inside the zone, so probing it by name would go \
                         through this server; give region {:?} a health_url",
                        region.name
                    ),
                );
            }
        }
    }

    pub(super) fn zone(&mut self, z: schema::Zone) -> ZoneSource {
        let text = z.origin.get_ref();
        let origin = match Name::from_str(text) {
            Ok(n) if text.ends_with('.') && !n.is_root() => n.to_lowercase(),
            _ => {
                self.err(
                    z.origin.span(),
                    "zone.origin",
                    format!("{text:?} is not a fully qualified domain name ending in a dot, e.g. \"keiko.example.com.\""),
                );
                Name::root()
            }
        };
        self.zone_file_at = z.file.span();
        ZoneSource {
            origin,
            file: self.path(z.file.get_ref()),
        }
    }

    pub(super) fn records(
        &mut self,
        raw: Vec<Spanned<schema::Record>>,
        origin: &Name,
    ) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        let mut seen = HashSet::new();
        for r in raw {
            let r = r.into_inner();
            let text = r.name.get_ref();
            let parsed = match text.as_str() {
                "@" => Ok(origin.clone()),
                _ => Name::parse(text, Some(origin)),
            };
            let name = match parsed {
                Ok(n) if !text.is_empty() && origin.zone_of(&n) => n.to_lowercase(),
                _ => {
                    self.err(
                        r.name.span(),
                        "records.name",
                        format!("{text:?} is not a name inside {origin}; write it relative to the origin, e.g. \"api-contracts\""),
                    );
                    continue;
                }
            };
            if let Some(problem) = crate::zone::misplaced_star(&name) {
                self.err(r.name.span(), "records.name", problem);
                continue;
            }
            if !seen.insert(name.clone()) {
                self.err(
                    r.name.span(),
                    "records.name",
                    format!("{name} is defined twice"),
                );
            }
            let policy = match (*r.policy.get_ref(), &r.region) {
                (PolicyName::Region, Some(region)) => match self.region_ids.get(region.get_ref()) {
                    Some(&id) => Policy::Region(id),
                    None => {
                        let known = self.known_regions();
                        self.err(
                            region.span(),
                            "records.region",
                            format!(
                                "unknown region {:?}; defined regions: {known}",
                                region.get_ref()
                            ),
                        );
                        continue;
                    }
                },
                (PolicyName::Region, None) => {
                    self.err(
                        r.policy.span(),
                        "records.region",
                        "policy \"region\" needs region = \"<name>\"",
                    );
                    continue;
                }
                (_, Some(region)) => {
                    self.err(
                        region.span(),
                        "records.region",
                        "only policy \"region\" takes a region",
                    );
                    continue;
                }
                (PolicyName::Failover, None) => Policy::Failover,
                (PolicyName::Geo, None) => Policy::Geo,
                (PolicyName::Weighted, None) => Policy::Weighted,
                (PolicyName::Multivalue, None) => Policy::Multivalue {
                    max_answers: r.max_answers.as_ref().map_or(DEFAULT_MAX_ANSWERS, |m| {
                        self.int_in(m, "records.max_answers", 1, 8) as u8
                    }),
                },
            };
            if matches!(policy, Policy::Multivalue { .. })
                && self.region_ids.len() > MAX_MULTIVALUE_REGIONS
            {
                self.err(
                    r.policy.span(),
                    "records.policy",
                    format!(
                        "a multivalue record answers from at most {MAX_MULTIVALUE_REGIONS} regions \
                         (its table holds an answer for every set of healthy regions); there are {}",
                        self.region_ids.len()
                    ),
                );
            }
            if let Some(m) = &r.max_answers
                && !matches!(policy, Policy::Multivalue { .. })
            {
                self.err(
                    m.span(),
                    "records.max_answers",
                    "only policy \"multivalue\" takes max_answers",
                );
            }
            let ttl = r
                .ttl
                .map_or(DEFAULT_TTL, |t| self.int_in(&t, "records.ttl", 0, MAX_TTL));
            let on_all_down = match &r.on_all_down {
                None => AllDown::FailOpen,
                Some(d) if matches!(policy, Policy::Region(_)) => {
                    self.err(
                        d.span(),
                        "records.on_all_down",
                        "policy \"region\" answers its region whatever its health; \
                         on_all_down applies to failover, weighted, geo and multivalue",
                    );
                    AllDown::FailOpen
                }
                Some(d) => match d.get_ref() {
                    AllDownName::FailOpen => AllDown::FailOpen,
                    AllDownName::Nodata => AllDown::NoData,
                    AllDownName::Servfail => AllDown::ServFail,
                },
            };
            let at = self.sink.line_col(r.name.span().start);
            out.push(Record {
                name,
                policy,
                ttl,
                on_all_down,
                at,
            });
        }
        out
    }

    /// Reads the zone file `config` names; its problems are reported in the
    /// zone file's own `file:line:col:` form, a missing file at `zone.file`.
    pub(super) fn load_zone(&mut self, config: &Config) -> Option<Zone> {
        match Zone::load(&config.zone.file, &config.zone.origin) {
            Ok(zone) => Some(zone),
            Err(ZoneError::Read { path, source }) => {
                self.err(
                    self.zone_file_at.clone(),
                    "zone.file",
                    format!("cannot read the zone file {}: {source}", path.display()),
                );
                None
            }
            Err(ZoneError::Invalid(problem)) => {
                self.zone_problem(problem);
                None
            }
        }
    }

    fn zone_problem(&mut self, p: ZoneProblem) {
        self.sink.found.push(Diagnostic {
            file: p.path,
            line: p.line,
            col: p.col,
            key: p.key,
            message: p.message,
        });
    }

    /// The checks of the steered names against the zone: a name is either
    /// steered or in the zone file, and an in-zone CNAME must lead to a name
    /// that exists in one of them.
    pub(super) fn against_zone(&mut self, config: &Config, zone: &Zone) {
        for r in &config.records {
            if r.name == zone.origin {
                // The steered apex: A and AAAA from steering, the rest from the file.
                let apex = &zone.nodes.get(&zone.origin);
                for t in [RecordType::A, RecordType::AAAA] {
                    if apex.is_some_and(|n| n.contains_key(&t)) {
                        let problem = zone.problem_at(
                            &zone.origin,
                            t,
                            format!(
                                "the apex is steered ([[records]] name = \"@\"): its A and AAAA \
                                 come from steering, so the zone file must hold no {t} at the apex; \
                                 remove it (SOA, NS, MX, TXT and the rest stay here)"
                            ),
                        );
                        self.zone_problem(problem);
                    }
                }
                continue;
            }
            if zone.contains(&r.name) {
                let d = config.record_error(
                    r,
                    format!(
                        "{} is steered here and also has records in the zone file {}; keep it in one place",
                        r.name,
                        config.zone.file.display()
                    ),
                );
                self.sink.found.push(d);
            }
        }
        // Signatures and denial records are made from the zone, never read
        // from it: a pre-signed file's would not cover what is steered.
        const MADE_BY_SIGNING: [RecordType; 7] = [
            RecordType::RRSIG,
            RecordType::NSEC,
            RecordType::NSEC3,
            RecordType::NSEC3PARAM,
            RecordType::DNSKEY,
            RecordType::CDS,
            RecordType::CDNSKEY,
        ];
        for (owner, node) in &zone.nodes {
            for rtype in MADE_BY_SIGNING.iter().filter(|t| node.contains_key(t)) {
                let problem = zone.problem_at(
                    owner,
                    *rtype,
                    format!(
                        "{rtype} records do not belong in the zone file; keiko-dns makes the \
                         zone's DNSSEC records itself when [dnssec] is set: remove them"
                    ),
                );
                self.zone_problem(problem);
            }
        }
        let steered: HashSet<&Name> = config.records.iter().map(|r| &r.name).collect();
        for (index, region) in config.regions.iter().enumerate() {
            let Some(target) = &region.cname else {
                continue;
            };
            let span = || {
                self.cname_at
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map_or(0..0, |(_, s)| s.clone())
            };
            if steered.contains(target) {
                let at = span();
                self.err(
                    at,
                    "regions.cname",
                    format!(
                        "{target} is a steered name; a CNAME region must point at a name \
                         that does not depend on steering (a load balancer, or a name in the zone file)"
                    ),
                );
            } else if zone.origin.zone_of(target) && !zone.has_name(target) {
                let at = span();
                self.err(
                    at,
                    "regions.cname",
                    format!(
                        "the cname {target} is inside the zone but no such name exists in the \
                         zone file; add it or point the cname elsewhere"
                    ),
                );
            }
        }
        for (owner, node) in &zone.nodes {
            let Some(cname) = node.get(&RecordType::CNAME).and_then(|c| c.first()) else {
                continue;
            };
            let RData::CNAME(target) = &cname.data else {
                continue;
            };
            let target = target.0.to_lowercase();
            let exists = !zone.origin.zone_of(&target)
                || steered.contains(&target)
                || zone.has_name(&target);
            if !exists {
                let problem = zone.problem_at(
                    owner,
                    RecordType::CNAME,
                    format!(
                        "the CNAME target {target} is inside the zone but no such name exists \
                         (neither in the zone file nor a steered [[records]] name); \
                         add it or point the CNAME elsewhere"
                    ),
                );
                self.zone_problem(problem);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{CONFIG, errors, line_of, nth_line_of, one_error, replace};

    #[test]
    fn records_must_name_known_regions() {
        let text = replace("region = \"ap-southeast-1\"", "region = \"mars-1\"");
        one_error(
            &text,
            "records.region",
            line_of(&text, "mars-1"),
            "unknown region \"mars-1\"",
        );
    }

    #[test]
    fn region_names_must_be_unique() {
        let text = replace("name      = \"eu-west-1\"", "name      = \"us-east-1\"");
        one_error(
            &text,
            "regions.name",
            nth_line_of(&text, "name      = \"us-east-1\"", 2),
            "defined twice",
        );
    }

    #[test]
    fn record_names_must_be_unique() {
        let text = replace(
            "name   = \"api-contracts-weighted\"",
            "name   = \"API-contracts\"",
        );
        one_error(
            &text,
            "records.name",
            line_of(&text, "API-contracts"),
            "defined twice",
        );
    }

    #[test]
    fn priorities_must_differ() {
        let text = replace("priority  = 2", "priority  = 1");
        one_error(
            &text,
            "regions.priority",
            nth_line_of(&text, "priority  = 1", 2),
            "also used by",
        );
    }

    #[test]
    fn weights_must_not_be_negative_or_all_zero() {
        let text = replace("weight    = 20", "weight    = -5");
        one_error(
            &text,
            "regions.weight",
            line_of(&text, "-5"),
            "must not be negative",
        );
        let text = CONFIG
            .replace("weight    = 40", "weight    = 0")
            .replace("weight    = 20", "weight    = 0");
        assert!(
            errors(&text)
                .iter()
                .any(|d| d.key == "regions.weight"
                    && d.message.contains("every region has weight 0"))
        );
    }

    #[test]
    fn addresses_must_parse() {
        let text = replace("\"203.0.113.10\"", "\"203.0.113.300\"");
        one_error(
            &text,
            "regions.addresses",
            line_of(&text, "203.0.113.300"),
            "not an IPv4 or IPv6 address",
        );
    }

    #[test]
    fn policy_region_needs_a_region() {
        let text = replace(
            "policy = \"region\"\nregion = \"ap-southeast-1\"",
            "policy = \"region\"",
        );
        one_error(
            &text,
            "records.region",
            line_of(&text, "policy = \"region\""),
            "needs region",
        );
    }

    #[test]
    fn unknown_policies_list_the_allowed_ones() {
        let text = replace("policy = \"failover\"", "policy = \"roundrobin\"");
        let found = errors(&text);
        assert_eq!(found[0].line, line_of(&text, "roundrobin"));
        assert!(found[0].message.contains("failover"), "{}", found[0]);
    }

    #[test]
    fn geo_records_need_a_database() {
        let text = format!("{CONFIG}\n[[records]]\nname = \"g\"\npolicy = \"geo\"\n");
        assert!(errors(&text).iter().any(|d| d.key == "geoip.database"));
    }

    #[test]
    fn record_names_must_be_inside_the_zone() {
        let text = replace(
            "name   = \"api-contracts\"",
            "name   = \"api.example.net.\"",
        );
        one_error(
            &text,
            "records.name",
            line_of(&text, "api.example.net."),
            "not a name inside",
        );
    }

    /// Every problem `config::check` finds with the fixture zone and `config`.
    fn checked(config: &str, zone: &str) -> Vec<String> {
        let (_dir, path) = crate::testutil::write(config, zone);
        match crate::config::check(&path) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn the_fixture_zone_passes_the_cross_checks() {
        assert_eq!(checked(CONFIG, crate::testutil::ZONE), Vec::<String>::new());
    }

    #[test]
    fn a_steered_name_must_not_also_be_in_the_zone() {
        let zone = format!("{}api-contracts IN A 192.0.2.1\n", crate::testutil::ZONE);
        let found = checked(CONFIG, &zone);
        assert_eq!(found.len(), 1, "{found:#?}");
        let line = line_of(CONFIG, "name   = \"api-contracts\"");
        assert!(
            found[0].contains(&format!("keiko.toml:{line}:")),
            "{found:#?}"
        );
        assert!(found[0].contains("records.name: "), "{found:#?}");
        assert!(found[0].contains("keep it in one place"), "{found:#?}");
    }

    #[test]
    fn a_dangling_in_zone_cname_is_an_error() {
        let zone = format!("{}old IN CNAME gone\n", crate::testutil::ZONE);
        let found = checked(CONFIG, &zone);
        assert_eq!(found.len(), 1, "{found:#?}");
        let line = zone.lines().count();
        assert!(
            found[0].contains(&format!("zone:{line}:1: old.keiko.example.com. CNAME: ")),
            "{found:#?}"
        );
        assert!(found[0].contains("gone.keiko.example.com."), "{found:#?}");
        // Out of the zone, or to an empty non-terminal, is not dangling.
        let zone = format!(
            "{}ext IN CNAME cdn.example.net.\nent IN CNAME below\n",
            crate::testutil::ZONE
        );
        assert_eq!(checked(CONFIG, &zone), Vec::<String>::new());
    }

    #[test]
    fn missing_files_name_their_config_key() {
        let found = checked(
            &CONFIG.replace("file   = \"zone\"", "file   = \"nope.zone\""),
            "",
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("zone.file: cannot read the zone file"),
            "{found:#?}"
        );
        let geo = format!("{CONFIG}\n[geoip]\ndatabase = \"nope.mmdb\"\n");
        let found = checked(&geo, crate::testutil::ZONE);
        assert_eq!(found.len(), 1, "{found:#?}");
        let line = line_of(&geo, "nope.mmdb");
        assert!(
            found[0].contains(&format!("keiko.toml:{line}:12: geoip.database: ")),
            "{found:#?}"
        );
    }

    #[test]
    fn on_all_down_takes_three_words_and_not_with_policy_region() {
        let text = replace(
            "policy = \"failover\"",
            "policy = \"failover\"\non_all_down = \"nodata\"",
        );
        let parsed = crate::config::Config::parse(std::path::Path::new("/k/keiko.toml"), &text);
        assert_eq!(
            parsed.map(|c| c.records[0].on_all_down).ok(),
            Some(crate::config::AllDown::NoData)
        );
        let text = replace(
            "policy = \"failover\"",
            "policy = \"failover\"\non_all_down = \"drop\"",
        );
        let found = errors(&text);
        assert_eq!(found[0].line, line_of(&text, "\"drop\""), "{found:#?}");
        assert!(found[0].message.contains("servfail"), "{}", found[0]);
        let text = replace(
            "policy = \"region\"\nregion = \"ap-southeast-1\"",
            "policy = \"region\"\nregion = \"ap-southeast-1\"\non_all_down = \"servfail\"",
        );
        one_error(
            &text,
            "records.on_all_down",
            line_of(&text, "on_all_down"),
            "whatever its health",
        );
    }

    #[test]
    fn multivalue_takes_max_answers_from_one_to_eight() {
        let mv = |more: &str| {
            format!("{CONFIG}\n[[records]]\nname = \"all\"\npolicy = \"multivalue\"\n{more}\n")
        };
        let parse = |text: &str| {
            crate::config::Config::parse(std::path::Path::new("/k/keiko.toml"), text)
                .ok()
                .map(|c| c.records[3].policy)
        };
        use crate::config::Policy::Multivalue;
        assert_eq!(parse(&mv("")), Some(Multivalue { max_answers: 8 }));
        assert_eq!(
            parse(&mv("max_answers = 3")),
            Some(Multivalue { max_answers: 3 })
        );
        for bad in ["max_answers = 0", "max_answers = 9"] {
            let text = mv(bad);
            one_error(&text, "records.max_answers", line_of(&text, bad), "1 to 8");
        }
        let text = replace(
            "policy = \"failover\"",
            "policy = \"failover\"\nmax_answers = 2",
        );
        one_error(
            &text,
            "records.max_answers",
            line_of(&text, "max_answers"),
            "only policy \"multivalue\"",
        );
        // A table of every set of regions: at most 8 of them.
        let mut many = mv("");
        for i in 0..6 {
            many += &format!(
                "\n[[regions]]\nname = \"r{i}\"\npriority = {}\nweight = 1\n\
                 endpoint = \"https://r{i}.example.com\"\naddresses = [\"192.0.2.{i}\"]\n",
                10 + i
            );
        }
        let found = errors(&many);
        assert!(
            found
                .iter()
                .any(|d| d.key == "records.policy" && d.message.contains("at most 8 regions")),
            "{found:#?}"
        );
    }
}
