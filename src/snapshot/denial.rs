//! Authenticated denial of existence at query time: the zone's NSEC chain
//! in canonical order (RFC 4034 6.1), and the choice of the NSEC records
//! that prove a name does not exist.
//!
//! Every NSEC RRset is signed and encoded when the table is built; a
//! query only picks one or two of them. The names are kept as a tree of
//! labels whose children are in canonical order, so a query walks down
//! from the apex with one binary search of short labels per level: where
//! the walk stops is the closest encloser, and the gap it stops in names
//! the NSEC that covers the query. The walk hashes nothing, allocates
//! nothing and signs nothing.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// The NSEC chain as a tree of the names under the origin.
pub(crate) struct Chain {
    origin: Box<[u8]>,
    /// Node 0 is the apex; a node's children are a contiguous block of
    /// the `child_*` arrays, in canonical label order.
    nodes: Box<[Node]>,
    /// The first sixteen octets of each child label, big-endian and
    /// zero-padded: the search compares these and reads labels only when
    /// prefixes tie (names often share a long prefix, as
    /// `api-contracts-*` do).
    child_prefix: Box<[u128]>,
    child_label: Packed,
    child_node: Box<[u32]>,
    /// What a query landing in each gap needs, by [`Chain::gap_index`]: a
    /// gap is the run of names after a node or one of its children and
    /// before the next name of the tree.
    gaps: Box<[Gap]>,
    /// NSEC RRsets with their RRSIGs, encoded without compression so the
    /// bytes can follow any question; laid out so each gap's NXDOMAIN
    /// proof is one run of bytes.
    proofs: Box<[u8]>,
}

/// A gap's proofs in [`Chain::proofs`]: from `start`, the NSEC covering
/// the gap (`covering` octets), then the one covering the wildcard at the
/// gap's node when that is another (up to `both` octets).
#[derive(Clone, Copy, Default)]
struct Gap {
    start: u32,
    covering: u16,
    both: u16,
}

#[derive(Clone, Copy, Default)]
struct Node {
    children_start: u32,
    children_end: u32,
    /// The child `*`, when there is one: the source of synthesis below.
    wildcard_child: u32,
    /// The table's entry for this name (see [`Chain::bind`]).
    name: u32,
    /// Whether the name has its own NSEC: it has data, so its answers
    /// carry their proofs; an empty non-terminal has none.
    nsec: bool,
}

/// Byte strings laid end to end: one allocation, no pointer per entry.
struct Packed {
    bytes: Box<[u8]>,
    ends: Box<[u32]>,
}

impl Packed {
    fn new<'a>(items: impl Iterator<Item = &'a [u8]>) -> Packed {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for item in items {
            bytes.extend_from_slice(item);
            ends.push(bytes.len() as u32);
        }
        Packed {
            bytes: bytes.into(),
            ends: ends.into(),
        }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        self.bytes.get(start..end)
    }

    fn memory_bytes(&self) -> usize {
        self.bytes.len() + 4 * self.ends.len()
    }
}

/// Where a node's names fall among the records, which only the build
/// needs: queries read the proofs laid out from it.
#[derive(Clone, Copy)]
struct Span {
    /// The record of the last name at or before this one: its own, or for
    /// an empty non-terminal the one before it.
    at_or_before: u32,
    /// The record of the last name in this subtree.
    last: u32,
}

/// An owner name and its encoded NSEC RRset with RRSIG.
pub(crate) type Link = (Box<[u8]>, Box<[u8]>);

/// NSEC records that prove a denial: up to two RRsets (each an NSEC and
/// its RRSIG) laid end to end, so an answer adds them with one copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proof<'a> {
    pub bytes: &'a [u8],
    /// The length of the first RRset.
    first: u16,
}

impl<'a> Proof<'a> {
    /// The number of records in the proof: two per RRset.
    pub fn records(&self) -> u16 {
        match (self.bytes.len(), usize::from(self.first)) {
            (0, _) => 0,
            (all, first) if all == first => 2,
            _ => 4,
        }
    }

