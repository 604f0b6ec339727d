//! Webhook notifications of health transitions (`[[notify]]` in the
//! config).
//!
//! This file owns the payload formats (plain JSON and Alertmanager's
//! `/api/v2/alerts`), delivery with retries, and the queues that keep a slow
//! or dead webhook away from the health checks: [`Notifier::notify`] only
//! ever `try_send`s, and each webhook has its own queue and sender task, so
//! one webhook cannot delay another either.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::probe::describe_error;

/// Notices waiting per webhook; past this the newest is dropped (with a
/// warning) rather than blocking the caller.
pub(crate) const QUEUE_CAPACITY: usize = 256;

/// The Alertmanager `alertname` label.
pub(crate) const ALERT_NAME: &str = "KeikoRegionDown";

const NOTIFY_USER_AGENT: &str = concat!("keiko-dns-notify/", env!("CARGO_PKG_VERSION"));

/// Payload format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    /// One [`Notice`] as a JSON object per POST.
    #[default]
    Json,
    /// A JSON array of one alert per POST, for Alertmanager's
    /// `/api/v2/alerts` (the webhook url is that full URL).
    Alertmanager,
}

/// One `[[notify]]` entry.
#[derive(Clone)]
pub(crate) struct Webhook {
    pub url: String,
    pub format: Format,
    /// Sent as `Authorization: Bearer <token>`; never logged.
    pub token: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &redacted(&self.url))
            .field("format", &self.format)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A health transition to announce.
///
/// With [`Format::Json`] this is the POSTed body, as is:
///
/// ```json
/// {
///   "time": "2026-11-26T16:20:00Z",
///   "region": "eu-west-1",
///   "from": "up",
///   "to": "down",
///   "reason": "timed out after 10s",
///   "answer_before": ["198.51.100.20"],
///   "answer_after": ["192.0.2.10"],
///   "instance": "ns1.us-east-1"
/// }
/// ```
///
/// `to` and `from` are `"up"`, `"down"` or `"awaiting_readmit"`;
/// `answer_before`/`answer_after` are the failover name's answer around the
/// transition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Notice {
    /// RFC 3339.
    pub time: String,
    pub region: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub answer_before: Vec<String>,
    pub answer_after: Vec<String>,
    pub instance: String,
}

/// Delivery timing; tests shorten it.
#[derive(Debug, Clone, Copy)]
struct Policy {
    /// Tries per notice, the first included.
    attempts: u32,
    /// Wait before the second try; doubled before each later one.
    first_backoff: Duration,
    request_timeout: Duration,
    /// Alertmanager resolves an alert on its own once it has not been
    /// re-sent for its `resolve_timeout` (5 minutes by default), so firing
    /// alerts are re-sent this often while the region stays out.
    resend_firing: Duration,
}

impl Policy {
    /// 4 tries: now, then after 1 s, 2 s and 4 s; 5 s per request.
    const DEFAULT: Policy = Policy {
        attempts: 4,
        first_backoff: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        resend_firing: Duration::from_secs(60),
    };
}

/// Fans notices out to the webhooks. Dropping it ends the sender tasks once
/// their queues are drained.
#[derive(Debug)]
pub(crate) struct Notifier {
    queues: Vec<Queue>,
}

#[derive(Debug)]
struct Queue {
    /// The webhook's origin only: paths of webhook URLs often carry secrets.
    name: String,
    tx: mpsc::Sender<Notice>,
}

impl Notifier {
    /// Spawns one sender task per webhook on the current tokio runtime.
    /// A webhook whose URL or client cannot be set up is logged and left
    /// out; the others still work.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub(crate) fn start(webhooks: Vec<Webhook>) -> Notifier {
        Notifier::start_with(webhooks, Policy::DEFAULT)
    }

    fn start_with(webhooks: Vec<Webhook>, policy: Policy) -> Notifier {
        let mut queues = Vec::with_capacity(webhooks.len());
        for webhook in webhooks {
            let name = redacted(&webhook.url);
            let client = match webhook_client(&webhook, policy) {
                Ok(client) => client,
                Err(error) => {
                    tracing::error!(webhook = %name, %error, "webhook disabled");
                    continue;
                }
            };
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            let sender = Sender {
                client,
                webhook,
                name: name.clone(),
                policy,
                firing: BTreeMap::new(),
            };
            tokio::spawn(sender.run(rx));
            queues.push(Queue { name, tx });
        }
        Notifier { queues }
    }

    /// Queues `notice` for every webhook. Never blocks and never awaits: a
    /// full queue drops this notice with a warning.
    pub(crate) fn notify(&self, notice: Notice) {
        for queue in &self.queues {
            match queue.tx.try_send(notice.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(dropped)) => tracing::warn!(
                    webhook = %queue.name,
                    region = %dropped.region,
                    to = %dropped.to,
                    "webhook queue full; notice dropped"
                ),
                Err(TrySendError::Closed(dropped)) => tracing::warn!(
                    webhook = %queue.name,
                    region = %dropped.region,
                    to = %dropped.to,
                    "webhook sender stopped; notice dropped"
                ),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("invalid webhook url: {0}")]
    Url(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot build HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

fn webhook_client(webhook: &Webhook, policy: Policy) -> Result<reqwest::Client, SetupError> {
    let url = reqwest::Url::parse(&webhook.url).map_err(|e| SetupError::Url(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SetupError::Url("scheme must be http:// or https://".into()));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(NOTIFY_USER_AGENT));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // A POST is not re-sent to wherever a redirect points.
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::client_config(None)?)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.request_timeout)
        .default_headers(headers)
        .build()?)
}

