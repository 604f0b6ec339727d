//! What a peer's message goes through on arrival, without sockets, for the
//! fuzz targets (`fuzz/fuzz_targets/peer_message.rs`): parsing and limits,
//! the vantage record, the command book. Not part of the product's API.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Rejection;
use super::commands::CommandBook;
use super::message::{MAX_MESSAGE_BYTES, PeerMessage};
use crate::config::{Quorum, Recovery};
use crate::health::record::HealthRecord;
use crate::health::state::{RegionHealth, Rules, State};
use crate::health::vantage::Vantage;

/// Takes `bytes` as a peer's message body would be taken, and checks what
/// must hold for any input: nothing panics, a message is taken at most
/// once, and the commands' winners do not depend on their order.
pub fn peer_message(bytes: &[u8]) {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return;
    }
    let Ok(message) = serde_json::from_slice::<PeerMessage>(bytes) else {
        return;
    };
    if !message.within_limits() {
        return;
    }
    let rules = Rules {
        failure_threshold: 3,
        recovery_threshold: 3,
        recovery: Recovery::Manual,
    };
    let regions = ["us-east-1", "eu-west-1", "ap-southeast-1"];
    let mut record = HealthRecord::new(
        rules,
        &regions,
        |_| RegionHealth::new(State::Up, None),
        VecDeque::new(),
    );
    record.set_vantage(Some(Vantage::new(
        "ns1.us-east-1",
        "us-east-1",
        Quorum::Majority,
        Duration::from_secs(10),
    )));
    let now = Instant::now();
    if record.hear(&message, now).is_ok() {
        assert_eq!(
            record.hear(&message, now).err(),
            Some(Rejection::Stale),
            "a replayed message must change nothing"
        );
    }
    assert_eq!(record.routing().len(), regions.len());

    let mut forward = CommandBook::default();
    let mut backward = CommandBook::default();
    for c in &message.commands {
        forward.merge(c);
    }
    for c in message.commands.iter().rev() {
        backward.merge(c);
    }
    assert_eq!(forward, backward, "winners depend on the order of arrival");
}

#[cfg(test)]
mod tests {
    #[test]
    fn garbage_and_a_real_message_go_through() {
        super::peer_message(b"not json");
        super::peer_message(
            br#"{"instance":"ns2","region":"eu-west-1","incarnation":1,"seq":1,
            "routing_version":"v","observations":[{"region":"us-east-1","up":false,
            "latency_seconds":null,"last_check":null}],"commands":[
            {"region":"us-east-1","action":"down","stamp":{"time":5,"instance":"ns2"}},
            {"region":"us-east-1","action":"up","stamp":{"time":5,"instance":"ns2"}}]}"#,
        );
    }
}
