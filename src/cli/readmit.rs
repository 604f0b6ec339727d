//! `keiko-dns readmit`: re-admits a region that recovered while recovery is
//! manual (`health.recovery = "manual"`), through the admin API.

use std::process::ExitCode;

use serde::Deserialize;

use super::client::{AdminArgs, AdminClient, ClientError, EXIT_FAILED, runtime, segment};
use crate::health::Event;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The region to re-admit
    #[arg(long, value_name = "NAME")]
    pub region: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Deserialize)]
struct Readmitted {
    region: String,
    event: Option<Event>,
}

pub(super) fn run(args: &Args) -> ExitCode {
    let result = AdminClient::new(&args.admin, None).and_then(|client| {
        let path = format!("/admin/regions/{}/readmit", segment(&args.region));
        runtime()?.block_on(client.post::<Readmitted>(&path, None))
    });
    match result {
        Ok(done) => {
            match done.event {
                Some(e) => println!(
                    "{}: re-admitted ({} -> {}); it takes traffic again",
                    done.region, e.from, e.to
                ),
                None => println!("{}: re-admitted", done.region),
            }
            ExitCode::SUCCESS
        }
        Err(e @ ClientError::Api { status: 409, .. }) => {
            eprintln!("keiko-dns readmit: {e}");
            eprintln!(
                "(only a region that recovered while health.recovery is \"manual\" waits for readmit)"
            );
            ExitCode::from(EXIT_FAILED)
        }
        Err(e) => e.report("readmit"),
    }
}