/// One webhook's delivery loop.
struct Sender {
    client: reqwest::Client,
    webhook: Webhook,
    name: String,
    policy: Policy,
    /// Alertmanager only: the alerts currently firing, by region, to re-send.
    firing: BTreeMap<String, Notice>,
}

impl Sender {
    async fn run(mut self, mut rx: mpsc::Receiver<Notice>) {
        let period = self.policy.resend_firing;
        let mut resend = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                notice = rx.recv() => {
                    let Some(notice) = notice else { break };
                    let body = self.payload(&notice);
                    self.deliver(body, &notice.region).await;
                }
                _ = resend.tick(), if !self.firing.is_empty() => {
                    let alerts: Vec<_> = self.firing.values().map(alert).collect();
                    self.deliver(serde_json::Value::Array(alerts), "(firing)").await;
                }
            }
        }
    }

    fn payload(&mut self, notice: &Notice) -> serde_json::Value {
        match self.webhook.format {
            Format::Json => json!(notice),
            Format::Alertmanager => {
                if is_resolved(notice) {
                    self.firing.remove(&notice.region);
                    json!([alert(notice)])
                } else {
                    // Still out (e.g. down -> awaiting_readmit): same alert,
                    // new details, original start.
                    let entry = self
                        .firing
                        .entry(notice.region.clone())
                        .and_modify(|firing| {
                            let started = std::mem::take(&mut firing.time);
                            *firing = notice.clone();
                            firing.time = started;
                        })
                        .or_insert_with(|| notice.clone());
                    json!([alert(entry)])
                }
            }
        }
    }

    /// POSTs `body`, retrying with exponential backoff; a failure only
    /// costs this webhook's own queue some time and a warning.
    async fn deliver(&self, body: serde_json::Value, region: &str) {
        let body = match serde_json::to_vec(&body) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(webhook = %self.name, %error, "cannot encode notice");
                return;
            }
        };
        let mut backoff = self.policy.first_backoff;
        for attempt in 1..=self.policy.attempts {
            let mut request = self.client.post(&self.webhook.url).body(body.clone());
            if let Some(token) = &self.webhook.token {
                // bearer_auth marks the header sensitive, so it stays out of
                // reqwest's own debug output too.
                request = request.bearer_auth(token);
            }
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => format!("HTTP {}", response.status().as_u16()),
                Err(error) => describe_error(&error),
            };
            if attempt < self.policy.attempts {
                tracing::warn!(
                    webhook = %self.name, region, attempt, error = %failure,
                    retry_in = %humantime::format_duration(backoff),
                    "webhook delivery failed; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            } else {
                tracing::warn!(
                    webhook = %self.name, region, attempt, error = %failure,
                    "webhook delivery failed; notice dropped"
                );
            }
        }
    }
}

/// A region back in service resolves its alert; any other state keeps it
/// out of the answers and so keeps the alert firing.
fn is_resolved(notice: &Notice) -> bool {
    notice.to == "up"
}

/// One Alertmanager alert for `notice`: `startsAt` while firing, `endsAt`
/// (the transition time, i.e. now) once resolved, same labels either way so
/// Alertmanager matches them up.
fn alert(notice: &Notice) -> serde_json::Value {
    let summary = match notice.to.as_str() {
        "up" => format!("Region {} is up again", notice.region),
        "awaiting_readmit" => format!(
            "Region {} recovered and awaits manual re-admission",
            notice.region
        ),
        state => format!("Region {} is {state}", notice.region),
    };
    let mut alert = json!({
        "labels": {
            "alertname": ALERT_NAME,
            "region": notice.region,
            "instance": notice.instance,
            "severity": "critical",
        },
        "annotations": {
            "summary": summary,
            "description": notice.reason,
            "answer_before": notice.answer_before.join(", "),
            "answer_after": notice.answer_after.join(", "),
        },
    });
    let key = if is_resolved(notice) {
        "endsAt"
    } else {
        "startsAt"
    };
    alert[key] = json!(notice.time);
    alert
}

/// The webhook URL without path, query or credentials, for logs.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => "<invalid url>".to_owned(),
    }
}

#[cfg(test)]
mod tests;
