//! The command line: one file per command. Errors are reported here, with
//! their context, and turned into exit codes. This file also owns where the
//! config is looked for without `--config` (docs/reference.md §1.1) and the
//! log setup (§1.3).

mod check;
pub mod client;
mod demo;
mod dnssec;
mod explain;
mod failover;
mod fleet;
mod readmit;
mod serve;
mod status;
mod test;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "keiko-dns",
    version,
    about = "Authoritative traffic-steering DNS server"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default), or take over a running one.
    Serve(serve::Args),
    /// Validate config, zone file and GeoIP database without serving.
    Check(ConfigArg),
    /// Show a running server's regions, health, shares and recent events.
    ///
    /// Regions with health, state, forced state, latency and traffic share;
    /// the steered names with their current answers; recent failover events.
    #[command(after_help = EXIT_CODES_ADMIN)]
    Status(client::AdminArgs),
    /// Failover drill: force a region down, show the answers before/after.
    ///
    /// Forces the region down through the admin API (or hands it back to its
    /// health checks with --restore), waits until the server routes
    /// accordingly, and prints the steered answers before and after.
    #[command(after_help = EXIT_CODES_ADMIN)]
    Failover(failover::Args),
    /// Re-admit a recovered region when health.recovery is "manual".
    #[command(after_help = EXIT_CODES_READMIT)]
    Readmit(readmit::Args),
    /// Run one round of health checks now; print each result and latency.
    ///
    /// Probes every region of the config once, concurrently, with the
    /// configured targets and timeout. No server is started.
    #[command(after_help = EXIT_CODES_TEST)]
    Test(ConfigArg),
    /// Explain the answer a name gets, and why.
    ///
    /// Shows the location used, the GeoIP match, the preference list, the
    /// residency rule, the health of each candidate, fail-open, the answer
    /// and the ECS scope.
    #[command(after_help = EXIT_CODES_EXPLAIN)]
    Explain(explain::Args),
    /// Run the server with three simulated regional endpoints, to try it.
    ///
    /// Serves the default config plus stand-in health endpoints on
    /// 127.0.0.1:18081-18083, and prints what to try: dig, status,
    /// failover, making an endpoint fail. With --fleet, three instances
    /// that answer as one, each with its own stand-ins.
    #[command(after_help = EXIT_CODES_DEMO)]
    Demo(demo::Args),
    /// Fleet tools: `fleet certs` writes a CA and instance certificates for labs.
    Fleet(fleet::Args),
    /// DNSSEC tools: `dnssec keygen` writes a zone key, `dnssec ds` prints
    /// the DS records for the parent zone.
    Dnssec(dnssec::Args),
}

const EXIT_CODES_ADMIN: &str = "Exit codes:
  0  done
  1  the server refused the request (e.g. unknown region); its message is shown
  2  the admin API cannot be reached, refused the token (set KEIKO_ADMIN_TOKEN
     or --token), or the command line is wrong";

const EXIT_CODES_DEMO: &str = "Binds 127.0.0.1:5300 (DNS), 127.0.0.1:9300 (admin API) and
127.0.0.1:18081-18083 (the stand-in endpoints: GET /health, POST /fail,
POST /recover).

With --fleet: three instances, ns1.us-east-1, ns2.eu-west-1 and
ns3.ap-southeast-1, on 127.0.0.1 ports 5301-5303 (DNS), 9301-9303 (admin API)
and 9441-9443 (peer endpoints), each probing its own stand-ins: 18181-18183
for ns1, 18281-18283 for ns2, 18381-18383 for ns3. Certificates, configs,
state and logs in the config's state_dir, under demo-fleet/.

Exit codes:
  0  stopped by SIGTERM or SIGINT
  1  the server could not start (e.g. port 5300 or 9300 taken), or with
     --fleet an instance could not start or exited
  2  a stand-in endpoint port is taken";

const EXIT_CODES_READMIT: &str = "Exit codes:
  0  re-admitted
  1  the server refused: unknown region, or the region is not awaiting readmit
  2  the admin API cannot be reached, refused the token (set KEIKO_ADMIN_TOKEN
     or --token), or the command line is wrong";

const EXIT_CODES_TEST: &str = "Exit codes:
  0  every region is healthy
  1  at least one region is unhealthy (each is named)
  2  the config is invalid or the probes cannot be set up";

const EXIT_CODES_EXPLAIN: &str =
    "Without a running server (asked at --admin, else the config's admin_listen,
else http://127.0.0.1:9300) the config is loaded locally and every region is
taken as healthy; the output says so.

Exit codes:
  0  explained
  1  the name does not exist (NXDOMAIN) or is outside the zone (REFUSED)
  2  bad input (name, --client, --subnet), or neither a server nor the config
     can be used";

