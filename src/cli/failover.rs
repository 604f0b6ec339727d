//! `keiko-dns failover`: the failover drill. Forces a region down (or hands
//! it back to the probes with `--restore`) through the admin API, waits
//! until the server routes accordingly, and shows the steered answers
//! before and after, so an operator sees exactly what clients now get.
//! A region the server does not know is refused before anything is changed
//! or printed, with the regions it does know.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use super::client::{AdminArgs, AdminClient, ClientError, answers, runtime, segment};
use crate::admin::status::Status;

/// The swap is immediate; this only covers the round trip of a busy box.
const SETTLE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The region to force down (or restore)
    #[arg(long, value_name = "NAME")]
    pub region: String,
    /// Hand the region back to its health checks ("auto") instead
    #[arg(long)]
    pub restore: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

pub(super) fn run(args: &Args) -> ExitCode {
    match drill(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report("failover"),
    }
}

fn drill(args: &Args) -> Result<(), ClientError> {
    let client = AdminClient::new(&args.admin, None)?;
    let state = if args.restore { "auto" } else { "down" };
    runtime()?.block_on(async {
        let before = client.status().await?;
        if !before.regions.iter().any(|r| r.name == args.region) {
            let known: Vec<&str> = before.regions.iter().map(|r| r.name.as_str()).collect();
            return Err(ClientError::Api {
                status: 404,
                message: format!(
                    "unknown region {:?}; the server's regions are: {}",
                    args.region,
                    known.join(", ")
                ),
            });
        }
        let path = format!("/admin/regions/{}/state", segment(&args.region));
        let answer: serde_json::Value =
            client.post(&path, Some(&json!({ "state": state }))).await?;
        // Printed only once the change is made: a refused drill shows no
        // table that reads as if something happened.
        println!("before ({}):", client.base());
        print_answers(&before);
        if args.restore {
            println!(
                "\n{}: forced state cleared; its health checks decide again",
                args.region
            );
        } else {
            println!("\n{}: forced down", args.region);
        }
        println!("{}", applied_on(&answer));

        let (after, settled) = settle(&client, &args.region, args.restore).await?;
        if !settled {
            println!(
                "(the server did not show the change within {}s; showing its latest answers)",
                SETTLE.as_secs()
            );
        }
        println!("\nafter:");
        print_answers(&after);
        println!();
        print_changes(&before, &after);
        Ok(())
    })
}

/// Polls `/status` until `region` shows the new forced state.
async fn settle(
    client: &AdminClient,
    region: &str,
    restore: bool,
) -> Result<(Status, bool), ClientError> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let status = client.status().await?;
        let shown = status.regions.iter().any(|r| {
            r.name == region
                && if restore {
                    r.forced.is_none()
                } else {
                    r.forced.as_deref() == Some("down") && !r.healthy
                }
        });
        if shown || Instant::now() >= deadline {
            return Ok((status, shown));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn print_answers(status: &Status) {
    for (name, policy, answer) in answers(status) {
        println!("  {name:<28} {policy:<9} {answer}");
    }
}

fn print_changes(before: &Status, after: &Status) {
    let old = answers(before);
    let mut changed = Vec::new();
    for (name, _, now) in answers(after) {
        let was = old.iter().find(|(n, _, _)| *n == name).map(|(_, _, a)| a);
        if was != Some(&now) {
            let was = was.map_or("(not steered before)".to_owned(), Clone::clone);
            changed.push((name, was, now));
        }
    }
    if changed.is_empty() {
        println!("no steered answer changed (for a client with no location)");
        return;
    }
    println!("changed (for a client with no location):");
    for (name, was, now) in changed {
        println!("  {name:<28} was {was}");
        println!("  {:<28} now {now}", "");
    }
}

/// "applied on 3 of 3 instances: ..." from the POST's answer; a single
/// instance is one of one.
fn applied_on(answer: &serde_json::Value) -> String {
    let names = |key: &str| -> Vec<String> {
        answer
            .get(key)
            .and_then(serde_json::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (acked, pending) = (names("acknowledged_by"), names("pending"));
    let total = (acked.len() + pending.len()).max(1);
    let mut line = format!(
        "applied on {} of {total} instance{}",
        acked.len().max(1),
        if total == 1 { "" } else { "s" }
    );
    if !acked.is_empty() {
        line += &format!(": {}", acked.join(", "));
    }
    if !pending.is_empty() {
        line += &format!(
            "; not yet on {} (they apply it when reachable)",
            pending.join(", ")
        );
    }
    line
}

#[cfg(test)]
mod applied_tests {
    use super::applied_on;
    use serde_json::json;

    #[test]
    fn says_on_how_many_instances_a_drill_is_applied() {
        let fleet = json!({"acknowledged_by": ["ns1", "ns2"], "pending": ["ns3"]});
        assert_eq!(
            applied_on(&fleet),
            "applied on 2 of 3 instances: ns1, ns2; not yet on ns3 (they apply it when reachable)"
        );
        let alone = json!({"acknowledged_by": ["ns1"], "pending": []});
        assert_eq!(applied_on(&alone), "applied on 1 of 1 instance: ns1");
    }
}
