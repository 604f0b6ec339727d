//! `keiko-dns test`: one round of health checks now, from this machine,
//! with the config's targets, timeout and CA file, without starting a
//! server. It answers "would these regions pass their probes right now?"
//! before a deploy or while debugging a region that keeps failing.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::client::{EXIT_FAILED, EXIT_UNREACHABLE};
use crate::config::Config;
use crate::health::probe::{Outcome, Prober};

pub(super) fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("keiko-dns test: {} is invalid", path.display());
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let prober = match Prober::new(config.health.ca_file.as_deref(), config.health.timeout) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("keiko-dns test: cannot set up health probes: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keiko-dns test: cannot start a runtime: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    println!(
        "probing {} regions (timeout {}, path {})",
        config.regions.len(),
        humantime::format_duration(config.health.timeout),
        config.health.path
    );
    let results = runtime.block_on(probe_all(&config, prober));
    let mut unhealthy = Vec::new();
    for (name, target, result) in &results {
        let (verdict, latency, reason) = match result {
            Ok(o) if o.healthy => ("healthy", ms(o), String::new()),
            Ok(o) => (
                "UNHEALTHY",
                ms(o),
                o.reason.clone().unwrap_or_else(|| "failed".into()),
            ),
            Err(reason) => ("UNHEALTHY", "-".into(), reason.clone()),
        };
        if verdict != "healthy" {
            unhealthy.push(name.as_str());
        }
        let reason = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        println!("{name:<16} {verdict:<9} {latency:>8}  {target}{reason}");
    }
    if unhealthy.is_empty() {
        println!("all {} regions healthy", results.len());
        ExitCode::SUCCESS
    } else {
        println!(
            "{} of {} regions unhealthy: {}",
            unhealthy.len(),
            results.len(),
            unhealthy.join(", ")
        );
        ExitCode::from(EXIT_FAILED)
    }
}

type Probed = (String, String, Result<Outcome, String>);

/// Probes every region concurrently, the way the monitor resolves their
/// targets; results in config order.
async fn probe_all(config: &Config, prober: Arc<Prober>) -> Vec<Probed> {
    let mut tasks = Vec::with_capacity(config.regions.len());
    for r in &config.regions {
        let target = r.probe.clone();
        let shown = target.describe();
        let prober = prober.clone();
        let expect = r.expect_body.clone();
        let task = tokio::spawn(async move { Ok(prober.probe(&target, expect.as_deref()).await) });
        tasks.push((r.name.clone(), shown, task));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for (name, shown, task) in tasks {
        let result = task
            .await
            .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
        out.push((name, shown, result));
    }
    out
}

fn ms(o: &Outcome) -> String {
    format!("{} ms", o.latency.as_millis())
}
