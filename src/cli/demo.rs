//! `keiko-dns demo`: the server with the default config plus three stand-in
//! regional health endpoints on 127.0.0.1:18081-18083, which the default
//! config probes, so a newcomer can watch failover with `dig` and
//! `keiko-dns failover`, or make an endpoint fail and watch the probes
//! take the region out.
//!
//! The endpoints run on their own thread and runtime, so nothing they do
//! can delay the server; they are bound before the server starts so the
//! first health round finds them (connections queue in the backlog).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::client::EXIT_UNREACHABLE;
use crate::config::Policy;

/// The stand-in endpoints, in the default config's region order.
pub const ENDPOINT_PORTS: [u16; 3] = [18081, 18082, 18083];

pub fn run() -> ExitCode {
    let path = crate::control::load::default_config_path();
    let mut listeners = Vec::with_capacity(ENDPOINT_PORTS.len());
    for port in ENDPOINT_PORTS {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!(
                    "keiko-dns demo: cannot bind the demo health endpoint {addr}: {e} \
                     (is another demo running?)"
                );
                return ExitCode::from(EXIT_UNREACHABLE);
            }
        }
    }
    if let Err(e) = std::thread::Builder::new()
        .name("demo-endpoints".into())
        .spawn(move || endpoints(listeners))
    {
        eprintln!("keiko-dns demo: cannot start the demo endpoints: {e}");
        return ExitCode::from(EXIT_UNREACHABLE);
    }
    print_guide(&path);
    super::serve::run(&path)
}

/// Serves the three endpoints until the process exits.
fn endpoints(listeners: Vec<TcpListener>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "demo endpoints: cannot start a runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for listener in listeners {
            let addr = listener.local_addr().ok();
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(?addr, error = %e, "demo endpoint cannot serve");
                    continue;
                }
            };
            let failing = Arc::new(AtomicBool::new(false));
            let app = Router::new()
                .route("/health", get(health))
                .route("/fail", post(fail))
                .route("/recover", post(recover))
                .with_state(failing);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(?addr, error = %e, "demo endpoint stopped");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

async fn health(State(failing): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if failing.load(Ordering::Relaxed) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "failing (POST /recover to heal)\n",
        )
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn fail(State(failing): State<Arc<AtomicBool>>) -> &'static str {
    failing.store(true, Ordering::Relaxed);
    "this endpoint now answers 503; the probes take its region out after a few failures\n"
}

async fn recover(State(failing): State<Arc<AtomicBool>>) -> &'static str {
    failing.store(false, Ordering::Relaxed);
    "this endpoint is healthy again\n"
}

/// What to try, printed before the server starts. Read from the config so
/// it names what is really served.
fn print_guide(path: &Path) {
    let Ok(loaded) = crate::control::load(path) else {
        // The server reports the error properly in a moment.
        return;
    };
    let config = &loaded.config;
    let origin = &config.zone.origin;
    let (host, port) = config
        .server
        .dns_listen
        .first()
        .map_or(("127.0.0.1".to_owned(), 5300), |a| {
            (a.ip().to_string(), a.port())
        });
    let dig = |name: &str, rest: &str| format!("  dig @{host} -p {port} {name} {rest}");
    let admin = config.server.admin_listen;
    let mut out = Vec::new();
    out.push(format!(
        "keiko-dns demo: serving zone {origin} on {host}:{port} (UDP and TCP), admin API on http://{admin}"
    ));
    out.push(format!(
        "stand-in health endpoints: {}",
        ENDPOINT_PORTS
            .iter()
            .zip(&config.regions)
            .map(|(p, r)| format!("127.0.0.1:{p} ({})", r.name))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push(String::new());
    out.push("steered names:".into());
    for r in &config.records {
        out.push(format!(
            "{}    # {}",
            dig(&r.name.to_string(), "A +short"),
            r.policy.as_str()
        ));
    }
    out.push(String::new());
    out.push("static names from the zone file:".into());
    for (name, node) in &loaded.zone.nodes {
        let types: Vec<String> = node.keys().map(ToString::to_string).collect();
        let first = types.first().map_or("A", String::as_str);
        out.push(format!(
            "{}    # {}",
            dig(&name.to_string(), &format!("{first} +short")),
            types.join(" ")
        ));
    }
    if let Some(geo) = config.records.iter().find(|r| r.policy == Policy::Geo) {
        let name = geo.name.to_string();
        out.push(String::new());
        out.push("geographic answers (EDNS Client Subnet):".into());
        for (subnet, place) in [
            ("81.2.69.142/32", "GB: Europe, kept in the EU by residency"),
            ("216.160.83.56/32", "US"),
            ("2001:218::1/48", "JP"),
        ] {
            out.push(format!(
                "{}    # {place}",
                dig(&name, &format!("A +subnet={subnet}"))
            ));
        }
    }
    out.push(String::new());
    out.push("watch and drill:".into());
    out.push(format!(
        "  keiko-dns status                      # or open http://{admin}/"
    ));
    out.push(
        "  keiko-dns failover --region us-east-1 # force it down; see the answers move".into(),
    );
    out.push("  keiko-dns failover --region us-east-1 --restore".into());
    out.push("  keiko-dns explain api-contracts-geo --subnet 81.2.69.142/32".into());
    out.push(
        "  curl -X POST 127.0.0.1:18081/fail     # make us-east-1's endpoint fail (probes notice)"
            .into(),
    );
    out.push("  curl -X POST 127.0.0.1:18081/recover".into());
    out.push(format!(
        "probes run every {} (every {} after a failure); {} failures take a region out",
        humantime::format_duration(config.health.interval),
        humantime::format_duration(config.health.fast_interval),
        config.health.failure_threshold
    ));
    out.push(format!(
        "forced states survive restarts (kept in {}); --restore clears them",
        config.server.state_dir.display()
    ));
    out.push("stop with Ctrl-C".into());
    out.push(String::new());
    println!("{}", out.join("\n"));
}
