//! The soak driver behind `benches/soak.sh` (see benches/README.md): runs
//! a release `keiko-dns serve` on free loopback ports with its own state
//! folder and stand-in health endpoints, offers a fixed load, and while it
//! runs reloads between two configs with different weights every 10 s (or,
//! with `SOAK_MODE=takeover`, restarts by `serve --takeover` every minute),
//! fails and recovers one region's stand-in every 30 s, and toggles forced
//! states through the admin API. Every answer is checked against what the
//! state at that moment allows; resident memory, descriptors and threads
//! are sampled and their slopes fitted. Exits 1 when a check fails, 2 when
//! the soak cannot run.
//!
//! ```text
//! cargo build --profile bench --bin keiko-dns --example soak
//! KEIKO_BIN=target/release/keiko-dns SOAK_DIR=/tmp/x target/release/examples/soak
//! ```
//!
//! Settings are environment variables, listed in [`Settings::from_env`].

mod load;
mod model;
mod server;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use load::{BASELINE, Clock, GROUPS, Kind, SOAK, Shared, Steered, Tally, UdpPlan, WARMUP, sum};
use model::{FLAPPING, Forced, Part, REGIONS, Timeline, names};
use server::{Process, Setup, Stub, Usage, free_port, http, metric_sum, usage, wait_for};

/// Everything that can be set from the environment.
struct Settings {
    bin: PathBuf,
    dir: PathBuf,
    takeover: bool,
    seconds: f64,
    baseline: f64,
    qps: f64,
    tcp_clients: usize,
    tcp_conns_per_second: f64,
    sample: f64,
    reload_every: f64,
    takeover_every: f64,
    flap_every: f64,
    flap_down: f64,
    force_every: f64,
    health_window: f64,
    margin: f64,
    warmup_reloads: usize,
    warmup_events: usize,
    rss_limit: f64,
    rss_noise: f64,
    fd_limit: f64,
    thread_limit: f64,
}

fn env_f64(name: &str, default: f64) -> Result<f64> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| anyhow!("{name}={v:?} is not a number >= 0")),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let seconds = env_f64("SOAK_SECONDS", 1800.0)?;
        let mode = std::env::var("SOAK_MODE").unwrap_or_else(|_| "reload".into());
        let takeover = match mode.as_str() {
            "reload" | "" => false,
            "takeover" => true,
            other => bail!("SOAK_MODE={other:?}: use reload or takeover"),
        };
        let s = Settings {
            // Absolute: the server runs in the work folder.
            bin: {
                let bin = std::env::var("KEIKO_BIN")
                    .context("KEIKO_BIN must name the keiko-dns binary")?;
                std::fs::canonicalize(&bin).with_context(|| format!("KEIKO_BIN={bin}"))?
            },
            dir: PathBuf::from(
                std::env::var("SOAK_DIR").context("SOAK_DIR must name an empty folder")?,
            ),
            takeover,
            seconds,
            // A run without changes first: what the same load loses anyway.
            baseline: env_f64("BASELINE_SECONDS", (seconds / 8.0).clamp(10.0, 60.0))?,
            qps: env_f64("SOAK_QPS", 5000.0)?,
            tcp_clients: env_f64("TCP_CLIENTS", 4.0)? as usize,
            tcp_conns_per_second: env_f64("TCP_CONNS_PER_SECOND", 40.0)?,
            sample: env_f64("SAMPLE_SECONDS", 2.0)?.max(0.2),
            reload_every: env_f64("RELOAD_EVERY", 10.0)?,
            takeover_every: env_f64("TAKEOVER_EVERY", 60.0)?,
            flap_every: env_f64("FLAP_EVERY", 30.0)?,
            flap_down: env_f64("FLAP_DOWN_SECONDS", 10.0)?,
            force_every: env_f64("FORCE_EVERY", 7.0)?,
            // Probes see a stand-in change within interval (1 s) +
            // fast_interval (0.5 s) + timeout (0.5 s), recover within
            // 2 x interval; more under load.
            health_window: env_f64("HEALTH_WINDOW", 5.0)?,
            margin: env_f64("CHANGE_MARGIN", 0.2)?,
            warmup_reloads: env_f64("WARMUP_RELOADS", 200.0)? as usize,
            // The event history keeps 1,000 events (docs/reference.md §7).
            warmup_events: env_f64("WARMUP_EVENTS", 1000.0)? as usize,
            rss_limit: env_f64("RSS_SLOPE_LIMIT", 32.0)?,
            rss_noise: env_f64("RSS_NOISE_KIB", 128.0)?,
            fd_limit: env_f64("FD_SLOPE_LIMIT", 2.0)?,
            thread_limit: env_f64("THREAD_SLOPE_LIMIT", 1.0)?,
        };
        if s.qps < 100.0 || s.seconds < 30.0 {
            bail!("SOAK_QPS must be at least 100 and SOAK_SECONDS at least 30");
        }
        Ok(s)
    }
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: cannot run: {e:#}");
            std::process::exit(2);
        }
    }
}

