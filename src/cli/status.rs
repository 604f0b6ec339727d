//! `keiko-dns status`: asks a running server for `GET /status` and prints
//! it for people: regions with health, state, overrides, latency and
//! shares; with a fleet, every instance (state, last seen, agreement) and
//! what each vantage point observes of each region; the steered names with
//! their current answers; recent events. Everything fits in about 100
//! columns.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use super::client::{AdminArgs, AdminClient, answers, runtime};
use crate::admin::status::{DnssecStatus, FleetStatus, RegionStatus, Status};

pub(super) fn run(args: &AdminArgs) -> ExitCode {
    let result = AdminClient::new(args, None).and_then(|client| {
        runtime()?.block_on(async {
            let status = client.status().await?;
            Ok((client.base().to_owned(), status))
        })
    });
    match result {
        Ok((base, status)) => {
            print!("{}", render(&base, &status, SystemTime::now()));
            ExitCode::SUCCESS
        }
        Err(e) => e.report("status"),
    }
}

/// The whole report, as text.
pub(super) fn render(base: &str, status: &Status, now: SystemTime) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(format!(
        "keiko-dns {} (region {}) at {base}: zone {}, config v{}, routing v{}{}",
        status.instance,
        status.region,
        status.zone,
        status.config_version,
        status.snapshot_version,
        if status.ready {
            ""
        } else {
            ", NOT READY (first health round running)"
        }
    ));
    line(String::new());
    for l in dnssec_section(status.dnssec.as_ref()) {
        line(l);
    }
    line(String::new());
    line(format!(
        "{:<16} {:<8} {:<16} {:<6} {:>8} {:>6}  {:<9} {}",
        "REGION", "HEALTH", "STATE", "FORCED", "LATENCY", "SHARE", "CHECKED", "LAST ERROR"
    ));
    for r in &status.regions {
        line(region_row(r, now));
    }
    line(String::new());
    if let Some(fleet) = &status.fleet {
        for l in fleet_section(fleet, &status.regions) {
            line(l);
        }
        line(String::new());
    }
    line(format!(
        "{:<28} {:<9} {}",
        "NAME", "POLICY", "ANSWER (client with no location)"
    ));
    for (name, policy, answer) in answers(status) {
        line(format!("{name:<28} {policy:<9} {answer}"));
    }
    line(String::new());
    if status.events.is_empty() {
        line("no failover events yet".into());
    } else {
        line("RECENT EVENTS (newest first)".into());
        for e in &status.events {
            line(format!(
                "{:<20}  {:<16} {:>4} -> {:<6} {}",
                e.time,
                e.region,
                e.from,
                e.to,
                clip(&e.reason, 44)
            ));
        }
    }
    out
}

fn region_row(r: &RegionStatus, now: SystemTime) -> String {
    let health = if r.healthy { "serving" } else { "out" };
    let latency = r
        .latency_seconds
        .map_or("-".to_owned(), |s| format!("{:.0} ms", s * 1000.0));
    let checked = r
        .last_check
        .as_deref()
        .map_or("never".to_owned(), |t| ago(t, now));
    format!(
        "{:<16} {:<8} {:<16} {:<6} {:>8} {:>5.1}%  {:<9} {}",
        clip(&r.name, 16),
        health,
        r.state,
        r.forced.as_deref().unwrap_or("-"),
        latency,
        r.share_percent,
        checked,
        clip(r.last_error.as_deref().unwrap_or("-"), 36)
    )
}

