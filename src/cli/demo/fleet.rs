//! `keiko-dns demo --fleet`: three instances of the default config that
//! answer as one (docs/reference.md §1.2, §7), started on loopback as
//! child processes of the demo: ns1.us-east-1, ns2.eu-west-1 and
//! ns3.ap-southeast-1, each with its own DNS, admin and peer ports and its
//! own stand-in endpoint per region, so a region can fail for one vantage
//! point only and the quorum can be watched holding, then giving way.
//!
//! Everything lives in `state_dir/demo-fleet`: the certificates (made by
//! this binary's own `keiko-dns fleet certs`, which reuses the CA of an
//! earlier run), one config per instance (the operator's config with the
//! per-instance parts replaced and `[fleet]` added; every path absolute),
//! each instance's `state_dir` and its log. Each config is loaded and
//! checked before any instance starts, so a mistake is reported once, with
//! its file and line, instead of as three dead children.
//!
//! The children are separate processes, not tasks, because that is what a
//! fleet is: nothing shared but the peer channel. The demo stops them on
//! SIGINT or SIGTERM and passes SIGHUP on (all three reload); if one of
//! them dies, the demo shows the end of its log and stops the others.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::super::client::EXIT_UNREACHABLE;
use super::{CONNECT, DemoError, NAME, command_name, endpoints};
use crate::config::Config;
use crate::control::Loaded;

/// The instances: `fleet.instance` and `server.region`.
const INSTANCES: [(&str, &str); 3] = [
    ("ns1.us-east-1", "us-east-1"),
    ("ns2.eu-west-1", "eu-west-1"),
    ("ns3.ap-southeast-1", "ap-southeast-1"),
];
/// The demo's folder inside the config's `state_dir`.
const STATE_SUBDIR: &str = "demo-fleet";
/// Ports of instance `i` (from 0): DNS 5301+i, admin 9301+i, peers 9441+i.
const DNS_BASE: u16 = 5301;
const ADMIN_BASE: u16 = 9301;
const PEER_BASE: u16 = 9441;
/// Instance `i`'s stand-in for region `k` (both from 0) listens on
/// 18181 + 100 i + k: 18181-18183 for ns1, 18281-18283 for ns2, ...
const STAND_IN_BASE: u16 = 18181;
/// Beyond this many regions the stand-in port ranges of two instances
/// would meet.
const MAX_REGIONS: usize = 99;
/// How long an instance may take to open its admin port.
const START: Duration = Duration::from_secs(20);
/// How long a stopping instance gets before it is killed.
const STOP: Duration = Duration::from_secs(5);
/// Lines of a dead instance's log worth showing.
const LOG_TAIL: usize = 20;

fn dns_port(i: usize) -> u16 {
    DNS_BASE + port_offset(i)
}

fn admin_port(i: usize) -> u16 {
    ADMIN_BASE + port_offset(i)
}

fn peer_port(i: usize) -> u16 {
    PEER_BASE + port_offset(i)
}

fn stand_in_port(i: usize, region: usize) -> u16 {
    STAND_IN_BASE + 100 * port_offset(i) + port_offset(region)
}

/// `i` as a port offset; every index here is below [`MAX_REGIONS`].
fn port_offset(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Why the fleet demo cannot start.
#[derive(Debug, thiserror::Error)]
enum FleetDemoError {
    #[error("{0}")]
    Config(#[from] DemoError),
    #[error("cannot create {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the config has {0} regions; the fleet demo serves stand-ins for at most {MAX_REGIONS}"
    )]
    TooManyRegions(usize),
    #[error("cannot run `{NAME} fleet certs`: {0}")]
    CertsSpawn(std::io::Error),
    #[error("`{NAME} fleet certs` failed ({status}):\n{output}")]
    Certs { status: ExitStatus, output: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: &'static str,
        source: std::io::Error,
    },
}

