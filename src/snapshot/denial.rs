//! Authenticated denial of existence at query time: the zone's NSEC chain
//! in canonical order (RFC 4034 6.1), and the choice of the NSEC records
//! that prove a name does not exist.
//!
//! Every NSEC RRset is signed and encoded when the table is built; a
//! query only picks one or two of them, by binary search over the names
//! in canonical order. Nothing here allocates or signs.

use std::cmp::Ordering;

use rustc_hash::FxHashMap;

use crate::wire::MAX_NAME;

/// The NSEC chain: owner names in canonical order, each with its NSEC
/// RRset and RRSIG encoded without compression, so the bytes can follow
/// any question. Names are kept as sort keys ([`sort_key`]), so a query
/// is one key built on the stack and a binary search of byte strings.
pub(crate) struct Chain {
    keys: Box<[Box<[u8]>]>,
    records: Box<[Box<[u8]>]>,
    /// Every name in the table (empty non-terminals too) to the NSEC that
    /// covers the wildcard below it: the closest encloser's proof.
    wildcards: FxHashMap<Box<[u8]>, u32>,
}

/// An owner name and its encoded NSEC RRset with RRSIG.
pub(crate) type Link = (Box<[u8]>, Box<[u8]>);

/// NSEC records that prove a denial: up to two RRsets (each NSEC plus its
/// RRSIG, so two records each).
pub(crate) type Proof<'a> = [Option<&'a [u8]>; 2];

/// Longest sort key: every octet of a 255-octet name escaped.
const MAX_KEY: usize = 2 * MAX_NAME;

impl Chain {
    /// `links` in any order; `names` every lowercase wire name that exists
    /// in the table (the closest enclosers a query can have).
    pub(crate) fn new(links: Vec<Link>, names: &[&[u8]]) -> Chain {
        let mut keyed: Vec<Link> = links
            .into_iter()
            .map(|(name, record)| {
                let mut buf = [0u8; MAX_KEY];
                let len = sort_key(&name, &mut buf);
                (Box::from(&buf[..len]), record)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.dedup_by(|a, b| a.0 == b.0);
        let (keys, records) = keyed.into_iter().unzip::<_, _, Vec<_>, Vec<_>>();
        let mut chain = Chain {
            keys: keys.into_boxed_slice(),
            records: records.into_boxed_slice(),
            wildcards: FxHashMap::default(),
        };
        for name in names {
            let mut wildcard = [0u8; MAX_NAME + 2];
            let len = name.len() + 2;
            if len > MAX_NAME {
                continue;
            }
            wildcard[..2].copy_from_slice(b"\x01*");
            wildcard[2..len].copy_from_slice(name);
            if let Some(index) = chain.covering_index(&wildcard[..len]) {
                chain.wildcards.insert(Box::from(*name), index as u32);
            }
        }
        chain
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        let boxed = |b: &[u8]| b.len() + std::mem::size_of::<Box<[u8]>>();
        self.keys
            .iter()
            .chain(self.records.iter())
            .map(|b| boxed(b))
            .sum::<usize>()
            + self.wildcards.keys().map(|k| boxed(k) + 4).sum::<usize>()
    }

    fn covering_index(&self, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; MAX_KEY];
        let len = sort_key(name, &mut buf);
        let key = &buf[..len];
        let after = self.keys.partition_point(|k| **k <= *key);
        // Before the first name (not in the zone) wraps to the last.
        after.checked_sub(1).or(self.keys.len().checked_sub(1))
    }

    /// The NSEC whose owner is the last name at or before `name`: the one
    /// that covers it when `name` is not in the chain. The apex sorts
    /// first, so every name in the zone has one.
    pub(crate) fn covering(&self, name: &[u8]) -> Option<&[u8]> {
        self.covering_index(name)
            .and_then(|i| self.records.get(i))
            .map(|r| &r[..])
    }

    /// RFC 4035 3.1.3.2: the NSEC covering `qname`, and the one covering
    /// the wildcard at its closest encloser (the longest ancestor in the
    /// table), once when they are the same.
    pub(crate) fn nxdomain(&self, qname: &[u8]) -> Proof<'_> {
        let first = self.covering_index(qname);
        let mut second = None;
        let mut at = 0;
        while let Some(&len) = qname.get(at) {
            if len == 0 {
                break;
            }
            at += 1 + usize::from(len);
            if let Some(index) = qname.get(at..).and_then(|s| self.wildcards.get(s)) {
                second = Some(*index as usize).filter(|i| Some(*i) != first);
                break;
            }
        }
        let record = |i: Option<usize>| i.and_then(|i| self.records.get(i)).map(|r| &r[..]);
        [record(first), record(second)]
    }
}

/// Writes into `out` a byte string whose plain byte order is the RFC 4034
/// 6.1 canonical order of lowercase wire names: labels from the root down,
/// each followed by 0, its octets shifted so that none is 0 (0 and 1 are
/// escaped as 1,1 and 1,2). Returns its length.
pub(crate) fn sort_key(name: &[u8], out: &mut [u8; MAX_KEY]) -> usize {
    let mut starts = [0u8; 128];
    let n = labels(name, &mut starts);
    let mut len = 0;
    for i in (0..n).rev() {
        let label = label(name, starts[i]);
        // Host names never hold octets 0 or 1: one copy per label.
        if label.iter().all(|&o| o > 1) && len + label.len() < out.len() {
            out[len..len + label.len()].copy_from_slice(label);
            len += label.len();
        } else {
            for &octet in label {
                let escaped: &[u8] = match octet {
                    0 => &[1, 1],
                    1 => &[1, 2],
                    _ => std::slice::from_ref(&octet),
                };
                if len + escaped.len() + 1 > out.len() {
                    return len;
                }
                out[len..len + escaped.len()].copy_from_slice(escaped);
                len += escaped.len();
            }
        }
        if len >= out.len() {
            return len;
        }
        out[len] = 0;
        len += 1;
    }
    len
}

