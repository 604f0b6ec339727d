//! The admin API client shared by the operator commands (`status`,
//! `failover`, `readmit`, `explain`).
//!
//! This file owns how those commands reach a running server: the base URL
//! (`--admin`, default `http://127.0.0.1:9300`), the bearer token (`--token`
//! or `KEIKO_ADMIN_TOKEN`), and turning every way a call can fail into one
//! message an operator can act on and an exit code: the server's own
//! `{"error": "..."}` text, a refused token, or a server that is not there.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::admin::status::Status;

/// Where `keiko-dns serve` listens with the default config.
pub const DEFAULT_ADMIN: &str = "http://127.0.0.1:9300";

/// The environment variable holding the admin token (the server reads the
/// same one).
pub const TOKEN_ENV: &str = "KEIKO_ADMIN_TOKEN";

/// Loopback calls answer in milliseconds; these only bound a wedged server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Exit code for a failure the command itself reports (unknown region,
/// conflict, unhealthy region).
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the server cannot be reached or used (not running, token
/// refused) or the command line is wrong.
pub const EXIT_UNREACHABLE: u8 = 2;

/// Flags every admin API command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminArgs {
    /// Admin API of the running server [default: http://127.0.0.1:9300]
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// Bearer token for changes [default: $KEIKO_ADMIN_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Why an admin API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("admin URL {url:?} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the admin API at {url}: is keiko-dns running? ({reason})")]
    Unreachable { url: String, reason: String },
    /// A 401: `sent` says whether a token went with the request.
    #[error("{}", unauthorized_text(*.sent))]
    Unauthorized { sent: bool },
    /// The server's `{"error": "..."}` text, with its status.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error("cannot start the HTTP client: {0}")]
    Setup(String),
}

impl ClientError {
    /// The exit code this failure ends a command with.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::BadUrl { .. }
            | ClientError::Unreachable { .. }
            | ClientError::Unauthorized { .. }
            | ClientError::Setup(_) => EXIT_UNREACHABLE,
            ClientError::Api { .. } | ClientError::Protocol { .. } => EXIT_FAILED,
        }
    }

    /// The HTTP status of a server-reported error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Prints the error for the operator and returns its exit code.
    pub fn report(&self, command: &str) -> ExitCode {
        eprintln!("keiko-dns {command}: {self}");
        ExitCode::from(self.exit_code())
    }
}

/// A client bound to one server's admin API.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for `args` (flags first, then `KEIKO_ADMIN_TOKEN`, then the
    /// defaults). `fallback` is the URL used without `--admin`.
    pub fn new(args: &AdminArgs, fallback: Option<&str>) -> Result<AdminClient, ClientError> {
        let raw = args
            .admin
            .as_deref()
            .or(fallback)
            .unwrap_or(DEFAULT_ADMIN)
            .trim();
        let base = normalize(raw)?;
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .filter(|t| !t.is_empty());
        // reqwest is built without a default crypto provider; the shared
        // TLS client setup (ring, system roots) serves an https admin URL
        // behind a proxy as well as plain loopback http.
        let tls = crate::tls::client_config(None).map_err(|e| ClientError::Setup(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("keiko-dns-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(AdminClient { base, token, http })
    }

    /// The base URL, as messages show it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/status", &[]).await
    }

    /// `GET path?query`, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = self.http.get(url.clone());
        self.send(url, request).await
    }

    /// `POST path` with a JSON `body` (or none), decoded as `T`.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let url = self.url(path)?;
        let mut request = self.http.post(url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(url, request).await
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        let text = format!("{}{path}", self.base);
        Url::parse(&text).map_err(|e| ClientError::BadUrl {
            url: text,
            reason: e.to_string(),
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        url: Url,
        mut request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: crate::health::probe::describe_error(&e),
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                reason: crate::health::probe::describe_error(&e),
            })?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                sent: self.token.is_some(),
            });
        }
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: error_text(status, &body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol {
            url: url.to_string(),
            reason: format!("{e} (is this keiko-dns's admin API?)"),
        })
    }
}

