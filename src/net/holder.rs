//! Who holds an address: when a bind fails with "address in use", the
//! process that has the socket is found through `/proc/net/{tcp,udp}[6]`
//! (the socket's inode) and `/proc/*/fd` (which process has that inode
//! open), so the error can name it. Best effort: another user's process
//! is invisible without privileges, and then the error says so.

use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The transport of the socket looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        })
    }
}

/// A process holding a socket: its pid and command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub pid: u32,
    pub command: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// A bind refused because the address is taken, with who took it.
#[derive(Debug, thiserror::Error)]
#[error("{proto} {addr} is already in use by {}", match .holder {
    Some(h) => h.to_string(),
    None => "another process (not found in /proc: it may belong to another user)".to_owned(),
})]
pub(crate) struct InUse {
    pub proto: Proto,
    pub addr: SocketAddr,
    pub holder: Option<Holder>,
}

/// Turns an "address in use" bind error into [`InUse`] naming the holder;
/// any other error is passed on as it is.
pub(crate) fn explain(proto: Proto, addr: SocketAddr, e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        InUse {
            proto,
            addr,
            holder: find(proto, addr),
        }
        .into()
    } else {
        e.into()
    }
}

/// The process (other than this one) that has a socket bound to `addr`,
/// if it can be seen. For TCP only listening sockets count.
pub(crate) fn find(proto: Proto, addr: SocketAddr) -> Option<Holder> {
    let tables: [&str; 2] = match proto {
        Proto::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        Proto::Udp => ["/proc/net/udp", "/proc/net/udp6"],
    };
    let inodes: Vec<u64> = tables
        .iter()
        .filter_map(|t| fs::read_to_string(t).ok())
        .flat_map(|text| inodes_bound_to(&text, proto, addr))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    process_with_socket(&inodes)
}

/// The inodes of the sockets in a `/proc/net/{tcp,udp}[6]` table bound to
/// `addr` (or to the wildcard address of its family, which also covers it).
fn inodes_bound_to(table: &str, proto: Proto, addr: SocketAddr) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if proto == Proto::Tcp && *state != LISTEN {
                return None;
            }
            let bound = parse_address(local)?;
            let covers = bound.port() == addr.port()
                && (bound.ip() == addr.ip() || bound.ip().is_unspecified());
            let inode: u64 = inode.parse().ok()?;
            (covers && inode != 0).then_some(inode)
        })
        .collect()
}

/// `0100007F:14B4` (IPv4) or 32 hex digits and a port (IPv6), as the
/// kernel prints them: each 32-bit word of the address in host order.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| {
            u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                .ok()
                .map(u32::to_ne_bytes)
        })
        .collect::<Option<_>>()?;
    let ip = match words.as_slice() {
        [w] => IpAddr::V4(Ipv4Addr::from(*w)),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (chunk, w) in bytes.chunks_exact_mut(4).zip([a, b, c, d]) {
                chunk.copy_from_slice(w);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The first process (not this one) with one of `inodes` among its open
/// descriptors.
fn process_with_socket(inodes: &[u64]) -> Option<Holder> {
    let links: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let me = std::process::id();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        if pid == me {
            return None;
        }
        let holds = fs::read_dir(entry.path().join("fd"))
            .ok()?
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .any(|target| links.iter().any(|l| target.as_os_str() == l.as_str()));
        holds.then(|| Holder {
            pid,
            command: command_line(pid),
        })
    })
}

/// A process's command line, arguments separated by spaces (or `?` when
/// it cannot be read).
pub(crate) fn command_line(pid: u32) -> String {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) if !raw.is_empty() => raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(" "),
        _ => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_parse_in_host_word_order() {
        let v4 = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(
            parse_address(&format!("{v4:08X}:14B4")),
            Some("127.0.0.1:5300".parse().unwrap())
        );
        let words: String = Ipv6Addr::LOCALHOST
            .octets()
            .chunks_exact(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        assert_eq!(
            parse_address(&format!("{words}:0035")),
            Some("[::1]:53".parse().unwrap())
        );
        assert_eq!(parse_address("zz:1"), None);
        assert_eq!(parse_address("0100007F"), None);
    }

    #[test]
    fn only_listening_tcp_sockets_on_the_address_or_its_wildcard_count() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {lo:08X}:14B4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 111 1\n\
             1: {lo:08X}:14B4 {lo:08X}:9999 01 00000000:00000000 00:00000000 00000000  0 0 222 1\n\
             2: 00000000:14B4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 333 1\n\
             3: {lo:08X}:14B5 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 444 1\n"
        );
        let addr = "127.0.0.1:5300".parse().unwrap();
        assert_eq!(inodes_bound_to(&table, Proto::Tcp, addr), vec![111, 333]);
        assert_eq!(
            inodes_bound_to(&table, Proto::Udp, addr),
            vec![111, 222, 333]
        );
    }

    #[test]
    fn a_listener_of_this_test_is_found_in_another_process_only() {
        // This process's own sockets are skipped (a server never names
        // itself), so a listener held only here is not found...
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(find(Proto::Tcp, addr), None);
        // ...but the inode is in the kernel's table.
        let table = fs::read_to_string("/proc/net/tcp").unwrap();
        assert_eq!(inodes_bound_to(&table, Proto::Tcp, addr).len(), 1);
        let e = explain(Proto::Tcp, addr, io::Error::from(io::ErrorKind::AddrInUse));
        assert!(
            e.to_string().contains("already in use by another process"),
            "{e}"
        );
    }
}
