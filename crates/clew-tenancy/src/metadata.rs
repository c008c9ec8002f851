//! The metadata store: users, namespaces, projects, memberships, tokens, sessions, limits and
//! usage, in SQL that runs unchanged on SQLite (embedded) and PostgreSQL (`sqlx`'s `Any`
//! driver; the migrations in `migrations/`). IDs are allocated as `MAX(id) + 1` inside the
//! insert, so no backend-specific sequences are needed; on PostgreSQL such inserts take a table
//! lock so that concurrent ones (from any node) never pick the same ID.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Database, Postgres, Row};

use crate::{Role, Scope};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    Conflict(String),
    #[error("metadata store: {context}: {source}")]
    Database {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("metadata store: migrate the schema: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("metadata store holds an invalid {what}: {value}")]
    Invalid { what: &'static str, value: String },
}

pub(crate) type Result<T, E = MetadataError> = std::result::Result<T, E>;

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> MetadataError {
    move |source| MetadataError::Database { context, source }
}

/// Maps a unique-constraint violation to a conflict a person can act on.
fn unique(context: &'static str, conflict: impl FnOnce() -> String) -> impl FnOnce(sqlx::Error) -> MetadataError {
    move |source| match &source {
        sqlx::Error::Database(e) if e.is_unique_violation() => MetadataError::Conflict(conflict()),
        _ => MetadataError::Database { context, source },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub admin: bool,
    pub created_at: i64,
}

/// Limits of a top-level namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Ingest rate over the sliding window, in bytes per second; `None`: unlimited.
    pub ingest_bytes_per_second: Option<u64>,
    /// Spans are kept this many days, then deleted a whole day at a time.
    pub retention_days: u32,
    /// While more than this is stored, the oldest whole day is deleted; `None`: no quota.
    pub storage_quota_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self { ingest_bytes_per_second: None, retention_days: 30, storage_quota_bytes: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Namespace {
    pub id: i64,
    pub path: String,
    pub name: String,
    pub limits: Limits,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: i64,
    pub namespace_id: i64,
    pub path: String,
    /// The storage tenant its spans live in; internal, never shown.
    #[serde(skip)]
    pub tenant: String,
    pub tracing_enabled: bool,
    /// The project's own pipeline settings as JSON (what `clew-pipeline` reads); `None` when it
    /// uses the server's. Shown by its own endpoint.
    #[serde(skip)]
    pub pipeline: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
}

/// Whose a token is: a user's (personal) or a project's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenOwner {
    User(i64),
    Project(i64),
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub owner: TokenOwner,
    pub name: String,
    /// A project token acts with this role in its project; personal tokens act as their user.
    pub role: Option<Role>,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<i64>,
}

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub owner: TokenOwner,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_at: i64,
}

impl Token {
    /// Whether the token may be used at `now` (Unix seconds).
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    pub fn has_scope(&self, wanted: &[Scope]) -> bool {
        self.scopes.iter().any(|scope| wanted.contains(scope))
    }
}

/// Requests of one namespace refused on one day for one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RefusedCount {
    pub requests: u64,
    pub bytes: u64,
}

/// What one namespace ingested and had refused on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageDay {
    /// Days since the Unix epoch.
    pub day: u32,
    pub ingested_bytes: u64,
    pub ingested_spans: u64,
    /// By reason (`rate_limited`, `tracing_disabled`, ...).
    pub refused: BTreeMap<String, RefusedCount>,
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn role(level: i64) -> Result<Role> {
    Role::from_level(level).ok_or(MetadataError::Invalid { what: "role", value: level.to_string() })
}

fn user_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id").map_err(db("read a user"))?,
        username: row.try_get("username").map_err(db("read a user"))?,
        admin: row.try_get::<i64, _>("admin").map_err(db("read a user"))? != 0,
        created_at: row.try_get("created_at").map_err(db("read a user"))?,
    })
}

