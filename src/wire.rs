//! The DNS wire format's numbers and its one name walker, shared by the
//! parser and answer writer (`dataplane`) and the pre-encoded answers and
//! zone lookup (`snapshot`). Only what keiko-dns reads or writes by hand is
//! here; everything else goes through hickory-proto.

/// The fixed header in front of every message (RFC 1035 4.1.1).
pub(crate) const HEADER_LEN: usize = 12;
/// The longest name in wire form, length bytes and root label included.
pub(crate) const MAX_NAME: usize = 255;

// Header flags, in the second header word.
pub(crate) const FLAG_QR: u16 = 0x8000;
pub(crate) const OPCODE_MASK: u16 = 0x7800;
pub(crate) const FLAG_AA: u16 = 0x0400;
pub(crate) const FLAG_TC: u16 = 0x0200;
pub(crate) const FLAG_RD: u16 = 0x0100;
pub(crate) const FLAG_CD: u16 = 0x0010;

// Response codes (the header's four bits).
pub(crate) const NOERROR: u8 = 0;
pub(crate) const SERVFAIL: u8 = 2;
pub(crate) const NXDOMAIN: u8 = 3;

// Classes.
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_CH: u16 = 3;

// Record types.
pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_TXT: u16 = 16;
pub(crate) const TYPE_AAAA: u16 = 28;
pub(crate) const TYPE_OPT: u16 = 41;
pub(crate) const TYPE_NSEC: u16 = 47;
pub(crate) const TYPE_TSIG: u16 = 250;
pub(crate) const TYPE_IXFR: u16 = 251;
pub(crate) const TYPE_AXFR: u16 = 252;
pub(crate) const TYPE_ANY: u16 = 255;

// EDNS options (RFC 6891 registry).
pub(crate) const OPTION_NSID: u16 = 3;
pub(crate) const OPTION_SUBNET: u16 = 8;
pub(crate) const OPTION_COOKIE: u16 = 10;

/// TSIG error: the key is unknown (RFC 8945 5.2).
pub(crate) const TSIG_BADKEY: u16 = 17;

/// The top two bits of a 16-bit compression pointer (RFC 1035 4.1.4).
pub(crate) const POINTER: u16 = 0xc000;

/// How a wire-form name ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameEnd {
    /// With the root label; the name's bytes end just before `end`.
    Root { end: usize },
    /// With a compression pointer at `at` to offset `target`; the name's
    /// bytes end at `at + 2`.
    Pointer { at: usize, target: usize },
}

impl NameEnd {
    /// The offset just past the name.
    pub(crate) fn end(self) -> usize {
        match self {
            NameEnd::Root { end } => end,
            NameEnd::Pointer { at, .. } => at + 2,
        }
    }
}

/// Walks the wire-form name at `start` in `bytes` without following
/// compression pointers (so a pointer loop cannot trap anyone): calls
/// `label` with the offset of every label's length byte, the root label's
/// included, and says how the name ends. `None` when the name runs past
/// `bytes`, uses a retired label type (`0x40`, `0x80`), or its labels take
/// more than [`MAX_NAME`] bytes.
pub(crate) fn walk_name(
    bytes: &[u8],
    start: usize,
    mut label: impl FnMut(usize),
) -> Option<NameEnd> {
    let mut at = start;
    loop {
        let len = *bytes.get(at)?;
        match len & 0xc0 {
            0 => {
                let next = at + 1 + usize::from(len);
                if next - start > MAX_NAME {
                    return None;
                }
                label(at);
                if len == 0 {
                    return Some(NameEnd::Root { end: next });
                }
                at = next;
            }
            0xc0 => {
                let target = usize::from(len & 0x3f) << 8 | usize::from(*bytes.get(at + 1)?);
                return Some(NameEnd::Pointer { at, target });
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(bytes: &[u8], start: usize) -> (Vec<usize>, Option<NameEnd>) {
        let mut seen = Vec::new();
        let end = walk_name(bytes, start, |at| seen.push(at));
        (seen, end)
    }

    #[test]
    fn a_name_is_walked_label_by_label_to_the_root() {
        let name = b"..\x03www\x07example\x00rest";
        assert_eq!(
            labels(name, 2),
            (vec![2, 6, 14], Some(NameEnd::Root { end: 15 }))
        );
        assert_eq!(
            labels(b"\x00", 0),
            (vec![0], Some(NameEnd::Root { end: 1 }))
        );
    }

    #[test]
    fn a_pointer_ends_the_name_and_is_not_followed() {
        let name = b"\x03www\xc0\x0c";
        let (seen, end) = labels(name, 0);
        assert_eq!(seen, vec![0]);
        assert_eq!(end, Some(NameEnd::Pointer { at: 4, target: 12 }));
        assert_eq!(end.map(NameEnd::end), Some(6));
        assert_eq!(
            labels(b"\xc1\x02", 0).1,
            Some(NameEnd::Pointer {
                at: 0,
                target: 0x102
            })
        );
    }

    #[test]
    fn truncated_retired_and_overlong_names_are_refused() {
        assert_eq!(labels(b"\x03ww", 0).1, None, "label past the end");
        assert_eq!(labels(b"\x03www", 0).1, None, "no root label");
        assert_eq!(labels(b"\x03www\xc0", 0).1, None, "half a pointer");
        assert_eq!(labels(b"\x41abc\x00", 0).1, None, "extended label type");
        assert_eq!(labels(b"\x81abc\x00", 0).1, None, "reserved label type");
        // 4 labels of 63 bytes: 256 bytes with the root, one too many; 3 of
        // 63 and one of 61 make exactly 255.
        let name = |last: u8| {
            let mut n = Vec::new();
            for len in [63, 63, 63, last] {
                n.push(len);
                n.extend(std::iter::repeat_n(b'a', len.into()));
            }
            n.push(0);
            n
        };
        assert_eq!(labels(&name(62), 0).1, None);
        assert_eq!(labels(&name(61), 0).1, Some(NameEnd::Root { end: 255 }));
    }
}
