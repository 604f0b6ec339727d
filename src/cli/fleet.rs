//! `keiko-dns fleet certs`: a fleet CA and a certificate and key per
//! instance, for labs and small deployments (docs/reference.md §1.2).
//! Production issues them from its own PKI; this only has to make files
//! that `[fleet]` accepts, which is checked before anything is written.
//!
//! The CA's key is kept beside its certificate so a later run into the
//! same folder issues more instances under the same CA; an existing CA is
//! never replaced by accident.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Fleet, Quorum};
use crate::tls::TlsError;
use crate::tls::peer::{PeerTls, instance_name_problem};

/// The CA's subject. Fixed, so that the CA of an earlier run can sign
/// again from its key alone (an issuer is its subject name plus its key).
const CA_NAME: &str = "keiko-dns fleet CA";
/// The port the printed `[fleet]` lines suggest.
const SUGGESTED_PORT: u16 = 9443;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum FleetCommand {
    /// Write a fleet CA and a certificate and key per instance, for labs.
    ///
    /// Writes DIR/ca.pem and DIR/ca.key (the CA; its key stays with you,
    /// to issue more instances later: a later run into DIR reuses it), and
    /// per NAME: DIR/NAME.pem (certificate, then the CA) and DIR/NAME.key
    /// (PKCS#8, mode 0600). Each certificate names NAME and localhost, and
    /// every --ip, for server and client authentication. Prints the
    /// [fleet] lines of each instance.
    #[command(after_help = EXIT_CODES_CERTS)]
    Certs(CertsArgs),
}

const EXIT_CODES_CERTS: &str = "Exit codes:
  0  written
  1  a file exists (nothing is written; --force overwrites instance files), or a
     file cannot be read or written
  2  a NAME is not a DNS name in lower case, or the command line is wrong";

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// The folder to write to (created when missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Each instance's name, its fleet.instance (e.g. ns1.us-east-1)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// An IP address every certificate also carries, for peer URLs with an IP host
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// Overwrite existing instance files (an existing CA is always reused)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, thiserror::Error)]
enum CertsError {
    #[error("{0}")]
    BadName(String),
    #[error(
        "{} already exist{}; nothing was written (pass --force to overwrite instance files)",
        list(.0), if .0.len() == 1 { "s" } else { "" }
    )]
    Exists(Vec<PathBuf>),
    #[error(
        "{} exists without {}; remove it to make a new CA, or pass --force to replace it",
        present.display(), missing.display()
    )]
    HalfCa { present: PathBuf, missing: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a PEM CA certificate and ca.key its PKCS#8 key: {why}", path.display())]
    CaFiles { path: PathBuf, why: String },
    #[error("cannot make a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error(
        "the certificate for {name} does not pass the [fleet] checks ({source}); \
         is {} the CA of an earlier `keiko-dns fleet certs`?",
        ca.display()
    )]
    Check {
        name: String,
        ca: PathBuf,
        #[source]
        source: Box<TlsError>,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn run(args: &Args) -> ExitCode {
    let FleetCommand::Certs(certs_args) = &args.command;
    match certs(certs_args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keiko-dns fleet certs: {e}");
            ExitCode::from(match e {
                CertsError::BadName(_) => 2,
                _ => 1,
            })
        }
    }
}

/// The fleet CA: its certificate as written, and what signs with it.
struct FleetCa {
    der: CertificateDer<'static>,
    pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Made now (to be written) rather than read from the folder.
    new: bool,
}

/// One instance's files, made and checked, not yet written.
struct Leaf {
    name: String,
    chain_pem: String,
    key_pem: String,
}

