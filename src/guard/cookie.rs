//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018):
//! version 1, a timestamp, and SipHash-2-4 over the client cookie, the
//! version/timestamp and the client address, keyed by a 16-byte secret.
//! The secret comes from config or is generated at start, and rotates: the
//! previous one is still accepted, so no client sees a cookie go bad.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// How long a server cookie stays valid (RFC 9018 section 4.3: one hour).
const LIFETIME: u32 = 3600;
/// Tolerance for a client clock... in our case our own clock stepping back.
const FUTURE: u32 = 300;

/// The secrets that sign and check server cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieKeys {
    pub current: [u8; 16],
    pub previous: Option<[u8; 16]>,
}

impl CookieKeys {
    pub fn random() -> CookieKeys {
        CookieKeys {
            current: rand::random(),
            previous: None,
        }
    }

    /// A new random current secret; the old one is still accepted.
    pub fn rotated(&self) -> CookieKeys {
        self.rotated_to(rand::random())
    }

    /// `next` as the current secret; the old one is still accepted.
    pub fn rotated_to(&self, next: [u8; 16]) -> CookieKeys {
        CookieKeys {
            current: next,
            previous: Some(self.current),
        }
    }
}

/// The 16-byte server cookie for `client_cookie` from `client` at `now`.
pub fn server_cookie(
    key: &[u8; 16],
    client_cookie: &[u8; 8],
    client: IpAddr,
    now: u32,
) -> [u8; 16] {
    let mut cookie = [0u8; 16];
    cookie[0] = 1;
    cookie[4..8].copy_from_slice(&now.to_be_bytes());
    let hash = mac(key, client_cookie, &cookie[..8], client);
    cookie[8..].copy_from_slice(&hash.to_le_bytes());
    cookie
}

fn mac(key: &[u8; 16], client_cookie: &[u8; 8], header: &[u8], client: IpAddr) -> u64 {
    let mut h = SipHasher24::new_with_key(key);
    h.write(client_cookie);
    h.write(header);
    match client {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => h.write(&v6.octets()),
    }
    h.finish()
}

/// What a received server cookie is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ours, fresh: the client has talked to us before from this address.
    /// (Every answer carries a new server cookie, so none needs refreshing
    /// as RFC 9018 section 4.3 describes.)
    Valid,
    /// Absent, unknown version, expired or forged.
    Invalid,
}

pub fn check(
    keys: &CookieKeys,
    client_cookie: &[u8; 8],
    server: &[u8],
    client: IpAddr,
    now: u32,
) -> Verdict {
    if server.len() != 16 || server[0] != 1 {
        return Verdict::Invalid;
    }
    let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
    let age = now.wrapping_sub(stamp);
    // Serial-number arithmetic: a stamp slightly ahead shows as a huge age.
    if age > LIFETIME && age < u32::MAX - FUTURE {
        return Verdict::Invalid;
    }
    let given = u64::from_le_bytes([
        server[8], server[9], server[10], server[11], server[12], server[13], server[14],
        server[15],
    ]);
    let ok = std::iter::once(&keys.current)
        .chain(keys.previous.as_ref())
        .any(|key| mac(key, client_cookie, &server[..8], client) == given);
    if ok { Verdict::Valid } else { Verdict::Invalid }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));
    const CC: [u8; 8] = *b"clientck";
    const KEYS: CookieKeys = CookieKeys {
        current: [0x5a; 16],
        previous: None,
    };

    #[test]
    fn a_cookie_we_made_is_valid_for_its_client_only() {
        let keys = KEYS;
        let sc = server_cookie(&keys.current, &CC, CLIENT, 1_000_000);
        assert_eq!(check(&keys, &CC, &sc, CLIENT, 1_000_010), Verdict::Valid);
        let other: IpAddr = "198.51.100.8".parse().unwrap();
        assert_eq!(check(&keys, &CC, &sc, other, 1_000_010), Verdict::Invalid);
        assert_eq!(
            check(&keys, b"othercck", &sc, CLIENT, 1_000_010),
            Verdict::Invalid
        );
        let mut forged = sc;
        forged[15] ^= 1;
        assert_eq!(
            check(&keys, &CC, &forged, CLIENT, 1_000_010),
            Verdict::Invalid
        );
    }

    #[test]
    fn cookies_age_out_after_an_hour() {
        let keys = KEYS;
        let sc = server_cookie(&keys.current, &CC, CLIENT, 1_000_000);
        assert_eq!(check(&keys, &CC, &sc, CLIENT, 1_003_600), Verdict::Valid);
        assert_eq!(check(&keys, &CC, &sc, CLIENT, 1_003_700), Verdict::Invalid);
        assert_eq!(
            check(&keys, &CC, &sc, CLIENT, 999_900),
            Verdict::Valid,
            "clock stepped back"
        );
    }

    #[test]
    fn rotation_keeps_the_previous_secret() {
        let sc = server_cookie(&KEYS.current, &CC, CLIENT, 5);
        let rotated = KEYS.rotated_to([0xa5; 16]);
        assert_eq!(check(&rotated, &CC, &sc, CLIENT, 6), Verdict::Valid);
        assert_eq!(
            check(&rotated.rotated_to([0x33; 16]), &CC, &sc, CLIENT, 6),
            Verdict::Invalid
        );
        let fresh = KEYS.rotated();
        assert_eq!(fresh.previous, Some(KEYS.current));
        assert_ne!(fresh.current, KEYS.current, "a new random secret");
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn interoperates_with_rfc_9018_appendix_a() {
        let sc = server_cookie(
            &hex("e5e973e5a6b2a43f48e7dc849e37bfcf"),
            &hex("2464c4abcf10c957"),
            "198.51.100.100".parse().unwrap(),
            1559731985,
        );
        assert_eq!(sc, hex::<16>("010000005cf79f111f8130c3eee29480"));
    }

    #[test]
    fn matches_the_rfc_9018_layout() {
        let sc = server_cookie(&[0; 16], &CC, CLIENT, 0x5c13_7a2e);
        assert_eq!(&sc[..8], &[1, 0, 0, 0, 0x5c, 0x13, 0x7a, 0x2e]);
    }
}