/// Offsets of the labels of a lowercase uncompressed wire name, the root
/// label excluded; the count is returned.
fn labels(name: &[u8], starts: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut at = 0usize;
    while let Some(&len) = name.get(at) {
        if len == 0 || n == starts.len() || at > usize::from(u8::MAX) {
            break;
        }
        starts[n] = at as u8;
        n += 1;
        at += 1 + usize::from(len);
    }
    n
}

fn label(name: &[u8], start: u8) -> &[u8] {
    let start = usize::from(start);
    let len = name.get(start).map_or(0, |l| usize::from(*l));
    name.get(start + 1..start + 1 + len).unwrap_or(&[])
}

/// RFC 4034 6.1 canonical order of two lowercase uncompressed wire names:
/// by labels from the root down, each compared as an octet string.
pub(crate) fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut la, mut lb) = ([0u8; 128], [0u8; 128]);
    let (na, nb) = (labels(a, &mut la), labels(b, &mut lb));
    for i in 0..na.min(nb) {
        match label(a, la[na - 1 - i]).cmp(label(b, lb[nb - 1 - i])) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    na.cmp(&nb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(text: &str) -> Box<[u8]> {
        let mut out = Vec::new();
        for label in text
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.into()
    }

    #[test]
    fn canonical_order_is_rfc_4034_section_6_1() {
        // The example list of RFC 4034 6.1, in order.
        let ordered = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\u{1}.z.example.",
            "*.z.example.",
            "\u{80}.z.example.",
        ];
        // Lowercased as the table stores names; \001 and \200 as octets.
        let names: Vec<Box<[u8]>> = ordered
            .iter()
            .map(|t| {
                let mut w = wire(&t.to_lowercase()).to_vec();
                if t.starts_with('\u{80}') {
                    // A one-octet label 0x80 (the char above is two bytes).
                    w = [&[1u8, 0x80][..], &wire("z.example.")].concat();
                }
                w.into()
            })
            .collect();
        for pair in names.windows(2) {
            assert_eq!(
                canonical_cmp(&pair[0], &pair[1]),
                Ordering::Less,
                "{pair:?}"
            );
            assert_eq!(canonical_cmp(&pair[1], &pair[0]), Ordering::Greater);
        }
        assert_eq!(canonical_cmp(&names[3], &names[3]), Ordering::Equal);
        // The sort keys order the same way.
        let key = |n: &[u8]| {
            let mut buf = [0u8; MAX_KEY];
            let len = sort_key(n, &mut buf);
            buf[..len].to_vec()
        };
        for pair in names.windows(2) {
            assert!(key(&pair[0]) < key(&pair[1]), "{pair:?}");
        }
        let zero = [&[1u8, 0][..], &wire("z.example.")].concat();
        let one = [&[1u8, 1][..], &wire("z.example.")].concat();
        let two = [&[1u8, 2][..], &wire("z.example.")].concat();
        assert_eq!(canonical_cmp(&zero, &one), Ordering::Less);
        assert!(key(&wire("z.example.")) < key(&zero));
        assert!(key(&zero) < key(&one) && key(&one) < key(&two));
    }

    fn chain(names: &[&str]) -> Chain {
        let wires: Vec<Box<[u8]>> = names.iter().map(|n| wire(n)).collect();
        let all: Vec<&[u8]> = wires.iter().map(|w| &w[..]).collect();
        Chain::new(
            names
                .iter()
                .map(|n| (wire(n), n.as_bytes().to_vec().into_boxed_slice()))
                .collect(),
            &all,
        )
    }

    fn text(p: Option<&[u8]>) -> &str {
        p.map_or("-", |b| std::str::from_utf8(b).unwrap())
    }

    #[test]
    fn covering_picks_the_previous_name_and_wraps_to_the_last() {
        let c = chain(&["z.zone.", "zone.", "b.zone.", "a.b.zone."]);
        assert_eq!(text(c.covering(&wire("zone."))), "zone.");
        assert_eq!(text(c.covering(&wire("a.zone."))), "zone.");
        assert_eq!(text(c.covering(&wire("c.b.zone."))), "a.b.zone.");
        assert_eq!(text(c.covering(&wire("y.zone."))), "a.b.zone.");
        assert_eq!(text(c.covering(&wire("zz.zone."))), "z.zone.");
    }

    #[test]
    fn nxdomain_adds_the_wildcard_proof_of_the_closest_encloser() {
        let names = ["zone.", "b.zone.", "x.b.zone.", "m.zone."];
        let c = chain(&names);
        // c.x.b.zone: closest encloser x.b.zone; *.x.b.zone sorts right
        // after x.b.zone, so one NSEC proves both.
        let p = c.nxdomain(&wire("c.x.b.zone."));
        assert_eq!((text(p[0]), text(p[1])), ("x.b.zone.", "-"));
        // q.zone: covered by m.zone; *.zone is covered by the apex's NSEC.
        let p = c.nxdomain(&wire("q.zone."));
        assert_eq!((text(p[0]), text(p[1])), ("m.zone.", "zone."));
        // a.zone: both the name and *.zone are covered by the apex's NSEC.
        let p = c.nxdomain(&wire("a.zone."));
        assert_eq!((text(p[0]), text(p[1])), ("zone.", "-"));
    }
}
