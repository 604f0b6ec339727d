//! `[geoip]` and `[residency.*]`: preference lists by place, and the blocks
//! that keep a place's clients on its own regions.

use std::collections::{BTreeMap, HashMap};

use toml::Spanned;

use super::super::schema;
use ipnet::IpNet;

use super::super::{Geoip, Network, Region, RegionId, Residency};
use super::Validator;

/// The continent codes MaxMind databases use.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// ISO 3166-1 alpha-2, the officially assigned codes, sorted; plus `XK`
/// (Kosovo), user-assigned in ISO 3166 but what MaxMind databases carry.
const COUNTRIES: [&str; 250] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Which kind of place code a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Continent,
    Country,
}

/// Why `code` is not a `kind` code, with what to write instead; `None`
/// when it is one.
fn place_problem(kind: Place, code: &str) -> Option<String> {
    let known = match kind {
        Place::Continent => CONTINENTS.binary_search(&code).is_ok(),
        Place::Country => COUNTRIES.binary_search(&code).is_ok(),
    };
    if known {
        return None;
    }
    let upper = code.to_ascii_uppercase();
    let hint = match kind {
        Place::Continent if CONTINENTS.contains(&upper.as_str()) => {
            format!("write it in capitals: {upper:?}")
        }
        Place::Continent => format!("use one of {}", CONTINENTS.join(", ")),
        Place::Country if upper == "UK" => {
            "the United Kingdom is \"GB\" in ISO 3166 and in MaxMind databases".into()
        }
        Place::Country if COUNTRIES.binary_search(&upper.as_str()).is_ok() => {
            format!("write it in capitals: {upper:?}")
        }
        Place::Country => "use a two-letter ISO 3166-1 code in capitals, e.g. \"JP\"".into(),
    };
    let what = match kind {
        Place::Continent => "a continent code",
        Place::Country => "an ISO 3166-1 alpha-2 country code",
    };
    Some(format!("{code:?} is not {what}; {hint}"))
}