/// The zone's signing: key tags, algorithm and when the earliest
/// signature expires; one line when the zone is not signed.
fn dnssec_section(dnssec: Option<&DnssecStatus>) -> Vec<String> {
    let Some(d) = dnssec else {
        return vec!["DNSSEC   off (no [dnssec]: answers are not signed)".into()];
    };
    let algorithm = match d.algorithm {
        13 => "13 (ECDSAP256SHA256)".to_owned(),
        other => other.to_string(),
    };
    let tags: Vec<String> = d.key_tags.iter().map(ToString::to_string).collect();
    let when = if d.expires_in_seconds > 0 {
        format!("in {}", span(d.expires_in_seconds.unsigned_abs()))
    } else {
        format!(
            "EXPIRED {} ago: validating resolvers fail the zone",
            span(d.expires_in_seconds.unsigned_abs())
        )
    };
    vec![
        format!(
            "DNSSEC   algorithm {algorithm}, signing key tag {}, published key tags {}",
            d.signing_key_tag,
            tags.join(", ")
        ),
        format!(
            "         {} signatures, earliest expires {} ({when})",
            d.signatures, d.earliest_expiration
        ),
    ]
}

/// "13d 23h", "5h 12m", "12m 3s", "40s" for a number of seconds.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// How many characters of a routing version identify it for people.
const SHORT_VERSION: usize = 12;
/// Room for the vantage-point columns next to the region names.
const MATRIX_WIDTH: usize = 100 - 17;

/// Every instance, this one first, then what each vantage point observes
/// of each region (`-`: not fresh, so not counted in the verdict).
fn fleet_section(fleet: &FleetStatus, regions: &[RegionStatus]) -> Vec<String> {
    let short = |v: &str| v.chars().take(SHORT_VERSION).collect::<String>();
    let mut out = vec![format!(
        "FLEET {} (down_quorum {}, routing {}, {} peers)",
        fleet.instance,
        fleet.down_quorum,
        short(&fleet.routing_version),
        fleet.peers.len()
    )];
    if fleet.isolated {
        out.push("isolated: deciding alone (no peer is fresh)".into());
    }
    out.push(format!(
        "{:<24} {:<12} {:<10} {:<6} {}",
        "INSTANCE", "STATE", "LAST SEEN", "AGREES", "ROUTING"
    ));
    out.push(format!(
        "{:<24} {:<12} {:<10} {:<6} {}",
        clip(&fleet.instance, 24),
        "up",
        "this one",
        "yes",
        short(&fleet.routing_version)
    ));
    for p in &fleet.peers {
        out.push(format!(
            "{:<24} {:<12} {:<10} {:<6} {}",
            clip(&p.instance, 24),
            p.state,
            seen(p.last_seen_seconds),
            if p.agrees { "yes" } else { "no" },
            p.routing_version.as_deref().map_or("-".into(), short)
        ));
    }

    out.push(String::new());
    let columns: Vec<&str> = std::iter::once(fleet.instance.as_str())
        .chain(fleet.peers.iter().map(|p| p.instance.as_str()))
        .collect();
    let longest = columns.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    let width = longest
        .min((MATRIX_WIDTH / columns.len()).saturating_sub(1))
        .max("down".len());
    let mut header = format!("{:<16}", "OBSERVED BY");
    for c in &columns {
        header += &format!(" {:<width$}", clip(c, width));
    }
    out.push(header);
    for r in regions {
        let mut row = format!("{:<16}", clip(&r.name, 16));
        for c in &columns {
            let cell = r
                .observers
                .iter()
                .find(|o| o.instance == *c && o.fresh)
                .map_or("-", |o| o.state.as_str());
            row += &format!(" {cell:<width$}");
        }
        out.push(row);
    }
    out
}

/// "0.4s ago" for seconds since a peer was last heard; "never" if not.
fn seen(seconds: Option<f64>) -> String {
    match seconds {
        None => "never".into(),
        Some(s) if s < 10.0 => format!("{:.1}s ago", s.max(0.0)),
        Some(s) => since(Duration::from_secs_f64(s.min(1e9))),
    }
}