/// One sample of the server's resources.
#[derive(Clone, Copy)]
struct Sample {
    t: f64,
    phase: u8,
    pid: u32,
    usage: Usage,
}

/// What the conductor did, for the report.
#[derive(Default)]
struct Actions {
    /// Reloads and forced states of the warm-up (counted in the totals).
    warmup: (u32, u32),
    reloads: u32,
    reload_failures: Vec<String>,
    takeovers: u32,
    takeover_seconds: Vec<f64>,
    takeover_failures: Vec<String>,
    flaps: u32,
    forced: u32,
    forced_failures: Vec<String>,
}

fn run() -> Result<bool> {
    let s = Settings::from_env()?;
    if s.takeover && !server::has_takeover(&s.bin)? {
        bail!(
            "SOAK_MODE=takeover needs `keiko-dns serve --takeover`, and {} has no such flag \
             (`serve --help` does not list it): build a keiko-dns that has it",
            s.bin.display()
        );
    }
    std::fs::create_dir_all(&s.dir)?;
    let stop_stubs = Arc::new(AtomicBool::new(false));
    let stubs = [
        Stub::start(stop_stubs.clone())?,
        Stub::start(stop_stubs.clone())?,
        Stub::start(stop_stubs.clone())?,
    ];
    let setup = Setup {
        dir: s.dir.clone(),
        dns: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        admin: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        health_ports: [stubs[0].port, stubs[1].port, stubs[2].port],
        // The plain client sends 5 % of the load, at most 35 % of it one
        // kind of answer: 1.75 % of the load, under half this limit.
        rate_limit: ((s.qps / 25.0) as u32).max(4),
    };
    setup.write_zone()?;
    setup.write_config(0)?;
    std::fs::write(s.dir.join("keiko-b.toml"), setup.config_text(1))?;
    let check = std::process::Command::new(&s.bin)
        .args(["check", "--config"])
        .arg(s.dir.join("keiko-b.toml"))
        .current_dir(&s.dir)
        .output()?;
    if !check.status.success() {
        bail!(
            "config B does not check: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }

    let mut process = Process::spawn(&s.bin, &setup, false)?;
    if let Err(e) = wait_for(setup.admin, "/ready", Duration::from_secs(20)) {
        process.stop(Duration::from_secs(2));
        let log = std::fs::read_to_string(setup.log_path()).unwrap_or_default();
        bail!("keiko-dns did not get ready ({e}); its log:\n{log}");
    }
    let result = soak(&s, &setup, &stubs, &mut process);
    stop_stubs.store(true, Ordering::Relaxed);
    let clean_exit = process.stop(Duration::from_secs(10));
    let (ok, mut report) = result?;
    let exit_ok = clean_exit.is_some_and(|st| st.success());
    let _ = writeln!(
        report,
        "{:<52} {:<26} {}",
        "server stopped by SIGTERM",
        match clean_exit {
            Some(st) => format!("{st}"),
            None => "killed after 10 s".into(),
        },
        verdict(exit_ok)
    );
    let (errors, error_lines, warns) = scan_log(&setup)?;
    let _ = writeln!(
        report,
        "{:<52} {:<26} {}",
        "ERROR lines in the server log",
        errors,
        verdict(errors == 0)
    );
    for l in error_lines.iter().take(10) {
        let _ = writeln!(report, "    {l}");
    }
    let _ = writeln!(
        report,
        "WARN lines in the server log (not a failure): {}",
        warns.values().sum::<usize>()
    );
    for (msg, n) in warns.iter().take(12) {
        let _ = writeln!(report, "    {n:>6} x {msg}");
    }
    let ok = ok && exit_ok && errors == 0;
    let _ = writeln!(report, "\nsoak {}", if ok { "PASSED" } else { "FAILED" });
    print!("{report}");
    std::fs::write(s.dir.join("report.txt"), &report)?;
    Ok(ok)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "FAIL" }
}

/// ERROR lines, and WARN lines counted by message (time stamps cut off).
fn scan_log(setup: &Setup) -> Result<(usize, Vec<String>, BTreeMap<String, usize>)> {
    let log = std::fs::read_to_string(setup.log_path())?;
    let mut errors = Vec::new();
    let mut warns = BTreeMap::new();
    for line in log.lines() {
        if let Some((_, rest)) = line.split_once(" ERROR ") {
            errors.push(rest.to_string());
        } else if let Some((_, rest)) = line.split_once(" WARN ") {
            let msg: String = rest.chars().take(110).collect();
            *warns.entry(msg).or_insert(0) += 1;
        }
    }
    Ok((errors.len(), errors, warns))
}

/// The run proper, with the server started and ready: the report and
/// whether every check passed (the log and the stop are checked after).
fn soak(
    s: &Settings,
    setup: &Setup,
    stubs: &[Stub; 3],
    process: &mut Process,
) -> Result<(bool, String)> {
    let clock = Clock::new();
    let (steered_tx, steered_rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        clock,
        phase: WARMUP.into(),
        stop: AtomicBool::new(false),
        tally: Tally::default(),
        steered: Mutex::new(steered_tx),
        wrong_examples: Mutex::default(),
        change_times: Mutex::default(),
        takeover: s.takeover,
    });
    let timeline = Arc::new(Mutex::new(Timeline::new()));

    // The checker of steered answers, a few seconds behind the answers.
    let checker = {
        let (shared, timeline) = (shared.clone(), timeline.clone());
        thread::Builder::new()
            .name("checker".into())
            .spawn(move || check_steered(&shared, &timeline, steered_rx))?
    };

    // The load: shares of the qps per client group (see Setup::rate_limit).
    let mut threads = Vec::new();
    let plans = [
        (0, Ipv4Addr::new(127, 0, 0, 1), 0.235),
        (0, Ipv4Addr::new(127, 0, 0, 1), 0.235),
        (1, Ipv4Addr::new(127, 0, 1, 1), 0.05),
        (2, Ipv4Addr::new(127, 0, 2, 1), 0.20),
        (2, Ipv4Addr::new(127, 0, 2, 1), 0.20),
        (3, Ipv4Addr::new(127, 0, 3, 1), 0.08),
    ];
    for (i, (group, source, share)) in plans.into_iter().enumerate() {
        let plan = UdpPlan {
            group,
            source,
            qps: s.qps * share,
        };
        threads.extend(load::udp_client(
            shared.clone(),
            setup.dns,
            plan,
            0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1) << 17,
        )?);
    }
    for i in 0..s.tcp_clients {
        let rate = s.tcp_conns_per_second / s.tcp_clients.max(1) as f64;
        threads.push(load::tcp_pool_client(
            shared.clone(),
            setup.dns,
            rate,
            0xabcdef ^ i as u64,
        )?);
    }
    threads.push(load::tcp_kept_open(shared.clone(), setup.dns)?);

    // Resources of the server, every few seconds.
    let pid = Arc::new(AtomicU32::new(process.pid()));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampler = {
        let (shared, pid, samples, every) =
            (shared.clone(), pid.clone(), samples.clone(), s.sample);
        thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                while !shared.stop.load(Ordering::Relaxed) {
                    let p = pid.load(Ordering::Relaxed);
                    if let Some(u) = usage(p) {
                        let sample = Sample {
                            t: shared.clock.now(),
                            phase: shared.phase.load(Ordering::Relaxed),
                            pid: p,
                            usage: u,
                        };
                        samples
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(sample);
                    }
                    thread::sleep(Duration::from_secs_f64(every));
                }
            })?
    };

    // Warm-up, then the baseline without changes, then the soak.
    let mut conductor = Conductor {
        s,
        setup,
        shared: &shared,
        timeline: &timeline,
        actions: Actions::default(),
    };
    sleep_until(&clock, 1.0);
    conductor.warm_up();
    sleep_until(&clock, clock.now() + 2.0);
    shared.phase.store(BASELINE, Ordering::Relaxed);
    let baseline_start = clock.now();
    sleep_until(&clock, baseline_start + s.baseline);
    shared.phase.store(SOAK, Ordering::Relaxed);
    let t0 = clock.now();
    conductor.conduct(stubs, process, &pid, t0);
    let actions = conductor.actions;
    // A few seconds without changes, so the last one is checked settled.
    let settle_until = clock.now() + s.health_window.max(3.0);
    sleep_until(&clock, settle_until);
    let soak_seconds = clock.now() - t0;
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let _ = sampler.join();
    // Dropping the last sender ends the checker.
    drop(std::mem::replace(
        &mut *shared.steered.lock().unwrap_or_else(|e| e.into_inner()),
        mpsc::channel().0,
    ));
    let checked = checker
        .join()
        .map_err(|_| anyhow!("the checker panicked"))?;

    let (status, metrics) = http(setup.admin, "GET", "/metrics", "")?;
    if status != 200 {
        bail!("GET /metrics answered {status}");
    }
    let samples = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut tsv = String::from("seconds\tphase\tpid\trss_kib\tfds\tthreads\n");
    for x in &samples {
        let _ = writeln!(
            tsv,
            "{:.1}\t{}\t{}\t{}\t{}\t{}",
            x.t, x.phase, x.pid, x.usage.rss_kib, x.usage.fds, x.usage.threads
        );
    }
    std::fs::write(s.dir.join("samples.tsv"), tsv)?;
    Ok(report(
        s,
        setup,
        &shared,
        &actions,
        &checked,
        &samples,
        &metrics,
        t0,
        soak_seconds,
    ))
}