fn namespace_row(row: &AnyRow) -> Result<Namespace> {
    let get_err = db("read a namespace");
    let limits = (|| {
        Ok::<_, sqlx::Error>(Limits {
            ingest_bytes_per_second: row.try_get::<Option<i64>, _>("ingest_bytes_per_second")?.map(to_u64),
            retention_days: u32::try_from(row.try_get::<i64, _>("retention_days")?).unwrap_or(u32::MAX),
            storage_quota_bytes: row.try_get::<Option<i64>, _>("storage_quota_bytes")?.map(to_u64),
        })
    })();
    let read = (|| {
        Ok::<_, sqlx::Error>(Namespace {
            id: row.try_get("id")?,
            path: row.try_get("path")?,
            name: row.try_get("name")?,
            limits: limits?,
            created_at: row.try_get("created_at")?,
        })
    })();
    read.map_err(get_err)
}

fn project_row(row: &AnyRow) -> Result<Project> {
    let read = (|| {
        Ok::<_, sqlx::Error>(Project {
            id: row.try_get("id")?,
            namespace_id: row.try_get("namespace_id")?,
            path: row.try_get("path")?,
            tenant: row.try_get("tenant")?,
            tracing_enabled: row.try_get::<i64, _>("tracing_enabled")? != 0,
            pipeline: row.try_get("pipeline")?,
            created_at: row.try_get("created_at")?,
        })
    })();
    read.map_err(db("read a project"))
}

fn token_row(row: &AnyRow) -> Result<Token> {
    let get = db("read a token");
    let user_id: Option<i64> = row.try_get("user_id").map_err(db("read a token"))?;
    let project_id: Option<i64> = row.try_get("project_id").map_err(db("read a token"))?;
    let owner = match (user_id, project_id) {
        (Some(user), _) => TokenOwner::User(user),
        (None, Some(project)) => TokenOwner::Project(project),
        (None, None) => return Err(MetadataError::Invalid { what: "token owner", value: "none".into() }),
    };
    let scopes: String = row.try_get("scopes").map_err(db("read a token"))?;
    let scopes = scopes
        .split_whitespace()
        .map(|s| Scope::from_str(s).map_err(|_| MetadataError::Invalid { what: "token scope", value: s.into() }))
        .collect::<Result<Vec<_>>>()?;
    let role_level: Option<i64> = row.try_get("role").map_err(db("read a token"))?;
    let read = (|| {
        Ok::<_, sqlx::Error>((
            row.try_get::<i64, _>("id")?,
            row.try_get::<String, _>("name")?,
            row.try_get::<Option<i64>, _>("expires_at")?,
            row.try_get::<Option<i64>, _>("revoked_at")?,
            row.try_get::<Option<i64>, _>("last_used_at")?,
            row.try_get::<i64, _>("created_at")?,
        ))
    })();
    let (id, name, expires_at, revoked_at, last_used_at, created_at) = read.map_err(get)?;
    Ok(Token {
        id,
        name,
        owner,
        role: role_level.map(role).transpose()?,
        scopes,
        expires_at,
        revoked_at,
        last_used_at,
        created_at,
    })
}

const USER_COLUMNS: &str = "id, username, admin, created_at";
const NAMESPACE_COLUMNS: &str =
    "id, path, name, ingest_bytes_per_second, retention_days, storage_quota_bytes, created_at";
const PROJECT_COLUMNS: &str = "id, namespace_id, path, tenant, tracing_enabled, pipeline, created_at";
const TOKEN_COLUMNS: &str =
    "id, name, user_id, project_id, role, scopes, expires_at, revoked_at, last_used_at, created_at";

/// The metadata store. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Metadata {
    pool: AnyPool,
}