/// One running instance.
struct Instance {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

pub(super) fn run() -> ExitCode {
    let Some(loaded) = super::load_config("keiko-dns demo --fleet") else {
        return ExitCode::from(1);
    };
    let base = loaded.config.server.state_dir.join(STATE_SUBDIR);
    let prepared = prepare(&loaded.config, &base);
    let (base, configs) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("keiko-dns demo --fleet: {e}");
            return ExitCode::from(1);
        }
    };
    let mut listeners = Vec::new();
    for i in 0..INSTANCES.len() {
        for k in 0..loaded.config.regions.len() {
            let addr = loopback(stand_in_port(i, k));
            match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => listeners.push(l),
                Err(e) => {
                    eprintln!(
                        "keiko-dns demo --fleet: cannot bind the stand-in endpoint {addr}: {e} \
                         (is another demo running?)"
                    );
                    return ExitCode::from(EXIT_UNREACHABLE);
                }
            }
        }
    }
    if let Err(e) = std::thread::Builder::new()
        .name("demo-endpoints".into())
        .spawn(move || endpoints(listeners))
    {
        eprintln!("keiko-dns demo --fleet: cannot start the stand-in endpoints: {e}");
        return ExitCode::from(EXIT_UNREACHABLE);
    }
    let mut instances = Vec::with_capacity(INSTANCES.len());
    for (i, config) in configs.iter().enumerate() {
        match spawn(i, config, &base) {
            Ok(instance) => instances.push(instance),
            Err(e) => {
                eprintln!("keiko-dns demo --fleet: {e}");
                stop_all(&mut instances);
                return ExitCode::from(1);
            }
        }
    }
    if !wait_started(&mut instances) {
        stop_all(&mut instances);
        return ExitCode::from(1);
    }
    print_guide(&loaded, &base);
    let outcome = supervise(&mut instances);
    stop_all(&mut instances);
    outcome
}

/// Makes the demo's folder, the certificates and the three configs, and
/// loads each config as an instance would; the folder (absolute) and the
/// configs' paths.
fn prepare(config: &Config, base: &Path) -> Result<(PathBuf, Vec<PathBuf>), FleetDemoError> {
    if config.regions.len() > MAX_REGIONS {
        return Err(FleetDemoError::TooManyRegions(config.regions.len()));
    }
    std::fs::create_dir_all(base).map_err(|source| FleetDemoError::Dir {
        path: base.to_owned(),
        source,
    })?;
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
    let certs = base.join("certs");
    make_certs(&certs)?;
    let mut configs = Vec::with_capacity(INSTANCES.len());
    for (i, (name, _)) in INSTANCES.iter().enumerate() {
        let state = base.join(name);
        std::fs::create_dir_all(&state).map_err(|source| FleetDemoError::Dir {
            path: state.clone(),
            source,
        })?;
        let path = write_config(config, &base, &certs, i)?;
        if let Err(e) = crate::control::load(&path) {
            return Err(FleetDemoError::Invalid(format!(
                "{e}\nthe config written for {name} does not load"
            )));
        }
        configs.push(path);
    }
    Ok((base, configs))
}

