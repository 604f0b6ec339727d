//! The DNS client side: building queries (hickory's `Message`, with EDNS
//! and Client Subnet options), exchanging them over UDP and TCP with a
//! running [`Server`], and reading and asserting on the answers.
//!
//! Packets only ever go to 127.0.0.1 or ::1.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

/// Re-exported for the tests' assertions on answer codes.
pub use hickory_proto::op::ResponseCode;

use super::fixtures::{FAILOVER_NAME, ORIGIN, REGIONS, Region};
use super::process::{Server, wait_until};

/// The server's own EDNS UDP payload size (DNS Flag Day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// How long a UDP client waits for one answer before trying again.
const UDP_TIMEOUT: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// `name` relative to the origin, fully qualified ("@" is the apex).
pub fn fqdn(name: &str) -> String {
    match name {
        "@" | "" => ORIGIN.to_string(),
        n if n.ends_with('.') => n.to_string(),
        n => format!("{n}.{ORIGIN}"),
    }
}

/// Query construction on hickory's `Message`.
pub trait QueryExt {
    /// A query for `name` (taken literally, so its case is kept) without RD.
    fn query_for(name: &str, rtype: RecordType) -> Message;
    /// The same query with an EDNS(0) OPT record advertising `payload`.
    fn with_edns(self, payload: u16) -> Message;
    /// Adds an EDNS option (and an OPT record advertising 1232 if there is
    /// none yet).
    fn with_option(self, option: EdnsOption) -> Message;
    /// Adds an EDNS Client Subnet option (RFC 7871) for `addr/prefix`.
    fn with_subnet(self, addr: IpAddr, prefix: u8) -> Message;
    fn bytes(&self) -> Vec<u8>;
}

impl QueryExt for Message {
    fn query_for(name: &str, rtype: RecordType) -> Message {
        let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad name {name:?}: {e}"));
        let mut m = Message::query();
        m.add_query(Query::query(name, rtype));
        m
    }

    fn with_edns(mut self, payload: u16) -> Message {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        self.set_edns(edns);
        self
    }

    fn with_option(self, option: EdnsOption) -> Message {
        let mut m = if self.edns.is_some() {
            self
        } else {
            self.with_edns(EDNS_PAYLOAD)
        };
        m.edns.as_mut().unwrap().options_mut().insert(option);
        m
    }

    fn with_subnet(self, addr: IpAddr, prefix: u8) -> Message {
        self.with_option(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)))
    }

    fn bytes(&self) -> Vec<u8> {
        self.to_vec().expect("encode query")
    }
}

/// The EDNS Client Subnet option of an answer, if any.
pub fn answer_subnet(m: &Message) -> Option<ClientSubnet> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(subnet) => Some(*subnet),
        other => panic!("subnet option that does not parse: {other:?}"),
    }
}

/// A UDP socket connected to the server, reused across queries.
pub struct UdpClient {
    socket: UdpSocket,
}

impl UdpClient {
    pub fn new(server: SocketAddr, timeout: Duration) -> UdpClient {
        let local: IpAddr = match server {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        assert!(server.ip().is_loopback(), "tests only talk to loopback");
        let socket = UdpSocket::bind((local, 0)).expect("bind UDP client");
        socket.connect(server).expect("connect UDP client");
        socket.set_read_timeout(Some(timeout)).unwrap();
        UdpClient { socket }
    }

    pub fn query(&self, name: &str, rtype: RecordType) -> Message {
        self.exchange(&Message::query_for(&fqdn(name), rtype))
    }

    /// Sends `query` and returns the answer with its ID; tries 3 times.
    pub fn exchange(&self, query: &Message) -> Message {
        for _ in 0..3 {
            if let Some(answer) = self.try_exchange(query) {
                return answer;
            }
        }
        panic!("no UDP answer to {:?}", query.queries);
    }

    /// One attempt: None on timeout. Answers to other IDs are skipped.
    pub fn try_exchange(&self, query: &Message) -> Option<Message> {
        self.send(&query.bytes());
        loop {
            let raw = self.recv()?;
            let answer = parse(&raw);
            if answer.metadata.id == query.metadata.id {
                return Some(answer);
            }
        }
    }

    /// Sends raw bytes; the first datagram back, or None after the timeout.
    pub fn raw(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.send(bytes);
        self.recv()
    }

    pub fn send(&self, bytes: &[u8]) {
        // ECONNREFUSED can surface here from an earlier ICMP; it is not about
        // this datagram, so it is ignored (the answer, if any, tells).
        let _ = self.socket.send(bytes);
    }

    /// The next datagram, or None after the timeout.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65535];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => return Some(buf[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn set_timeout(&self, timeout: Duration) {
        self.socket.set_read_timeout(Some(timeout)).unwrap();
    }
}

/// Parses an answer, panicking with the bytes when it is not valid DNS.
pub fn parse(raw: &[u8]) -> Message {
    Message::from_vec(raw).unwrap_or_else(|e| panic!("unparseable answer ({e}): {raw:02x?}"))
}