fn sleep_until(clock: &Clock, t: f64) {
    let now = clock.now();
    if t > now {
        thread::sleep(Duration::from_secs_f64(t - now));
    }
}

/// What the conductor can do next.
#[derive(Debug, Clone, Copy)]
enum Action {
    Reload,
    Takeover,
    FlapDown,
    FlapUp,
    Force,
}

/// Makes the changes and records each in the timeline before it is made.
struct Conductor<'a> {
    s: &'a Settings,
    setup: &'a Setup,
    shared: &'a Shared,
    timeline: &'a Mutex<Timeline>,
    actions: Actions,
}

impl Conductor<'_> {
    fn record(&self, part: Part, value: u8, start: f64, end: Option<f64>) {
        let mut t = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
        t.begin(part, value, start);
        if let Some(end) = end {
            t.end(part, start, end);
        }
        self.shared
            .change_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(start);
    }

    fn finish(&self, part: Part, start: f64) {
        let end = self.shared.clock.now() + self.s.margin;
        self.timeline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end(part, start, end);
    }

    /// Writes config `config` and reloads through the admin API.
    fn reload(&mut self, config: usize) {
        let now = self.shared.clock.now();
        if let Err(e) = self.setup.write_config(config) {
            self.actions
                .reload_failures
                .push(format!("{now:.1}s: writing the config: {e}"));
            return;
        }
        self.record(Part::Config, config as u8, now, None);
        match http(self.setup.admin, "POST", "/admin/reload", "") {
            Ok((200, _)) => {
                self.actions.reloads += 1;
                self.finish(Part::Config, now);
            }
            // The change stays open (either config allowed): the report
            // fails the run anyway.
            Ok((st, body)) => self
                .actions
                .reload_failures
                .push(format!("{now:.1}s: {st} {body}")),
            Err(e) => self
                .actions
                .reload_failures
                .push(format!("{now:.1}s: {e:#}")),
        }
    }

    /// Forces `region` to `state` through the admin API.
    fn force(&mut self, region: usize, state: Forced) {
        let now = self.shared.clock.now();
        self.record(Part::Forced(region), state.to_u8(), now, None);
        let path = format!("/admin/regions/{}/state", REGIONS[region].name);
        let body = format!("{{\"state\": \"{}\"}}", state.word());
        match http(self.setup.admin, "POST", &path, &body) {
            Ok((200, _)) => {
                self.actions.forced += 1;
                self.finish(Part::Forced(region), now);
            }
            Ok((st, body)) => self
                .actions
                .forced_failures
                .push(format!("{now:.1}s: {st} {body}")),
            Err(e) => self
                .actions
                .forced_failures
                .push(format!("{now:.1}s: {e:#}")),
        }
    }

    /// Brings the server to the size it keeps for good before anything is
    /// measured: reloads until the allocator has its working set, and forced
    /// states of a region that gets traffic either way (ap-southeast-1 is
    /// never failed) until the event history is full, as it is on any
    /// server that has run for a while. Ends on config A, nothing forced.
    fn warm_up(&mut self) {
        for i in 0..self.s.warmup_reloads.div_ceil(2) * 2 {
            self.reload(1 - i % 2);
        }
        for i in 0..self.s.warmup_events.div_ceil(2) * 2 {
            self.force(2, if i % 2 == 0 { Forced::Up } else { Forced::Auto });
        }
        self.actions.warmup = (self.actions.reloads, self.actions.forced);
    }

    /// The changes, each on its own schedule, one at a time, until the
    /// soak's time is up.
    fn conduct(&mut self, stubs: &[Stub; 3], process: &mut Process, pid: &AtomicU32, t0: f64) {
        let s = self.s;
        let clock = self.shared.clock;
        let restart_every = if s.takeover {
            s.takeover_every
        } else {
            s.reload_every
        };
        let restart = if s.takeover {
            Action::Takeover
        } else {
            Action::Reload
        };
        let mut next: Vec<(f64, Action)> = vec![
            (t0 + restart_every, restart),
            (t0 + 5.0, Action::FlapDown),
            (t0 + 3.0, Action::Force),
        ];
        let forcing = [
            (1, Forced::Down),
            (1, Forced::Auto),
            (FLAPPING, Forced::Up),
            (FLAPPING, Forced::Auto),
        ];
        let mut force_step = 0;
        let mut config = 0;
        let end = t0 + s.seconds;
        loop {
            next.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (at, action) = next[0];
            if at >= end {
                break;
            }
            sleep_until(&clock, at);
            let now = clock.now();
            match action {
                Action::Reload => {
                    config = 1 - config;
                    self.reload(config);
                    next[0].0 += s.reload_every;
                }
                Action::Takeover => {
                    config = 1 - config;
                    match takeover(s, self.setup, process, config, self.shared, self.timeline) {
                        Ok(took) => {
                            self.actions.takeovers += 1;
                            self.actions.takeover_seconds.push(took);
                            pid.store(process.pid(), Ordering::Relaxed);
                        }
                        Err(e) => {
                            self.actions
                                .takeover_failures
                                .push(format!("{now:.1}s: {e:#}"));
                            // Without a server there is nothing left to soak.
                            if process.exited().is_some() {
                                break;
                            }
                        }
                    }
                    next[0].0 += s.takeover_every;
                }
                Action::FlapDown => {
                    stubs[FLAPPING].up.store(false, Ordering::Relaxed);
                    self.record(Part::ProbeUp(FLAPPING), 0, now, Some(now + s.health_window));
                    self.actions.flaps += 1;
                    next[0] = (at + s.flap_down, Action::FlapUp);
                }
                Action::FlapUp => {
                    stubs[FLAPPING].up.store(true, Ordering::Relaxed);
                    self.record(Part::ProbeUp(FLAPPING), 1, now, Some(now + s.health_window));
                    next[0] = (at - s.flap_down + s.flap_every, Action::FlapDown);
                }
                Action::Force => {
                    let (region, state) = forcing[force_step % forcing.len()];
                    force_step += 1;
                    self.force(region, state);
                    next[0].0 += s.force_every;
                }
            }
        }
    }
}

