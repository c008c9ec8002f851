//! Talking to a running Clew's HTTP API from the terminal commands.

use anyhow::{bail, Context};

/// The default HTTP API address, as `clew serve` binds it.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:4320";

/// GETs `path` (with `query` pairs) from `server`; the body on success, else an error with the
/// API's own message.
pub(crate) async fn get(server: &str, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let response = reqwest::Client::new().get(&url).query(query).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await.with_context(|| format!("read response of {url}"))?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{status}: {message}");
    }
    Ok(body)
}
