//! GeoIP: reading MaxMind DB files (GeoIP2/GeoLite2 Country or City layout, or the
//! project's own `Keiko-Regions` fixtures) and compiling them into a [`ClientMap`], the
//! lock-free, allocation-free address classifier the query path uses.
//!
//! This module owns everything that touches a `.mmdb` file: opening and validating it
//! ([`GeoDb::open`] rejects corrupt files and non-geographic database types up front, so a
//! bad file fails a reload instead of a query), one-off lookups for `explain`
//! ([`GeoDb::locate`]), and the compile step ([`GeoDb::compile`]) that walks every network
//! once and turns "country, continent" into a caller-chosen `u32` class per address.
//!
//! Only `country.iso_code` and `continent.code` are read from records.
//!
//! A database is read into memory whole when opened, so a file rewritten or truncated
//! later (by `geoipupdate`, or by hand) cannot change or break one that is in use; the new
//! file takes effect at the next reload. Reading instead of memory-mapping also keeps this
//! crate free of `unsafe` code.

mod client_map;
#[cfg(test)]
mod tests;

pub use self::client_map::ClientMap;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use maxminddb::{LookupResult, MaxMindDbError, Reader, WithinOptions};
use serde::Deserialize;

use self::client_map::{Builder, unmap};

/// Why a GeoIP database could not be opened, checked or read. Every message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoError {
    /// The file could not be read at all (missing, permissions, an I/O error).
    #[error("cannot open GeoIP database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid MaxMind DB (empty, truncated, corrupt).
    #[error("GeoIP database {} is not a valid MaxMind DB file: {reason}", path.display())]
    Invalid {
        /// The database file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A valid MaxMind DB, but not one that says where addresses are.
    #[error(
        "GeoIP database {} has type {database_type:?}; expected a country or city database \
         (GeoIP2-Country, GeoIP2-City, GeoLite2-Country, GeoLite2-City, GeoIP2-Enterprise \
         or Keiko-Regions-*)",
        path.display()
    )]
    WrongType {
        /// The database file.
        path: PathBuf,
        /// The type its metadata declares.
        database_type: String,
    },
    /// Reading a record failed after the database was opened.
    #[error("GeoIP database {}: lookup of {subject} failed: {source}", path.display())]
    Lookup {
        /// The database file.
        path: PathBuf,
        /// The address, network or record being read.
        subject: String,
        /// The reader's error.
        #[source]
        source: MaxMindDbError,
    },
    /// The compiled map would exceed its limits.
    #[error(
        "GeoIP database {} is too large to compile (over 2^30 tree nodes or 2^22 distinct classes)",
        path.display()
    )]
    TooLarge {
        /// The database file.
        path: PathBuf,
    },
}

/// What [`GeoDb::walk`] calls for each network.
/// Classifies a location inside network `i` (`Some(i)`) or outside all of them.
pub type NetworkClassify<'a> = dyn FnMut(Option<usize>, Option<&str>, Option<&str>) -> u32 + 'a;

type NetworkVisitor<'a> = dyn FnMut(IpNet, &LookupResult<'_, Vec<u8>>) -> Result<(), GeoError> + 'a;

/// An opened, validated MaxMind DB with a country or city layout.
pub struct GeoDb {
    reader: Reader<Vec<u8>>,
    path: PathBuf,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("database_type", &self.reader.metadata().database_type)
            .finish_non_exhaustive()
    }
}

// Snapshots share an opened database across threads.
const _: () = {
    const fn check<T: Send + Sync>() {}
    check::<GeoDb>();
};

/// Where an address is, as the database says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 country code, e.g. "GB".
    pub country: Option<String>,
    /// MaxMind continent code: AF, AN, AS, EU, NA, OC or SA.
    pub continent: Option<String>,
    /// The database network that contains the address (also when it has no data).
    pub network: IpNet,
}

/// The only fields read from a record; everything else is skipped without decoding.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<CountryRecord<'a>>,
    #[serde(borrow, default)]
    continent: Option<ContinentRecord<'a>>,
}

#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct ContinentRecord<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

impl<'a> Record<'a> {
    fn country(&self) -> Option<&'a str> {
        self.country
            .as_ref()
            .and_then(|c| c.iso_code)
            .filter(|s| !s.is_empty())
    }

    fn continent(&self) -> Option<&'a str> {
        self.continent
            .as_ref()
            .and_then(|c| c.code)
            .filter(|s| !s.is_empty())
    }
}

/// Whether a database type has a country or city layout.
fn is_geographic_type(database_type: &str) -> bool {
    if database_type.starts_with("Keiko-Regions") {
        return true;
    }
    let vendor = database_type.starts_with("GeoIP2-") || database_type.starts_with("GeoLite2-");
    // Anonymous-IP, ASN, ISP, Domain, Connection-Type... carry no location.
    vendor
        && ["Country", "City", "Enterprise"]
            .iter()
            .any(|kind| database_type.contains(kind))
}

