//! The routing version: a digest of everything that decides answers, so
//! instances of a fleet can tell at a glance whether they answer alike.
//! Zone data, steered records, regions (priorities, weights, addresses),
//! GeoIP lists and residency, and the database's identity are hashed once
//! per table build; the health of each region is added per snapshot.
//!
//! SipHash with fixed keys: stable across processes and machines of one
//! build, which is what comparing fleet members needs (it is not a
//! cryptographic commitment; peers are authenticated by TLS).

use std::hash::{Hash, Hasher};

use siphasher::sip::SipHasher13;

use crate::config::Config;
use crate::geo::GeoDb;
use crate::zone::Zone;

const KEY: (u64, u64) = (0x6b65_696b_6f2d_646e, 0x7372_6f75_7469_6e67);

fn hasher() -> SipHasher13 {
    SipHasher13::new_with_keys(KEY.0, KEY.1)
}

/// The table-build half of the routing version.
pub(crate) fn routing_inputs(config: &Config, zone: &Zone, geo: Option<&GeoDb>) -> u64 {
    let mut h = hasher();
    zone.origin.to_string().hash(&mut h);
    for (name, node) in &zone.nodes {
        name.to_string().hash(&mut h);
        for records in node.values() {
            for record in records {
                record.to_string().hash(&mut h);
            }
        }
    }
    for r in &config.records {
        (
            r.name.to_string(),
            format!("{:?}", r.policy),
            r.ttl,
            r.on_all_down.as_str(),
        )
            .hash(&mut h);
    }
    for r in &config.regions {
        (&r.name, r.priority, r.weight, &r.addresses).hash(&mut h);
        r.cname.as_ref().map(ToString::to_string).hash(&mut h);
    }
    let g = &config.geoip;
    (&g.default, &g.continents, &g.countries).hash(&mut h);
    for b in &config.residency {
        (&b.name, &b.continents, &b.countries, &b.regions).hash(&mut h);
    }
    for n in &config.networks {
        (n.cidr.to_string(), &n.regions).hash(&mut h);
    }
    geo.map(GeoDb::describe).hash(&mut h);
    h.finish()
}

/// The routing version of a table built from `inputs` serving `healthy`.
pub(crate) fn routing_version(inputs: u64, healthy: &[bool]) -> String {
    let mut h = hasher();
    inputs.hash(&mut h);
    healthy.hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_inputs_both_change_the_version() {
        let a = routing_version(1, &[true, true]);
        assert_eq!(a, routing_version(1, &[true, true]));
        assert_ne!(a, routing_version(1, &[true, false]));
        assert_ne!(a, routing_version(2, &[true, true]));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn weights_change_the_inputs_and_reloading_the_same_files_does_not() {
        let (_dir, path) = crate::testutil::write(crate::testutil::CONFIG, crate::testutil::ZONE);
        let one = crate::control::load(&path).expect("loads");
        let two = crate::control::load(&path).expect("loads");
        let digest =
            |l: &crate::control::Loaded| routing_inputs(&l.config, &l.zone, l.geo.as_deref());
        assert_eq!(digest(&one), digest(&two));
        let mut config = (*one.config).clone();
        config.regions[0].weight += 1;
        assert_ne!(
            routing_inputs(&config, &one.zone, one.geo.as_deref()),
            digest(&one)
        );
    }
}
