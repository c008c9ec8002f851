//! ClickHouse's HTTP interface: statements in, `RowBinary` out.

use std::time::Duration;

use bytes::Bytes;

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("cannot reach ClickHouse at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("ClickHouse at {url} answered {status}: {message}")]
    Server { url: String, status: u16, code: Option<u32>, message: String },
}

/// ClickHouse error codes that say "later" rather than "never": timeouts, network trouble
/// between servers, too many parts or queries at once, memory pressure, a shard down.
const TRANSIENT_CODES: [u32; 13] = [159, 164, 202, 203, 209, 210, 241, 242, 252, 279, 285, 319, 425];

impl ClickHouseError {
    /// Whether the same statement may succeed when sent again later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Server { status, code, .. } => {
                code.is_some_and(|c| TRANSIENT_CODES.contains(&c)) || matches!(status, 502..=504)
            }
        }
    }
}

/// How to reach one ClickHouse server.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    pub(crate) url: String,
    user: String,
    password: String,
}

impl Client {
    pub(crate) fn new(url: &str, user: &str, password: &str, timeout: Duration) -> Result<Self, String> {
        let url = url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("ClickHouse URL {url:?}: {e}"))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return Err(format!("ClickHouse URL {url:?}: use http:// (its HTTP interface, port 8123 by default)"));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            // ClickHouse closes idle HTTP connections after 3 s (keep_alive_timeout): a
            // connection idle longer is not reused, or a request could go out on one closing.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| format!("HTTP client for ClickHouse: {e}"))?;
        Ok(Self { http, url, user: user.to_owned(), password: password.to_owned() })
    }

    async fn send(&self, query: &[(&str, &str)], body: reqwest::Body) -> Result<Bytes, ClickHouseError> {
        let mut request = self.http.post(format!("{}/", self.url)).query(query).body(body);
        if !self.user.is_empty() {
            request = request.basic_auth(&self.user, Some(&self.password));
        }
        let unreachable =
            |e: reqwest::Error| ClickHouseError::Unreachable { url: self.url.clone(), reason: causes(&e) };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(body);
        }
        let message = String::from_utf8_lossy(&body).trim().to_owned();
        Err(ClickHouseError::Server {
            url: self.url.clone(),
            status: status.as_u16(),
            code: error_code(&message),
            message,
        })
    }

    /// Runs a statement that returns nothing, or a query whose result is read in `RowBinary`.
    pub(crate) async fn run(&self, sql: &str) -> Result<Bytes, ClickHouseError> {
        self.send(&[], reqwest::Body::from(sql.to_owned())).await
    }

    /// `insert` is an `INSERT ... FORMAT RowBinary` statement; `rows` its data.
    pub(crate) async fn insert(
        &self,
        insert: &str,
        settings: &[(&str, &str)],
        rows: Bytes,
    ) -> Result<(), ClickHouseError> {
        let mut query = vec![("query", insert)];
        query.extend_from_slice(settings);
        self.send(&query, reqwest::Body::from(rows)).await.map(drop)
    }
}

/// An error and its causes in one line ("error sending request: ...: Connection refused"),
/// each said once.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

/// The `Code: N` ClickHouse puts first in an exception's text.
fn error_code(message: &str) -> Option<u32> {
    let rest = message.split("Code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// A string as a ClickHouse SQL literal.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_exceptions() {
        let text = "Code: 252, e.displayText() = DB::Exception: Too many parts (300)";
        assert_eq!(error_code(text), Some(252));
        assert_eq!(error_code("Code: 62. DB::Exception: Syntax error"), Some(62));
        assert_eq!(error_code("bad gateway"), None);
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote(r"it's a \ test"), r"'it\'s a \\ test'");
    }
}