#[derive(Debug, clap::Args, Default)]
pub struct ConfigArg {
    /// Config file [default: $KEIKO_CONFIG, else ./zones/keiko.toml, else
    /// /etc/keiko-dns/keiko.toml]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// The environment variable naming the config when `--config` is not given.
pub const CONFIG_ENV: &str = "KEIKO_CONFIG";

/// Where a config is looked for when neither `--config` nor `KEIKO_CONFIG`
/// names one: the clone's (relative to the working directory, as `cargo
/// run` starts it), then the installed one. Never a path fixed at build
/// time: a binary copied elsewhere must not read or write a source tree.
pub const CONFIG_SEARCH: [&str; 2] = ["zones/keiko.toml", "/etc/keiko-dns/keiko.toml"];

/// No config was named and none of [`CONFIG_SEARCH`] exists.
#[derive(Debug, thiserror::Error)]
#[error(
    "no config file found: --config was not given, {CONFIG_ENV} is not set, and neither \
     {} exists; pass --config PATH or set {CONFIG_ENV}",
    .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" nor ")
)]
pub struct NoConfig {
    pub tried: Vec<PathBuf>,
}

/// The config to use: `explicit` (`--config`), else `KEIKO_CONFIG`, else
/// the first of [`CONFIG_SEARCH`] that exists. A named file is used as
/// named, so a typo in it is reported as that file not being readable.
pub fn find_config(explicit: Option<&Path>) -> Result<PathBuf, NoConfig> {
    find_config_with(explicit, std::env::var_os(CONFIG_ENV), |p| p.exists())
}

fn find_config_with(
    explicit: Option<&Path>,
    env: Option<OsString>,
    exists: impl Fn(&Path) -> bool,
) -> Result<PathBuf, NoConfig> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let tried: Vec<PathBuf> = CONFIG_SEARCH.iter().map(PathBuf::from).collect();
    match tried.iter().find(|p| exists(p)) {
        Some(found) => Ok(found.clone()),
        None => Err(NoConfig { tried }),
    }
}

impl ConfigArg {
    pub fn path(&self) -> Result<PathBuf, NoConfig> {
        find_config(self.config.as_deref())
    }
}

/// Runs `command` with the config `args` names, or reports that none was
/// found and exits with `code` (the command's "config invalid" code).
fn with_config(
    name: &str,
    args: &ConfigArg,
    code: u8,
    command: impl FnOnce(&Path) -> ExitCode,
) -> ExitCode {
    match args.path() {
        Ok(path) => command(&path),
        Err(e) => {
            eprintln!("keiko-dns {name}: {e}");
            ExitCode::from(code)
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    match cli
        .command
        .unwrap_or(Command::Serve(serve::Args::default()))
    {
        Command::Serve(args) => with_config("serve", &args.config, 1, |path| {
            demo::hint_if_stand_ins_are_missing(path);
            serve::run(path, &args, cli.log_format)
        }),
        Command::Check(args) => with_config("check", &args, 1, check::run),
        Command::Status(args) => status::run(&args),
        Command::Failover(args) => failover::run(&args),
        Command::Readmit(args) => readmit::run(&args),
        Command::Test(args) => with_config("test", &args, client::EXIT_UNREACHABLE, test::run),
        Command::Explain(args) => explain::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Fleet(args) => fleet::run(&args),
        Command::Dnssec(args) => dnssec::run(&args),
    }
}

/// Logs go to stderr at `info`, or as `KEIKO_LOG` (else `RUST_LOG`) says:
/// `warn`, `keiko_dns=debug,info`, ... (per-target levels; no regexes,
/// which keeps a regex engine out of the binary). Colours only on a
/// terminal: escape codes in a journal or a log file are noise.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let info = || Targets::new().with_default(tracing::Level::INFO);
    let spec = std::env::var("KEIKO_LOG").or_else(|_| std::env::var("RUST_LOG"));
    let filter = match spec.as_deref().map(str::parse::<Targets>) {
        Ok(Ok(targets)) => targets,
        Ok(Err(e)) => {
            eprintln!(
                "keiko-dns: ignoring the log filter in KEIKO_LOG/RUST_LOG ({e}); logging at info"
            );
            info()
        }
        Err(_) => info(),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry();
    let _ = match format {
        LogFormat::Text => registry.with(layer.with_filter(filter)).try_init(),
        LogFormat::Json => registry.with(layer.json().with_filter(filter)).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lookup_order_is_flag_env_local_installed() {
        let flag = Path::new("flag.toml");
        let env = || Some(OsString::from("env.toml"));
        let every = |_: &Path| true;
        assert_eq!(find_config_with(Some(flag), env(), every).unwrap(), flag);
        assert_eq!(
            find_config_with(None, env(), every).unwrap(),
            Path::new("env.toml")
        );
        // An empty KEIKO_CONFIG counts as unset.
        assert_eq!(
            find_config_with(None, Some(OsString::new()), every).unwrap(),
            Path::new(CONFIG_SEARCH[0])
        );
        let installed_only = |p: &Path| p == Path::new(CONFIG_SEARCH[1]);
        assert_eq!(
            find_config_with(None, None, installed_only).unwrap(),
            Path::new(CONFIG_SEARCH[1])
        );
    }

    #[test]
    fn no_config_names_every_place_tried() {
        let e = find_config_with(None, None, |_| false).unwrap_err();
        let text = e.to_string();
        for place in CONFIG_SEARCH {
            assert!(text.contains(place), "{text}");
        }
        assert!(
            text.contains("--config") && text.contains(CONFIG_ENV),
            "{text}"
        );
    }
}
