//! `keiko-dns serve`: runs the server (see [`crate::control::serve`]),
//! afresh or by taking over a running one (`--takeover`), and reports why
//! it could not.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::control::serve::{Options, Takeover};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigArg,
    /// Take over the sockets of the keiko-dns already serving this config
    /// (asked at state_dir/control.sock), then let it stop: nothing is lost
    /// (docs/reference.md §8). Fails when none is running.
    #[arg(long, conflicts_with = "takeover_or_start")]
    pub takeover: bool,
    /// As --takeover when a keiko-dns serves this config, else start afresh.
    #[arg(long)]
    pub takeover_or_start: bool,
    /// At a takeover, how long the process taken over may finish its TCP
    /// connections in progress.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub takeover_grace: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            config: super::ConfigArg::default(),
            takeover: false,
            takeover_or_start: false,
            takeover_grace: Options::default().grace,
        }
    }
}

pub(super) fn run(path: &Path, args: &Args, log_format: super::LogFormat) -> ExitCode {
    let takeover = match (args.takeover, args.takeover_or_start) {
        (true, _) => Takeover::Required,
        (false, true) => Takeover::IfRunning,
        (false, false) => Takeover::No,
    };
    let format = match log_format {
        super::LogFormat::Text => "text",
        super::LogFormat::Json => "json",
    };
    let options = Options {
        takeover,
        grace: args.takeover_grace,
        global_args: vec!["--log-format".into(), format.into()],
    };
    match crate::control::serve::serve(path, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("keiko-dns: {e:#}");
            ExitCode::from(1)
        }
    }
}
