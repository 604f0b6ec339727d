//! Prometheus exposition (docs/reference.md §5). Values live where they are
//! produced (per-worker counters, the health monitor, the snapshot); a
//! scrape copies them into a list of families and encodes it as text 0.0.4.
//!
//! The families are written through one [`Collector`] rather than
//! `prometheus_client`'s own metric types because those keep their series
//! in hash maps (so the output order would change from scrape to scrape)
//! and have no way to take a histogram that was bucketed elsewhere (the
//! probe durations are bucketed by the health monitor as probes finish).
//! Here families come out in registration order and series in the order
//! they were added, which follows the config, so two scrapes of an idle
//! server are byte-identical and diffs of scrapes are readable.
//!
//! With a fleet the `keiko_fleet_*` families follow the single-instance
//! ones, and `keiko_multi_region_latency` gains the fresh peers' probes;
//! without one the output is exactly the single instance's. The
//! `keiko_dnssec_*` families come last, and only for a signed zone.

use std::collections::BTreeMap;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::control::ControlPlane;
use crate::dataplane::stats::RCODES;
use crate::fleet::view::{FleetView, PeerState};
use crate::health::record::PROBE_BUCKETS;

type Labels = Vec<(&'static str, String)>;

pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// One sample's value; the family's type decides how it is written.
#[derive(Debug)]
enum Value {
    Gauge(f64),
    Counter(u64),
    /// Non-cumulative counts per bucket of `(upper bound, count)`; the
    /// encoder accumulates them and adds `le="+Inf"`.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

#[derive(Debug)]
struct Family {
    /// Without `_total` for counters: the encoder adds it.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    series: Vec<(Labels, Value)>,
}

/// Everything one scrape exports, in the order it is written.
#[derive(Debug, Default)]
struct Families(Vec<Family>);

impl Families {
    fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        values: impl IntoIterator<Item = (Labels, f64)>,
    ) {
        self.push(name, help, MetricType::Gauge, values, Value::Gauge);
    }

    /// `name` without `_total`: the encoder adds it.
    fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        values: impl IntoIterator<Item = (Labels, u64)>,
    ) {
        self.push(name, help, MetricType::Counter, values, Value::Counter);
    }

    fn push<T>(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
        values: impl IntoIterator<Item = (Labels, T)>,
        wrap: fn(T) -> Value,
    ) {
        self.0.push(Family {
            name,
            help,
            kind,
            series: values.into_iter().map(|(l, v)| (l, wrap(v))).collect(),
        });
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (labels, value) in &family.series {
                let mut sample = metric.encode_family(labels)?;
                match value {
                    Value::Gauge(v) => sample.encode_gauge(v)?,
                    Value::Counter(v) => sample.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    Value::Histogram {
                        sum,
                        count,
                        buckets,
                    } => sample.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?,
                }
            }
        }
        Ok(())
    }
}

fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// A percentage to one decimal, as the status page shows it (66.7, 33.3).
fn percent(share: f64) -> f64 {
    (share * 10.0).round() / 10.0
}

