//! The prober's resolver, for the host names of CNAME regions
//! (docs/reference.md §6.1): hickory-resolver with the system's
//! `/etc/resolv.conf`, so probes resolve the same in a static binary (no
//! NSS). It never asks this server for its own zone: an in-zone target
//! needs `health_url` (config validation).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_resolver::TokioResolver;

/// Resolves host names to one address each.
#[derive(Clone)]
pub(crate) struct Resolver {
    inner: Result<Arc<TokioResolver>, String>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// The nameservers of `/etc/resolv.conf`; when it cannot be read,
    /// every lookup fails with that reason (never a public fallback).
    pub(crate) fn system() -> Resolver {
        let inner = TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .map(Arc::new)
            .map_err(|e| format!("no system resolver (/etc/resolv.conf): {e}"));
        Resolver { inner }
    }

    /// Asks exactly these servers (tests use a loopback stub).
    #[cfg(test)]
    pub(crate) fn with_servers(servers: Vec<std::net::SocketAddr>) -> Resolver {
        use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
        use hickory_resolver::net::runtime::TokioRuntimeProvider;
        if servers.is_empty() {
            return Resolver {
                inner: Err("no nameserver".into()),
            };
        }
        let servers = servers
            .iter()
            .map(|s| {
                let mut udp = ConnectionConfig::udp();
                udp.port = s.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = s.port();
                NameServerConfig::new(s.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_parts(None, vec![], servers);
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .map(Arc::new)
            .map_err(|e| e.to_string());
        Resolver { inner }
    }

    /// The first IPv4 address of `host`, else its first IPv6 address.
    pub(crate) async fn lookup(&self, host: &str) -> Result<IpAddr, String> {
        let resolver = self
            .inner
            .as_ref()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let found = resolver
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let ips: Vec<IpAddr> = found.iter().collect();
        ips.iter()
            .find(|ip| ip.is_ipv4())
            .or(ips.first())
            .copied()
            .ok_or_else(|| format!("{host} has no address"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    use tokio::net::UdpSocket;

    use super::*;
    use hickory_proto::rr::Record;
    use hickory_proto::rr::rdata::{A, CNAME};

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
        assert!(err.contains("gone.example.net"), "{err}");
        let none = Resolver::with_servers(vec![]).lookup("x.example").await;
        assert!(none.unwrap_err().contains("no nameserver"));
    }
}
