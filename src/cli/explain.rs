//! `keiko-dns explain`: prints the answer the server gives a name and why.
//!
//! It asks the running server (`GET /explain`) so the health of regions is
//! live; when no server answers, it loads the config itself, assumes every
//! region healthy, and says so. The reasoning is
//! `crate::snapshot::explain`'s either way; this file only renders it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::client::{AdminArgs, AdminClient, ClientError, EXIT_FAILED, EXIT_UNREACHABLE, runtime};
use crate::explain::{Explanation, Kind, Request, Steering, explain};
use crate::snapshot::{Compiled, Snapshot};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The name, relative to the zone origin or fully qualified
    pub name: String,
    /// The client's address (the query's source)
    #[arg(long, value_name = "IP")]
    pub client: Option<String>,
    /// The EDNS Client Subnet the query carries, e.g. 81.2.69.142/32
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Config used when no server answers; its admin_listen is asked when
    /// --admin is not given [default: zones/keiko.toml]
    #[arg(long, short, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

pub(super) fn run(args: &Args) -> ExitCode {
    let request = match Request::parse(&args.name, args.client.as_deref(), args.subnet.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keiko-dns explain: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    // Only needed when no server answers; a missing one is reported then.
    let config_path = super::find_config(args.config.as_deref());
    // Without --admin, ask the server the config describes: that is the
    // one whose answers the operator is asking about.
    let configured_admin = match (&args.admin.admin, &args.config) {
        (None, Some(path)) => crate::config::Config::load(path)
            .ok()
            .map(|c| format!("http://{}", c.server.admin_listen)),
        _ => None,
    };
    let client = match AdminClient::new(&args.admin, configured_admin.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.report("explain"),
    };
    let query = remote_query(args);
    let asked = runtime()
        .and_then(|rt| rt.block_on(client.get::<Explanation>("/explain", &query_pairs(&query))));
    match asked {
        Ok(explanation) => {
            println!(
                "from the running server at {} (routing table v{}, live health)\n",
                client.base(),
                explanation.snapshot_version
            );
            finish(&explanation)
        }
        Err(e @ ClientError::Api { status: 404, .. }) => {
            println!("{e}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(e @ ClientError::Api { status: 400, .. }) => {
            eprintln!("keiko-dns explain: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
        Err(ClientError::Unreachable { url, reason }) => match &config_path {
            Ok(path) => local(path, &request, &url, &reason),
            Err(e) => {
                eprintln!("keiko-dns explain: no server answers at {url} ({reason}), and {e}");
                ExitCode::from(EXIT_UNREACHABLE)
            }
        },
        Err(e) => e.report("explain"),
    }
}

/// The query string for `GET /explain`: the flags as the operator typed them.
fn remote_query(args: &Args) -> Vec<(&'static str, String)> {
    let mut query = vec![("name", args.name.clone())];
    if let Some(c) = &args.client {
        query.push(("client", c.clone()));
    }
    if let Some(s) = &args.subnet {
        query.push(("subnet", s.clone()));
    }
    query
}

fn query_pairs<'a>(query: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    query.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Explains from the config on disk, with every region healthy.
fn local(path: &Path, request: &Request, url: &str, reason: &str) -> ExitCode {
    println!(
        "no server answers at {url} ({reason}): explained from {} with every region \
         assumed healthy\n",
        path.display()
    );
    let loaded = match crate::control::load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("keiko-dns explain: cannot load {}", path.display());
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let regions = loaded.config.regions.len();
    let compiled = match Compiled::build(loaded.config, loaded.zone, loaded.geo, 1) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("keiko-dns explain: {}: {e}", path.display());
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let snapshot = Snapshot::new(compiled, vec![true; regions], 0);
    match explain(&snapshot, request) {
        Ok(explanation) => finish(&explanation),
        Err(e) => {
            eprintln!("keiko-dns explain: {e}");
            ExitCode::from(EXIT_UNREACHABLE)
        }
    }
}

fn finish(explanation: &Explanation) -> ExitCode {
    print!("{}", render(explanation));
    match explanation.kind {
        Kind::Nxdomain | Kind::OutOfZone => ExitCode::from(EXIT_FAILED),
        _ => ExitCode::SUCCESS,
    }
}

/// The explanation for people: one labelled line per step of the decision.
pub(super) fn render(e: &Explanation) -> String {
    let mut out = String::new();
    let mut row = |label: &str, text: &str| {
        let line = format!("  {label:<12} {text}");
        let _ = writeln!(out, "{}", line.trim_end());
    };
    let heading = match &e.steering {
        Some(s) => format!("{} ({} policy, ttl {})", e.name, s.policy, s.ttl),
        None => e.name.clone(),
    };
    let mut text = format!("{heading}\n");
    if e.steering.is_none() {
        let _ = writeln!(text, "  {}", e.summary);
        for record in &e.static_records {
            let _ = writeln!(text, "    {record}");
        }
        return text;
    }
    if let Some(w) = &e.wildcard {
        row(
            "wildcard",
            &format!("{} does not exist: answered from {w}", e.name),
        );
    }
    row("location", &location_text(e));
    row("geoip", &geoip_text(e));
    if let Some(s) = &e.steering {
        steering_rows(s, &mut row);
    }
    text + &out
}

fn location_text(e: &Explanation) -> String {
    let l = &e.location;
    let address = l.address.as_deref().unwrap_or("?");
    match l.source.as_str() {
        "subnet" => format!(
            "ECS subnet {} (classified as {address})",
            l.subnet.as_deref().unwrap_or("?")
        ),
        "client" => match &l.subnet {
            Some(s) => format!("client {address} (ECS {s} has no source prefix, so ignored)"),
            None => format!("client {address} (no ECS in the query)"),
        },
        _ => "no location (neither --client nor --subnet given): \
              the answer for a client no database places"
            .into(),
    }
}

fn geoip_text(e: &Explanation) -> String {
    let g = &e.geoip;
    let Some(db) = &g.database else {
        return "no GeoIP database loaded: every client gets the default list".into();
    };
    if let Some(err) = &g.error {
        return format!("lookup failed: {err}");
    }
    if e.location.address.is_none() || e.location.source == "none" {
        return format!("not consulted (no location); database {db}");
    }
    let network = g.network.as_deref().unwrap_or("?");
    match (&g.country, &g.continent) {
        (None, None) => format!("no match (network {network}) in {db}"),
        (country, continent) => format!(
            "country {}, continent {} (network {network})",
            country.as_deref().unwrap_or("-"),
            continent.as_deref().unwrap_or("-")
        ),
    }
}

fn steering_rows(s: &Steering, row: &mut impl FnMut(&str, &str)) {
    match s.policy.as_str() {
        "geo" => {
            if let Some(p) = &s.preference {
                let list = p.regions.join(", ");
                let source = match p.source.as_str() {
                    "default" => "default list".to_owned(),
                    other => format!("{other} list"),
                };
                row("preference", &format!("{source}: {list}"));
            }
        }
        "failover" => row("preference", "failover order, by priority"),
        "weighted" => row("preference", "drawn by weight among healthy candidates"),
        "multivalue" => row(
            "preference",
            "every healthy candidate's addresses, by priority, in a rotating order",
        ),
        _ => row("preference", "fixed region: answered whatever its health"),
    }
    let residency = if !s.residency_applies {
        "not applied: region names are explicit addresses".to_owned()
    } else {
        match &s.residency {
            Some(r) => format!(
                "[residency.{}] applies ({}): only {}",
                r.block,
                r.matched,
                r.regions.join(", ")
            ),
            None => "none applies to this client".to_owned(),
        }
    };
    row("residency", &residency);
    for (i, c) in s.candidates.iter().enumerate() {
        let label = if i == 0 { "candidates" } else { "" };
        let health = if c.healthy { "healthy" } else { "DOWN" };
        let share = c
            .share_percent
            .map_or(String::new(), |p| format!("  share {p:>5.1}%"));
        let chosen = if c.chosen && c.share_percent.is_none() {
            "  <- answer"
        } else {
            ""
        };
        row(
            label,
            &format!(
                "{:<16} priority {:<2} weight {:<3} {health:<7}{share}{chosen}",
                c.region, c.priority, c.weight
            ),
        );
    }
    let fail_open = match (s.fail_open, &s.residency) {
        (false, _) => "no",
        (true, Some(_)) => {
            "YES: every region the residency block allows is down; it answers as if they \
             were healthy and never leaves the block"
        }
        (true, None) => {
            "YES: no candidate is healthy, so it answers as if all were (as Route53 does)"
        }
    };
    let all_down;
    let fail_open = match s.on_all_down.as_str() {
        "nodata" | "servfail" if s.fail_open => {
            all_down = format!(
                "NO: no candidate is healthy and on_all_down = {:?}: the answer is {}",
                s.on_all_down,
                if s.on_all_down == "servfail" {
                    "SERVFAIL"
                } else {
                    "NODATA"
                }
            );
            all_down.as_str()
        }
        _ => fail_open,
    };
    row("fail-open", fail_open);
    let answer = if s.answer.is_empty() {
        "(no addresses)".to_owned()
    } else {
        s.answer.join(", ")
    };
    let all_down = s.fail_open && matches!(s.on_all_down.as_str(), "nodata" | "servfail");
    match &s.region {
        _ if all_down && s.on_all_down == "servfail" => row("answer", "none: SERVFAIL"),
        _ if all_down => row("answer", "none: NODATA (NOERROR with the SOA)"),
        Some(region) => row("answer", &format!("{answer} ({region})")),
        None => {
            // Every address a draw can give: too many for one line.
            if s.policy == "multivalue" {
                row("answer", "all of these, the order rotating per query:");
            } else {
                row("answer", "one region per query, drawn by the shares above:");
            }
            let mut line = String::new();
            for address in &s.answer {
                if !line.is_empty() && line.len() + address.len() > 60 {
                    row("", &std::mem::take(&mut line));
                }
                if !line.is_empty() {
                    line.push_str(", ");
                }
                line.push_str(address);
            }
            if !line.is_empty() {
                row("", &line);
            }
        }
    }
    let scope = match (s.ecs_scope, s.client_scope) {
        (Some(0), _) => "/0: the answer does not depend on the client".to_owned(),
        (Some(p), _) => format!("/{p}: the answer holds for that network around the client"),
        (None, Some(p)) => {
            format!("none (no ECS in the query); the answer holds for /{p} around the client")
        }
        (None, None) => "none (no ECS in the query)".to_owned(),
    };
    row("ECS scope", &scope);
}
