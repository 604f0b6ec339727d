use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keiko_dns::cli::run(keiko_dns::cli::Cli::parse())
}
