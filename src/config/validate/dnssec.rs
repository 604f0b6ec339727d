//! `[dnssec]`: the key files and the signature lifetimes.
//!
//! Each key file is read and checked here with the loader the signer uses
//! (`crate::dnssec::keys`), so whatever `check` accepts, a table build can
//! sign with.

use std::time::Duration;

use toml::Spanned;

use super::super::{Dnssec, schema};
use super::{Validator, fmt_dur};
use crate::dnssec::keys;

const DEFAULT_VALIDITY: Duration = Duration::from_secs(14 * 86_400);
const DEFAULT_REFRESH: Duration = Duration::from_secs(7 * 86_400);
/// Signatures start an hour in the past; a lifetime must outlast that
/// by a useful margin.
const MIN_VALIDITY: Duration = Duration::from_secs(2 * 3600);
/// Below this, re-signing would run almost continuously.
const MIN_REFRESH: Duration = Duration::from_secs(600);

impl Validator<'_> {
    pub(super) fn dnssec(&mut self, raw: Option<Spanned<schema::Dnssec>>) -> Option<Dnssec> {
        let d = raw?.into_inner();
        if d.keys.get_ref().is_empty() {
            self.err(
                d.keys.span(),
                "dnssec.keys",
                "is empty; allowed: one or more PKCS#8 PEM key files (`keiko-dns dnssec keygen` writes one)",
            );
        }
        let mut paths = Vec::new();
        for key in d.keys.get_ref() {
            let path = self.path(key.get_ref());
            if paths.contains(&path) {
                self.err(key.span(), "dnssec.keys", "lists this key file twice");
                continue;
            }
            if let Err(e) = keys::load_key(&path) {
                self.err(key.span(), "dnssec.keys", e.to_string());
            }
            paths.push(path);
        }
        let duration = |v: &Option<Spanned<schema::HumanDuration>>, default| {
            v.as_ref()
                .map_or((0..0, default), |v| (v.span(), v.get_ref().0))
        };
        let (validity_span, signature_validity) = duration(&d.signature_validity, DEFAULT_VALIDITY);
        let (refresh_span, refresh) = duration(&d.refresh, DEFAULT_REFRESH);
        if signature_validity < MIN_VALIDITY {
            self.err(
                validity_span,
                "dnssec.signature_validity",
                format!(
                    "{} is too short; allowed: {} or longer (inception is an hour in the past)",
                    fmt_dur(signature_validity),
                    fmt_dur(MIN_VALIDITY)
                ),
            );
        } else if refresh >= signature_validity || refresh < MIN_REFRESH {
            self.err(
                refresh_span,
                "dnssec.refresh",
                format!(
                    "{} is not allowed; allowed: at least {} and less than signature_validity ({})",
                    fmt_dur(refresh),
                    fmt_dur(MIN_REFRESH),
                    fmt_dur(signature_validity)
                ),
            );
        }
        Some(Dnssec {
            keys: paths,
            signature_validity,
            refresh,
        })
    }
}
