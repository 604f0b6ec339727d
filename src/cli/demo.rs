//! `keiko-dns demo`: the server with the default config plus three stand-in
//! regional health endpoints on 127.0.0.1:18081-18083, which the default
//! config probes, so a newcomer can watch failover with `dig` and
//! `keiko-dns failover`, or make an endpoint fail and watch the probes
//! take the region out.
//!
//! The endpoints run on their own thread and runtime, so nothing they do
//! can delay the server; they are bound before the server starts so the
//! first health round finds them (connections queue in the backlog).
//!
//! The demo keeps its state apart from a plain `serve` of the same config
//! (in `state_dir/demo`): otherwise a `serve` without the stand-ins saves
//! every region as down and the next demo starts from that. It serves a
//! copy of the config written there, identical but for `state_dir` and
//! with every path made absolute; the config is checked as written first,
//! so its errors point into the file the operator edits. A reload (SIGHUP)
//! re-reads that copy, and with it the zone file and GeoIP database.
//!
//! This file also owns the hint a plain `serve` logs when the stand-ins it
//! would probe are not running (docs/reference.md §1.2). `demo --fleet`
//! (three instances that answer as one) is in `demo/fleet.rs`.

mod fleet;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::client::EXIT_UNREACHABLE;
use crate::config::{Config, Policy};
use crate::control::Loaded;

/// The stand-in endpoints, in the default config's region order.
pub(super) const ENDPOINT_PORTS: [u16; 3] = [18081, 18082, 18083];

/// The demo's folder inside the config's `state_dir`.
const STATE_SUBDIR: &str = "demo";
/// The config copy the demo serves, in its state folder.
const CONFIG_COPY: &str = "keiko-demo.toml";
/// A loopback connect is answered or refused at once; this only bounds a
/// wedged listener.
const CONNECT: Duration = Duration::from_millis(300);

/// Why the demo's config copy cannot be written.
#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot re-read {} as TOML: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("cannot write the demo config: {0}")]
    Serialize(#[from] toml::ser::Error),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not UTF-8; the demo config cannot name it", path.display())]
    NotUtf8 { path: PathBuf },
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Three instances that answer as one (ns1/ns2/ns3, each with its own
    /// ports and stand-in endpoints) instead of one
    #[arg(long)]
    pub fleet: bool,
}

/// The config the demo serves, found as `serve` finds it, and loaded;
/// `None` (with the reason printed, prefixed by `who`) when it cannot be.
fn load_config(who: &str) -> Option<crate::control::Loaded> {
    let path = match super::find_config(None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{who}: {e}");
            return None;
        }
    };
    match crate::control::load(&path) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{who}: cannot start with {}", path.display());
            None
        }
    }
}

pub(super) fn run(args: &Args) -> ExitCode {
    if args.fleet {
        return fleet::run();
    }
    let Some(loaded) = load_config("keiko-dns demo") else {
        return ExitCode::from(1);
    };
    let state_dir = loaded.config.server.state_dir.join(STATE_SUBDIR);
    if let Err(e) = std::fs::create_dir_all(&state_dir) {
        eprintln!("keiko-dns demo: cannot create {}: {e}", state_dir.display());
        return ExitCode::from(1);
    }
    // `zones/../var/demo` reads better as `var/demo` in the guide.
    let state_dir = std::fs::canonicalize(&state_dir).unwrap_or(state_dir);
    let demo_config = match write_demo_config(&loaded.config, &state_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("keiko-dns demo: {e}");
            return ExitCode::from(1);
        }
    };
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
    print_guide(&loaded, &state_dir);
    super::serve::run(
        &demo_config,
        &super::serve::Args::default(),
        super::LogFormat::Text,
    )
}

