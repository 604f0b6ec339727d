//! Notifier tests against a real HTTP receiver on 127.0.0.1.

use super::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Fast enough for tests; same shape as the default.
const FAST: Policy = Policy {
    attempts: 3,
    first_backoff: Duration::from_millis(50),
    request_timeout: Duration::from_secs(2),
    resend_firing: Duration::from_secs(3_600),
};
const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_post(stream: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

/// A webhook receiver. The first `fail_first` requests get a 503; every
/// request (failed or not) is passed on to the returned channel.
async fn receiver(fail_first: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("receiver address");
    let (tx, rx) = mpsc::unbounded_channel();
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let served = served.clone();
            tokio::spawn(async move {
                let Some(received) = read_post(&mut stream).await else {
                    return;
                };
                let status = if served.fetch_add(1, Ordering::SeqCst) < fail_first {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = tx.send(received);
                let response =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("webhook request within 5s")
        .expect("receiver running")
}

fn notice(region: &str, from: &str, to: &str, time: &str) -> Notice {
    Notice {
        time: time.to_owned(),
        region: region.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        reason: if to == "up" {
            "3 consecutive successes".to_owned()
        } else {
            "timed out after 10s".to_owned()
        },
        answer_before: vec!["192.0.2.10".to_owned()],
        answer_after: vec!["198.51.100.20".to_owned()],
        instance: "ns1.us-east-1".to_owned(),
    }
}

fn webhook(addr: SocketAddr, format: Format, token: Option<&str>) -> Webhook {
    Webhook {
        url: format!("http://{addr}/hook"),
        format,
        token: token.map(str::to_owned),
    }
}

#[tokio::test]
async fn json_webhook_gets_one_post_per_notice() {
    let (addr, mut rx) = receiver(0).await;
    let notifier = Notifier::start_with(vec![webhook(addr, Format::Json, Some("s3cret"))], FAST);
    let down = notice("us-east-1", "up", "down", "2026-11-26T16:20:00Z");
    let up = notice("us-east-1", "down", "up", "2026-11-26T16:25:00Z");
    notifier.notify(down.clone());
    notifier.notify(up.clone());

    for sent in [down, up] {
        let got = next(&mut rx).await;
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, "/hook");
        assert_eq!(got.header("authorization"), Some("Bearer s3cret"));
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(
            got.body,
            json!({
                "time": sent.time,
                "region": "us-east-1",
                "from": sent.from,
                "to": sent.to,
                "reason": sent.reason,
                "answer_before": ["192.0.2.10"],
                "answer_after": ["198.51.100.20"],
                "instance": "ns1.us-east-1",
            })
        );
    }
}

#[tokio::test]
async fn alertmanager_webhook_fires_then_resolves() {
    let (addr, mut rx) = receiver(0).await;
    let notifier = Notifier::start_with(vec![webhook(addr, Format::Alertmanager, None)], FAST);
    notifier.notify(notice("eu-west-1", "up", "down", "2026-11-26T16:20:00Z"));
    notifier.notify(notice("eu-west-1", "down", "up", "2026-11-26T16:25:00Z"));

    let labels = json!({
        "alertname": "KeikoRegionDown",
        "region": "eu-west-1",
        "instance": "ns1.us-east-1",
        "severity": "critical",
    });
    let firing = next(&mut rx).await;
    assert_eq!(firing.header("authorization"), None);
    let alerts = firing.body.as_array().expect("array of alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["labels"], labels);
    assert_eq!(alerts[0]["startsAt"], "2026-11-26T16:20:00Z");
    assert_eq!(
        alerts[0]["annotations"]["description"],
        "timed out after 10s"
    );
    assert!(alerts[0]["annotations"]["summary"].is_string());
    assert!(alerts[0].get("endsAt").is_none());

    let resolved = next(&mut rx).await;
    let alerts = resolved.body.as_array().expect("array of alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["labels"], labels);
    assert_eq!(alerts[0]["endsAt"], "2026-11-26T16:25:00Z");
}

#[tokio::test]
async fn firing_alerts_are_resent_until_resolved() {
    let (addr, mut rx) = receiver(0).await;
    let policy = Policy {
        resend_firing: Duration::from_millis(200),
        ..FAST
    };
    let notifier = Notifier::start_with(vec![webhook(addr, Format::Alertmanager, None)], policy);
    notifier.notify(notice("eu-west-1", "up", "down", "2026-11-26T16:20:00Z"));
    notifier.notify(notice(
        "eu-west-1",
        "down",
        "awaiting_readmit",
        "2026-11-26T16:22:00Z",
    ));
    let _first = next(&mut rx).await;
    let _second = next(&mut rx).await;
    let resent = next(&mut rx).await;
    let alerts = resent.body.as_array().expect("array of alerts");
    assert_eq!(alerts.len(), 1);
    // The alert keeps the time it started firing.
    assert_eq!(alerts[0]["startsAt"], "2026-11-26T16:20:00Z");
}

#[tokio::test]
async fn failed_delivery_is_retried() {
    let (addr, mut rx) = receiver(2).await;
    let notifier = Notifier::start_with(vec![webhook(addr, Format::Json, None)], FAST);
    notifier.notify(notice("us-east-1", "up", "down", "2026-11-26T16:20:00Z"));
    // Two 503s, then the third try is accepted.
    for _ in 0..3 {
        let got = next(&mut rx).await;
        assert_eq!(got.body["region"], "us-east-1");
    }
}

#[tokio::test]
async fn dead_webhook_blocks_neither_caller_nor_other_webhooks() {
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address")
    };
    let (addr, mut rx) = receiver(0).await;
    // A long backoff keeps the dead webhook's queue full.
    let policy = Policy {
        first_backoff: Duration::from_secs(60),
        ..FAST
    };
    let notifier = Notifier::start_with(
        vec![
            webhook(dead, Format::Json, None),
            webhook(addr, Format::Json, Some("t")),
        ],
        policy,
    );
    let started = Instant::now();
    for i in 0..(QUEUE_CAPACITY + 50) {
        notifier.notify(notice(
            &format!("r{i}"),
            "up",
            "down",
            "2026-11-26T16:20:00Z",
        ));
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "notify() took {:?}",
        started.elapsed()
    );
    let got = next(&mut rx).await;
    assert_eq!(got.body["region"], "r0");
}

#[test]
fn webhook_debug_hides_token_and_path() {
    let hook = Webhook {
        url: "https://hooks.example.com/services/T000/SECRET".to_owned(),
        format: Format::Json,
        token: Some("very-secret-token".to_owned()),
    };
    let shown = format!("{hook:?}");
    assert!(!shown.contains("very-secret-token"), "{shown}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("https://hooks.example.com"), "{shown}");
}

#[tokio::test]
async fn invalid_webhook_is_left_out() {
    let notifier = Notifier::start(vec![Webhook {
        url: "ftp://127.0.0.1/".to_owned(),
        format: Format::Json,
        token: None,
    }]);
    assert!(notifier.queues.is_empty());
    notifier.notify(notice("us-east-1", "up", "down", "2026-11-26T16:20:00Z"));
}