/// What a 401 means to the operator: no token at all, or the wrong one.
fn unauthorized_text(sent: bool) -> String {
    if sent {
        format!(
            "the admin API refused the token (set {TOKEN_ENV} or --token to the server's admin_token)"
        )
    } else {
        format!(
            "the admin API needs a token and none was sent: set {TOKEN_ENV} or pass --token \
             (the server's admin_token)"
        )
    }
}

/// `raw` as a base URL without a trailing slash; `host:port` alone means
/// plain http, as operators type it from `admin_listen`.
fn normalize(raw: &str) -> Result<String, ClientError> {
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| ClientError::BadUrl {
        url: raw.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ClientError::BadUrl {
            url: raw.to_owned(),
            reason: "expected http://HOST:PORT".into(),
        });
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The server's `{"error": "..."}` text, or what the body says otherwise.
fn error_text(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ApiError {
        error: String,
    }
    if let Ok(e) = serde_json::from_slice::<ApiError>(body) {
        return e.error;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        let short: String = text.chars().take(200).collect();
        format!("HTTP {status}: {short}")
    }
}

/// `text` as one URL path segment (region names are checked by the server;
/// this only keeps a stray '/' or '?' from changing the path).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A single-threaded runtime for one command's calls.
pub fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Setup(e.to_string()))
}

/// Steered answers from a status document, for a client with no
/// location: (name, policy, answer text). A weighted name shows its shares
/// rather than every address a draw can give, so a line stays readable.
pub fn answers(status: &Status) -> Vec<(String, String, String)> {
    status
        .records
        .iter()
        .map(|r| {
            let text = match &r.region {
                Some(region) if r.answer.is_empty() => format!("(no addresses) ({region})"),
                Some(region) => format!("{} ({region})", r.answer.join(", ")),
                None => {
                    let shares: Vec<String> = status
                        .regions
                        .iter()
                        .filter(|g| g.share_percent > 0.0)
                        .map(|g| format!("{} {}%", g.name, percent(g.share_percent)))
                        .collect();
                    format!("by weight: {}", shares.join(", "))
                }
            };
            (r.name.clone(), r.policy.clone(), text)
        })
        .collect()
}

/// "40" for 40.0, "66.7" for 66.7.
pub fn percent(value: f64) -> String {
    let text = format!("{value:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized() {
        assert_eq!(
            normalize("127.0.0.1:9300").unwrap(),
            "http://127.0.0.1:9300"
        );
        assert_eq!(
            normalize("http://127.0.0.1:9300/").unwrap(),
            "http://127.0.0.1:9300"
        );
        assert!(normalize("ftp://x").is_err());
    }

    #[test]
    fn percentages_drop_a_zero_fraction() {
        assert_eq!(percent(40.0), "40");
        assert_eq!(percent(66.7), "66.7");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("us-east-1"), "us-east-1");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn a_refusal_says_whether_a_token_was_sent() {
        let none = ClientError::Unauthorized { sent: false }.to_string();
        assert!(none.contains("none was sent"), "{none}");
        assert!(
            none.contains(TOKEN_ENV) && none.contains("--token"),
            "{none}"
        );
        let wrong = ClientError::Unauthorized { sent: true }.to_string();
        assert!(wrong.contains("refused the token"), "{wrong}");
        assert!(!wrong.contains("none was sent"), "{wrong}");
    }

    #[test]
    fn error_bodies_become_the_server_text() {
        let text = error_text(StatusCode::NOT_FOUND, br#"{"error":"unknown region x"}"#);
        assert_eq!(text, "unknown region x");
        let text = error_text(StatusCode::BAD_GATEWAY, b"");
        assert_eq!(text, "HTTP 502 Bad Gateway");
    }
}
