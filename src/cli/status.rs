//! `keiko-dns status`: asks a running server for `GET /status` and prints
//! it for people: regions with health, state, overrides, latency and
//! shares; the steered names with their current answers; recent events.
//! Everything fits in about 100 columns.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use super::client::{AdminArgs, AdminClient, answers, runtime};
use crate::admin::status::{RegionStatus, Status};

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
    line(format!(
        "{:<16} {:<8} {:<16} {:<6} {:>8} {:>6}  {:<9} {}",
        "REGION", "HEALTH", "STATE", "FORCED", "LATENCY", "SHARE", "CHECKED", "LAST ERROR"
    ));
    for r in &status.regions {
        line(region_row(r, now));
    }
    line(String::new());
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

/// "12s ago" for an RFC 3339 time; the time itself when it cannot be read.
fn ago(time: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339_weak(time) {
        Ok(then) => {
            let secs = now.duration_since(then).unwrap_or(Duration::ZERO).as_secs();
            match secs {
                0..60 => format!("{secs}s ago"),
                60..3600 => format!("{}m ago", secs / 60),
                3600..86400 => format!("{}h ago", secs / 3600),
                _ => format!("{}d ago", secs / 86400),
            }
        }
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
            }],
            records: vec![RecordStatus {
                name: "api-contracts".into(),
                policy: "failover".into(),
                ttl: 60,
                answer: vec!["198.51.100.10".into()],
                region: Some("eu-west-1".into()),
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
    }
}
