use super::*;

fn encode(f: Families) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(f));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry).expect("encode");
    out
}

#[test]
fn families_keep_their_order_and_counters_get_total() {
    let mut f = Families::default();
    f.counter(
        "b_events",
        "Events.",
        [(l(&[("region", "z")]), 2), (l(&[("region", "a")]), 1)],
    );
    f.gauge("a_up", "Up.", [(Labels::new(), 1.0)]);
    assert_eq!(
        encode(f),
        "# HELP b_events_total Events.\n# TYPE b_events_total counter\n\
         b_events_total{region=\"z\"} 2\nb_events_total{region=\"a\"} 1\n\
         # HELP a_up Up.\n# TYPE a_up gauge\na_up 1.0\n"
    );
}

#[test]
fn histogram_buckets_are_cumulative_with_inf() {
    let mut f = Families::default();
    f.push(
        "probe_seconds",
        "Probes.",
        MetricType::Histogram,
        [(l(&[("region", "r")]), ())],
        |()| Value::Histogram {
            sum: 0.75,
            count: 4,
            buckets: vec![(0.1, 1), (0.5, 2)],
        },
    );
    let text = encode(f);
    for line in [
        "probe_seconds_bucket{region=\"r\",le=\"0.1\"} 1",
        "probe_seconds_bucket{region=\"r\",le=\"0.5\"} 3",
        "probe_seconds_bucket{region=\"r\",le=\"+Inf\"} 4",
        "probe_seconds_sum{region=\"r\"} 0.75",
        "probe_seconds_count{region=\"r\"} 4",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

/// The fleet families of the sample fleet, with the latency matrix.
fn fleet_text(view: &FleetView) -> String {
    let mut f = Families::default();
    f.gauge(
        "keiko_multi_region_latency",
        "Latency.",
        latency_series(
            "us-east-1",
            [("us-east-1", 0.001), ("eu-west-1", 0.08)],
            Some(view),
        ),
    );
    fleet_families(&mut f, view);
    encode(f)
}

fn samples(text: &str, family: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .map(str::to_owned)
        .collect()
}

#[test]
fn fleet_families_have_the_contract_names_labels_and_types() {
    let view = crate::fleet::view::sample();
    let text = fleet_text(&view);
    for (family, kind) in [
        ("keiko_fleet_peer_up", "gauge"),
        ("keiko_fleet_peer_last_seen_seconds", "gauge"),
        ("keiko_fleet_observation", "gauge"),
        ("keiko_fleet_agreement", "gauge"),
        ("keiko_fleet_isolated", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} {kind}\n")),
            "{family} {kind} not in:\n{text}"
        );
    }
    assert_eq!(
        samples(&text, "keiko_fleet_peer_up"),
        [
            "keiko_fleet_peer_up{peer=\"ns2.eu-west-1\"} 1.0",
            "keiko_fleet_peer_up{peer=\"ns3.ap-southeast-1\"} 0.0",
            "keiko_fleet_peer_up{peer=\"10.0.4.53\"} 0.0",
        ]
    );
    // A peer never heard has no last-seen series.
    assert_eq!(
        samples(&text, "keiko_fleet_peer_last_seen_seconds"),
        [
            "keiko_fleet_peer_last_seen_seconds{peer=\"ns2.eu-west-1\"} 0.4",
            "keiko_fleet_peer_last_seen_seconds{peer=\"ns3.ap-southeast-1\"} 12.5",
        ]
    );
    // Fresh vantage points only (ns3 is stale), this instance included.
    assert_eq!(
        samples(&text, "keiko_fleet_observation"),
        [
            "keiko_fleet_observation{observer=\"ns1.us-east-1\",region=\"us-east-1\"} 1.0",
            "keiko_fleet_observation{observer=\"ns2.eu-west-1\",region=\"us-east-1\"} 1.0",
            "keiko_fleet_observation{observer=\"ns1.us-east-1\",region=\"eu-west-1\"} 1.0",
            "keiko_fleet_observation{observer=\"ns2.eu-west-1\",region=\"eu-west-1\"} 0.0",
            "keiko_fleet_observation{observer=\"ns1.us-east-1\",region=\"ap-southeast-1\"} 1.0",
            "keiko_fleet_observation{observer=\"ns2.eu-west-1\",region=\"ap-southeast-1\"} 1.0",
        ]
    );
    // ns3 disagrees but is stale: every fresh peer agrees.
    assert_eq!(
        samples(&text, "keiko_fleet_agreement"),
        ["keiko_fleet_agreement 1.0"]
    );
    assert_eq!(
        samples(&text, "keiko_fleet_isolated"),
        ["keiko_fleet_isolated 0.0"]
    );
    // The same scrape twice is byte-identical.
    assert_eq!(text, fleet_text(&view));
}

#[test]
fn agreement_and_isolation_follow_the_fresh_peers() {
    let mut view = crate::fleet::view::sample();
    view.peers[0].agrees = false;
    let text = fleet_text(&view);
    assert_eq!(
        samples(&text, "keiko_fleet_agreement"),
        ["keiko_fleet_agreement 0.0"]
    );
    for p in &mut view.peers {
        p.state = PeerState::Stale;
    }
    view.isolated = true;
    let text = fleet_text(&view);
    assert_eq!(
        samples(&text, "keiko_fleet_isolated"),
        ["keiko_fleet_isolated 1.0"]
    );
    assert_eq!(
        samples(&text, "keiko_fleet_agreement"),
        ["keiko_fleet_agreement 1.0"]
    );
    assert!(
        samples(&text, "keiko_fleet_peer_up")
            .iter()
            .all(|s| s.ends_with(" 0.0"))
    );
}

#[test]
fn the_latency_matrix_has_one_series_per_source_and_target() {
    let mut view = crate::fleet::view::sample();
    // A second fresh instance in eu-west-1, probing later than ns2 for
    // us-east-1 only, and one in us-east-1 (this instance's region).
    let extra =
        |instance: &str, region: &str, ms: f64, when: &str| crate::fleet::view::ObserverView {
            instance: instance.into(),
            region: region.into(),
            state: "up",
            fresh: true,
            latency_seconds: Some(ms / 1000.0),
            last_check: Some(when.into()),
        };
    view.regions[0].observers.push(extra(
        "ns4.eu-west-1",
        "eu-west-1",
        90.0,
        "2026-01-01T00:00:11Z",
    ));
    view.regions[1].observers.push(extra(
        "ns4.eu-west-1",
        "eu-west-1",
        3.0,
        "2026-01-01T00:00:09Z",
    ));
    view.regions[2].observers.push(extra(
        "ns5.us-east-1",
        "us-east-1",
        500.0,
        "2026-01-01T00:00:11Z",
    ));
    let text = fleet_text(&view);
    assert_eq!(
        samples(&text, "keiko_multi_region_latency"),
        [
            // This instance's own, as without a fleet (no probe of
            // ap-southeast-1 yet; ns5 does not stand in for it).
            "keiko_multi_region_latency{source=\"us-east-1\",target=\"us-east-1\"} 0.001",
            "keiko_multi_region_latency{source=\"us-east-1\",target=\"eu-west-1\"} 0.08",
            // eu-west-1: ns4 probed us-east-1 last, ns2 the others.
            "keiko_multi_region_latency{source=\"eu-west-1\",target=\"us-east-1\"} 0.09",
            "keiko_multi_region_latency{source=\"eu-west-1\",target=\"eu-west-1\"} 0.002",
            "keiko_multi_region_latency{source=\"eu-west-1\",target=\"ap-southeast-1\"} 0.158",
            // ap-southeast-1 (ns3) is stale: no series.
        ]
    );
    // Without a fleet: exactly this instance's own.
    let own = latency_series("us-east-1", [("eu-west-1", 0.08)], None);
    assert_eq!(
        own,
        [(l(&[("source", "us-east-1"), ("target", "eu-west-1")]), 0.08)]
    );
}

/// tests/monitoring.rs accepts the names of its `FLEET_METRICS` in the
/// dashboard and rules without a fleet running; this holds it to them:
/// every name listed there is rendered here, and every fleet family
/// rendered here is listed there.
#[test]
fn the_monitoring_tests_fleet_metric_list_is_what_a_fleet_exports() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/monitoring.rs");
    let source = std::fs::read_to_string(path).expect("read tests/monitoring.rs");
    let marker = "const FLEET_METRICS: &[&str] = &[";
    let start = source
        .find(marker)
        .expect("FLEET_METRICS in tests/monitoring.rs")
        + marker.len();
    let list = &source[start..];
    let list = &list[..list.find("];").expect("end of FLEET_METRICS")];
    let listed: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    assert!(listed.len() >= 5, "{listed:?}");
    let text = fleet_text(&crate::fleet::view::sample());
    let rendered: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("keiko_fleet_"))
        .collect();
    for name in &listed {
        assert!(
            !samples(&text, name).is_empty(),
            "{name} is in FLEET_METRICS but a fleet does not export it:\n{text}"
        );
    }
    for name in &rendered {
        assert!(
            listed.contains(name),
            "{name} is missing from FLEET_METRICS"
        );
    }
}