/// Opens a TCP connection to the server with generous timeouts.
pub fn tcp_connect(server: SocketAddr) -> TcpStream {
    assert!(server.ip().is_loopback(), "tests only talk to loopback");
    let stream = TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("TCP connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `bytes` with the two-byte length prefix of DNS over TCP.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("message fits TCP");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    framed
}

/// Reads one length-prefixed message.
pub fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// One query on a fresh TCP connection.
pub fn tcp_exchange(server: SocketAddr, query: &Message) -> Message {
    let mut stream = tcp_connect(server);
    stream.write_all(&frame(&query.bytes())).expect("TCP write");
    let answer = parse(&read_frame(&mut stream).expect("TCP read"));
    assert_eq!(answer.metadata.id, query.metadata.id, "TCP answer ID");
    answer
}

// ---------------------------------------------------------------------------
// Reading answers
// ---------------------------------------------------------------------------

/// A/AAAA addresses of the answer section, in order.
pub fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// The response code including EDNS extended bits (BADVERS is 16).
pub fn rcode(m: &Message) -> u16 {
    m.metadata.response_code.into()
}

/// Asserts the answer is an authoritative NOERROR with exactly `expected`.
pub fn assert_addresses(m: &Message, expected: &[IpAddr]) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:#?}");
    assert!(m.metadata.authoritative, "AA must be set: {m:#?}");
    assert_eq!(addresses(m), expected, "{m:#?}");
}

/// Asserts a negative answer (NXDOMAIN or NODATA): no answers, and the
/// zone's SOA alone in the authority section with the RFC 2308 TTL.
pub fn assert_negative(m: &Message, code: ResponseCode, negative_ttl: u32) {
    assert_eq!(m.metadata.response_code, code, "{m:#?}");
    assert!(m.metadata.authoritative, "AA must be set: {m:#?}");
    assert!(!m.metadata.recursion_available, "RA must be clear: {m:#?}");
    assert!(m.answers.is_empty(), "no answers expected: {m:#?}");
    assert_eq!(m.authorities.len(), 1, "SOA alone in authority: {m:#?}");
    let soa = &m.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA, "{m:#?}");
    assert_eq!(soa.name, Name::from_ascii(ORIGIN).unwrap(), "{m:#?}");
    assert_eq!(
        soa.ttl, negative_ttl,
        "negative TTL = min(SOA TTL, MINIMUM)"
    );
}

/// Draws `n` answers for `name` over one socket and returns the share of
/// each region's IPv4 address, in percent, in `REGIONS` order.
pub fn shares(client: &UdpClient, name: &str, n: usize) -> [f64; 3] {
    let mut counts = [0usize; 3];
    for _ in 0..n {
        let answer = client.query(name, RecordType::A);
        let addrs = addresses(&answer);
        assert_eq!(
            addrs.len(),
            1,
            "one address per steered answer: {answer:#?}"
        );
        let i = REGIONS
            .iter()
            .position(|r| IpAddr::V4(r.v4) == addrs[0])
            .unwrap_or_else(|| panic!("answer from no region: {answer:#?}"));
        counts[i] += 1;
    }
    counts.map(|c| 100.0 * c as f64 / n as f64)
}

/// Asserts `actual` shares are each within `tolerance` percentage points
/// of `expected`.
pub fn assert_shares(actual: [f64; 3], expected: [f64; 3], tolerance: f64) {
    for ((a, e), r) in actual.iter().zip(expected).zip(REGIONS) {
        assert!(
            (a - e).abs() <= tolerance,
            "{}: {a:.2}% instead of {e}% ± {tolerance} (all: {actual:.2?})",
            r.name
        );
    }
}

/// The expected weighted shares for `regions`, in percent.
pub fn weight_shares(regions: &[Region; 3]) -> [f64; 3] {
    let total: u32 = regions.iter().map(|r| r.weight).sum();
    regions.map(|r| 100.0 * f64::from(r.weight) / f64::from(total))
}

/// The test regions with eu-west-1 first in failover order, so a reload
/// The failover name answers with `region`'s IPv4 address.
pub fn assert_failover_to(server: &Server, region: &Region) {
    assert_addresses(
        &server.query_udp(FAILOVER_NAME, RecordType::A),
        &[region.v4.into()],
    );
}

/// The DNS side of a running server.
impl Server {
    pub fn dns_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ws.dns_port))
    }

    /// The DNS port on ::1 (only served when the config listens there).
    pub fn dns_addr_v6(&self) -> SocketAddr {
        SocketAddr::from((Ipv6Addr::LOCALHOST, self.ws.dns_port))
    }

    pub fn udp(&self) -> UdpClient {
        UdpClient::new(self.dns_addr(), UDP_TIMEOUT)
    }

    pub fn query_udp(&self, name: &str, rtype: RecordType) -> Message {
        self.udp().query(name, rtype)
    }

    pub fn query_tcp(&self, name: &str, rtype: RecordType) -> Message {
        tcp_exchange(self.dns_addr(), &Message::query_for(&fqdn(name), rtype))
    }

    pub fn exchange_udp(&self, query: &Message) -> Message {
        self.udp().exchange(query)
    }

    pub fn exchange_tcp(&self, query: &Message) -> Message {
        tcp_exchange(self.dns_addr(), query)
    }

    /// Sends raw bytes over UDP; the raw answer, or None after a timeout.
    pub fn raw_udp(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        UdpClient::new(self.dns_addr(), UDP_TIMEOUT).raw(bytes)
    }

    /// The first IPv4 address of the A answer for `name`.
    pub fn answer_v4(&self, name: &str) -> IpAddr {
        let answer = self.query_udp(name, RecordType::A);
        *addresses(&answer)
            .first()
            .unwrap_or_else(|| panic!("no address for {name}: {answer:#?}"))
    }

    /// Polls `name` (A) every 10 ms until the answer is `want`; the time
    /// it took, or None after `timeout`.
    pub fn wait_for_answer(&self, name: &str, want: IpAddr, timeout: Duration) -> Option<Duration> {
        let client = self.udp();
        wait_until(timeout, Duration::from_millis(10), || {
            let answer = client.query(name, RecordType::A);
            (addresses(&answer).first() == Some(&want)).then_some(())
        })
        .map(|((), d)| d)
    }
}
