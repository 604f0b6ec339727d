//! The other vantage points of a fleet: what each peer last said it
//! observes, when it was heard, and the quorum rule that turns the fresh
//! observations into the fleet's verdict. Pure: messages and the time come
//! in, counts and verdicts come out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::Quorum;
use crate::fleet::Rejection;
use crate::fleet::message::{Observed, PeerMessage};

/// What one peer last told us.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Its `server.region`.
    pub region: String,
    pub heard: Instant,
    /// `(incarnation, seq)` of the last message taken.
    pub order: (u64, u64),
    pub routing_version: String,
    /// By region name.
    pub observations: BTreeMap<String, Observed>,
}

/// How the fresh vantage points see one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Count {
    /// Fresh vantage points, this instance included.
    pub fresh: usize,
    /// The fresh ones that observe the region down, by instance name.
    pub down: Vec<String>,
}

impl Count {
    pub(crate) fn reached(&self, quorum: Quorum) -> bool {
        quorum_reached(quorum, self.down.len(), self.fresh)
    }
}

/// Whether `down` of `fresh` vantage points take a region out.
pub(crate) fn quorum_reached(quorum: Quorum, down: usize, fresh: usize) -> bool {
    if fresh == 0 || down == 0 {
        return false;
    }
    match quorum {
        Quorum::Majority => down * 2 > fresh,
        Quorum::All => down >= fresh,
        Quorum::Any => true,
        Quorum::AtLeast(n) => down >= (n as usize).min(fresh),
    }
}

/// Every peer heard so far, and the rule that counts them.
#[derive(Debug, Clone)]
pub(crate) struct Vantage {
    pub own: String,
    pub own_region: String,
    pub quorum: Quorum,
    pub timeout: Duration,
    peers: BTreeMap<String, Peer>,
}

impl Vantage {
    pub(crate) fn new(own: &str, own_region: &str, quorum: Quorum, timeout: Duration) -> Vantage {
        Vantage {
            own: own.to_owned(),
            own_region: own_region.to_owned(),
            quorum,
            timeout,
            peers: BTreeMap::new(),
        }
    }

    /// This vantage with `new`'s rule and timeout, keeping the peers heard.
    pub(crate) fn retuned(mut self, new: Vantage) -> Vantage {
        self.own_region = new.own_region;
        self.quorum = new.quorum;
        self.timeout = new.timeout;
        self
    }

    /// Takes a peer's message unless it is not newer than the last one
    /// taken from that peer. A message claiming to be this instance is
    /// refused: two instances with one name would count twice.
    pub(crate) fn hear(&mut self, message: &PeerMessage, now: Instant) -> Result<(), Rejection> {
        if message.instance == self.own {
            return Err(Rejection::Invalid(format!(
                "{} is this instance's own name",
                message.instance
            )));
        }
        let order = (message.incarnation, message.seq);
        if let Some(peer) = self.peers.get(&message.instance)
            && order <= peer.order
        {
            return Err(Rejection::Stale);
        }
        let observations = message
            .observations
            .iter()
            .map(|o| (o.region.clone(), o.clone()))
            .collect();
        self.peers.insert(
            message.instance.clone(),
            Peer {
                region: message.region.clone(),
                heard: now,
                order,
                routing_version: message.routing_version.clone(),
                observations,
            },
        );
        Ok(())
    }

    pub(crate) fn is_fresh(&self, peer: &Peer, now: Instant) -> bool {
        now.saturating_duration_since(peer.heard) < self.timeout
    }

    /// Every peer heard so far, by name.
    pub(crate) fn peers(&self) -> &BTreeMap<String, Peer> {
        &self.peers
    }

    /// The peers heard within `timeout`, by name.
    pub(crate) fn fresh(&self, now: Instant) -> impl Iterator<Item = (&String, &Peer)> {
        self.peers
            .iter()
            .filter(move |(_, p)| self.is_fresh(p, now))
    }

    /// Whether no peer is fresh: this instance decides alone.
    pub(crate) fn isolated(&self, now: Instant) -> bool {
        self.fresh(now).next().is_none()
    }

    /// How the fresh vantage points see `region`, given this instance's
    /// own observation. A fresh peer that does not probe the region (its
    /// config has no such region) does not count for it.
    pub(crate) fn count(&self, region: &str, own_up: bool, now: Instant) -> Count {
        let mut count = Count {
            fresh: 1,
            down: Vec::new(),
        };
        if !own_up {
            count.down.push(self.own.clone());
        }
        for (name, peer) in self.fresh(now) {
            if let Some(seen) = peer.observations.get(region) {
                count.fresh += 1;
                if !seen.up {
                    count.down.push(name.clone());
                }
            }
        }
        count
    }

