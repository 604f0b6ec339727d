//! The command line: one file per command. Errors are reported here, with
//! their context, and turned into exit codes.

mod check;
mod serve;

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
}

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
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KEIKO_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