    /// The RRsets one by one.
    pub fn rrsets(&self) -> [Option<&'a [u8]>; 2] {
        let (first, second) = self
            .bytes
            .split_at_checked(usize::from(self.first))
            .unwrap_or((self.bytes, &[]));
        [
            Some(first).filter(|f| !f.is_empty()),
            Some(second).filter(|s| !s.is_empty()),
        ]
    }
}

/// Where a name falls in the tree.
struct Place {
    /// The deepest node on the name's path: the name itself when it
    /// exists, else its closest encloser.
    node: usize,
    /// The gap the name is in, or for a name that exists the one it
    /// starts.
    gap: usize,
    exists: bool,
}

/// What a query name is in a signed table, found by one walk.
pub(crate) enum Found<'a> {
    /// The table's entry that answers: the name's own, or the wildcard's
    /// at its closest encloser; and the NSEC the answer adds for this
    /// query name (for an empty non-terminal or a wildcard, the one
    /// covering the name; RFC 4035 3.1.3.2-3.1.3.4).
    Entry { entry: u32, proof: Proof<'a> },
    /// The name does not exist: the NXDOMAIN proof.
    Missing(Proof<'a>),
}

/// A name being laid out: children keyed by label, which `BTreeMap`
/// keeps in canonical order (octet strings, shorter first on a tie).
#[derive(Default)]
struct Draft {
    record: Option<Box<[u8]>>,
    children: BTreeMap<Box<[u8]>, Draft>,
}

const NONE: u32 = u32::MAX;

impl Chain {
    /// `links` in any order; owners are lowercase wire names under
    /// `origin` (others are left out: no query needs them).
    pub(crate) fn new(origin: &[u8], links: Vec<Link>) -> Chain {
        let mut apex = Draft::default();
        'links: for (name, record) in links {
            if !name.ends_with(origin) {
                continue;
            }
            let mut draft = &mut apex;
            let mut end = name.len().saturating_sub(origin.len());
            while end > 0 {
                let Some(start) = label_ending_at(&name, end) else {
                    continue 'links;
                };
                draft = draft
                    .children
                    .entry(name[start + 1..end].into())
                    .or_default();
                end = start;
            }
            draft.record.get_or_insert(record);
        }
        let mut layout = Layout::default();
        layout.place(&apex);
        let count = layout.records.len() as u32;
        // Names before the first record wrap to the last, as NSEC does
        // (only a chain without its apex has any).
        for span in &mut layout.spans {
            if span.at_or_before == NONE {
                span.at_or_before = count.wrapping_sub(1);
            }
        }
        let mut chain = Chain {
            origin: origin.into(),
            nodes: layout.nodes.into(),
            child_prefix: layout.labels.iter().map(|l| prefix(l)).collect(),
            child_label: Packed::new(layout.labels.iter().map(|l| &l[..])),
            child_node: layout.child_node.into(),
            gaps: Box::default(),
            proofs: Box::default(),
        };
        let spans = &layout.spans;
        // The record covering `*.` each name: the wildcard proof when the
        // name is a query's closest encloser.
        let mut wildcards = Vec::with_capacity(chain.nodes.len());
        for i in 0..chain.nodes.len() {
            let (rank, exact) = chain.rank(i, b"*");
            wildcards.push(match exact {
                Some(child) => spans[child].at_or_before,
                None => chain.covering_of(spans, i, rank),
            });
            chain.nodes[i].wildcard_child = exact.map_or(NONE, |c| c as u32);
        }
        chain.lay_out_proofs(&layout.records, spans, &wildcards);
        chain
    }

    /// Fills `gaps` and `proofs`. Each proof of two RRsets is laid out
    /// once; a proof of one reuses the bytes of a pair that starts with
    /// it, so the blob holds about two copies of each NSEC, not one per
    /// gap.
    fn lay_out_proofs(&mut self, records: &[&[u8]], spans: &[Span], wildcards: &[u32]) {
        let mut wanted = Vec::with_capacity(self.nodes.len() + self.child_node.len());
        for (node, &wildcard) in wildcards.iter().enumerate() {
            let Node {
                children_start: start,
                children_end: end,
                ..
            } = self.nodes[node];
            for rank in 0..=(end - start) as usize {
                wanted.push((self.covering_of(spans, node, rank), wildcard));
            }
        }
        let record = |i: u32| records.get(i as usize).map_or(&[][..], |r| &r[..]);
        let mut blob: Vec<u8> = Vec::new();
        let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
        let mut starts: HashMap<u32, u32> = HashMap::new();
        for &(covering, wildcard) in wanted.iter().filter(|(c, w)| c != w) {
            pairs.entry((covering, wildcard)).or_insert_with(|| {
                let start = blob.len() as u32;
                blob.extend_from_slice(record(covering));
                blob.extend_from_slice(record(wildcard));
                starts.entry(covering).or_insert(start);
                start
            });
        }
        self.gaps = wanted
            .iter()
            .map(|&(covering, wildcard)| {
                let start = match pairs.get(&(covering, wildcard)) {
                    Some(&start) => start,
                    None => *starts.entry(covering).or_insert_with(|| {
                        let start = blob.len() as u32;
                        blob.extend_from_slice(record(covering));
                        start
                    }),
                };
                let covering_len = record(covering).len() as u16;
                let both = if covering == wildcard {
                    covering_len
                } else {
                    covering_len + record(wildcard).len() as u16
                };
                Gap {
                    start,
                    covering: covering_len,
                    both,
                }
            })
            .collect();
        self.proofs = blob.into();
    }

    /// Ties every name of the tree to the table's entry for it, as
    /// `entry` gives it from the lowercase wire name; names it does not
    /// know are left unbound, and [`Chain::find`] reports them unfound.
    pub(crate) fn bind(&mut self, entry: impl Fn(&[u8]) -> Option<u32>) {
        let origin = self.origin.to_vec();
        self.bind_below(0, &origin, &entry);
    }

    fn bind_below(&mut self, node: usize, name: &[u8], entry: &impl Fn(&[u8]) -> Option<u32>) {
        self.nodes[node].name = entry(name).unwrap_or(NONE);
        let Node {
            children_start: start,
            children_end: end,
            ..
        } = self.nodes[node];
        for i in start as usize..end as usize {
            let label = self.child_label.get(i).unwrap_or(&[]);
            let child = [&[label.len() as u8][..], label, name].concat();
            self.bind_below(self.child_node[i] as usize, &child, entry);
        }
    }

    /// What lowercase wire `qname` is: a name of the table, a name the
    /// wildcard at its closest encloser answers, or missing with its
    /// NXDOMAIN proof. `None` when it is not under the origin, or names
    /// an entry [`Chain::bind`] did not find.
    pub(crate) fn find(&self, qname: &[u8]) -> Option<Found<'_>> {
        let place = self.place(qname)?;
        let node = &self.nodes[place.node];
        let gap = self.gaps.get(place.gap)?;
        let covering = self.proof(gap, gap.covering);
        let (answering, proof) = if place.exists {
            let proof = if node.nsec {
                Proof::default()
            } else {
                covering
            };
            (node, proof)
        } else if node.wildcard_child != NONE {
            (&self.nodes[node.wildcard_child as usize], covering)
        } else {
            return Some(Found::Missing(self.proof(gap, gap.both)));
        };
        let entry = Some(answering.name).filter(|&e| e != NONE)?;
        Some(Found::Entry { entry, proof })
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.nodes)
            + 20 * self.child_node.len()
            + self.child_label.memory_bytes()
            + std::mem::size_of_val(&*self.gaps)
            + self.proofs.len()
    }

    /// The number of `node`'s children whose label sorts at or before
    /// `label`, and the child whose label it is, if any.
    fn rank(&self, node: usize, label: &[u8]) -> (usize, Option<usize>) {
        self.rank_in(node, label, 0, label.len())
    }

    /// As [`Chain::rank`], for the label `bytes[at..at + len]`: the bytes
    /// that follow it let its prefix be one load.
    #[inline(always)]
    fn rank_in(&self, node: usize, bytes: &[u8], at: usize, len: usize) -> (usize, Option<usize>) {
        let Node {
            children_start: start,
            children_end: end,
            ..
        } = self.nodes[node];
        let (start, end) = (start as usize, end as usize);
        let Some(prefixes) = self.child_prefix.get(start..end) else {
            return (0, None);
        };
        let p = prefix_in(bytes, at, len);
        // Prefix order is canonical order with ties, so the children whose
        // prefix is below `p` are exactly those before the label unless
        // one shares its prefix.
        let below = prefixes.partition_point(|&x| x < p);
        if prefixes.get(below) != Some(&p) {
            return (below, None);
        }
        self.rank_tied(
            start + below,
            end,
            bytes.get(at..at + len).unwrap_or(&[]),
            p,
            below,
        )
    }

    /// The children from `first` on share `label`'s prefix `p`: the full
    /// labels decide among them, as for labels that differ only after
    /// sixteen octets or in trailing zero octets. `below` children come
    /// before `first`.
    #[cold]
    fn rank_tied(
        &self,
        first: usize,
        end: usize,
        label: &[u8],
        p: u128,
        below: usize,
    ) -> (usize, Option<usize>) {
        let tied = self.child_prefix[first..end].partition_point(|&x| x == p);
        let label_of = |i: usize| self.child_label.get(first + i).unwrap_or(&[]);
        let (mut lo, mut hi) = (0, tied);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if label_of(mid) <= label {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let exact = lo
            .checked_sub(1)
            .filter(|&i| label_of(i) == label)
            .map(|i| self.child_node[first + i] as usize);
        (below + lo, exact)
    }

    /// The record covering the names after `node`'s first `rank` children
    /// (after the node itself when `rank` is 0).
    fn covering_of(&self, spans: &[Span], node: usize, rank: usize) -> u32 {
        match rank.checked_sub(1) {
            None => spans[node].at_or_before,
            Some(child) => {
                let i = self.nodes[node].children_start as usize + child;
                spans[self.child_node[i] as usize].last
            }
        }
    }

    /// Walks lowercase wire `name` down from the apex; `None` when it is
    /// not made of labels in front of the origin.
    #[inline(always)]
    fn place(&self, name: &[u8]) -> Option<Place> {
        let mut end = name.len().checked_sub(self.origin.len())?;
        if name[end..] != *self.origin {
            return None;
        }
        // From the label in front of the origin down to the first: each
        // found by a scan from the front, as names are a few labels long
        // and this keeps no list of offsets.
        let mut node = 0;
        while end > 0 {
            let start = label_ending_at(name, end)?;
            let (rank, exact) = self.rank_in(node, name, start + 1, end - start - 1);
            end = start;
            match exact {
                Some(child) => node = child,
                None => {
                    return Some(Place {
                        node,
                        gap: self.gap_index(node, rank),
                        exists: false,
                    });
                }
            }
        }
        Some(Place {
            node,
            gap: self.gap_index(node, 0),
            exists: true,
        })
    }

    /// Gaps are numbered node by node, each node's one more than its
    /// children; nodes are in pre-order and so are their blocks of
    /// children, so the gaps before a node number its index plus the
    /// children before its own.
    fn gap_index(&self, node: usize, rank: usize) -> usize {
        self.nodes[node].children_start as usize + node + rank
    }

    /// The first `len` octets of `gap`'s proofs.
    fn proof(&self, gap: &Gap, len: u16) -> Proof<'_> {
        let start = gap.start as usize;
        Proof {
            bytes: self
                .proofs
                .get(start..start + usize::from(len))
                .unwrap_or(&[]),
            first: gap.covering,
        }
    }

    /// The NSEC whose owner is the last name at or before `name`: the one
    /// that covers it when `name` is not in the chain.
    #[cfg(test)]
    fn covering(&self, name: &[u8]) -> Option<&[u8]> {
        let place = self.place(name)?;
        let gap = self.gaps.get(place.gap)?;
        self.proof(gap, gap.covering).rrsets()[0]
    }

    /// RFC 4035 3.1.3.2: the NSEC covering `qname`, and the one covering
    /// the wildcard at its closest encloser, once when they are the same.
    pub(crate) fn nxdomain(&self, qname: &[u8]) -> [Option<&[u8]>; 2] {
        self.place(qname)
            .and_then(|p| self.gaps.get(p.gap))
            .map_or([None, None], |gap| self.proof(gap, gap.both).rrsets())
    }
}

