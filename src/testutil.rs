//! Fixtures shared by unit tests: a valid config and zone written to a
//! temporary folder, compiled the way the server compiles them.
#![cfg(test)]

use std::path::PathBuf;
use std::sync::Arc;

use crate::control::load;
use crate::snapshot::{Compiled, Snapshot};

pub(crate) const ZONE: &str = "$ORIGIN keiko.example.com.\n$TTL 3600\n\
@ IN SOA ns1 hostmaster 2026112601 7200 3600 1209600 300\n\
@ IN NS ns1\n@ IN NS ns2\nns1 IN A 192.0.2.53\nns2 IN AAAA 2001:db8::53\n\
api IN CNAME api-contracts\nwww IN CNAME static\nstatic IN A 192.0.2.80\n\
@ IN MX 10 mail\nmail IN A 192.0.2.25\n@ IN TXT \"v=spf1 -all\"\n\
deep.below IN A 192.0.2.99\nbig IN TXT \"{BIG}\"\n";

pub(crate) const CONFIG: &str = r#"
[server]
dns_listen   = ["127.0.0.1:5300"]
admin_listen = "127.0.0.1:9300"
region       = "us-east-1"
state_dir    = "var"
nsid         = "ns1.test"
version      = "keiko-dns test"

[zone]
origin = "keiko.example.com."
file   = "zone"

[[regions]]
name      = "us-east-1"
priority  = 1
weight    = 40
endpoint  = "https://api-contracts-us-east.keiko.example.com"
addresses = ["192.0.2.10", "2001:db8:10::10"]

[[regions]]
name      = "eu-west-1"
priority  = 2
weight    = 40
endpoint  = "https://api-contracts-eu-west.keiko.example.com"
addresses = ["198.51.100.10", "2001:db8:20::10"]

[[regions]]
name      = "ap-southeast-1"
priority  = 3
weight    = 20
endpoint  = "https://api-contracts-ap-southeast.keiko.example.com"
addresses = ["203.0.113.10"]

[[records]]
name   = "api-contracts"
policy = "failover"

[[records]]
name   = "api-contracts-weighted"
policy = "weighted"
ttl    = 30

[[records]]
name   = "api-contracts-ap-southeast"
policy = "region"
region = "ap-southeast-1"
"#;

/// A folder holding `config` as `keiko.toml` and `zone` as `zone`.
pub(crate) fn write(config: &str, zone: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keiko.toml");
    std::fs::write(&path, config).unwrap();
    let big = "x".repeat(250);
    let zone = zone.replace(
        "{BIG}",
        &format!("{big}\" \"{big}\" \"{big}\" \"{big}\" \"{big}\" \"{big}"),
    );
    std::fs::write(dir.path().join("zone"), zone).unwrap();
    (dir, path)
}

pub(crate) fn compiled_from(config: &str, zone: &str) -> Arc<Compiled> {
    let (_dir, path) = write(config, zone);
    let loaded = load(&path).unwrap();
    Arc::new(Compiled::build(loaded.config, loaded.zone, loaded.geo, 3).unwrap())
}

/// The default fixture with every region healthy.
pub(crate) fn snapshot() -> Snapshot {
    Snapshot::new(compiled_from(CONFIG, ZONE), vec![true; 3], 1)
}