/// Writes `config` again into `state_dir`, with that as its `state_dir` and
/// every other path absolute (they were relative to the original's
/// folder), and returns where.
fn write_demo_config(config: &Config, state_dir: &Path) -> Result<PathBuf, DemoError> {
    let table = relocated(config, state_dir)?;
    let body = toml::to_string(&table)?;
    let out = state_dir.join(CONFIG_COPY);
    let text = format!(
        "# Written by `keiko-dns demo` from {}: the same config with its own\n\
         # state_dir and absolute paths. Edit the original, not this copy.\n\n{body}",
        config.path.display()
    );
    std::fs::write(&out, text).map_err(|source| DemoError::Write {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

/// `config`'s file as a TOML table that works from anywhere: `state_dir`
/// replaced, every other path made absolute (they were relative to the
/// original's folder).
fn relocated(config: &Config, state_dir: &Path) -> Result<toml::Table, DemoError> {
    let text = std::fs::read_to_string(&config.path).map_err(|source| DemoError::Read {
        path: config.path.clone(),
        source,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|source| DemoError::Parse {
        path: config.path.clone(),
        source,
    })?;
    set_path(&mut table, "server", "state_dir", state_dir)?;
    set_path(&mut table, "zone", "file", &config.zone.file)?;
    if let Some(db) = &config.geoip.database {
        set_path(&mut table, "geoip", "database", db)?;
    }
    if let Some(ca) = &config.health.ca_file {
        set_path(&mut table, "health", "ca_file", ca)?;
    }
    if let Some(fleet) = &config.fleet {
        set_path(&mut table, "fleet", "ca_file", &fleet.ca_file)?;
        set_path(&mut table, "fleet", "cert_file", &fleet.cert_file)?;
        set_path(&mut table, "fleet", "key_file", &fleet.key_file)?;
    }
    if let Some(dnssec) = &config.dnssec {
        let keys = dnssec
            .keys
            .iter()
            .map(|key| path_value(key))
            .collect::<Result<_, _>>()?;
        if let Some(toml::Value::Table(t)) = table.get_mut("dnssec") {
            t.insert("keys".to_owned(), toml::Value::Array(keys));
        }
    }
    Ok(table)
}

fn path_value(path: &Path) -> Result<toml::Value, DemoError> {
    let text = path.to_str().ok_or_else(|| DemoError::NotUtf8 {
        path: path.to_owned(),
    })?;
    Ok(toml::Value::String(text.to_owned()))
}

/// Sets `[section] key` to `path` (the section exists: the config was
/// validated with it).
fn set_path(
    table: &mut toml::Table,
    section: &str,
    key: &str,
    path: &Path,
) -> Result<(), DemoError> {
    let value = path_value(path)?;
    if let Some(toml::Value::Table(t)) = table.get_mut(section) {
        t.insert(key.to_owned(), value);
    }
    Ok(())
}

/// Logs one hint when every region of the config at `path` is probed on
/// loopback and nothing listens at any of those ports: that is the shipped
/// default config served without `keiko-dns demo`, and every region would
/// go down after a few probes with nothing saying why. Checked once at
/// start, before the first probe round; a config that cannot be loaded is
/// left to the server to report.
pub(super) fn hint_if_stand_ins_are_missing(path: &Path) {
    let Ok(config) = Config::load(path) else {
        return;
    };
    let Some(targets) = loopback_targets(&config) else {
        return;
    };
    if targets
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, CONNECT).is_ok())
    {
        return;
    }
    let listed: Vec<String> = targets.iter().map(ToString::to_string).collect();
    tracing::warn!(
        "nothing listens at this config's loopback health endpoints ({}): every region \
         will be marked down after {} failed probes and answers will fail open. The \
         default config's stand-in endpoints are served by `keiko-dns demo`: run that \
         to try keiko-dns, or start your own endpoints at those addresses",
        listed.join(", "),
        config.health.failure_threshold
    );
}

/// The addresses of every region's `health_url`, when every region has one
/// and all of them are on loopback; `None` otherwise.
fn loopback_targets(config: &Config) -> Option<Vec<SocketAddr>> {
    if config.regions.is_empty() {
        return None;
    }
    let mut targets = Vec::with_capacity(config.regions.len());
    for region in &config.regions {
        let url = reqwest::Url::parse(region.health_url.as_deref()?).ok()?;
        let port = url.port_or_known_default()?;
        let host = url.host_str()?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = match bare.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) if bare.eq_ignore_ascii_case("localhost") => {
                (bare, port).to_socket_addrs().ok()?.next()?.ip()
            }
            Err(_) => return None,
        };
        if !ip.is_loopback() {
            return None;
        }
        targets.push(SocketAddr::new(ip, port));
    }
    Some(targets)
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

/// The program's name on the PATH.
const NAME: &str = "keiko-dns";

/// How the guide tells the operator to run this binary: its bare name when
/// that finds this very file on the PATH, else the path it was started by
/// (`./target/release/keiko-dns` after `cargo build --release`).
fn command_name() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return NAME.to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|dirs| {
        std::env::split_paths(&dirs)
            .filter_map(|d| std::fs::canonicalize(d.join(NAME)).ok())
            .next()
            .is_some_and(|found| found == me)
    });
    if on_path {
        return NAME.to_owned();
    }
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| me.strip_prefix(cwd).ok().map(Path::to_owned))
    {
        Some(relative) => format!("./{}", relative.display()),
        None => me.display().to_string(),
    }
}

