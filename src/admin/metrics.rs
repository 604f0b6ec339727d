//! Prometheus exposition (contract section 5). Values live where they are
//! produced (per-worker counters, the health monitor, the snapshot); a
//! scrape gathers them into a fresh registry and encodes it as text 0.0.4.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::control::Plane;
use crate::dataplane::stats::RCODES;

type Labels = Vec<(&'static str, String)>;
type GaugeF = Gauge<f64, AtomicU64>;

pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

struct Builder {
    registry: Registry,
}

impl Builder {
    fn gauge(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, f64)>) {
        let family = Family::<Labels, GaugeF>::default();
        for (labels, v) in values {
            family.get_or_create(&labels).set(v);
        }
        self.registry.register(name, help, family);
    }

    /// `name` without `_total`: the encoder adds it.
    fn counter(&mut self, name: &str, help: &str, values: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, v) in values {
            family.get_or_create(&labels).inc_by(v);
        }
        self.registry.register(name, help, family);
    }
}

fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// The whole exposition as text.
pub fn render(plane: &Plane) -> String {
    let mut b = Builder {
        registry: Registry::default(),
    };
    let snap = plane.control.snapshot();
    let config = snap.config();
    let regions = plane.monitor.regions();
    let source = config.server.region.as_str();

    b.gauge(
        "keiko_multi_region_health",
        "Whether a region receives traffic (1) or not (0), probes and forced states combined",
        config.regions.iter().enumerate().map(|(i, r)| {
            (
                l(&[("region", &r.name)]),
                f64::from(u8::from(snap.healthy[i])),
            )
        }),
    );
    b.gauge(
        "keiko_multi_region_latency",
        "Round trip of the last health probe from this instance's region, in seconds",
        regions.iter().filter_map(|r| {
            let latency = r.health.latency?;
            Some((
                l(&[("source", source), ("target", &r.name)]),
                latency.as_secs_f64(),
            ))
        }),
    );
    let shares = snap.weighted_default().shares();
    b.gauge(
        "keiko_multi_region_traffic",
        "Effective weighted share of each region, in percent",
        config.regions.iter().enumerate().map(|(i, r)| {
            let share = shares.iter().find(|(id, _)| *id == i).map_or(0.0, |s| s.1);
            (l(&[("region", &r.name)]), (share * 10.0).round() / 10.0)
        }),
    );
    b.counter(
        "keiko_multi_region_failover_events",
        "Health transitions and forced-state changes recorded per region since start",
        regions
            .iter()
            .map(|r| (l(&[("region", &r.name)]), r.events)),
    );
    b.counter(
        "keiko_health_checks",
        "Health probes by result",
        regions.iter().flat_map(|r| {
            [
                (
                    l(&[("region", &r.name), ("result", "success")]),
                    r.checks_ok,
                ),
                (
                    l(&[("region", &r.name), ("result", "failure")]),
                    r.checks_failed,
                ),
            ]
        }),
    );

    let totals = plane.control.stats().totals();
    b.counter(
        "keiko_dns_queries",
        "DNS queries received by transport",
        [
            (l(&[("protocol", "udp")]), totals.udp),
            (l(&[("protocol", "tcp")]), totals.tcp),
        ],
    );
    b.counter(
        "keiko_dns_responses",
        "DNS responses sent by response code",
        RCODES
            .iter()
            .zip(totals.responses)
            .map(|(rcode, n)| (l(&[("rcode", rcode)]), n)),
    );
    let mut answers: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for counters in plane.control.answer_counters() {
        for (record, region, n) in counters.totals() {
            *answers
                .entry((record.to_owned(), region.to_owned()))
                .or_default() += n;
        }
    }
    b.counter(
        "keiko_dns_answers",
        "Steered answers by record and region",
        answers
            .iter()
            .map(|((rec, reg), n)| (l(&[("record", rec), ("region", reg)]), *n)),
    );
    b.counter(
        "keiko_dns_fail_open",
        "Steered answers given while no candidate region was healthy",
        [(Labels::new(), totals.fail_open)],
    );
    b.counter(
        "keiko_dns_truncated",
        "Responses cut to the client's size with TC set",
        [(Labels::new(), totals.truncated)],
    );
    b.counter(
        "keiko_dns_dropped",
        "Packets not answered (too short to carry an ID, or responses)",
        [(Labels::new(), totals.dropped)],
    );
    let (ok, failed) = plane.control.reloads();
    b.counter(
        "keiko_config_reloads",
        "Reloads of config, zone and GeoIP database by result",
        [
            (l(&[("result", "success")]), ok),
            (l(&[("result", "failure")]), failed),
        ],
    );
    b.gauge(
        "keiko_snapshot_version",
        "Version of the routing table being served; bumps on every health change and reload",
        [(Labels::new(), snap.version as f64)],
    );
    b.gauge(
        "keiko_ready",
        "1 once config and zone are loaded and the first round of health checks has run",
        [(Labels::new(), f64::from(u8::from(plane.monitor.ready())))],
    );
    b.gauge(
        "keiko_build_info",
        "Build of the running server",
        [(l(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
    );
    let mut out = String::with_capacity(8192);
    if let Err(e) = prometheus_text::encode(&mut out, &b.registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}
