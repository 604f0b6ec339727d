//! `keiko-dns check`: load and validate everything, print a summary.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Policy;
use crate::control::load;
use crate::snapshot::{Compiled, Snapshot};

pub(super) fn run(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("check: {} is invalid", path.display());
            return ExitCode::from(1);
        }
    };
    let compiled = match Compiled::build(
        loaded.config.clone(),
        loaded.zone.clone(),
        loaded.geo.clone(),
        1,
    ) {
        Ok(c) => std::sync::Arc::new(c),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let config = &loaded.config;
    let zone = &loaded.zone;
    let records: usize = zone
        .nodes
        .values()
        .flat_map(|n| n.values())
        .map(Vec::len)
        .sum();
    println!("config   {}", config.path.display());
    println!(
        "zone     {} from {} (serial {}, {} names, {} records)",
        zone.origin,
        config.zone.file.display(),
        zone.serial,
        zone.nodes.len(),
        records
    );
    match &loaded.geo {
        Some(db) => println!("geoip    {} ({})", db.path().display(), db.describe()),
        None => println!("geoip    none (geo answers use the default list)"),
    }
    println!("dns      {}", join(config.server.dns_listen.iter()));
    println!("admin    {}", config.server.admin_listen);
    println!(
        "health   every {}, timeout {}, down after {} failures, up after {} successes, recovery {:?}",
        humantime::format_duration(config.health.interval),
        humantime::format_duration(config.health.timeout),
        config.health.failure_threshold,
        config.health.recovery_threshold,
        config.health.recovery
    );
    println!("regions");
    for r in &config.regions {
        println!(
            "  {:<16} priority {:<3} weight {:<4} {}",
            r.name,
            r.priority,
            r.weight,
            r.answer_texts().join(", ")
        );
    }
    let snap = Snapshot::new(compiled.clone(), vec![true; config.regions.len()], 0);
    println!("records (answers with every region healthy, for a client with no location)");
    for rec in &config.records {
        let region = match rec.policy {
            Policy::Weighted => "by weight".to_string(),
            Policy::Multivalue { .. } => {
                let (set, _) = snap.value_set(std::net::Ipv4Addr::UNSPECIFIED.into());
                let names: Vec<&str> = crate::snapshot::routing::members(config, set.mask)
                    .iter()
                    .map(|&r| config.regions[r].name.as_str())
                    .collect();
                format!("all of {}", names.join(", "))
            }
            policy => {
                let (choice, _) =
                    snap.steer(policy, std::net::Ipv4Addr::UNSPECIFIED.into(), &mut |_| 0);
                config.regions[choice.region].name.clone()
            }
        };
        println!(
            "  {:<40} {:<9} ttl {:<5} {}",
            rec.name.to_string(),
            rec.policy.as_str(),
            rec.ttl,
            region
        );
    }
    for block in &config.residency {
        let regions: Vec<&str> = block
            .regions
            .iter()
            .map(|&r| config.regions[r].name.as_str())
            .collect();
        println!(
            "residency {}: continents {:?} countries {:?} -> only {}",
            block.name,
            block.continents,
            block.countries,
            regions.join(", ")
        );
    }
    println!(
        "snapshot {} names, about {} KiB",
        compiled.name_count(),
        compiled.memory_bytes() / 1024
    );
    println!("ok");
    ExitCode::SUCCESS
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}