/// Lays the drafted tree out flat, records in canonical order (the
/// tree's pre-order).
#[derive(Default)]
struct Layout<'a> {
    nodes: Vec<Node>,
    spans: Vec<Span>,
    labels: Vec<&'a [u8]>,
    child_node: Vec<u32>,
    records: Vec<&'a [u8]>,
}

impl<'a> Layout<'a> {
    fn place(&mut self, draft: &'a Draft) -> u32 {
        let id = self.nodes.len();
        self.nodes.push(Node::default());
        self.spans.push(Span {
            at_or_before: NONE,
            last: NONE,
        });
        if let Some(record) = &draft.record {
            self.records.push(&record[..]);
        }
        let at_or_before = (self.records.len() as u32).wrapping_sub(1);
        let start = self.labels.len();
        for label in draft.children.keys() {
            self.labels.push(label);
            self.child_node.push(NONE);
        }
        for (i, child) in draft.children.values().enumerate() {
            let child = self.place(child);
            self.child_node[start + i] = child;
        }
        self.nodes[id] = Node {
            children_start: start as u32,
            children_end: (start + draft.children.len()) as u32,
            wildcard_child: NONE,
            name: NONE,
            nsec: draft.record.is_some(),
        };
        self.spans[id] = Span {
            at_or_before,
            last: (self.records.len() as u32).wrapping_sub(1),
        };
        id as u32
    }
}