fn certs(args: &CertsArgs) -> Result<(), CertsError> {
    let mut names: Vec<&str> = Vec::new();
    for name in &args.names {
        if let Some(problem) = instance_name_problem(name) {
            return Err(CertsError::BadName(problem));
        }
        if names.contains(&name.as_str()) {
            return Err(CertsError::BadName(format!("{name:?} is given twice")));
        }
        names.push(name);
    }
    fs::create_dir_all(&args.out).map_err(|source| CertsError::Write {
        path: args.out.clone(),
        source,
    })?;
    let dir = fs::canonicalize(&args.out).map_err(|source| CertsError::Read {
        path: args.out.clone(),
        source,
    })?;
    let ca_pem_path = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let existing: Vec<PathBuf> = names
        .iter()
        .flat_map(|n| [dir.join(format!("{n}.pem")), dir.join(format!("{n}.key"))])
        .filter(|p| p.exists())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(CertsError::Exists(existing));
    }
    let ca = match (ca_pem_path.exists(), ca_key_path.exists()) {
        (true, true) => read_ca(&ca_pem_path, &ca_key_path)?,
        (false, false) => new_ca()?,
        _ if args.force => new_ca()?,
        (true, false) => {
            return Err(CertsError::HalfCa {
                present: ca_pem_path,
                missing: ca_key_path,
            });
        }
        (false, true) => {
            return Err(CertsError::HalfCa {
                present: ca_key_path,
                missing: ca_pem_path,
            });
        }
    };
    // Every certificate is made and checked before any file is written.
    let leaves = names
        .iter()
        .map(|name| issue(&ca, name, &args.ips, &dir))
        .collect::<Result<Vec<_>, _>>()?;

    if ca.new {
        write_file(&ca_pem_path, &ca.pem, 0o644, args.force)?;
        write_file(&ca_key_path, &ca.key_pem, 0o600, args.force)?;
        println!(
            "wrote {}  (the fleet CA: every instance needs it)",
            ca_pem_path.display()
        );
        println!(
            "wrote {}  (the CA's key, mode 0600: keep it here to issue more instances; no instance needs it)",
            ca_key_path.display()
        );
    } else {
        println!("using the fleet CA in {}", ca_pem_path.display());
    }
    let ips: Vec<String> = args.ips.iter().map(IpAddr::to_string).collect();
    for leaf in &leaves {
        let pem = dir.join(format!("{}.pem", leaf.name));
        let key = dir.join(format!("{}.key", leaf.name));
        write_file(&pem, &leaf.chain_pem, 0o644, args.force)?;
        write_file(&key, &leaf.key_pem, 0o600, args.force)?;
        let mut sans = vec![leaf.name.clone()];
        if leaf.name != "localhost" {
            sans.push("localhost".to_owned());
        }
        sans.extend(ips.iter().cloned());
        println!(
            "wrote {}  ({}: names {})",
            pem.display(),
            leaf.name,
            sans.join(", ")
        );
        println!("wrote {}  (its key, mode 0600)", key.display());
    }
    for leaf in &leaves {
        print_fleet_section(leaf, &names, &dir);
    }
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    // Instance certificates only, no intermediate CAs below it.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn new_ca() -> Result<FleetCa, CertsError> {
    let key = KeyPair::generate()?;
    let params = ca_params();
    let cert = params.self_signed(&key)?;
    let key_pem = key.serialize_pem();
    Ok(FleetCa {
        der: cert.der().clone(),
        pem: cert.pem(),
        key_pem,
        issuer: Issuer::new(params, key),
        new: true,
    })
}

/// The CA of an earlier run. Whether its certificate and key belong
/// together shows when the first certificate issued from them is checked.
fn read_ca(pem_path: &Path, key_path: &Path) -> Result<FleetCa, CertsError> {
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| CertsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let pem = read(pem_path)?;
    let key_pem = read(key_path)?;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| CertsError::CaFiles {
        path: pem_path.to_owned(),
        why: e.to_string(),
    })?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| CertsError::CaFiles {
        path: pem_path.to_owned(),
        why: format!("{}: {e}", key_path.display()),
    })?;
    Ok(FleetCa {
        der,
        pem,
        key_pem,
        issuer: Issuer::new(ca_params(), key),
        new: false,
    })
}

