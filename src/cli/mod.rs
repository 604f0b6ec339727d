//! The command line: one file per command. Errors are reported here, with
//! their context, and turned into exit codes.

mod check;
pub mod client;
mod demo;
mod explain;
mod failover;
mod readmit;
mod serve;
mod status;
mod test;

use std::path::PathBuf;
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
    /// Run the server (the default).
    Serve(ConfigArg),
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
    /// failover, making an endpoint fail.
    #[command(after_help = EXIT_CODES_DEMO)]
    Demo,
}

const EXIT_CODES_ADMIN: &str = "Exit codes:
  0  done
  1  the server refused the request (e.g. unknown region); its message is shown
  2  the admin API cannot be reached, refused the token (set KEIKO_ADMIN_TOKEN
     or --token), or the command line is wrong";

const EXIT_CODES_DEMO: &str = "Binds 127.0.0.1:5300 (DNS), 127.0.0.1:9300 (admin API) and
127.0.0.1:18081-18083 (the stand-in endpoints: GET /health, POST /fail,
POST /recover).

Exit codes:
  0  stopped by SIGTERM or SIGINT
  1  the server could not start (e.g. port 5300 or 9300 taken)
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
    /// Config file [default: zones/keiko.toml]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(crate::control::load::default_config_path)
    }
}

pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    match cli.command.unwrap_or(Command::Serve(ConfigArg::default())) {
        Command::Serve(args) => serve::run(&args.path()),
        Command::Check(args) => check::run(&args.path()),
        Command::Status(args) => status::run(&args),
        Command::Failover(args) => failover::run(&args),
        Command::Readmit(args) => readmit::run(&args),
        Command::Test(args) => test::run(&args.path()),
        Command::Explain(args) => explain::run(&args),
        Command::Demo => demo::run(),
    }
}

/// Logs go to stderr at `info`, or as `KEIKO_LOG` (else `RUST_LOG`) says:
/// `warn`, `keiko_dns=debug,info`, ... (per-target levels; no regexes,
/// which keeps a regex engine out of the binary).
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
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    let _ = match format {
        LogFormat::Text => registry.with(layer.with_filter(filter)).try_init(),
        LogFormat::Json => registry.with(layer.json().with_filter(filter)).try_init(),
    };
}