/// "12s ago", "3m ago", ... for a duration in the past.
fn since(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// "12s ago" for an RFC 3339 time; the time itself when it cannot be read.
fn ago(time: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339_weak(time) {
        Ok(then) => since(now.duration_since(then).unwrap_or(Duration::ZERO)),
        Err(_) => time.to_owned(),
    }
}

/// `text` cut to `width` characters, marking the cut.
pub(super) fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::status::RecordStatus;
    use crate::health::Event;

    fn sample() -> Status {
        Status {
            instance: "ns1.test".into(),
            region: "us-east-1".into(),
            config_version: 1,
            snapshot_version: 4,
            ready: true,
            zone: "keiko.example.com.".into(),
            fleet: None,
            dnssec: None,
            regions: vec![RegionStatus {
                name: "us-east-1".into(),
                healthy: false,
                state: "up".into(),
                forced: Some("down".into()),
                consecutive_failures: 0,
                last_check: Some("2026-01-01T00:00:00Z".into()),
                last_error: None,
                latency_seconds: Some(0.0031),
                priority: 1,
                weight: 40,
                share_percent: 0.0,
                addresses: vec!["192.0.2.10".into()],
                target: "http://127.0.0.1:18081/health".into(),
                observers: vec![],
            }],
            records: vec![RecordStatus {
                name: "api-contracts".into(),
                policy: "failover".into(),
                ttl: 60,
                answer: vec!["198.51.100.10".into()],
                region: Some("eu-west-1".into()),
                set: None,
                on_all_down: "fail_open".into(),
                all_down: None,
            }],
            events: vec![Event {
                time: "2026-01-01T00:00:05Z".into(),
                region: "us-east-1".into(),
                from: "up".into(),
                to: "down".into(),
                reason: "forced down by operator".into(),
                answer_before: vec![],
                answer_after: vec![],
                observers: Default::default(),
            }],
        }
    }

    #[test]
    fn renders_regions_answers_and_events_within_100_columns() {
        let now = humantime::parse_rfc3339("2026-01-01T00:00:12Z").unwrap();
        let text = render("http://127.0.0.1:9300", &sample(), now);
        assert!(text.contains("us-east-1        out      up               down"));
        assert!(text.contains("12s ago"), "{text}");
        assert!(text.contains("198.51.100.10 (eu-west-1)"));
        assert!(text.contains("up -> down"));
        for l in text.lines().skip(1) {
            assert!(l.chars().count() <= 100, "too wide: {l}");
        }
        assert!(!text.contains("FLEET"), "no fleet section without a fleet");
    }

    /// The sample status with the sample fleet: three regions, each
    /// observed by ns1 (this one), ns2 (up) and ns3 (stale).
    fn fleet_sample(isolated: bool) -> Status {
        let mut view = crate::fleet::view::sample();
        view.isolated = isolated;
        let mut status = sample();
        let template = status.regions[0].clone();
        status.regions = view
            .regions
            .iter()
            .map(|r| RegionStatus {
                name: r.region.clone(),
                observers: crate::admin::status::observers(&r.region, Some(&view), None),
                ..template.clone()
            })
            .collect();
        status.fleet = Some(FleetStatus::of(&view));
        status
    }

    #[test]
    fn a_fleet_shows_every_instance_and_what_each_vantage_point_sees() {
        let now = humantime::parse_rfc3339("2026-01-01T00:00:12Z").unwrap();
        let text = render("http://127.0.0.1:9300", &fleet_sample(false), now);
        let lines: Vec<&str> = text.lines().collect();
        let row = |start: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            row("FLEET"),
            [
                "FLEET",
                "ns1.us-east-1",
                "(down_quorum",
                "majority,",
                "routing",
                "3f2a9c1b7d4e,",
                "3",
                "peers)"
            ]
        );
        // Every instance, this one first.
        let first = lines
            .iter()
            .position(|l| l.starts_with("ns1.us-east-1"))
            .unwrap();
        assert_eq!(lines[first - 1].split_whitespace().next(), Some("INSTANCE"));
        assert_eq!(
            row("ns1.us-east-1"),
            ["ns1.us-east-1", "up", "this", "one", "yes", "3f2a9c1b7d4e"]
        );
        assert_eq!(
            row("ns2.eu-west-1"),
            ["ns2.eu-west-1", "up", "0.4s", "ago", "yes", "3f2a9c1b7d4e"]
        );
        assert_eq!(
            row("ns3.ap-southeast-1"),
            [
                "ns3.ap-southeast-1",
                "stale",
                "12s",
                "ago",
                "no",
                "99aa00bb11cc"
            ]
        );
        assert_eq!(
            row("10.0.4.53"),
            ["10.0.4.53", "unreachable", "never", "no", "-"]
        );
        assert!(!text.contains("isolated"), "{text}");

        // Regions x vantage points: ns3 is stale, so not counted ("-").
        assert_eq!(
            row("OBSERVED BY"),
            [
                "OBSERVED",
                "BY",
                "ns1.us-east-1",
                "ns2.eu-west-1",
                "ns3.ap-southeast-1",
                "10.0.4.53"
            ]
        );
        let matrix = lines
            .iter()
            .position(|l| l.starts_with("OBSERVED BY"))
            .unwrap();
        let cells = |i: usize| lines[matrix + i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(cells(1), ["us-east-1", "up", "up", "-", "-"]);
        assert_eq!(cells(2), ["eu-west-1", "up", "down", "-", "-"]);
        assert_eq!(cells(3), ["ap-southeast-1", "up", "up", "-", "-"]);
        // Columns line up under their instance.
        let header = lines[matrix];
        let at = header.find("ns2.eu-west-1").unwrap();
        assert_eq!(&lines[matrix + 2][at..at + 4], "down");
        for l in &lines[1..] {
            assert!(l.chars().count() <= 100, "too wide: {l}");
        }

        let alone = render("http://127.0.0.1:9300", &fleet_sample(true), now);
        assert!(alone.contains("\nisolated: deciding alone"), "{alone}");
    }

    #[test]
    fn a_signed_zone_shows_its_key_tags_algorithm_and_earliest_expiry() {
        let now = humantime::parse_rfc3339("2026-01-01T00:00:12Z").unwrap();
        let unsigned = render("http://127.0.0.1:9300", &sample(), now);
        assert!(
            unsigned.contains("\nDNSSEC   off (no [dnssec]"),
            "{unsigned}"
        );
        let mut status = sample();
        status.dnssec = Some(DnssecStatus {
            algorithm: 13,
            key_tags: vec![4242, 777],
            signing_key_tag: 4242,
            earliest_expiration: "2026-01-14T23:00:00Z".into(),
            expires_in_seconds: 13 * 86_400 + 22 * 3600 + 59 * 60 + 48,
            signatures: 96,
        });
        let text = render("http://127.0.0.1:9300", &status, now);
        assert!(
            text.contains(
                "\nDNSSEC   algorithm 13 (ECDSAP256SHA256), signing key tag 4242, \
                 published key tags 4242, 777\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "\n         96 signatures, earliest expires 2026-01-14T23:00:00Z (in 13d 22h)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("off (no [dnssec]"), "{text}");
        for l in text.lines().skip(1) {
            assert!(l.chars().count() <= 100, "too wide: {l}");
        }
        status.dnssec.as_mut().unwrap().expires_in_seconds = -90;
        let text = render("http://127.0.0.1:9300", &status, now);
        assert!(
            text.contains("(EXPIRED 1m 30s ago: validating resolvers fail the zone)"),
            "{text}"
        );
        assert_eq!(span(5 * 3600 + 12 * 60 + 7), "5h 12m");
        assert_eq!(span(40), "40s");
    }

    #[test]
    fn many_instances_still_fit_in_100_columns() {
        let mut status = fleet_sample(false);
        let fleet = status.fleet.as_mut().unwrap();
        let peer = fleet.peers[0].clone();
        for i in 0..9 {
            let mut p = peer.clone();
            p.instance = format!("ns{}.a-rather-long-region-name-{i}", i + 4);
            fleet.peers.push(p);
        }
        let now = humantime::parse_rfc3339("2026-01-01T00:00:12Z").unwrap();
        let text = render("http://127.0.0.1:9300", &status, now);
        for l in text.lines().skip(1) {
            assert!(l.chars().count() <= 100, "too wide: {l}");
        }
        assert_eq!(seen(Some(75.0)), "1m ago");
        assert_eq!(seen(Some(-1.0)), "0.0s ago");
    }
}