/// How long connecting to the metadata store may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Metadata {
    /// Connects to `url` (`sqlite://path?mode=rwc`, `postgres://...`) and brings the schema up
    /// to date.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        // One connection first, so that an unreachable server is reported with its cause
        // (a pool would retry until its timeout and report only that).
        use sqlx::Connection;
        match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(url)).await {
            Ok(Ok(connection)) => connection.close().await.map_err(db("connect"))?,
            Ok(Err(e)) => return Err(db("connect")(e)),
            Err(_) => return Err(db("connect")(sqlx::Error::PoolTimedOut)),
        }
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(db("connect"))?;
        MIGRATOR.run(&pool).await.map_err(MetadataError::Migrate)?;
        Ok(Self { pool })
    }

    /// Whether the store answers (for health checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db("answer a health check"))?;
        Ok(())
    }

    /// The embedded store: a SQLite file, created when missing.
    pub async fn sqlite(path: &Path) -> Result<Self> {
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Runs `insert`, which allocates its ID as `MAX(id) + 1` in `table`, and returns its row.
    /// Two such inserts on PostgreSQL could read the same maximum, and the second would fail on
    /// the primary key as if the user had asked for something that exists already; there the
    /// table is locked against other writers (not readers) until the insert commits. SQLite
    /// runs one write at a time anyway.
    async fn insert_with_id<'q>(
        &self,
        table: &str,
        insert: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<AnyRow, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if tx.backend_name() == Postgres::NAME {
            sqlx::query(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")).execute(&mut *tx).await?;
        }
        let row = insert.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(row)
    }

    // Users.

    pub async fn create_user(
        &self,
        username: &str,
        password_hash: Option<&str>,
        admin: bool,
        now: i64,
    ) -> Result<User> {
        let sql = format!(
            "INSERT INTO users (id, username, password_hash, admin, created_at) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4 FROM users RETURNING {USER_COLUMNS}"
        );
        let insert = sqlx::query(&sql).bind(username).bind(password_hash).bind(i64::from(admin)).bind(now);
        let row = self
            .insert_with_id("users", insert)
            .await
            .map_err(unique("create a user", || format!("a user named {username:?} exists already")))?;
        user_row(&row)
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db("list users"))?;
        rows.iter().map(user_row).collect()
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read a user"))?;
        row.as_ref().map(user_row).transpose()
    }

    /// The user named `username` with their password hash.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<(User, Option<String>)>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read a user"))?;
        row.map(|row| Ok((user_row(&row)?, row.try_get("password_hash").map_err(db("read a user"))?))).transpose()
    }

    pub async fn set_password(&self, user_id: i64, password_hash: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db("set a password"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a user with their memberships, personal tokens and sessions.
    pub async fn delete_user(&self, id: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db("delete a user"))?;
        for table in ["namespace_members", "project_members", "tokens", "sessions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db("delete a user"))?;
        }
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db("delete a user"))?;
        tx.commit().await.map_err(db("delete a user"))?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn user_count(&self) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await
            .and_then(|row| row.try_get("n"))
            .map_err(db("count users"))
    }

    // Namespaces and projects.

    pub async fn create_namespace(&self, path: &str, name: &str, limits: Limits, now: i64) -> Result<Namespace> {
        let sql = format!(
            "INSERT INTO namespaces (id, path, name, ingest_bytes_per_second, retention_days, storage_quota_bytes, created_at) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5, $6 FROM namespaces RETURNING {NAMESPACE_COLUMNS}"
        );
        let insert = sqlx::query(&sql)
            .bind(path)
            .bind(name)
            .bind(limits.ingest_bytes_per_second.map(to_i64))
            .bind(i64::from(limits.retention_days))
            .bind(limits.storage_quota_bytes.map(to_i64))
            .bind(now);
        let row = self
            .insert_with_id("namespaces", insert)
            .await
            .map_err(unique("create a namespace", || format!("a namespace with path {path:?} exists already")))?;
        namespace_row(&row)
    }

    pub async fn namespaces(&self) -> Result<Vec<Namespace>> {
        let rows = sqlx::query(&format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db("list namespaces"))?;
        rows.iter().map(namespace_row).collect()
    }

    /// The namespace with ID or path `key`.
    pub async fn namespace(&self, key: &str) -> Result<Option<Namespace>> {
        let id = key.parse::<i64>().unwrap_or(-1);
        let row = sqlx::query(&format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces WHERE id = $1 OR path = $2"))
            .bind(id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read a namespace"))?;
        row.as_ref().map(namespace_row).transpose()
    }

    pub async fn set_limits(&self, namespace_id: i64, limits: Limits) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE namespaces SET ingest_bytes_per_second = $1, retention_days = $2, storage_quota_bytes = $3 \
             WHERE id = $4",
        )
        .bind(limits.ingest_bytes_per_second.map(to_i64))
        .bind(i64::from(limits.retention_days))
        .bind(limits.storage_quota_bytes.map(to_i64))
        .bind(namespace_id)
        .execute(&self.pool)
        .await
        .map_err(db("set namespace limits"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Creates a project; its spans go to storage tenant `tenant`, or `p{id}` when `None`.
    pub async fn create_project(
        &self,
        namespace_id: i64,
        path: &str,
        tenant: Option<&str>,
        tracing_enabled: bool,
        now: i64,
    ) -> Result<Project> {
        let sql = format!(
            "INSERT INTO projects (id, namespace_id, path, tenant, tracing_enabled, created_at) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2, COALESCE($3, 'p' || CAST(COALESCE(MAX(id), 0) + 1 AS TEXT)), $4, $5 \
             FROM projects RETURNING {PROJECT_COLUMNS}"
        );
        let insert =
            sqlx::query(&sql).bind(namespace_id).bind(path).bind(tenant).bind(i64::from(tracing_enabled)).bind(now);
        let row = self.insert_with_id("projects", insert).await.map_err(unique("create a project", || {
            format!("the namespace has a project with path {path:?} already")
        }))?;
        project_row(&row)
    }

    /// Projects of one namespace, or of all.
    pub async fn projects(&self, namespace_id: Option<i64>) -> Result<Vec<Project>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE $1 IS NULL OR namespace_id = $1 ORDER BY id"
        ))
        .bind(namespace_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list projects"))?;
        rows.iter().map(project_row).collect()
    }

    pub async fn project(&self, id: i64) -> Result<Option<Project>> {
        let row = sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read a project"))?;
        row.as_ref().map(project_row).transpose()
    }

    /// The project of namespace `namespace_id` with ID or path `key`.
    pub async fn project_in(&self, namespace_id: i64, key: &str) -> Result<Option<Project>> {
        let id = key.parse::<i64>().unwrap_or(-1);
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE namespace_id = $1 AND (id = $2 OR path = $3)"
        ))
        .bind(namespace_id)
        .bind(id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read a project"))?;
        row.as_ref().map(project_row).transpose()
    }

    pub async fn set_tracing(&self, project_id: i64, enabled: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE projects SET tracing_enabled = $1 WHERE id = $2")
            .bind(i64::from(enabled))
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(db("enable or disable tracing"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets (`Some`, JSON) or clears a project's own pipeline settings.
    pub async fn set_pipeline(&self, project_id: i64, pipeline: Option<&str>) -> Result<bool> {
        let done = sqlx::query("UPDATE projects SET pipeline = $1 WHERE id = $2")
            .bind(pipeline)
            .bind(project_id)
            .execute(&self.pool)
            .await
            .map_err(db("set a project's pipeline settings"))?;
        Ok(done.rows_affected() > 0)
    }

    // Memberships.

    /// Adds `user_id` to a namespace (`project == false`) or project with `role`, or changes
    /// their role.
    pub async fn set_member(&self, target: MemberOf, user_id: i64, role: Role) -> Result<()> {
        let (table, column, id) = target.table();
        sqlx::query(&format!(
            "INSERT INTO {table} ({column}, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT ({column}, user_id) DO UPDATE SET role = excluded.role"
        ))
        .bind(id)
        .bind(user_id)
        .bind(role.level())
        .execute(&self.pool)
        .await
        .map_err(db("add a member"))?;
        Ok(())
    }

    pub async fn remove_member(&self, target: MemberOf, user_id: i64) -> Result<bool> {
        let (table, column, id) = target.table();
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1 AND user_id = $2"))
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(db("remove a member"))?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn members(&self, target: MemberOf) -> Result<Vec<Member>> {
        let (table, column, id) = target.table();
        let rows = sqlx::query(&format!(
            "SELECT m.user_id, u.username, m.role FROM {table} m JOIN users u ON u.id = m.user_id \
             WHERE m.{column} = $1 ORDER BY u.username"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("list members"))?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user_id: row.try_get("user_id").map_err(db("read a member"))?,
                    username: row.try_get("username").map_err(db("read a member"))?,
                    role: role(row.try_get("role").map_err(db("read a member"))?)?,
                })
            })
            .collect()
    }

    /// The role `user_id` has in a namespace (directly).
    pub async fn namespace_role(&self, user_id: i64, namespace_id: i64) -> Result<Option<Role>> {
        let level: Option<i64> =
            sqlx::query("SELECT role FROM namespace_members WHERE namespace_id = $1 AND user_id = $2")
                .bind(namespace_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await
                .and_then(|row| row.map(|row| row.try_get("role")).transpose())
                .map_err(db("read a role"))?;
        level.map(role).transpose()
    }

    /// The role `user_id` has in `project`: the higher of their project role and their role in
    /// its namespace.
    pub async fn project_role(&self, user_id: i64, project: &Project) -> Result<Option<Role>> {
        let level: Option<i64> = sqlx::query("SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project.id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .and_then(|row| row.map(|row| row.try_get("role")).transpose())
            .map_err(db("read a role"))?;
        let direct = level.map(role).transpose()?;
        Ok(direct.max(self.namespace_role(user_id, project.namespace_id).await?))
    }

    // Tokens.

    pub async fn create_token(&self, new: &NewToken, digest: &str, now: i64) -> Result<Token> {
        let (user_id, project_id) = match new.owner {
            TokenOwner::User(id) => (Some(id), None),
            TokenOwner::Project(id) => (None, Some(id)),
        };
        let scopes = new.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        let sql = format!(
            "INSERT INTO tokens (id, digest, name, user_id, project_id, role, scopes, expires_at, created_at) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5, $6, $7, $8 FROM tokens RETURNING {TOKEN_COLUMNS}"
        );
        let insert = sqlx::query(&sql)
            .bind(digest)
            .bind(&new.name)
            .bind(user_id)
            .bind(project_id)
            .bind(new.role.map(Role::level))
            .bind(scopes)
            .bind(new.expires_at)
            .bind(now);
        let row = self
            .insert_with_id("tokens", insert)
            .await
            .map_err(unique("create a token", || "that token exists already; use another secret".into()))?;
        token_row(&row)
    }

    pub async fn tokens(&self, owner: TokenOwner) -> Result<Vec<Token>> {
        let (column, id) = owner.column();
        let rows = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE {column} = $1 ORDER BY id"))
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db("list tokens"))?;
        rows.iter().map(token_row).collect()
    }

    pub async fn token_by_digest(&self, digest: &str) -> Result<Option<Token>> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = $1"))
            .bind(digest)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("read a token"))?;
        row.as_ref().map(token_row).transpose()
    }

    /// Revokes token `id` of `owner`; false when there is no such token.
    pub async fn revoke_token(&self, owner: TokenOwner, id: i64, now: i64) -> Result<bool> {
        let (column, owner_id) = owner.column();
        let done = sqlx::query(&format!(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND {column} = $3"
        ))
        .bind(now)
        .bind(id)
        .bind(owner_id)
        .execute(&self.pool)
        .await
        .map_err(db("revoke a token"))?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn touch_token(&self, id: i64, now: i64) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db("record a token's use"))?;
        Ok(())
    }

    // Sessions.

    pub async fn create_session(
        &self,
        digest: &str,
        user_id: i64,
        csrf: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (digest, user_id, csrf_token, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest)
        .bind(user_id)
        .bind(csrf)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db("create a session"))?;
        Ok(())
    }

    /// The user and CSRF token of an unexpired session.
    pub async fn session(&self, digest: &str, now: i64) -> Result<Option<(User, String)>> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.admin, u.created_at, s.csrf_token FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.digest = $1 AND s.expires_at > $2",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("read a session"))?;
        row.map(|row| Ok((user_row(&row)?, row.try_get("csrf_token").map_err(db("read a session"))?))).transpose()
    }

    pub async fn delete_session(&self, digest: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await
            .map_err(db("delete a session"))?;
        Ok(())
    }

    /// Deletes sessions that expired before `now`.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db("delete expired sessions"))?;
        Ok(done.rows_affected())
    }

    // Usage.

    pub async fn add_usage(&self, namespace_id: i64, day: u32, bytes: u64, spans: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage_days (namespace_id, day, ingested_bytes, ingested_spans) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace_id, day) DO UPDATE SET \
             ingested_bytes = usage_days.ingested_bytes + excluded.ingested_bytes, \
             ingested_spans = usage_days.ingested_spans + excluded.ingested_spans",
        )
        .bind(namespace_id)
        .bind(i64::from(day))
        .bind(to_i64(bytes))
        .bind(to_i64(spans))
        .execute(&self.pool)
        .await
        .map_err(db("record usage"))?;
        Ok(())
    }

    pub async fn add_refusals(
        &self,
        namespace_id: i64,
        day: u32,
        reason: &str,
        requests: u64,
        bytes: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO refusal_days (namespace_id, day, reason, requests, bytes) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (namespace_id, day, reason) DO UPDATE SET \
             requests = refusal_days.requests + excluded.requests, bytes = refusal_days.bytes + excluded.bytes",
        )
        .bind(namespace_id)
        .bind(i64::from(day))
        .bind(reason)
        .bind(to_i64(requests))
        .bind(to_i64(bytes))
        .execute(&self.pool)
        .await
        .map_err(db("record refused requests"))?;
        Ok(())
    }

    /// Usage of a namespace from `from_day` on, oldest first.
    pub async fn usage(&self, namespace_id: i64, from_day: u32) -> Result<Vec<UsageDay>> {
        let mut days: BTreeMap<u32, UsageDay> = BTreeMap::new();
        let day_of = |row: &AnyRow| -> Result<u32> {
            let day: i64 = row.try_get("day").map_err(db("read usage"))?;
            u32::try_from(day).map_err(|_| MetadataError::Invalid { what: "usage day", value: day.to_string() })
        };
        let rows = sqlx::query(
            "SELECT day, ingested_bytes, ingested_spans FROM usage_days WHERE namespace_id = $1 AND day >= $2",
        )
        .bind(namespace_id)
        .bind(i64::from(from_day))
        .fetch_all(&self.pool)
        .await
        .map_err(db("read usage"))?;
        for row in &rows {
            let day = day_of(row)?;
            let entry = days.entry(day).or_insert_with(|| UsageDay { day, ..UsageDay::default() });
            entry.ingested_bytes = to_u64(row.try_get("ingested_bytes").map_err(db("read usage"))?);
            entry.ingested_spans = to_u64(row.try_get("ingested_spans").map_err(db("read usage"))?);
        }
        let rows =
            sqlx::query("SELECT day, reason, requests, bytes FROM refusal_days WHERE namespace_id = $1 AND day >= $2")
                .bind(namespace_id)
                .bind(i64::from(from_day))
                .fetch_all(&self.pool)
                .await
                .map_err(db("read refused requests"))?;
        for row in &rows {
            let day = day_of(row)?;
            let entry = days.entry(day).or_insert_with(|| UsageDay { day, ..UsageDay::default() });
            entry.refused.insert(
                row.try_get("reason").map_err(db("read refused requests"))?,
                RefusedCount {
                    requests: to_u64(row.try_get("requests").map_err(db("read refused requests"))?),
                    bytes: to_u64(row.try_get("bytes").map_err(db("read refused requests"))?),
                },
            );
        }
        Ok(days.into_values().collect())
    }
}

/// What a membership is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOf {
    Namespace(i64),
    Project(i64),
}

impl MemberOf {
    fn table(self) -> (&'static str, &'static str, i64) {
        match self {
            MemberOf::Namespace(id) => ("namespace_members", "namespace_id", id),
            MemberOf::Project(id) => ("project_members", "project_id", id),
        }
    }
}

impl TokenOwner {
    fn column(self) -> (&'static str, i64) {
        match self {
            TokenOwner::User(id) => ("user_id", id),
            TokenOwner::Project(id) => ("project_id", id),
        }
    }
}