fn summary(signatures: usize, earliest_expiration: u32) -> crate::dnssec::Summary {
    crate::dnssec::Summary {
        algorithm: 13,
        signing_key_tag: 12345,
        key_tags: vec![12345, 54321],
        earliest_expiration,
        signatures,
        signed_total: 140,
    }
}

#[test]
fn dnssec_families_say_when_the_earliest_signature_expires_and_how_many_were_made() {
    let mut f = Families::default();
    dnssec_families(&mut f, &summary(96, 1_800_086_400), 1_800_000_000);
    let text = encode(f);
    for line in [
        "# TYPE keiko_dnssec_signatures_expire_seconds gauge",
        "keiko_dnssec_signatures_expire_seconds 86400.0",
        "# TYPE keiko_dnssec_signatures_total counter",
        "keiko_dnssec_signatures_total 140",
        "# TYPE keiko_dnssec_signatures_in_table gauge",
        "keiko_dnssec_signatures_in_table 96.0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    // Expired signatures count down below zero, which the alert sees.
    let mut f = Families::default();
    dnssec_families(&mut f, &summary(96, 1_800_000_000), 1_800_000_060);
    let text = encode(f);
    assert!(
        text.contains("keiko_dnssec_signatures_expire_seconds -60.0\n"),
        "{text}"
    );
    // A table without signatures has no earliest expiry to report.
    let mut f = Families::default();
    dnssec_families(&mut f, &summary(0, 0), 1_800_000_000);
    let text = encode(f);
    assert!(!text.contains("expire_seconds"), "{text}");
    assert!(
        text.contains("keiko_dnssec_signatures_in_table 0.0\n"),
        "{text}"
    );
}