impl GeoDb {
    /// Opens `path` (read into memory) and checks it: it must be a MaxMind DB of a country or
    /// city type (GeoIP2-*, GeoLite2-*, Keiko-Regions*), and its whole search tree and every
    /// record it points to must be well formed, so that corruption is found here and not on
    /// a query.
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let owned = || path.to_path_buf();
        let meta = std::fs::metadata(path).map_err(|source| GeoError::Open {
            path: owned(),
            source,
        })?;
        if !meta.is_file() {
            return Err(GeoError::Invalid {
                path: owned(),
                reason: "not a regular file".into(),
            });
        }
        if meta.len() == 0 {
            return Err(GeoError::Invalid {
                path: owned(),
                reason: "the file is empty".into(),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| GeoError::Open {
            path: owned(),
            source,
        })?;
        let reader = Reader::from_source(bytes).map_err(|error| match error {
            MaxMindDbError::Io(source) => GeoError::Open {
                path: owned(),
                source,
            },
            other => GeoError::Invalid {
                path: owned(),
                reason: other.to_string(),
            },
        })?;
        let database_type = &reader.metadata().database_type;
        if !is_geographic_type(database_type) {
            return Err(GeoError::WrongType {
                path: owned(),
                database_type: database_type.clone(),
            });
        }
        reader.verify().map_err(|error| GeoError::Invalid {
            path: owned(),
            reason: error.to_string(),
        })?;
        Ok(GeoDb {
            reader,
            path: owned(),
        })
    }

    /// The file this database was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One line for `keiko-dns check`: type, build date, IP version, node count.
    pub fn describe(&self) -> String {
        let m = self.reader.metadata();
        format!(
            "{} (built {}, IPv{} tree, {} nodes, {}-bit records)",
            m.database_type,
            utc_date(m.build_epoch),
            m.ip_version,
            m.node_count,
            m.record_size,
        )
    }

    /// Where `ip` is: country and continent codes (None where the database has none) and
    /// the database network that contains it. An IPv4-mapped IPv6 address is located as
    /// the IPv4 address it carries (and its network is reported as an IPv4 network).
    pub fn locate(&self, ip: IpAddr) -> Result<Location, GeoError> {
        let ip = unmap(ip);
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            // An IPv4-only database says nothing about IPv6.
            return Ok(Location {
                country: None,
                continent: None,
                network: IpNet::V6(Ipv6Net::default()),
            });
        }
        let subject = || ip.to_string();
        let lookup_error = |source| GeoError::Lookup {
            path: self.path.clone(),
            subject: subject(),
            source,
        };
        let result = self.reader.lookup(ip).map_err(lookup_error)?;
        let found = result.network().map_err(lookup_error)?;
        let network = IpNet::new(found.ip(), found.prefix()).map_err(|_| GeoError::Invalid {
            path: self.path.clone(),
            reason: format!("bad network {found} for {ip}"),
        })?;
        let record: Option<Record<'_>> = result.decode().map_err(lookup_error)?;
        let (country, continent) = match &record {
            Some(r) => (
                r.country().map(str::to_owned),
                r.continent().map(str::to_owned),
            ),
            None => (None, None),
        };
        Ok(Location {
            country,
            continent,
            network,
        })
    }

    /// Walks every network in the database once and compiles a [`ClientMap`] in which each
    /// address maps to `classify(country, continent)`; addresses the database does not
    /// cover, or whose record has neither code, get `classify(None, None)`.
    ///
    /// `classify` is called once per distinct record, not once per network.
    pub fn compile(
        &self,
        classify: &mut dyn FnMut(Option<&str>, Option<&str>) -> u32,
    ) -> Result<ClientMap, GeoError> {
        self.compile_with_networks(
            &mut |_, country, continent| classify(country, continent),
            &[],
        )
    }