/// What to try, printed before the server starts. Read from the config so
/// it names what is really served.
fn print_guide(loaded: &Loaded, state_dir: &Path) {
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
    let me = command_name();
    out.push(String::new());
    out.push("watch and drill:".into());
    if me != NAME {
        out.push(format!(
            "  (`{NAME}` is not on your PATH: `cargo install --path .` puts it there; \
             until then run {me})"
        ));
    }
    let drill = [
        (format!("{me} status"), format!("or open http://{admin}/")),
        (
            format!("{me} failover --region us-east-1"),
            "force it down; see the answers move".to_owned(),
        ),
        (
            format!("{me} failover --region us-east-1 --restore"),
            String::new(),
        ),
        (
            format!("{me} explain api-contracts-geo --subnet 81.2.69.142/32"),
            String::new(),
        ),
        (
            "curl -X POST 127.0.0.1:18081/fail".to_owned(),
            "make us-east-1's endpoint fail (probes notice)".to_owned(),
        ),
        (
            "curl -X POST 127.0.0.1:18081/recover".to_owned(),
            String::new(),
        ),
    ];
    let width = drill
        .iter()
        .filter(|(_, note)| !note.is_empty())
        .map(|(command, _)| command.len())
        .max()
        .unwrap_or(0);
    for (command, note) in drill {
        if note.is_empty() {
            out.push(format!("  {command}"));
        } else {
            out.push(format!("  {command:<width$} # {note}"));
        }
    }
    out.push(format!(
        "probes run every {} (every {} after a failure); {} failures take a region out",
        humantime::format_duration(config.health.interval),
        humantime::format_duration(config.health.fast_interval),
        config.health.failure_threshold
    ));
    out.push(format!(
        "forced states survive demo restarts (kept in {}, apart from a plain serve's); \
         --restore clears them",
        state_dir.display()
    ));
    out.push("stop with Ctrl-C".into());
    out.push(String::new());
    println!("{}", out.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::keys;
    use crate::testutil::{CONFIG, ZONE, write};

    /// The copy lives in another folder, so a path left relative would
    /// name a file that is not there.
    #[test]
    fn the_copy_names_the_same_key_files_from_its_own_folder() {
        let (dir, path) = write(
            &format!("{CONFIG}\n[dnssec]\nkeys = [\"zone.key\", \"keys/next.key\"]\n"),
            ZONE,
        );
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        for key in ["zone.key", "keys/next.key"] {
            keys::write_new(&dir.path().join(key), &keys::generate_pem().unwrap()).unwrap();
        }
        let config = Config::load(&path).unwrap();
        let state = dir.path().join("var/demo");
        std::fs::create_dir_all(&state).unwrap();
        let copy = write_demo_config(&config, &state).unwrap();
        let relocated = Config::load(&copy).unwrap();
        let dnssec = relocated.dnssec.unwrap();
        assert_eq!(dnssec.keys, config.dnssec.unwrap().keys);
        assert!(dnssec.keys.iter().all(|k| k.is_absolute() && k.is_file()));
        assert_eq!(relocated.zone.file, config.zone.file);
        assert_eq!(relocated.server.state_dir, state);
    }
}