/// Makes `name`'s certificate and key and runs the checks `[fleet]`
/// validation runs on them.
fn issue(ca: &FleetCa, name: &str, ips: &[IpAddr], dir: &Path) -> Result<Leaf, CertsError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let mut sans = vec![SanType::DnsName(name.try_into()?)];
    if name != "localhost" {
        sans.push(SanType::DnsName("localhost".try_into()?));
    }
    sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    let key_pem = key.serialize_pem();

    let fleet = Fleet {
        instance: name.to_owned(),
        listen: SocketAddr::from(([0, 0, 0, 0], SUGGESTED_PORT)),
        peers: Vec::new(),
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join(format!("{name}.pem")),
        key_file: dir.join(format!("{name}.key")),
        down_quorum: Quorum::Majority,
        peer_timeout: Duration::from_secs(10),
    };
    let check = |source| CertsError::Check {
        name: name.to_owned(),
        ca: fleet.ca_file.clone(),
        source: Box::new(source),
    };
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        check(TlsError::KeyFilePem {
            path: fleet.key_file.clone(),
            reason: e.to_string(),
        })
    })?;
    PeerTls::build(
        &fleet,
        std::slice::from_ref(&ca.der),
        vec![cert.der().clone(), ca.der.clone()],
        key_der,
    )
    .map_err(check)?;
    Ok(Leaf {
        name: name.to_owned(),
        chain_pem: format!("{}{}", cert.pem(), ca.pem),
        key_pem,
    })
}

/// Writes `text` to `path` with `mode`. The mode is set before anything
/// is written, so a key is never readable by others, even for a moment,
/// even when it replaces a looser file.
fn write_file(path: &Path, text: &str, mode: u32, overwrite: bool) -> Result<(), CertsError> {
    let failed = |source| CertsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(failed)?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

fn print_fleet_section(leaf: &Leaf, names: &[&str], dir: &Path) {
    let peers: Vec<String> = names
        .iter()
        .filter(|n| **n != leaf.name)
        .map(|n| format!("\"https://{n}:{SUGGESTED_PORT}\""))
        .collect();
    let file = |ext: &str| dir.join(format!("{}.{ext}", leaf.name));
    println!();
    println!(
        "# on {}: copy ca.pem, {}.pem and {}.key to it (the key stays mode 0600)",
        leaf.name, leaf.name, leaf.name
    );
    println!("# peers: the others' endpoints; each host must be a name of that peer's certificate");
    println!("[fleet]");
    println!("instance  = {:?}", leaf.name);
    println!("listen    = \"0.0.0.0:{SUGGESTED_PORT}\"");
    println!("peers     = [{}]", peers.join(", "));
    println!("ca_file   = {:?}", dir.join("ca.pem").display().to_string());
    println!("cert_file = {:?}", file("pem").display().to_string());
    println!("key_file  = {:?}", file("key").display().to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_run_issues_under_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let args = |names: &[&str], force| CertsArgs {
            out: dir.path().join("fleet"),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            ips: vec!["127.0.0.1".parse().unwrap()],
            force,
        };
        certs(&args(&["ns1.test", "ns2.test"], false)).unwrap();
        let out = dir.path().join("fleet");
        let ca_before = fs::read(out.join("ca.pem")).unwrap();
        let mode = |f: &str| fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("ns1.test.key"), 0o600);

        // ns3 later: the same CA, checked against it.
        certs(&args(&["ns3.test"], false)).unwrap();
        assert_eq!(fs::read(out.join("ca.pem")).unwrap(), ca_before);
        let err = certs(&args(&["ns3.test"], false)).unwrap_err();
        assert!(
            matches!(err, CertsError::Exists(ref p) if p.len() == 2),
            "{err}"
        );

        // A replaced key looser than 0600 comes back 0600.
        fs::set_permissions(out.join("ns3.test.key"), fs::Permissions::from_mode(0o644)).unwrap();
        certs(&args(&["ns3.test"], true)).unwrap();
        assert_eq!(mode("ns3.test.key"), 0o600);
        assert_eq!(fs::read(out.join("ca.pem")).unwrap(), ca_before);

        // A CA that is not ours cannot sign for this folder.
        let other = tempfile::tempdir().unwrap();
        let foreign = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        fs::write(other.path().join("ca.pem"), foreign.cert.pem()).unwrap();
        fs::write(
            other.path().join("ca.key"),
            foreign.signing_key.serialize_pem(),
        )
        .unwrap();
        let err = certs(&CertsArgs {
            out: other.path().to_owned(),
            names: vec!["ns1.test".to_owned()],
            ips: Vec::new(),
            force: false,
        })
        .unwrap_err();
        assert!(matches!(err, CertsError::Check { .. }), "{err}");
        assert!(!other.path().join("ns1.test.pem").exists());

        let err = certs(&args(&["Bad_Name"], false)).unwrap_err();
        assert!(matches!(err, CertsError::BadName(_)), "{err}");
    }
}