    /// As [`GeoDb::compile`], with `networks` laid over the database: every address inside
    /// `networks[i]` maps to `classify(Some(i), country, continent)` (its own location still
    /// passed, for residency), the longest network containing the address winning; the
    /// others to `classify(None, country, continent)`. The map stays one tree, and since
    /// a network's classes are its own, no leaf inside a network reaches outside it: the
    /// ECS scope is never wider than the network matched.
    pub fn compile_with_networks(
        &self,
        classify: &mut NetworkClassify<'_>,
        networks: &[IpNet],
    ) -> Result<ClientMap, GeoError> {
        let unknown = classify(None, None, None);
        let mut builder = Builder::new(unknown);
        let ipv6 = self.reader.metadata().ip_version == 6;
        let too_large = |_| GeoError::TooLarge {
            path: self.path.clone(),
        };
        self.walk_all(&mut builder, &mut |c, k| classify(None, c, k))?;
        // Shorter networks first, so a longer one overrides what it covers.
        let mut order: Vec<usize> = (0..networks.len()).collect();
        order.sort_by_key(|&i| networks[i].prefix_len());
        for i in order {
            let net = networks[i];
            let unknown = classify(Some(i), None, None);
            if matches!(net, IpNet::V6(_)) && !ipv6 {
                // An IPv4-only database places no IPv6 client: the whole network is
                // one class, of no location.
                builder.insert(net, unknown).map_err(too_large)?;
                continue;
            }
            let mut cache: HashMap<usize, u32> = HashMap::new();
            self.walk(net, &mut |found, result| {
                let value = self.classify(
                    result,
                    &mut cache,
                    &mut |country, continent| classify(Some(i), country, continent),
                    unknown,
                )?;
                // The database may answer with a network wider than ours (or, for
                // IPv4 in an IPv6 database, in the other family): clip it to ours.
                let inside = match (found, net) {
                    (IpNet::V4(f), IpNet::V4(n)) if n.contains(&f) => found,
                    (IpNet::V6(f), IpNet::V6(n)) if n.contains(&f) => found,
                    _ => net,
                };
                builder.insert(inside, value).map_err(too_large)
            })?;
        }
        if ipv6 {
            let v4_space = Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 96);
            builder.link_to_v4(v4_space).map_err(too_large)?;
        }
        let v6_networks = networks.iter().any(|n| matches!(n, IpNet::V6(_)));
        builder.finish(ipv6 || v6_networks, ipv6).map_err(too_large)
    }

    /// Inserts every network of the database, classified, into `builder` (the IPv4 tree,
    /// and the IPv6 tree without its IPv4 subtree).
    fn walk_all(
        &self,
        builder: &mut Builder,
        classify: &mut dyn FnMut(Option<&str>, Option<&str>) -> u32,
    ) -> Result<(), GeoError> {
        let unknown = classify(None, None);
        // Many networks share one record: decode and classify each record once.
        let mut cache: HashMap<usize, u32> = HashMap::new();
        let too_large = |_| GeoError::TooLarge {
            path: self.path.clone(),
        };
        let ipv6 = self.reader.metadata().ip_version == 6;

        // The IPv4 tree: 0.0.0.0/0, which in an IPv6 database is the ::/96 subtree.
        self.walk(IpNet::V4(Ipv4Net::default()), &mut |network, result| {
            let value = self.classify(result, &mut cache, classify, unknown)?;
            let network = match network {
                IpNet::V4(_) => network,
                // An IPv6 database without an IPv4 subtree answers the whole IPv4 space
                // with the IPv6 network that contains ::/96.
                IpNet::V6(_) => IpNet::V4(Ipv4Net::default()),
            };
            builder.insert(network, value).map_err(too_large)
        })?;

        if ipv6 {
            // The IPv6 tree, without the IPv4 subtree at ::/96 (linked to the IPv4 tree
            // instead of copied). The iterator skips the other aliases of the IPv4 subtree
            // (::ffff:0:0/96, 2002::/16, ...) altogether; they are the gaps that `finish`
            // turns into links, which is what the database itself does.
            let v4_space = Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 96);
            self.walk(IpNet::V6(Ipv6Net::default()), &mut |network, result| {
                if let IpNet::V6(net) = network
                    && v4_space.contains(&net)
                {
                    return Ok(());
                }
                let value = self.classify(result, &mut cache, classify, unknown)?;
                builder.insert(network, value).map_err(too_large)
            })?;
        }
        Ok(())
    }

    /// Calls `visit` for every network within `cidr`, including those without data, in
    /// address order.
    fn walk(&self, cidr: IpNet, visit: &mut NetworkVisitor<'_>) -> Result<(), GeoError> {
        let lookup_error = |source| GeoError::Lookup {
            path: self.path.clone(),
            subject: cidr.to_string(),
            source,
        };
        // `within` takes the `ipnetwork` crate's type; parsing our own text avoids a
        // direct dependency on it.
        let range = cidr
            .to_string()
            .parse()
            .map_err(|error| lookup_error(MaxMindDbError::InvalidNetwork(error)))?;
        let within = self
            .reader
            .within(
                range,
                WithinOptions::default().include_networks_without_data(),
            )
            .map_err(lookup_error)?;
        for item in within {
            let result = item.map_err(lookup_error)?;
            let found = result.network().map_err(lookup_error)?;
            let network =
                IpNet::new(found.ip(), found.prefix()).map_err(|_| GeoError::Invalid {
                    path: self.path.clone(),
                    reason: format!("bad network {found} in the search tree"),
                })?;
            visit(network, &result)?;
        }
        Ok(())
    }

    /// The class of a network's record, through the per-record cache.
    fn classify(
        &self,
        result: &LookupResult<'_, Vec<u8>>,
        cache: &mut HashMap<usize, u32>,
        classify: &mut dyn FnMut(Option<&str>, Option<&str>) -> u32,
        unknown: u32,
    ) -> Result<u32, GeoError> {
        let Some(offset) = result.offset() else {
            return Ok(unknown);
        };
        if let Some(&value) = cache.get(&offset) {
            return Ok(value);
        }
        let record: Option<Record<'_>> = result.decode().map_err(|source| GeoError::Lookup {
            path: self.path.clone(),
            subject: format!("the record at data offset {offset}"),
            source,
        })?;
        let value = match &record {
            Some(r) => classify(r.country(), r.continent()),
            None => unknown,
        };
        cache.insert(offset, value);
        Ok(value)
    }
}

/// `YYYY-MM-DD` (UTC) for a Unix time, without a date library (civil-from-days).
fn utc_date(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
