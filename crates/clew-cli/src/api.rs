//! Talking to a running Clew's HTTP API from the terminal commands.

use anyhow::{bail, Context};
use reqwest::Method;

/// The default HTTP API address, as `clew serve` binds it.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:4320";

/// Which Clew to talk to, as whom, about which project.
#[derive(clap::Args, Clone)]
pub(crate) struct Server {
    /// Clew's HTTP API.
    #[arg(long = "server", env = "CLEW_SERVER", default_value = DEFAULT_SERVER)]
    pub(crate) url: String,
    /// An access token (needed when the server requires authentication).
    #[arg(long, env = "CLEW_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The project to read, as <namespace>/<project> (a project token's own when absent).
    #[arg(long, env = "CLEW_PROJECT")]
    pub(crate) project: Option<String>,
}

impl Server {
    /// GETs `path` (with `query` pairs); the body on success, else an error with the API's own
    /// message.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<String> {
        self.send(Method::GET, path, query, None).await
    }

    /// Sends a request with an optional JSON body.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = reqwest::Client::new().request(method.clone(), &url).query(query);
        if let Some(token) = &self.token {
            request = request.header("PRIVATE-TOKEN", token);
        }
        if let Some(project) = &self.project {
            request = request.header("X-Clew-Project", project);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
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
}