    /// Whether this instance is the fresh one whose name sorts first: the
    /// one that sends notifications, so a fleet pages once.
    pub(crate) fn notifies(&self, now: Instant) -> bool {
        self.fresh(now).all(|(name, _)| self.own < *name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(instance: &str, seq: u64, down: &[&str]) -> PeerMessage {
        PeerMessage {
            instance: instance.to_owned(),
            region: format!("{instance}-region"),
            incarnation: 1,
            seq,
            routing_version: "v".to_owned(),
            observations: ["us-east-1", "eu-west-1"]
                .iter()
                .map(|r| Observed {
                    region: (*r).to_owned(),
                    up: !down.contains(r),
                    latency_seconds: None,
                    last_check: None,
                })
                .collect(),
            commands: Vec::new(),
        }
    }

    fn vantage(quorum: Quorum) -> Vantage {
        Vantage::new("ns1", "us-east-1", quorum, Duration::from_secs(10))
    }

    #[test]
    fn the_quorum_table() {
        use Quorum::*;
        // (quorum, down, fresh, verdict down)
        for (q, down, fresh, expect) in [
            (Majority, 1, 3, false),
            (Majority, 2, 3, true),
            (Majority, 1, 2, false),
            (Majority, 2, 2, true),
            (Majority, 1, 1, true),
            (Majority, 0, 1, false),
            (All, 2, 3, false),
            (All, 3, 3, true),
            (All, 1, 1, true),
            (Any, 1, 3, true),
            (Any, 0, 3, false),
            (AtLeast(2), 1, 3, false),
            (AtLeast(2), 2, 3, true),
            (AtLeast(2), 1, 1, true),
            (AtLeast(3), 2, 2, true),
        ] {
            assert_eq!(
                quorum_reached(q, down, fresh),
                expect,
                "{q} with {down} of {fresh} down"
            );
        }
    }

    #[test]
    fn fresh_peers_count_and_stale_ones_do_not() {
        let t0 = Instant::now();
        let mut v = vantage(Quorum::Majority);
        v.hear(&message("ns2", 1, &["us-east-1"]), t0)
            .expect("taken");
        v.hear(&message("ns3", 1, &[]), t0).expect("taken");
        let c = v.count("us-east-1", false, t0 + Duration::from_secs(1));
        assert_eq!(c.fresh, 3);
        assert_eq!(c.down, ["ns1", "ns2"]);
        assert!(c.reached(Quorum::Majority));
        assert!(!v.count("eu-west-1", false, t0).reached(Quorum::Majority));

        let later = t0 + Duration::from_secs(11);
        assert!(v.isolated(later));
        let alone = v.count("us-east-1", true, later);
        assert_eq!((alone.fresh, alone.down.len()), (1, 0));
        assert!(v.count("us-east-1", false, later).reached(Quorum::Majority));
    }

    #[test]
    fn replayed_and_reordered_messages_change_nothing() {
        let t0 = Instant::now();
        let mut v = vantage(Quorum::Majority);
        v.hear(&message("ns2", 5, &["us-east-1"]), t0)
            .expect("taken");
        assert_eq!(v.hear(&message("ns2", 5, &[]), t0), Err(Rejection::Stale));
        assert_eq!(v.hear(&message("ns2", 4, &[]), t0), Err(Rejection::Stale));
        assert_eq!(v.count("us-east-1", true, t0).down, ["ns2"]);
        // A restart is a new incarnation: its first message is newer.
        let mut restarted = message("ns2", 1, &[]);
        restarted.incarnation = 2;
        v.hear(&restarted, t0).expect("new incarnation");
        assert!(v.count("us-east-1", true, t0).down.is_empty());
    }

    #[test]
    fn a_peer_claiming_this_instance_is_refused() {
        let mut v = vantage(Quorum::Any);
        assert!(matches!(
            v.hear(&message("ns1", 1, &["us-east-1"]), Instant::now()),
            Err(Rejection::Invalid(_))
        ));
        assert!(v.peers().is_empty());
    }

    #[test]
    fn a_peer_without_the_region_does_not_count_for_it() {
        let t0 = Instant::now();
        let mut v = vantage(Quorum::All);
        let mut m = message("ns2", 1, &[]);
        m.observations.retain(|o| o.region != "us-east-1");
        v.hear(&m, t0).expect("taken");
        let c = v.count("us-east-1", false, t0);
        assert_eq!(c.fresh, 1);
        assert!(c.reached(Quorum::All));
    }

    #[test]
    fn the_first_fresh_name_notifies() {
        let t0 = Instant::now();
        let mut v = vantage(Quorum::Majority);
        assert!(v.notifies(t0), "alone, it notifies");
        v.hear(&message("ns2", 1, &[]), t0).expect("taken");
        assert!(v.notifies(t0));
        let mut other = Vantage::new("ns3", "ap", Quorum::Majority, Duration::from_secs(10));
        other.hear(&message("ns2", 1, &[]), t0).expect("taken");
        assert!(!other.notifies(t0));
        assert!(
            other.notifies(t0 + Duration::from_secs(10)),
            "ns2 went stale"
        );
    }
}
