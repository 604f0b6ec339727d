//! `keiko-dns dnssec keygen` and `keiko-dns dnssec ds` (docs/reference.md
//! §10.4): make a zone key, and say what the parent zone must publish.
//!
//! Both print records in zone-file form, so their output can be pasted
//! into a zone file or a registrar's form, and checked with BIND's
//! `dnssec-dsfromkey`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hickory_proto::rr::Name;

use super::ConfigArg;
use crate::config::Config;
use crate::control::load;
use crate::dnssec::keys::{self, KeyError, ZoneKey};

/// The TTL the printed records carry: the DNSKEY RRset is served with the
/// SOA's TTL, 3600 s in the shipped zone; a parent sets its own DS TTL.
const TTL: u32 = 3600;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: DnssecCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DnssecCommand {
    /// Write a new zone key (ECDSA P-256, PKCS#8 PEM, mode 0600) and print
    /// its DNSKEY and DS.
    ///
    /// The records are printed for the zone origin of the config (found as
    /// for other commands), or for --origin. An existing file is never
    /// replaced. Add the file to [dnssec] keys: first to sign with it,
    /// second to only publish it (a rollover).
    #[command(after_help = EXIT_CODES_KEYGEN)]
    Keygen(KeygenArgs),
    /// Print the DS record (SHA-256) of every key in [dnssec] keys, for the
    /// parent zone.
    #[command(after_help = EXIT_CODES_DS)]
    Ds(ConfigArg),
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key; must not exist.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The zone the key is for, instead of reading the config's
    /// [zone] origin.
    #[arg(long, value_name = "NAME", conflicts_with = "config")]
    pub origin: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

const EXIT_CODES_KEYGEN: &str = "Exit codes:
  0  written
  1  the file exists or cannot be written (nothing is replaced), or the
     config cannot be read (pass --origin to do without it)
  2  --origin is not a domain name, or the command line is wrong";

const EXIT_CODES_DS: &str = "Exit codes:
  0  printed
  1  the config is invalid (key files included), or it has no [dnssec]";

pub(super) fn run(args: &Args) -> ExitCode {
    match &args.command {
        DnssecCommand::Keygen(a) => keygen(a),
        DnssecCommand::Ds(a) => super::with_config("dnssec ds", a, 1, ds),
    }
}

fn keygen(args: &KeygenArgs) -> ExitCode {
    let origin = match &args.origin {
        Some(text) => match parse_origin(text) {
            Ok(name) => name,
            Err(e) => {
                eprintln!("keiko-dns dnssec keygen: {e}");
                return ExitCode::from(2);
            }
        },
        None => match config_origin(&args.config) {
            Ok(name) => name,
            Err(e) => {
                eprintln!("{e}");
                eprintln!(
                    "keiko-dns dnssec keygen: cannot read the zone origin from the config; \
                     pass --origin NAME to generate a key without it"
                );
                return ExitCode::from(1);
            }
        },
    };
    let written = keys::generate_pem()
        .and_then(|pem| keys::write_new(&args.out, &pem))
        .and_then(|()| keys::load_key(&args.out));
    let key = match written {
        Ok(key) => key,
        Err(e) => {
            eprintln!("keiko-dns dnssec keygen: {e}");
            if matches!(&e, KeyError::Write { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
            {
                eprintln!("keiko-dns dnssec keygen: a key is never replaced; choose another --out");
            }
            return ExitCode::from(1);
        }
    };
    match key_records(&key, &origin) {
        Ok(text) => {
            println!(
                "; wrote {} (ECDSAP256SHA256, key tag {}, mode 0600)",
                args.out.display(),
                key.key_tag
            );
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keiko-dns dnssec keygen: {e}");
            ExitCode::from(1)
        }
    }
}

fn ds(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("keiko-dns dnssec ds: {} is invalid", path.display());
            return ExitCode::from(1);
        }
    };
    let config = &loaded.config;
    let Some(dnssec) = &config.dnssec else {
        eprintln!(
            "keiko-dns dnssec ds: {} has no [dnssec] section, so the zone is not signed and \
             the parent must not hold a DS for it; see `keiko-dns dnssec keygen --help`",
            path.display()
        );
        return ExitCode::from(1);
    };
    let printed =
        keys::load_all(&dnssec.keys).and_then(|all| ds_records(&all, &config.zone.origin));
    match printed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keiko-dns dnssec ds: {e}");
            ExitCode::from(1)
        }
    }
}

/// The zone origin `config` names, from the config alone (the zone file
/// and the key files it names need not exist yet).
fn config_origin(config: &ConfigArg) -> Result<Name, String> {
    let path = config
        .path()
        .map_err(|e| format!("keiko-dns dnssec keygen: {e}"))?;
    match Config::load(&path) {
        Ok(c) => Ok(c.zone.origin.clone()),
        Err(e) => Err(e.to_string()),
    }
}