/// Starts `serve --takeover` on config `config` and waits until the old
/// process has exited and the new one answers; seconds it took.
fn takeover(
    s: &Settings,
    setup: &Setup,
    process: &mut Process,
    config: usize,
    shared: &Shared,
    timeline: &Mutex<Timeline>,
) -> Result<f64> {
    let clock = shared.clock;
    setup.write_config(config)?;
    let start = clock.now();
    timeline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .begin(Part::Config, config as u8, start);
    shared
        .change_times
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(start);
    let mut new = Process::spawn(&s.bin, setup, true)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let old_status = loop {
        if let Some(st) = new.exited() {
            bail!("the new process exited ({st}) before the old one (see server.log)");
        }
        if let Some(st) = process.exited() {
            break st;
        }
        if Instant::now() > deadline {
            new.stop(Duration::from_secs(5));
            bail!(
                "the old process (pid {}) did not exit within 30 s of the takeover",
                process.pid()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let took = clock.now() - start;
    timeline.lock().unwrap_or_else(|e| e.into_inner()).end(
        Part::Config,
        start,
        clock.now() + s.margin,
    );
    // The old one has exited: its Child is only reaped.
    drop(std::mem::replace(process, new));
    wait_for(setup.admin, "/health", Duration::from_secs(10))?;
    if !old_status.success() {
        bail!("the old process exited with {old_status}");
    }
    Ok(took)
}

/// What the timeline check found.
#[derive(Default)]
struct Checked {
    steered: u64,
    wrong: u64,
    examples: Vec<String>,
    /// Answers per query kind and region, by the config that surely served
    /// them (None: inside a reload's window).
    shares: BTreeMap<(String, Option<usize>), [u64; 3]>,
}

/// Checks each steered answer against every state the server may have been
/// in between the query's sending and its answer.
fn check_steered(shared: &Shared, timeline: &Mutex<Timeline>, rx: Receiver<Steered>) -> Checked {
    // Changes are recorded before they are made, so any answer received is
    // already covered; the lag only keeps the batches large.
    const LAG: f64 = 1.0;
    let mut out = Checked::default();
    let mut queue: Vec<Steered> = Vec::new();
    let mut open = true;
    while open || !queue.is_empty() {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(s) => queue.push(s),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        queue.extend(rx.try_iter());
        let horizon = if open {
            shared.clock.now() - LAG
        } else {
            f64::INFINITY
        };
        let (due, rest): (Vec<Steered>, Vec<Steered>) =
            queue.into_iter().partition(|s| s.answered < horizon);
        queue = rest;
        if due.is_empty() {
            continue;
        }
        let mut t = timeline.lock().unwrap_or_else(|e| e.into_inner());
        for a in &due {
            let states = t.states(a.sent, a.answered);
            let allowed = states.iter().fold(0u8, |m, st| {
                m | match a.kind {
                    Kind::FailoverA => st.failover(),
                    _ => st.weighted(),
                }
            });
            out.steered += 1;
            let configs: Vec<usize> = states.iter().map(|s| s.config).collect();
            let config = configs.iter().all(|&c| c == configs[0]).then(|| configs[0]);
            if let Some(r) = (0..3).find(|r| a.regions & (1 << r) != 0) {
                out.shares
                    .entry((format!("{:?}", a.kind), config))
                    .or_default()[r] += 1;
            }
            if a.regions & !allowed != 0 || a.regions.count_ones() != 1 {
                out.wrong += 1;
                if out.examples.len() < 20 {
                    out.examples.push(format!(
                        "{} {:?} asked {:.3}s answered {:.3}s: got {}, allowed {} (states {:?})",
                        if a.tcp { "TCP" } else { "UDP" },
                        a.kind,
                        a.sent,
                        a.answered,
                        names(a.regions),
                        names(allowed),
                        states
                    ));
                }
            }
        }
        // Nothing sent before this is still to be checked.
        let oldest = queue
            .iter()
            .map(|s| s.sent)
            .fold(shared.clock.now(), f64::min);
        t.forget_before(oldest - load::TIMEOUT - 1.0);
    }
    out
}

/// Least squares: slope per minute and its standard error.
fn slope(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if n < 3.0 {
        return (0.0, f64::INFINITY);
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        return (0.0, f64::INFINITY);
    }
    let b = sxy / sxx;
    let a = my - b * mx;
    let sse: f64 = points.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let se = (sse / (n - 2.0) / sxx).sqrt();
    (b * 60.0, se * 60.0)
}

#[allow(clippy::too_many_arguments)]
fn report(
    s: &Settings,
    setup: &Setup,
    shared: &Shared,
    actions: &Actions,
    checked: &Checked,
    samples: &[Sample],
    metrics: &str,
    t0: f64,
    soak_seconds: f64,
) -> (bool, String) {
    let mut ok = true;
    let mut r = String::new();
    let tally = &shared.tally;
    let mut line = |r: &mut String, what: &str, value: String, pass: Option<bool>| {
        let v = match pass {
            Some(p) => {
                ok &= p;
                verdict(p)
            }
            None => "",
        };
        let _ = writeln!(r, "{what:<52} {value:<26} {v}");
    };
    let mode = if s.takeover {
        "takeover every minute"
    } else {
        "reload every 10 s"
    };
    let _ = writeln!(
        r,
        "=== keiko-dns soak: {mode}, {:.0} s after a {:.0} s baseline, {:.0} qps UDP + TCP pool, {} ===",
        soak_seconds,
        s.baseline,
        s.qps,
        setup.dir.display()
    );

    // The load as offered and answered.
    let sent = |phase: u8| sum(&tally.sent[usize::from(phase)]);
    let answered = |phase: u8| sum(&tally.answered[usize::from(phase)]);
    let lost = |phase: u8| sum(&tally.lost[usize::from(phase)]);
    let _ = writeln!(
        r,
        "\nqueries per phase and client group (sent / answered / lost):"
    );
    for phase in [WARMUP, BASELINE, SOAK] {
        let mut parts = Vec::new();
        for (g, name) in GROUPS.iter().enumerate() {
            let p = usize::from(phase);
            parts.push(format!(
                "{name} {}/{}/{}",
                tally.sent[p][g].load(Ordering::Relaxed),
                tally.answered[p][g].load(Ordering::Relaxed),
                tally.lost[p][g].load(Ordering::Relaxed)
            ));
        }
        let _ = writeln!(
            r,
            "  {:<9} {}",
            ["warm-up", "baseline", "soak"][usize::from(phase)],
            parts.join(", ")
        );
    }
    let _ = writeln!(
        r,
        "  soak rate: {:.0} queries/s sent, {:.0} answered/s; sender fell behind by {} queries",
        sent(SOAK) as f64 / soak_seconds,
        answered(SOAK) as f64 / soak_seconds,
        tally.behind.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        r,
        "  (the flood group's unanswered queries are rate limiting's drops, not losses)"
    );

    let _ = writeln!(
        r,
        "\nchanges: warm-up {} reloads and {} forced states; soak {} reloads, {} takeovers, {} flaps of {}, {} forced states",
        actions.warmup.0,
        actions.warmup.1,
        actions.reloads - actions.warmup.0,
        actions.takeovers,
        actions.flaps,
        REGIONS[FLAPPING].name,
        actions.forced - actions.warmup.1
    );
    if !actions.takeover_seconds.is_empty() {
        let max = actions.takeover_seconds.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            r,
            "  takeover: new process started to old one gone, max {max:.3} s"
        );
    }
    let _ = writeln!(r, "\n{:<52} {:<26} verdict", "figure", "measured");
    line(
        &mut r,
        "reloads/takeovers that failed",
        format!(
            "{}",
            actions.reload_failures.len() + actions.takeover_failures.len()
        ),
        Some(actions.reload_failures.is_empty() && actions.takeover_failures.is_empty()),
    );
    for f in actions
        .reload_failures
        .iter()
        .chain(&actions.takeover_failures)
        .take(5)
    {
        let _ = writeln!(r, "    {f}");
    }
    line(
        &mut r,
        "forced-state changes that failed",
        format!("{}", actions.forced_failures.len()),
        Some(actions.forced_failures.is_empty()),
    );
    for f in actions.forced_failures.iter().take(5) {
        let _ = writeln!(r, "    {f}");
    }
    let baseline_rate = lost(BASELINE) as f64 / s.baseline.max(1.0);
    let allowance = (baseline_rate * soak_seconds).ceil() as u64;
    line(
        &mut r,
        "lost in the baseline (no changes)",
        format!("{} of {}", lost(BASELINE), sent(BASELINE)),
        None,
    );
    line(
        &mut r,
        "lost in the soak (allowed: the baseline's rate)",
        format!("{} of {} (allowed {allowance})", lost(SOAK), sent(SOAK)),
        Some(lost(SOAK) <= allowance),
    );
    line(
        &mut r,
        "  of them within 1 s of a change",
        format!("{}", tally.lost_near_change.load(Ordering::Relaxed)),
        None,
    );
    line(
        &mut r,
        "late answers (after the 2 s timeout)",
        format!("{}", tally.late.load(Ordering::Relaxed)),
        None,
    );
    line(
        &mut r,
        "send/receive errors in the load generator",
        format!("{}", tally.send_errors.load(Ordering::Relaxed)),
        None,
    );
    let wrong = tally.wrong.load(Ordering::Relaxed) + checked.wrong;
    line(
        &mut r,
        "wrong answers (header, records, steering)",
        format!("{wrong} of {} steered checked", checked.steered),
        Some(wrong == 0),
    );
    for e in shared
        .wrong_examples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .chain(&checked.examples)
        .take(12)
    {
        let _ = writeln!(r, "    {e}");
    }
    line(
        &mut r,
        "TCP connections / cut mid-query",
        format!(
            "{} / {}",
            tally.tcp_connections.load(Ordering::Relaxed),
            tally.tcp_cut.load(Ordering::Relaxed)
        ),
        Some(tally.tcp_cut.load(Ordering::Relaxed) == 0),
    );
    if s.takeover {
        line(
            &mut r,
            "kept-open TCP connection reconnects",
            format!("{}", tally.tcp_reconnects.load(Ordering::Relaxed)),
            None,
        );
    }

    // Rate limiting: the flood is limited, nobody else is.
    let dropped = metric_sum(metrics, "keiko_dns_rate_limited_total", "dropped");
    let slipped = metric_sum(metrics, "keiko_dns_rate_limited_total", "slipped");
    let flood_lost = tally.flood_unanswered.load(Ordering::Relaxed);
    let flood_tc = tally.slipped.load(Ordering::Relaxed);
    line(
        &mut r,
        "flood: unanswered / truncated (server: drop / slip)",
        format!("{flood_lost} / {flood_tc} ({dropped} / {slipped})"),
        Some(if s.takeover {
            flood_lost > 0
        } else {
            flood_lost > 0 && dropped == flood_lost as f64 && slipped == flood_tc as f64
        }),
    );
    let reload_failed = metric_sum(metrics, "keiko_config_reloads_total", "failure");
    line(
        &mut r,
        "keiko_config_reloads_total{result=\"failure\"}",
        format!("{reload_failed}"),
        Some(reload_failed == 0.0),
    );
    let fail_open = metric_sum(metrics, "keiko_dns_fail_open_total", "");
    line(
        &mut r,
        "keiko_dns_fail_open_total",
        format!("{fail_open}"),
        Some(fail_open == 0.0),
    );
    let send_errors = metric_sum(metrics, "keiko_dns_send_errors_total", "");
    line(
        &mut r,
        "keiko_dns_send_errors_total",
        format!("{send_errors}"),
        Some(send_errors == 0.0),
    );

    // Resources: flat after a warm-up of a quarter of the soak (at most 60 s).
    let warm = t0 + (s.seconds / 4.0).min(60.0);
    let fitted: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.phase == SOAK && x.t >= warm)
        .collect();
    let span = fitted.last().map_or(0.0, |l| l.t) - fitted.first().map_or(0.0, |f| f.t);
    let _ = writeln!(
        r,
        "\nresources of the server, {} samples over the last {:.0} s of the soak (fitted line):",
        fitted.len(),
        span
    );
    // What is fitted: name, unit, the value of a sample, the limit per
    // minute, and the growth over the whole fit that is noise whatever
    // the span.
    type Series<'a> = (&'a str, &'a str, fn(&Usage) -> f64, f64, f64);
    let series: [Series; 3] = [
        (
            "resident memory",
            "KiB",
            |u| u.rss_kib,
            s.rss_limit,
            s.rss_noise,
        ),
        ("open file descriptors", "fds", |u| u.fds, s.fd_limit, 0.0),
        ("threads", "threads", |u| u.threads, s.thread_limit, 0.0),
    ];
    let minutes = span / 60.0;
    for (what, unit, get, limit, noise) in series {
        let points: Vec<(f64, f64)> = fitted.iter().map(|x| (x.t, get(&x.usage))).collect();
        let (b, se) = slope(&points);
        let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        // Flat within noise: the slope may exceed the limit only by twice
        // its standard error; and in a short run, growth the allocator
        // makes in one step (it extends its heap by 64 KiB and more at
        // once) is not a trend.
        let allowed = if minutes > 0.0 {
            limit.max(noise / minutes)
        } else {
            limit
        };
        let pass = points.len() >= 3 && b - 2.0 * se <= allowed;
        line(
            &mut r,
            &format!("{what}: slope {unit}/min (limit {allowed:.0})"),
            format!("{b:+.2} ± {se:.2} [{lo:.0}..{hi:.0}]"),
            Some(pass),
        );
    }
    if s.takeover {
        let mut per_pid: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
        for x in samples {
            per_pid.entry(x.pid).or_insert((x.t, x.usage.rss_kib)).1 = x.usage.rss_kib;
        }
        let _ = writeln!(
            r,
            "  last RSS per process: {}",
            per_pid
                .values()
                .map(|v| format!("{:.0}", v.1))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let _ = writeln!(
            r,
            "  at start {:.0} KiB, {:.0} fds, {:.0} threads; at the end {:.0} KiB, {:.0} fds, {:.0} threads",
            first.usage.rss_kib,
            first.usage.fds,
            first.usage.threads,
            last.usage.rss_kib,
            last.usage.fds,
            last.usage.threads
        );
    }

    let _ = writeln!(
        r,
        "\nsteered answers by the config surely serving (us-east-1 / eu-west-1 / ap-southeast-1):"
    );
    for ((kind, config), n) in &checked.shares {
        let which = match config {
            Some(0) => "config A",
            Some(_) => "config B",
            None => "changing",
        };
        let _ = writeln!(r, "  {kind:<13} {which:<9} {} / {} / {}", n[0], n[1], n[2]);
    }
    let _ = writeln!(r);
    (ok, r)
}

#[cfg(test)]
mod tests {
    use super::slope;

    #[test]
    fn slope_is_per_minute_with_its_error() {
        let flat: Vec<(f64, f64)> = (0..30)
            .map(|i| (f64::from(i) * 2.0, 100.0 + f64::from(i % 2)))
            .collect();
        let (b, se) = slope(&flat);
        assert!(b.abs() < 1.0 && se < 1.0, "{b} {se}");
        let leak: Vec<(f64, f64)> = (0..30)
            .map(|i| (f64::from(i) * 2.0, 100.0 + f64::from(i)))
            .collect();
        let (b, se) = slope(&leak);
        assert!((b - 30.0).abs() < 1e-9 && se < 1e-6, "{b} {se}");
    }
}
