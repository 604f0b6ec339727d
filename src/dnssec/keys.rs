//! The zone's keys: ECDSA P-256 (algorithm 13) private keys in PKCS#8 PEM
//! files, each published as a combined signing key (DNSKEY flags 257).
//!
//! The same loader serves `check`, start, reload and `keiko-dns dnssec`,
//! so a key file that passes `check` is one the signer can use.

use std::path::{Path, PathBuf};

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, SigningKey};
use hickory_proto::rr::Name;
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;

/// The only algorithm keiko-dns signs with (RFC 8624: MUST implement,
/// recommended for signing).
pub const ALGORITHM: Algorithm = Algorithm::ECDSAP256SHA256;
/// Zone key and secure entry point: one key signs everything.
pub const FLAGS: u16 = 257;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read DNSSEC key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "DNSSEC key {} is readable by others (mode {mode:03o}); allowed: no access for others (chmod 600, or 640 for a group such as a Kubernetes fsGroup)",
        path.display()
    )]
    Mode { path: PathBuf, mode: u32 },
    #[error(
        "DNSSEC key {} is not a PKCS#8 PEM private key ({reason}); allowed: a \"BEGIN PRIVATE KEY\" file as `keiko-dns dnssec keygen` writes",
        path.display()
    )]
    Pem { path: PathBuf, reason: String },
    #[error(
        "DNSSEC key {} is not an ECDSA P-256 key; allowed: algorithm 13 (ECDSAP256SHA256) only",
        path.display()
    )]
    Algorithm { path: PathBuf },
    #[error("cannot generate a DNSSEC key: {0}")]
    Generate(String),
    #[error("cannot write DNSSEC key {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One loaded key.
pub struct ZoneKey {
    pub path: PathBuf,
    pub dnskey: DNSKEY,
    pub key_tag: u16,
    signing: EcdsaSigningKey,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey")
            .field("path", &self.path)
            .field("key_tag", &self.key_tag)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    pub fn signing_key(&self) -> &dyn SigningKey {
        &self.signing
    }

    /// The DS record for the parent zone (digest type 2, SHA-256).
    pub fn ds(&self, origin: &Name) -> Result<DS, KeyError> {
        let digest = self
            .dnskey
            .to_digest(origin, DigestType::SHA256)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(DS::new(
            self.key_tag,
            ALGORITHM,
            DigestType::SHA256,
            digest.as_ref().to_vec(),
        ))
    }

    /// CDS (RFC 7344): the DS the parent should hold, published in the zone.
    pub fn cds(&self, origin: &Name) -> Result<CDS, KeyError> {
        let ds = self.ds(origin)?;
        Ok(CDS::new(
            ds.key_tag(),
            Some(ds.algorithm()),
            ds.digest_type(),
            ds.digest().to_vec(),
        ))
    }

    pub fn cdnskey(&self) -> CDNSKEY {
        CDNSKEY::with_flags(
            FLAGS,
            Some(ALGORITHM),
            self.dnskey.public_key().public_bytes().to_vec(),
        )
    }
}

/// Loads every key in order; the first is the one that signs.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<ZoneKey>, KeyError> {
    paths.iter().map(|p| load_key(p)).collect()
}

/// Reads and checks one key file.
pub fn load_key(path: &Path) -> Result<ZoneKey, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    check_mode(path)?;
    let der = PrivatePkcs8KeyDer::from_pem_slice(&bytes).map_err(|e| KeyError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let signing =
        EcdsaSigningKey::from_pkcs8(&der, ALGORITHM).map_err(|_| KeyError::Algorithm {
            path: path.to_owned(),
        })?;
    let public = signing.to_public_key().map_err(|_| KeyError::Algorithm {
        path: path.to_owned(),
    })?;
    let dnskey = DNSKEY::from_key(&public);
    let key_tag = dnskey
        .calculate_key_tag()
        .map_err(|_| KeyError::Algorithm {
            path: path.to_owned(),
        })?;
    Ok(ZoneKey {
        path: path.to_owned(),
        dnskey,
        key_tag,
        signing,
    })
}

/// A new key as PKCS#8 PEM text.
pub fn generate_pem() -> Result<String, KeyError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(key.serialize_pem())
}

/// Writes `pem` to `path`, readable by its owner only; never replaces an
/// existing file (a lost signing key is a zone gone bogus).
pub fn write_new(path: &Path, pem: &str) -> Result<(), KeyError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write_err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = options.open(path).map_err(write_err)?;
    file.write_all(pem.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(KeyError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path, name: &str, pem: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_generated_key_loads_with_flags_257_and_algorithm_13() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_new(&path, &generate_pem().unwrap()).unwrap();
        let key = load_key(&path).unwrap();
        assert_eq!(key.dnskey.flags(), FLAGS);
        assert_eq!(key.dnskey.public_key().algorithm(), ALGORITHM);
        let origin = Name::from_ascii("keiko.example.com.").unwrap();
        let ds = key.ds(&origin).unwrap();
        assert_eq!(ds.key_tag(), key.key_tag);
        assert!(ds.covers(&origin, &key.dnskey).unwrap());
        assert!(write_new(&path, "x").is_err(), "never overwrites a key");
    }

    #[test]
    fn bad_key_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(load_key(&missing), Err(KeyError::Read { .. })));
        let good = generate_pem().unwrap();
        let open = key_file(dir.path(), "open.pem", &good, 0o644);
        let e = load_key(&open).unwrap_err();
        assert!(matches!(e, KeyError::Mode { .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"));
        let junk = key_file(dir.path(), "junk.pem", "not a key\n", 0o600);
        assert!(matches!(load_key(&junk), Err(KeyError::Pem { .. })));
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ed = key_file(dir.path(), "ed.pem", &ed.serialize_pem(), 0o600);
        assert!(matches!(load_key(&ed), Err(KeyError::Algorithm { .. })));
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let p384 = key_file(dir.path(), "p384.pem", &p384.serialize_pem(), 0o600);
        assert!(matches!(load_key(&p384), Err(KeyError::Algorithm { .. })));
    }
}