/// The whole exposition as text.
pub(crate) fn render(plane: &ControlPlane) -> String {
    let mut f = Families::default();
    let snap = plane.publisher.snapshot();
    let config = snap.config();
    let regions = plane.monitor.regions();
    let source = config.server.region.as_str();
    let fleet = plane.fleet_view();

    f.gauge(
        "keiko_multi_region_health",
        "Whether a region receives traffic (1) or not (0), probes and forced states combined.",
        config.regions.iter().enumerate().map(|(i, r)| {
            let healthy = snap.healthy.get(i).copied().unwrap_or(false);
            (l(&[("region", &r.name)]), f64::from(u8::from(healthy)))
        }),
    );
    f.gauge(
        "keiko_multi_region_latency",
        "Duration of the last health probe from the source region to the target region, in seconds.",
        latency_series(
            source,
            regions.iter().filter_map(|r| {
                let latency = r.health.latency?;
                Some((r.name.as_str(), latency.as_secs_f64()))
            }),
            fleet.as_ref(),
        ),
    );
    let shares = snap.weighted_default().shares();
    f.gauge(
        "keiko_multi_region_traffic",
        "Effective weighted share of each region among the healthy ones, in percent.",
        config.regions.iter().enumerate().map(|(i, r)| {
            let share = shares.iter().find(|(id, _)| *id == i).map_or(0.0, |s| s.1);
            (l(&[("region", &r.name)]), percent(share))
        }),
    );
    f.counter(
        "keiko_multi_region_failover_events",
        "Health transitions and forced-state changes recorded per region since start.",
        regions
            .iter()
            .map(|r| (l(&[("region", &r.name)]), r.events)),
    );
    f.counter(
        "keiko_health_checks",
        "Health probes run, by region and result.",
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
    f.push(
        "keiko_health_probe_duration_seconds",
        "Duration of health probes by region, successful or not, in seconds.",
        MetricType::Histogram,
        regions.iter().map(|r| {
            let d = &r.durations;
            // The last slot (above every bound) is +Inf, which the encoder
            // writes from the total count.
            let buckets = PROBE_BUCKETS
                .iter()
                .copied()
                .zip(d.buckets.iter().copied())
                .collect();
            (l(&[("region", &r.name)]), (d.sum_seconds, d.count, buckets))
        }),
        |(sum, count, buckets)| Value::Histogram {
            sum,
            count,
            buckets,
        },
    );

    let totals = plane.publisher.stats().totals();
    f.counter(
        "keiko_dns_queries",
        "DNS queries received, by transport.",
        [
            (l(&[("protocol", "udp")]), totals.udp),
            (l(&[("protocol", "tcp")]), totals.tcp),
        ],
    );
    f.counter(
        "keiko_dns_responses",
        "DNS responses sent, by response code.",
        RCODES
            .iter()
            .zip(totals.responses)
            .map(|(rcode, n)| (l(&[("rcode", rcode)]), n)),
    );
    // Summed over workers and reloads; a BTreeMap, so the output order is
    // stable.
    let answers = plane.publisher.answer_totals();
    f.counter(
        "keiko_dns_answers",
        "Steered answers sent, by record and region.",
        answers
            .iter()
            .map(|((rec, reg), n)| (l(&[("record", rec), ("region", reg)]), *n)),
    );
    f.counter(
        "keiko_dns_fail_open",
        "Steered answers given while no candidate region was healthy (fail open).",
        [(Labels::new(), totals.fail_open)],
    );
    f.counter(
        "keiko_dns_all_down",
        "Steered answers given while no candidate region was healthy, by the record's \
         on_all_down (fail open is counted in keiko_dns_fail_open).",
        [
            (l(&[("policy", "nodata")]), totals.all_down[0]),
            (l(&[("policy", "servfail")]), totals.all_down[1]),
        ],
    );
    f.counter(
        "keiko_dns_truncated",
        "Responses cut to the client's size with TC set.",
        [(Labels::new(), totals.truncated)],
    );
    f.counter(
        "keiko_dns_dropped",
        "Packets not answered (too short to carry an ID, or responses).",
        [(Labels::new(), totals.dropped)],
    );
    f.counter(
        "keiko_dns_send_errors",
        "UDP responses the kernel refused to send (counted in keiko_dns_responses too).",
        [(Labels::new(), totals.send_errors)],
    );
    f.counter(
        "keiko_dns_rate_limited",
        "Responses handled by response rate limiting, by action: dropped, or sent truncated (slipped).",
        [
            (l(&[("action", "dropped")]), totals.rate_limited),
            (l(&[("action", "slipped")]), totals.slipped),
        ],
    );
    let (ok, failed) = plane.publisher.reloads();
    f.counter(
        "keiko_config_reloads",
        "Reloads of config, zone and GeoIP database, by result.",
        [
            (l(&[("result", "success")]), ok),
            (l(&[("result", "failure")]), failed),
        ],
    );
    f.gauge(
        "keiko_snapshot_version",
        "Version of the routing table being served; bumps on every health change and reload.",
        [(Labels::new(), snap.version as f64)],
    );
    f.gauge(
        "keiko_routing_table_bytes",
        "Heap bytes of the routing table being served, with the answer counts kept across reloads.",
        [(Labels::new(), plane.publisher.memory_bytes() as f64)],
    );
    f.gauge(
        "keiko_ready",
        "Whether config and zone are loaded and the first round of health checks has run (1) or not (0).",
        [(Labels::new(), f64::from(u8::from(plane.monitor.ready())))],
    );
    f.gauge(
        "keiko_build_info",
        "Build of the running server; always 1.",
        [(l(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
    );
    if let Some(view) = &fleet {
        fleet_families(&mut f, view);
    }
    if let Some(summary) = &snap.compiled.dnssec {
        dnssec_families(&mut f, summary, unix_now());
    }

    let mut registry = Registry::default();
    registry.register_collector(Box::new(f));
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    out
}

/// Seconds since the Unix epoch, as the signer counts them.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `keiko_dnssec_*` families (contract section 8), only for a signed
/// zone: how long until the earliest signature of the table being served
/// expires (negative once it has), the signatures made since start, and
/// the signatures in the table.
fn dnssec_families(f: &mut Families, summary: &crate::dnssec::Summary, now: u64) {
    if summary.signatures > 0 {
        let left = i64::from(summary.earliest_expiration) - i64::try_from(now).unwrap_or(i64::MAX);
        f.gauge(
            "keiko_dnssec_signatures_expire_seconds",
            "Seconds until the earliest DNSSEC signature in the routing table being served expires.",
            [(Labels::new(), left as f64)],
        );
    }
    f.counter(
        "keiko_dnssec_signatures",
        "DNSSEC signatures made since start (signatures kept across table builds count once).",
        [(Labels::new(), summary.signed_total)],
    );
    f.gauge(
        "keiko_dnssec_signatures_in_table",
        "DNSSEC signatures (RRSIGs) in the routing table being served, one per distinct signed RRset.",
        [(Labels::new(), summary.signatures as f64)],
    );
}

/// `keiko_multi_region_latency`: this instance's own probes (`source` its
/// `server.region`) first, as without a fleet, then one series per other
/// (source, target) pair the fresh peers cover, sources in name order and
/// targets in config order. Of two fresh peers in one source region the
/// one whose probe ran last counts; this instance always wins its own
/// region.
fn latency_series<'a>(
    source: &str,
    own: impl IntoIterator<Item = (&'a str, f64)>,
    fleet: Option<&FleetView>,
) -> Vec<(Labels, f64)> {
    let mut series: Vec<(Labels, f64)> = own
        .into_iter()
        .map(|(target, latency)| (l(&[("source", source), ("target", target)]), latency))
        .collect();
    let Some(fleet) = fleet else {
        return series;
    };
    // (source, target) -> (latency, when its probe ran, target's config index)
    let mut others: BTreeMap<(&str, usize), (f64, Option<SystemTime>)> = BTreeMap::new();
    for (index, region) in fleet.regions.iter().enumerate() {
        for o in &region.observers {
            let Some(latency) = o.latency_seconds else {
                continue;
            };
            if !o.fresh || o.instance == fleet.instance || o.region == source {
                continue;
            }
            let ran = o
                .last_check
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
            let slot = others
                .entry((o.region.as_str(), index))
                .or_insert((latency, ran));
            if ran > slot.1 {
                *slot = (latency, ran);
            }
        }
    }
    series.extend(others.into_iter().map(|((from, index), (latency, _))| {
        (
            l(&[("source", from), ("target", &fleet.regions[index].region)]),
            latency,
        )
    }));
    series
}

/// The `keiko_fleet_*` families (contract section 7), peers in config
/// order, observations by region in config order then vantage point, this
/// instance first. Only fresh vantage points count as observers.
fn fleet_families(f: &mut Families, view: &FleetView) {
    f.gauge(
        "keiko_fleet_peer_up",
        "Whether a peer has been heard within peer_timeout (1) or is stale, unreachable or refused (0).",
        view.peers.iter().map(|p| {
            (
                l(&[("peer", &p.instance)]),
                f64::from(u8::from(p.state == PeerState::Up)),
            )
        }),
    );
    f.gauge(
        "keiko_fleet_peer_last_seen_seconds",
        "Seconds since a peer's last valid message; absent for a peer never heard.",
        view.peers
            .iter()
            .filter_map(|p| Some((l(&[("peer", &p.instance)]), p.last_seen_seconds?))),
    );
    f.gauge(
        "keiko_fleet_observation",
        "A region as a fresh vantage point observes it: 1 up, 0 down.",
        view.regions.iter().flat_map(|r| {
            r.observers.iter().filter(|o| o.fresh).map(|o| {
                (
                    l(&[("observer", &o.instance), ("region", &r.region)]),
                    f64::from(u8::from(o.state == "up")),
                )
            })
        }),
    );
    let agree = view
        .peers
        .iter()
        .filter(|p| p.state == PeerState::Up)
        .all(|p| p.agrees);
    f.gauge(
        "keiko_fleet_agreement",
        "Whether every fresh peer has this instance's routing_version (1) or not (0).",
        [(Labels::new(), f64::from(u8::from(agree)))],
    );
    f.gauge(
        "keiko_fleet_isolated",
        "Whether no peer is fresh, so this instance decides alone (1) or not (0).",
        [(Labels::new(), f64::from(u8::from(view.isolated)))],
    );
}

#[cfg(test)]
mod tests;