/// Octets of a label the search compares as one integer.
const PREFIX: usize = 16;

/// [`prefix`] of `bytes[at..at + len]`.
fn prefix_in(bytes: &[u8], at: usize, len: usize) -> u128 {
    match bytes.get(at..).and_then(|b| b.first_chunk::<PREFIX>()) {
        Some(window) if len >= PREFIX => u128::from_be_bytes(*window),
        Some(_) if len == 0 => 0,
        Some(window) => u128::from_be_bytes(*window) & (u128::MAX << (8 * (PREFIX - len))),
        None => prefix(bytes.get(at..at + len).unwrap_or(&[])),
    }
}

fn prefix(label: &[u8]) -> u128 {
    match label.first_chunk::<PREFIX>() {
        Some(first) => u128::from_be_bytes(*first),
        None => label
            .iter()
            .enumerate()
            .fold(0, |p, (i, &o)| p | u128::from(o) << (120 - 8 * i)),
    }
}

/// The offset of the label of wire `name` that ends at `end`, when a
/// label does.
fn label_ending_at(name: &[u8], end: usize) -> Option<usize> {
    let mut at = 0;
    loop {
        let next = at + 1 + usize::from(*name.get(at)?);
        match next.cmp(&end) {
            Ordering::Less => at = next,
            Ordering::Equal => return Some(at),
            Ordering::Greater => return None,
        }
    }
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
        let zero = [&[1u8, 0][..], &wire("z.example.")].concat();
        let one = [&[1u8, 1][..], &wire("z.example.")].concat();
        assert_eq!(canonical_cmp(&zero, &one), Ordering::Less);
        assert_eq!(canonical_cmp(&wire("z.example."), &zero), Ordering::Less);
        // The chain lays its records out in the same order, whatever
        // order they come in.
        let mut shuffled: Vec<Box<[u8]>> = names.iter().rev().cloned().collect();
        // (\001.z.example is in the list already.)
        let two = [&[2u8, 0, 1][..], &wire("z.example.")].concat();
        shuffled.extend([zero.clone().into(), two.into()]);
        shuffled.swap(0, 4);
        let chain = Chain::new(
            &[0],
            shuffled.iter().map(|n| (n.clone(), n.clone())).collect(),
        );
        let mut expected = shuffled.clone();
        expected.sort_by(|a, b| canonical_cmp(a, b));
        // Each name's NSEC covers the gap right after it, so the first gap
        // of every node, in the order of nodes, gives the chain's order.
        let laid: Vec<&[u8]> = (0..chain.nodes.len())
            .filter(|&n| chain.nodes[n].nsec)
            .map(|n| {
                let gap = &chain.gaps[chain.gap_index(n, 0)];
                chain.proof(gap, gap.covering).bytes
            })
            .collect();
        assert_eq!(laid, expected.iter().map(|e| &e[..]).collect::<Vec<_>>());
    }

    fn chain(names: &[&str]) -> Chain {
        Chain::new(
            &wire("zone."),
            names
                .iter()
                .map(|n| (wire(n), n.as_bytes().to_vec().into_boxed_slice()))
                .collect(),
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

    #[test]
    fn an_empty_non_terminal_can_be_the_closest_encloser() {
        // b.zone exists only because a.b.zone and x.b.zone do.
        let c = chain(&["zone.", "a.b.zone.", "x.b.zone.", "m.zone."]);
        // c.b.zone: covered by a.b.zone; *.b.zone sorts before a.b.zone,
        // so the apex's NSEC covers it.
        let p = c.nxdomain(&wire("c.b.zone."));
        assert_eq!((text(p[0]), text(p[1])), ("a.b.zone.", "zone."));
        // A name outside the origin has no proof.
        assert_eq!(c.nxdomain(&wire("a.other.")), [None, None]);
    }

    /// `w` and its ancestors, longest first.
    fn ancestors(w: &[u8]) -> impl Iterator<Item = &[u8]> {
        std::iter::successors(Some(0usize), move |&at| {
            let next = at + 1 + usize::from(w[at]);
            (next < w.len()).then_some(next)
        })
        .map(move |at| &w[at..])
    }

    /// The proof chosen by brute force: the last name at or before the
    /// query in canonical order, and the last one before `*.` its longest
    /// existing ancestor.
    fn reference<'a>(names: &[&'a str], qname: &[u8]) -> (&'a str, &'a str) {
        let wires: Vec<Box<[u8]>> = names.iter().map(|n| wire(n)).collect();
        let before = |q: &[u8]| {
            let (i, _) = wires
                .iter()
                .enumerate()
                .filter(|(_, w)| canonical_cmp(w, q) != Ordering::Greater)
                .max_by(|a, b| canonical_cmp(a.1, b.1))
                .unwrap();
            names[i]
        };
        let exists = |a: &[u8]| wires.iter().any(|w| ancestors(w).any(|x| x == a));
        let encloser = ancestors(qname).find(|a| exists(a)).unwrap_or(qname);
        let first = before(qname);
        let second = before(&[b"\x01*", encloser].concat());
        (first, if second == first { "-" } else { second })
    }

    #[test]
    fn every_nxdomain_proof_matches_a_brute_force_choice() {
        let names = [
            "zone.",
            "a.zone.",
            "b.a.zone.",
            "c.b.a.zone.",
            "*.c.zone.",
            "d.c.zone.",
            "m.x.y.zone.",
            "z.x.y.zone.",
            "\u{1}.q.zone.",
            "zz.zone.",
            // Labels alike in their first eight octets.
            "longlabel-one.zone.",
            "longlabel-two.x.y.zone.",
            // Alike in their first sixteen, and equal but for a trailing
            // zero octet.
            "a-very-long-label-one.zone.",
            "zz\u{0}.b.a.zone.",
        ];
        let c = chain(&names);
        let wires: Vec<Box<[u8]>> = names.iter().map(|n| wire(n)).collect();
        let labels = [
            "a",
            "b",
            "c",
            "d",
            "m",
            "x",
            "y",
            "z",
            "zz",
            "0",
            "*",
            "\u{1}",
            "longlabel",
            "longlabel-one",
            "longlabel-onf",
            "longlabel-tw",
            "a-very-long-label",
            "a-very-long-label-o",
            "a-very-long-label-one",
            "a-very-long-label-onf",
            "zz\u{0}",
            "zz\u{0}\u{0}",
        ];
        let mut checked = 0;
        for l1 in labels {
            for l2 in labels {
                for l3 in ["", "a.", "x.y.", "q.", "c.", "b.a.", "zz.b.a."] {
                    let text = format!("{l1}.{l2}.{l3}zone.");
                    let q = wire(&text);
                    let (first, _) = reference(&names, &q);
                    assert_eq!(text_of(c.covering(&q)), first, "{text}");
                    // Only names that do not exist (not even as empty
                    // non-terminals) get an NXDOMAIN proof.
                    if wires.iter().any(|w| ancestors(w).any(|a| a == &q[..])) {
                        continue;
                    }
                    let p = c.nxdomain(&q);
                    assert_eq!(
                        (text_of(p[0]), text_of(p[1])),
                        reference(&names, &q),
                        "{text}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 3000, "{checked}");
    }

    fn text_of(p: Option<&[u8]>) -> &str {
        p.map_or("-", |b| std::str::from_utf8(b).unwrap())
    }

    #[test]
    fn find_gives_the_answering_entry_and_its_proof_or_the_nxdomain_proof() {
        let names = ["zone.", "a.b.zone.", "*.c.zone.", "m.zone."];
        let mut c = chain(&names);
        // The table's entries: every name and empty non-terminal but c.zone.
        let entries = ["zone.", "b.zone.", "a.b.zone.", "*.c.zone.", "m.zone."];
        c.bind(|name| {
            entries
                .iter()
                .position(|e| wire(e)[..] == *name)
                .map(|i| i as u32)
        });
        let find = |q: &str| match c.find(&wire(q)) {
            None => "none".to_string(),
            Some(Found::Entry { entry, proof }) => {
                let [first, second] = proof.rrsets();
                format!(
                    "entry {entry} {} {} {}",
                    text_of(first),
                    text_of(second),
                    proof.records()
                )
            }
            Some(Found::Missing(p)) => {
                let [first, second] = p.rrsets();
                format!(
                    "missing {} {} {}",
                    text_of(first),
                    text_of(second),
                    p.records()
                )
            }
        };
        // A name with data: its answers carry their own proofs.
        assert_eq!(find("m.zone."), "entry 4 - - 0");
        // The empty non-terminal: covered by the apex's NSEC.
        assert_eq!(find("b.zone."), "entry 1 zone. - 2");
        assert_eq!(find("x.c.zone."), "entry 3 *.c.zone. - 2");
        assert_eq!(find("y.x.c.zone."), "entry 3 *.c.zone. - 2");
        assert_eq!(find("q.zone."), "missing m.zone. zone. 4");
        // Unbound in the table: not found rather than a wrong entry.
        assert_eq!(find("c.zone."), "none");
        assert_eq!(find("a.other."), "none");
    }
}