impl Validator<'_> {
    /// `[[networks]]`: CIDRs with preference lists; no network twice.
    pub(super) fn networks(&mut self, raw: Vec<Spanned<schema::Network>>) -> Vec<Network> {
        let mut out: Vec<Network> = Vec::new();
        for n in raw {
            let n = n.into_inner();
            let regions = self.region_list("networks.regions", &n.regions);
            let text = n.cidr.get_ref();
            let cidr = match text.parse::<IpNet>() {
                Ok(net) if net.trunc() != net => {
                    self.err(
                        n.cidr.span(),
                        "networks.cidr",
                        format!(
                            "{text:?} has host bits set; write the network, e.g. \"{}\"",
                            net.trunc()
                        ),
                    );
                    continue;
                }
                Ok(IpNet::V6(v6))
                    if v6.prefix_len() >= 96
                        && (v6.network().to_ipv4_mapped().is_some()
                            || u128::from(v6.network()) >> 32 == 0) =>
                {
                    self.err(
                        n.cidr.span(),
                        "networks.cidr",
                        format!("{text:?} is IPv4 space inside IPv6; write it as an IPv4 network"),
                    );
                    continue;
                }
                Ok(net) => net,
                Err(_) => {
                    self.err(
                        n.cidr.span(),
                        "networks.cidr",
                        format!(
                            "{text:?} is not a network in CIDR notation, e.g. \"10.20.0.0/16\" or \"2001:db8:20::/48\""
                        ),
                    );
                    continue;
                }
            };
            if out.iter().any(|o| o.cidr == cidr) {
                self.err(
                    n.cidr.span(),
                    "networks.cidr",
                    format!("{cidr} is listed twice"),
                );
                continue;
            }
            out.push(Network { cidr, regions });
        }
        out
    }

    /// Reports `code` at `key` unless it is a `kind` code; true when valid.
    fn place(&mut self, kind: Place, code: &Spanned<String>, key: &str) -> bool {
        match place_problem(kind, code.get_ref()) {
            Some(problem) => {
                self.err(code.span(), key, problem);
                false
            }
            None => true,
        }
    }

    pub(super) fn geoip(&mut self, g: Option<Spanned<schema::Geoip>>, regions: &[Region]) -> Geoip {
        let mut by_priority: Vec<RegionId> = (0..regions.len()).collect();
        by_priority.sort_by_key(|&i| regions[i].priority);
        let Some(g) = g else {
            return Geoip {
                default: by_priority,
                ..Geoip::default()
            };
        };
        let g = g.into_inner();
        let default = match &g.default {
            Some(list) => self.region_list("geoip.default", list),
            None => by_priority,
        };
        let mut lists = |kind, key: &str, raw: &BTreeMap<Spanned<String>, _>| {
            let mut out = BTreeMap::new();
            for (code, list) in raw {
                self.place(kind, code, key);
                let ids = self.region_list(&format!("{key}.{}", code.get_ref()), list);
                out.insert(code.get_ref().clone(), ids);
            }
            out
        };
        let continents = lists(Place::Continent, "geoip.continents", &g.continents);
        let countries = lists(Place::Country, "geoip.countries", &g.countries);
        if let Some(d) = &g.database {
            self.geoip_database_at = d.span();
        }
        Geoip {
            database: g.database.map(|d| self.path(d.get_ref())),
            default,
            continents,
            countries,
        }
    }

    pub(super) fn residency(
        &mut self,
        raw: BTreeMap<String, Spanned<schema::Residency>>,
    ) -> Vec<Residency> {
        let mut out = Vec::new();
        let mut claimed: HashMap<String, String> = HashMap::new();
        for (name, block) in raw {
            let span = block.span();
            let b = block.into_inner();
            let key = format!("residency.{name}");
            if b.continents.is_empty() && b.countries.is_empty() {
                self.err(span.clone(), &key, "name at least one continent or country");
            }
            let mut codes = |kind, field: &str, list: &[Spanned<String>]| {
                let key = format!("{key}.{field}");
                let mut out = Vec::new();
                for c in list {
                    if self.place(kind, c, &key)
                        && let Some(other) = claimed.insert(c.get_ref().clone(), name.clone())
                    {
                        self.err(
                            c.span(),
                            &key,
                            format!("{} is already claimed by [residency.{other}]", c.get_ref()),
                        );
                    }
                    out.push(c.get_ref().clone());
                }
                out
            };
            let continents = codes(Place::Continent, "continents", &b.continents);
            let countries = codes(Place::Country, "countries", &b.countries);
            let regions = self.region_list(&format!("{key}.regions"), &b.regions);
            out.push(Residency {
                name,
                continents,
                countries,
                regions,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{CONFIG, errors, line_of, one_error};
    use super::*;

    #[test]
    fn the_code_lists_are_sorted_and_unique() {
        assert!(CONTINENTS.windows(2).all(|w| w[0] < w[1]));
        assert!(
            COUNTRIES.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
        assert!(
            COUNTRIES
                .iter()
                .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn uk_is_not_a_country_code() {
        let problem = place_problem(Place::Country, "UK").expect("UK is refused");
        assert!(problem.contains("\"GB\""), "{problem}");
        assert!(place_problem(Place::Country, "GB").is_none());
        assert!(place_problem(Place::Country, "ZZ").is_some());
        let lower = place_problem(Place::Country, "jp").expect("lowercase is refused");
        assert!(lower.contains("\"JP\""), "{lower}");
        assert!(place_problem(Place::Continent, "EU").is_none());
        assert!(place_problem(Place::Continent, "XX").is_some());
    }

    #[test]
    fn geo_and_residency_lists_must_name_known_regions() {
        let text = format!(
            "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\ndefault = [\"us-east-1\", \"moon-1\"]\n[geoip.continents]\nEU = [\"eu-west-1\"]\n[residency.eu]\ncontinents = [\"EU\"]\nregions = [\"pluto-9\"]\n"
        );
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        let text = format!(
            "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\ndefault = [\"us-east-1\", \"moon-1\"]\n"
        );
        one_error(
            &text,
            "geoip.default",
            line_of(&text, "moon-1"),
            "unknown region \"moon-1\"",
        );
        let text = format!(
            "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\n[geoip.continents]\nEU = [\"eu-west-1\", \"venus-2\"]\n"
        );
        one_error(
            &text,
            "geoip.continents.EU",
            line_of(&text, "venus-2"),
            "unknown region",
        );
        let text = format!(
            "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\n[residency.eu]\ncontinents = [\"EU\"]\nregions = [\"pluto-9\"]\n"
        );
        one_error(
            &text,
            "residency.eu.regions",
            line_of(&text, "pluto-9"),
            "unknown region",
        );
    }

    #[test]
    fn continent_and_country_codes_are_checked() {
        let geo = |table: &str, line: &str| {
            format!("{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\n[geoip.{table}]\n{line}\n")
        };
        let text = geo("continents", "XX = [\"eu-west-1\"]");
        one_error(
            &text,
            "geoip.continents",
            line_of(&text, "XX ="),
            "not a continent code",
        );
        let text = geo("countries", "jp = [\"eu-west-1\"]");
        one_error(
            &text,
            "geoip.countries",
            line_of(&text, "jp ="),
            "write it in capitals: \"JP\"",
        );
        let text = geo("countries", "UK = [\"eu-west-1\"]");
        one_error(&text, "geoip.countries", line_of(&text, "UK ="), "\"GB\"");
        let text = format!(
            "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\n[residency.eu]\ncountries = [\"DE\", \"UK\"]\nregions = [\"eu-west-1\"]\n"
        );
        one_error(
            &text,
            "residency.eu.countries",
            line_of(&text, "\"UK\""),
            "ISO 3166-1",
        );
    }

    #[test]
    fn a_place_belongs_to_one_residency_block() {
        let text = format!(
            "{CONFIG}\n[geoip]\ndatabase = \"x.mmdb\"\n[residency.a]\ncountries = [\"CH\"]\nregions = [\"eu-west-1\"]\n[residency.b]\ncountries = [\"CH\"]\nregions = [\"us-east-1\"]\n"
        );
        one_error(
            &text,
            "residency.b.countries",
            nth(&text, "countries = [\"CH\"]", 2),
            "already claimed by [residency.a]",
        );
    }

    fn nth(text: &str, needle: &str, n: usize) -> usize {
        super::super::super::tests::nth_line_of(text, needle, n)
    }

    #[test]
    fn networks_are_cidrs_with_known_regions() {
        let net = |cidr: &str, regions: &str| {
            format!("{CONFIG}\n[[networks]]\ncidr = \"{cidr}\"\nregions = {regions}\n")
        };
        let ok = net("10.20.0.0/16", "[\"eu-west-1\", \"us-east-1\"]");
        let parsed = crate::config::Config::parse(std::path::Path::new("/k/keiko.toml"), &ok);
        let networks = parsed.map(|c| c.networks).unwrap_or_default();
        assert_eq!(networks.len(), 1);
        assert_eq!(networks[0].regions, vec![1, 0]);
        for (cidr, regions, key, words) in [
            (
                "10.20.0.0",
                "[\"eu-west-1\"]",
                "networks.cidr",
                "CIDR notation",
            ),
            (
                "10.20.0.1/16",
                "[\"eu-west-1\"]",
                "networks.cidr",
                "\"10.20.0.0/16\"",
            ),
            (
                "::ffff:10.0.0.0/104",
                "[\"eu-west-1\"]",
                "networks.cidr",
                "as an IPv4 network",
            ),
            (
                "10.20.0.0/16",
                "[\"mars-1\"]",
                "networks.regions",
                "unknown region",
            ),
            (
                "10.20.0.0/16",
                "[]",
                "networks.regions",
                "at least one region",
            ),
        ] {
            let text = net(cidr, regions);
            let needle = if key == "networks.cidr" {
                "cidr ="
            } else {
                "regions = ["
            };
            one_error(&text, key, line_of(&text, needle), words);
        }
        let twice =
            format!("{ok}\n[[networks]]\ncidr = \"10.20.0.0/16\"\nregions = [\"us-east-1\"]\n");
        assert!(
            errors(&twice)
                .iter()
                .any(|d| d.message.contains("listed twice"))
        );
    }
}