/// Runs this binary's `fleet certs` into `dir` for the three instances
/// and 127.0.0.1 (the peer URLs' host). An earlier run's CA is reused;
/// the instance certificates are issued again (`--force`), which costs
/// nothing and keeps them in step with the CA.
fn make_certs(dir: &Path) -> Result<(), FleetDemoError> {
    let me = std::env::current_exe().map_err(FleetDemoError::CertsSpawn)?;
    let out = Command::new(me)
        .args(["fleet", "certs", "--force", "--ip", "127.0.0.1", "--out"])
        .arg(dir)
        .args(INSTANCES.map(|(name, _)| name))
        .stdin(Stdio::null())
        .output()
        .map_err(FleetDemoError::CertsSpawn)?;
    if out.status.success() {
        return Ok(());
    }
    Err(FleetDemoError::Certs {
        status: out.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// Writes instance `i`'s config into `base`: the operator's config with
/// its own listen addresses, `server.region`, NSID and `state_dir`, its
/// own stand-in per region, `[fleet]` naming all three instances (its own
/// entry is ignored), and every path absolute.
fn write_config(
    config: &Config,
    base: &Path,
    certs: &Path,
    i: usize,
) -> Result<PathBuf, FleetDemoError> {
    let (name, region) = INSTANCES[i];
    let mut table = super::relocated(config, &base.join(name))?;
    let string = |s: String| toml::Value::String(s);
    if let Some(toml::Value::Table(server)) = table.get_mut("server") {
        server.insert(
            "dns_listen".into(),
            toml::Value::Array(vec![string(loopback(dns_port(i)).to_string())]),
        );
        server.insert(
            "admin_listen".into(),
            string(loopback(admin_port(i)).to_string()),
        );
        server.insert("region".into(), string(region.to_owned()));
        server.insert("nsid".into(), string(name.to_owned()));
    }
    if let Some(toml::Value::Array(regions)) = table.get_mut("regions") {
        for (k, r) in regions.iter_mut().enumerate() {
            if let toml::Value::Table(r) = r {
                let url = format!("http://{}/health", loopback(stand_in_port(i, k)));
                r.insert("health_url".into(), string(url));
            }
        }
    }
    let path_text = |p: PathBuf| {
        p.to_str()
            .map(str::to_owned)
            .ok_or(DemoError::NotUtf8 { path: p.clone() })
    };
    let mut fleet = toml::Table::new();
    fleet.insert("instance".into(), string(name.to_owned()));
    fleet.insert("listen".into(), string(loopback(peer_port(i)).to_string()));
    fleet.insert(
        "peers".into(),
        toml::Value::Array(
            (0..INSTANCES.len())
                .map(|j| string(format!("https://{}", loopback(peer_port(j)))))
                .collect(),
        ),
    );
    fleet.insert("ca_file".into(), string(path_text(certs.join("ca.pem"))?));
    fleet.insert(
        "cert_file".into(),
        string(path_text(certs.join(format!("{name}.pem")))?),
    );
    fleet.insert(
        "key_file".into(),
        string(path_text(certs.join(format!("{name}.key")))?),
    );
    fleet.insert("down_quorum".into(), string("majority".into()));
    table.insert("fleet".into(), toml::Value::Table(fleet));

    let body = toml::to_string(&table).map_err(DemoError::from)?;
    let out = base.join(format!("{name}.toml"));
    let text = format!(
        "# Written by `keiko-dns demo --fleet` from {}: the same config as {name},\n\
         # one of three instances on loopback. Edit the original, not this copy.\n\n{body}",
        config.path.display()
    );
    std::fs::write(&out, text).map_err(|source| DemoError::Write {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

/// Starts instance `i` on `config`, its log (stdout and stderr) in
/// `base/NAME.log`.
fn spawn(i: usize, config: &Path, base: &Path) -> Result<Instance, FleetDemoError> {
    let name = INSTANCES[i].0;
    let fail = |source| FleetDemoError::Spawn { name, source };
    let log = base.join(format!("{name}.log"));
    let out = File::create(&log).map_err(fail)?;
    let err = out.try_clone().map_err(fail)?;
    let me = std::env::current_exe().map_err(fail)?;
    let child = Command::new(me)
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(fail)?;
    Ok(Instance { name, child, log })
}

/// Waits until every instance accepts connections on its admin port;
/// false (after saying why) when one exits or takes too long.
fn wait_started(instances: &mut [Instance]) -> bool {
    let deadline = Instant::now() + START;
    for (i, instance) in instances.iter_mut().enumerate() {
        let admin = loopback(admin_port(i));
        loop {
            if let Ok(Some(status)) = instance.child.try_wait() {
                report_exit(instance, status);
                return false;
            }
            if TcpStream::connect_timeout(&admin, CONNECT).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "keiko-dns demo --fleet: {} did not open {admin} within {}s; see {}",
                    instance.name,
                    START.as_secs(),
                    instance.log.display()
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    true
}

/// Runs until SIGINT or SIGTERM (exit 0) or until an instance exits
/// (exit 1); passes SIGHUP on to every instance.
fn supervise(instances: &mut [Instance]) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keiko-dns demo --fleet: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            eprintln!("keiko-dns demo --fleet: cannot watch signals");
            return ExitCode::from(1);
        };
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    println!("keiko-dns demo --fleet: SIGHUP: every instance reloads");
                    for instance in instances.iter() {
                        send(instance, "HUP");
                    }
                }
                _ = tick.tick() => {
                    for instance in instances.iter_mut() {
                        if let Ok(Some(status)) = instance.child.try_wait() {
                            report_exit(instance, status);
                            return ExitCode::from(1);
                        }
                    }
                }
            }
        }
        println!("keiko-dns demo --fleet: stopping the three instances");
        ExitCode::SUCCESS
    })
}

/// Says that `instance` exited and shows the end of its log.
fn report_exit(instance: &Instance, status: ExitStatus) {
    let log = std::fs::read_to_string(&instance.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
    eprintln!(
        "keiko-dns demo --fleet: {} exited ({status}); the end of {}:\n{tail}",
        instance.name,
        instance.log.display()
    );
}

/// Sends signal `sig` (a name, "TERM" or "HUP") to `instance` with
/// kill(1): the main crate makes no system calls of its own (no unsafe
/// code), and an instance that cannot be signalled is killed on stop.
fn send(instance: &Instance, sig: &str) -> bool {
    Command::new("kill")
        .args(["-s", sig, &instance.child.id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops every instance still running: SIGTERM (a Ctrl-C in the terminal
/// has sent them SIGINT already; a second signal changes nothing), then
/// a kill after [`STOP`].
fn stop_all(instances: &mut [Instance]) {
    for instance in instances.iter_mut() {
        if matches!(instance.child.try_wait(), Ok(None)) && !send(instance, "TERM") {
            let _ = instance.child.kill();
        }
    }
    let deadline = Instant::now() + STOP;
    for instance in instances.iter_mut() {
        while matches!(instance.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(instance.child.try_wait(), Ok(None)) {
            eprintln!(
                "keiko-dns demo --fleet: {} did not stop within {}s; killing it",
                instance.name,
                STOP.as_secs()
            );
            let _ = instance.child.kill();
            let _ = instance.child.wait();
        }
    }
}

/// What to try, printed once the three instances run.
fn print_guide(loaded: &Loaded, base: &Path) {
    let config = &loaded.config;
    let origin = &config.zone.origin;
    let me = command_name();
    // The name that moves on failover, and the region it answers first.
    let name = config
        .records
        .iter()
        .find(|r| r.policy == crate::config::Policy::Failover)
        .or_else(|| config.records.first())
        .map_or_else(|| origin.to_string(), |r| r.name.to_string());
    let first = config
        .regions
        .iter()
        .enumerate()
        .min_by_key(|(_, r)| r.priority);
    let mut out = Vec::new();
    out.push(format!(
        "keiko-dns demo --fleet: zone {origin} served by three instances on loopback that \
         answer as one (down_quorum = \"majority\")"
    ));
    for (i, (instance, region)) in INSTANCES.iter().enumerate() {
        let stand_ins: Vec<String> = config
            .regions
            .iter()
            .enumerate()
            .map(|(k, r)| format!("{} {}", stand_in_port(i, k), r.name))
            .collect();
        out.push(format!(
            "  {instance:<19} (in {region}): DNS 127.0.0.1:{}, admin http://127.0.0.1:{}, \
             peers https://127.0.0.1:{}; stand-ins {}",
            dns_port(i),
            admin_port(i),
            peer_port(i),
            stand_ins.join(", ")
        ));
    }
    out.push(format!(
        "  certificates (fleet CA and one per instance) in {}; configs and logs in {}",
        base.join("certs").display(),
        base.display()
    ));
    out.push(String::new());
    out.push("ask each nameserver (the answers are the same):".into());
    for i in 0..INSTANCES.len() {
        out.push(format!(
            "  dig @127.0.0.1 -p {} {name} A +short",
            dns_port(i)
        ));
    }
    if me != NAME {
        out.push(String::new());
        out.push(format!(
            "(`{NAME}` is not on your PATH: `cargo install --path .` puts it there; until then \
             run {me})"
        ));
    }
    if let Some((k, region)) = first {
        let r = &region.name;
        let fail =
            |i: usize, verb: &str| format!("curl -X POST 127.0.0.1:{}/{verb}", stand_in_port(i, k));
        let status = |i: usize| format!("{me} status --admin http://127.0.0.1:{}", admin_port(i));
        let steps: Vec<(String, String)> = vec![
            (
                fail(0, "fail"),
                format!("{r} fails for ns1 only (one vantage point of three)"),
            ),
            (
                status(0),
                format!("ns1 observes {r} down; the fleet keeps it up: 1 of 3 is no majority"),
            ),
            (
                fail(1, "fail"),
                "now for ns2 too: 2 of 3, all three fail over, ns3 included".into(),
            ),
            (
                status(2),
                "every instance, every vantage point, the verdict".into(),
            ),
            (
                fail(0, "recover"),
                format!("heal both: {r} comes back on all three"),
            ),
            (fail(1, "recover"), String::new()),
            (
                format!(
                    "{me} failover --region {r} --admin http://127.0.0.1:{}",
                    admin_port(1)
                ),
                "a drill on ns2 reaches every instance".into(),
            ),
            (
                format!(
                    "{me} failover --region {r} --restore --admin http://127.0.0.1:{}",
                    admin_port(2)
                ),
                "handed back from ns3".into(),
            ),
        ];
        out.push(String::new());
        out.push("watch the quorum:".into());
        for (command, note) in steps {
            if !note.is_empty() {
                out.push(format!("  # {note}"));
            }
            out.push(format!("  {command}"));
        }
    }
    out.push(format!(
        "probes run every {} (every {} after a failure); {} failures make an observation \
         \"down\" (lower [health] interval in {} to watch it faster)",
        humantime::format_duration(config.health.interval),
        humantime::format_duration(config.health.fast_interval),
        config.health.failure_threshold,
        config.path.display()
    ));
    out.push("stop with Ctrl-C (stops all three)".into());
    out.push(String::new());
    println!("{}", out.join("\n"));
}
