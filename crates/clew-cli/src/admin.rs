//! `clew admin ...`: users, namespaces, projects, members, tokens, limits and usage, through a
//! running Clew's settings API (`/api/v1`). Authenticates with `--token` / `CLEW_TOKEN`.
//! `clew admin migrate` instead talks to the stores the configuration names, directly.

use std::io::BufRead;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytesize::ByteSize;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::Server;

#[derive(clap::Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Users (administrators only).
    #[command(subcommand)]
    User(UserCommand),
    /// Top-level namespaces, their members and limits.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Projects, their members and tracing.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Personal and project access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Create or upgrade the schemas of the stores the configuration names (the metadata
    /// store; ClickHouse on every shard), then exit. Reads the same configuration as `serve`.
    Migrate {
        /// TOML configuration file (see clew.example.toml).
        #[arg(long, env = "CLEW_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(clap::Subcommand)]
enum UserCommand {
    List,
    /// Create a user; the password is read from standard input when --password-stdin is given.
    Create {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password, read from standard input.
    Password {
        user: String,
    },
    Delete {
        user: String,
    },
}

#[derive(clap::Subcommand)]
enum NamespaceCommand {
    List,
    Create {
        path: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Show the limits, or change those given (administrators).
    Limits {
        namespace: String,
        /// Ingest rate in bytes per second (e.g. 1MB), or "none".
        #[arg(long)]
        ingest_rate: Option<String>,
        #[arg(long)]
        retention_days: Option<u32>,
        /// Storage quota (e.g. 50GB), or "none".
        #[arg(long)]
        quota: Option<String>,
    },
    /// Bytes and spans ingested per day, bytes stored, requests refused and why.
    Usage {
        namespace: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    Members {
        namespace: String,
    },
    /// Add a member or change their role (guest, reporter, developer, maintainer, owner).
    AddMember {
        namespace: String,
        user: String,
        role: String,
    },
    RemoveMember {
        namespace: String,
        user: String,
    },
}

#[derive(clap::Subcommand)]
enum ProjectCommand {
    /// Projects of a namespace.
    List {
        namespace: String,
    },
    Create {
        namespace: String,
        path: String,
    },
    EnableTracing {
        project_id: i64,
    },
    DisableTracing {
        project_id: i64,
    },
    Members {
        project_id: i64,
    },
    AddMember {
        project_id: i64,
        user: String,
        role: String,
    },
    RemoveMember {
        project_id: i64,
        user: String,
    },
}

#[derive(clap::Args)]
struct TokenOwner {
    /// A project's tokens (else your personal tokens).
    #[arg(long)]
    project_id: Option<i64>,
}

impl TokenOwner {
    fn path(&self) -> String {
        match self.project_id {
            Some(id) => format!("/api/v1/projects/{id}/tokens"),
            None => "/api/v1/user/tokens".into(),
        }
    }
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    List {
        #[command(flatten)]
        owner: TokenOwner,
    },
    /// Create a token; its secret is printed once.
    Create {
        #[command(flatten)]
        owner: TokenOwner,
        #[arg(long)]
        name: String,
        /// Comma-separated: api, read_api, read_observability, write_observability.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Expires after this long (e.g. 30d); never when absent.
        #[arg(long)]
        expires_in: Option<humantime::Duration>,
        /// A project token's role (developer when absent).
        #[arg(long)]
        role: Option<String>,
    },
    Revoke {
        #[command(flatten)]
        owner: TokenOwner,
        token_id: i64,
    },
}

fn read_secret(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).with_context(|| format!("read the {what} from standard input"))?;
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    if secret.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(secret)
}

/// A byte size or "none".
fn optional_bytes(text: &str) -> anyhow::Result<Value> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    let size: ByteSize = text.parse().map_err(|e| anyhow::anyhow!("invalid size {text:?}: {e}"))?;
    Ok(json!(size.as_u64()))
}

fn path_segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn migrate(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let config = clew_config::Config::load(file, &env, &clew_config::Overrides::default())?;
    for line in clew_server::migrate(&config).await.context("clew admin migrate")? {
        println!("{line}");
    }
    Ok(())
}

pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let server = &args.server;
    let (method, path, body) = match args.command {
        AdminCommand::Migrate { config } => return migrate(config.as_deref()).await,
        AdminCommand::User(command) => match command {
            UserCommand::List => (Method::GET, "/api/v1/admin/users".to_owned(), None),
            UserCommand::Create { username, password_stdin, admin } => {
                let password = if password_stdin { Some(read_secret("password")?) } else { None };
                let body = json!({ "username": username, "password": password, "admin": admin });
                (Method::POST, "/api/v1/admin/users".to_owned(), Some(body))
            }
            UserCommand::Password { user } => {
                let body = json!({ "password": read_secret("password")? });
                (Method::PUT, format!("/api/v1/admin/users/{}/password", path_segment(&user)), Some(body))
            }
            UserCommand::Delete { user } => {
                (Method::DELETE, format!("/api/v1/admin/users/{}", path_segment(&user)), None)
            }
        },
        AdminCommand::Namespace(command) => match command {
            NamespaceCommand::List => (Method::GET, "/api/v1/namespaces".to_owned(), None),
            NamespaceCommand::Create { path, name } => {
                (Method::POST, "/api/v1/namespaces".to_owned(), Some(json!({ "path": path, "name": name })))
            }
            NamespaceCommand::Limits { namespace, ingest_rate, retention_days, quota } => {
                let path = format!("/api/v1/namespaces/{}/limits", path_segment(&namespace));
                if ingest_rate.is_none() && retention_days.is_none() && quota.is_none() {
                    (Method::GET, path, None)
                } else {
                    let current: Value = serde_json::from_str(&server.get(&path, &[]).await?)?;
                    let mut limits = current;
                    if let Some(rate) = ingest_rate {
                        limits["ingest_bytes_per_second"] = optional_bytes(&rate)?;
                    }
                    if let Some(days) = retention_days {
                        limits["retention_days"] = json!(days);
                    }
                    if let Some(quota) = quota {
                        limits["storage_quota_bytes"] = optional_bytes(&quota)?;
                    }
                    (Method::PUT, path, Some(limits))
                }
            }
            NamespaceCommand::Usage { namespace, days } => {
                let path = format!("/api/v1/namespaces/{}/usage", path_segment(&namespace));
                let body = server.get(&path, &[("days", days.to_string())]).await?;
                return print(&body);
            }
            NamespaceCommand::Members { namespace } => {
                (Method::GET, format!("/api/v1/namespaces/{}/members", path_segment(&namespace)), None)
            }
            NamespaceCommand::AddMember { namespace, user, role } => (
                Method::POST,
                format!("/api/v1/namespaces/{}/members", path_segment(&namespace)),
                Some(json!({ "user": user, "role": role })),
            ),
            NamespaceCommand::RemoveMember { namespace, user } => (
                Method::DELETE,
                format!("/api/v1/namespaces/{}/members/{}", path_segment(&namespace), path_segment(&user)),
                None,
            ),
        },
        AdminCommand::Project(command) => match command {
            ProjectCommand::List { namespace } => {
                (Method::GET, format!("/api/v1/namespaces/{}/projects", path_segment(&namespace)), None)
            }
            ProjectCommand::Create { namespace, path } => (
                Method::POST,
                format!("/api/v1/namespaces/{}/projects", path_segment(&namespace)),
                Some(json!({ "path": path })),
            ),
            ProjectCommand::EnableTracing { project_id } => {
                (Method::PUT, format!("/api/v1/projects/{project_id}/tracing"), None)
            }
            ProjectCommand::DisableTracing { project_id } => {
                (Method::DELETE, format!("/api/v1/projects/{project_id}/tracing"), None)
            }
            ProjectCommand::Members { project_id } => {
                (Method::GET, format!("/api/v1/projects/{project_id}/members"), None)
            }
            ProjectCommand::AddMember { project_id, user, role } => (
                Method::POST,
                format!("/api/v1/projects/{project_id}/members"),
                Some(json!({ "user": user, "role": role })),
            ),
            ProjectCommand::RemoveMember { project_id, user } => {
                (Method::DELETE, format!("/api/v1/projects/{project_id}/members/{}", path_segment(&user)), None)
            }
        },
        AdminCommand::Token(command) => match command {
            TokenCommand::List { owner } => (Method::GET, owner.path(), None),
            TokenCommand::Create { owner, name, scopes, expires_in, role } => {
                let expires_at = expires_in
                    .map(|after| {
                        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                        (now + *after).as_secs()
                    })
                    .map(|at| json!(at));
                let body = json!({ "name": name, "scopes": scopes, "expires_at": expires_at, "role": role });
                (Method::POST, owner.path(), Some(body))
            }
            TokenCommand::Revoke { owner, token_id } => (Method::DELETE, format!("{}/{token_id}", owner.path()), None),
        },
    };
    let body = server.send(method, &path, &[], body.as_ref()).await?;
    print(&body)
}

fn print(body: &str) -> anyhow::Result<()> {
    if body.is_empty() {
        println!("done");
    } else {
        let value: Value = serde_json::from_str(body).context("decode the response")?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}