/// `text` as an absolute domain name (a missing final dot is added).
fn parse_origin(text: &str) -> Result<Name, String> {
    let bad = |why: String| format!("--origin {text:?} is not a domain name ({why})");
    if text.is_empty() || text == "." {
        return Err(bad("the root zone is not served".into()));
    }
    let mut name = Name::from_ascii(text).map_err(|e| bad(e.to_string()))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// `keygen`'s records: the key tag, the DNSKEY and its DS.
fn key_records(key: &ZoneKey, origin: &Name) -> Result<String, KeyError> {
    let ds = key.ds(origin)?;
    Ok(format!(
        "; DNSKEY for {origin} (key tag {tag}); keiko-dns publishes it from [dnssec] keys\n\
         {origin} {TTL} IN DNSKEY {dnskey}\n\
         ; DS for the parent zone (digest type 2, SHA-256)\n\
         {origin} {TTL} IN DS {ds}\n",
        tag = key.key_tag,
        dnskey = key.dnskey,
    ))
}

/// `ds`'s records: one DS per key, in config order, each after a comment
/// naming its file and role.
fn ds_records(keys: &[ZoneKey], origin: &Name) -> Result<String, KeyError> {
    let mut out = String::new();
    for (i, key) in keys.iter().enumerate() {
        let role = if i == 0 { "signs" } else { "published only" };
        out += &format!(
            "; key tag {} ({role}) from {}\n{origin} {TTL} IN DS {}\n",
            key.key_tag,
            key.path.display(),
            key.ds(origin)?
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_absolute_lowercase_names() {
        assert_eq!(
            parse_origin("Keiko.Example.COM").unwrap().to_string(),
            "keiko.example.com."
        );
        assert_eq!(
            parse_origin("keiko.example.com.").unwrap().to_string(),
            "keiko.example.com."
        );
        for bad in ["", ".", "a..b", &"x".repeat(64)] {
            assert!(parse_origin(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Keys in a temp dir, written as `keygen` writes them.
    fn keys_in(dir: &Path, n: usize) -> Vec<ZoneKey> {
        (0..n)
            .map(|i| {
                let path = dir.join(format!("k{i}.pem"));
                keys::write_new(&path, &keys::generate_pem().unwrap()).unwrap();
                keys::load_key(&path).unwrap()
            })
            .collect()
    }

    #[test]
    fn keygen_prints_the_dnskey_and_a_ds_that_covers_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = keys_in(dir.path(), 1).remove(0);
        let origin = parse_origin("keiko.example.com").unwrap();
        let text = key_records(&key, &origin).unwrap();
        let records: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| !l.starts_with(';'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(records.len(), 2, "{text}");
        let dnskey = &records[0];
        assert_eq!(
            dnskey[..7],
            [
                "keiko.example.com.",
                "3600",
                "IN",
                "DNSKEY",
                "257",
                "3",
                "13"
            ]
        );
        // 64 bytes of P-256 public key: 88 characters of base64.
        assert_eq!(dnskey[7].len(), 88, "{text}");
        assert_eq!(dnskey.len(), 8);
        let ds = &records[1];
        let tag = key.key_tag.to_string();
        assert_eq!(
            ds[..7],
            [
                "keiko.example.com.",
                "3600",
                "IN",
                "DS",
                tag.as_str(),
                "13",
                "2"
            ]
        );
        // The digest is the SHA-256 of owner and DNSKEY rdata (RFC 4034 5.1.4).
        let digest = key
            .dnskey
            .to_digest(&origin, hickory_proto::dnssec::DigestType::SHA256);
        let hex: String = digest
            .unwrap()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(ds[7], hex);
        assert!(text.contains(&format!("key tag {tag}")), "{text}");
    }

    #[test]
    fn ds_prints_one_record_per_key_the_signing_one_first() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys_in(dir.path(), 2);
        let origin = parse_origin("keiko.example.com.").unwrap();
        let text = ds_records(&keys, &origin).unwrap();
        let ds: Vec<&str> = text.lines().filter(|l| l.contains(" IN DS ")).collect();
        assert_eq!(ds.len(), 2, "{text}");
        for (line, key) in ds.iter().zip(&keys) {
            let tag = key.key_tag.to_string();
            assert_eq!(line.split_whitespace().nth(4), Some(tag.as_str()), "{text}");
        }
        assert!(
            text.contains("(signs)") && text.contains("(published only)"),
            "{text}"
        );
        assert_ne!(ds[0], ds[1]);
    }
}
