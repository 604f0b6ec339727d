//! The prober's own stub resolver, for the host names of CNAME regions
//! (docs/reference.md §6.1): an A query (then AAAA when there is no A) to
//! the nameservers of `/etc/resolv.conf`, over UDP with a retry over TCP
//! when the answer is truncated. It never asks this server for its own
//! zone: an in-zone target needs `health_url` (config validation).
//!
//! Pure Rust on hickory-proto, which the server already uses for its
//! wire format, so probes resolve the same in a static binary.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Where the system's nameservers are listed.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How long one nameserver gets for one question.
const PER_SERVER: Duration = Duration::from_secs(2);

/// Resolves host names to one address each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolver {
    servers: Vec<SocketAddr>,
}

impl Resolver {
    /// The nameservers of `/etc/resolv.conf` (none when it cannot be read:
    /// every lookup then fails with that reason).
    pub(crate) fn system() -> Resolver {
        let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
        Resolver::from_resolv_conf(&text)
    }

    /// The `nameserver` lines of a resolv.conf text, on port 53.
    pub(crate) fn from_resolv_conf(text: &str) -> Resolver {
        let servers = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some("nameserver")).then(|| words.next())?
            })
            .filter_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        Resolver { servers }
    }

    /// Asks exactly these servers (tests use a loopback stub).
    #[cfg(test)]
    pub(crate) fn with_servers(servers: Vec<SocketAddr>) -> Resolver {
        Resolver { servers }
    }

    /// The first IPv4 address of `host`, else its first IPv6 address.
    pub(crate) async fn lookup(&self, host: &str) -> Result<IpAddr, String> {
        if self.servers.is_empty() {
            return Err(format!(
                "cannot resolve {host}: no nameserver in {RESOLV_CONF}"
            ));
        }
        let name = Name::from_ascii(host)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let mut last = String::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            for server in &self.servers {
                match ask(*server, &name, rtype).await {
                    Ok(Some(ip)) => return Ok(ip),
                    Ok(None) => {
                        last = format!("{host} has no {rtype} address");
                        break;
                    }
                    Err(e) => last = format!("cannot resolve {host} at {server}: {e}"),
                }
            }
        }
        Err(last)
    }
}

/// One question to one server: the first address of `rtype` in the
/// answer (following the CNAME chain the server returns), `None` when the
/// name has none.
async fn ask(server: SocketAddr, name: &Name, rtype: RecordType) -> Result<Option<IpAddr>, String> {
    let mut query = Message::query();
    query.metadata.id = rand::random();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name.clone(), rtype));
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let answer = tokio::time::timeout(PER_SERVER, exchange(server, &bytes))
        .await
        .map_err(|_| format!("no answer within {}s", PER_SERVER.as_secs()))??;
    if answer.metadata.id != query.metadata.id {
        return Err("answer with another id".into());
    }
    let answer = if answer.metadata.truncation {
        tokio::time::timeout(PER_SERVER, exchange_tcp(server, &bytes))
            .await
            .map_err(|_| "no TCP answer in time".to_owned())??
    } else {
        answer
    };
    let code = answer.metadata.response_code;
    if code != hickory_proto::op::ResponseCode::NoError {
        return Err(format!("{code}"));
    }
    Ok(answer.answers.iter().find_map(|r| match &r.data {
        RData::A(a) if rtype == RecordType::A => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) if rtype == RecordType::AAAA => Some(IpAddr::V6(a.0)),
        _ => None,
    }))
}

async fn exchange(server: SocketAddr, bytes: &[u8]) -> Result<Message, String> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
    Message::from_vec(&buf[..n]).map_err(|e| format!("bad answer: {e}"))
}

async fn exchange_tcp(server: SocketAddr, bytes: &[u8]) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_owned())?;
    stream
        .write_all(&len.to_be_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(bytes).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    Message::from_vec(&buf).map_err(|e| format!("bad answer: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, ResponseCode};
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, CNAME};

    #[test]
    fn nameservers_come_from_resolv_conf() {
        let r = Resolver::from_resolv_conf(
            "# comment\nsearch example.com\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\n\
             nameserver bogus\noptions ndots:2\n",
        );
        assert_eq!(
            r.servers,
            vec![
                "10.0.0.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }

    /// A loopback nameserver answering `host` with a CNAME chain to an A
    /// record `ip`, NODATA for its other types and NXDOMAIN for anything else.
    pub(crate) async fn stub_nameserver(host: &'static str, ip: Ipv4Addr) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let question = q.queries[0].clone();
                let mut a = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
                a.add_query(question.clone());
                let asked = question.name().to_ascii();
                let known = asked.trim_end_matches('.') == host;
                if known && question.query_type() == RecordType::A {
                    let target = Name::from_ascii("node.example.net.").unwrap();
                    a.add_answer(Record::from_rdata(
                        question.name().clone(),
                        60,
                        RData::CNAME(CNAME(target.clone())),
                    ));
                    a.add_answer(Record::from_rdata(target, 60, RData::A(A(ip))));
                } else if !known {
                    a.metadata.response_code = ResponseCode::NXDomain;
                }
                let _ = socket.send_to(&a.to_vec().unwrap(), from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn lookup_follows_the_answer_to_an_address_and_reports_failures() {
        let stub = stub_nameserver("lb.example.net", Ipv4Addr::new(127, 0, 0, 9)).await;
        let resolver = Resolver::with_servers(vec![stub]);
        assert_eq!(
            resolver.lookup("lb.example.net").await,
            Ok(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)))
        );
        let err = resolver.lookup("gone.example.net").await.unwrap_err();
        assert!(
            err.contains("NXDomain") || err.contains("Non-Existent"),
            "{err}"
        );
        let none = Resolver::with_servers(vec![]).lookup("x.example").await;
        assert!(none.unwrap_err().contains("no nameserver"));
    }
}
