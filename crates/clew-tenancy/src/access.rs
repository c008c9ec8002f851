//! Who a request comes from ([`Caller`]) and what it may reach: the project a read or write
//! goes to, checked against roles and token scopes. The rules:
//! - reading traces needs the developer role or above in the project, and a token (if that is
//!   how the caller signed in) with `read_api`, `read_observability` or `api`;
//! - sending spans needs the developer role or above, a token with `write_observability` or
//!   `api`, and tracing enabled on the project;
//! - settings need the role the action names, and a token with `api` to change anything
//!   (`read_api` to look);
//! - a project the caller has no role in is "not found", whether it exists or not.
//!
//! With authentication off (single-user mode), a request without credentials acts as the
//! local owner of everything and lands in the default project.

use std::sync::Arc;
use std::time::Duration;

use clew_model::{Code, Coded, TenantId};

use crate::metadata::{Limits, Metadata, MetadataError, Namespace, NewToken, Project, Token, TokenOwner, User};
use crate::ratelimit::{RateLimited, RateLimiter};
use crate::secret;
use crate::usage::{Refusal, Usage};
use crate::{Clock, Role, Scope, DEFAULT_TENANT};

/// Refusals, each with a message a person can act on, and faults of the metadata store; each
/// names its [`Code`].
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Metadata(MetadataError),
    /// A fault while deciding, with what was being done.
    #[error("{context}: {source}")]
    Internal {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AccessError {
    pub fn internal(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal { context: context.into(), source: source.into() }
    }
}

impl Coded for AccessError {
    fn code(&self) -> Code {
        match self {
            Self::Unauthenticated(_) => Code::Unauthorized,
            Self::Forbidden(_) => Code::Forbidden,
            Self::NotFound(_) => Code::NotFound,
            Self::BadRequest(_) => Code::BadRequest,
            Self::Conflict(_) => Code::Conflict,
            Self::RateLimited(RateLimited::OverLimit { .. }) => Code::TooManyRequests,
            Self::RateLimited(RateLimited::TooLarge { .. }) => Code::TooLarge,
            Self::Metadata(_) | Self::Internal { .. } => Code::Internal,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited(RateLimited::OverLimit { retry_after, .. }) => Some(*retry_after),
            _ => None,
        }
    }
}

impl From<MetadataError> for AccessError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::Conflict(message) => AccessError::Conflict(message),
            other => AccessError::Metadata(other),
        }
    }
}

pub(crate) type Result<T, E = AccessError> = std::result::Result<T, E>;

/// Secrets found on a request, not yet checked.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    /// From `PRIVATE-TOKEN`, `Authorization: Bearer` (gRPC metadata alike).
    pub token: Option<String>,
    /// The session cookie.
    pub session: Option<String>,
    /// The `X-CSRF-Token` header.
    pub csrf: Option<String>,
}

/// Who a request comes from.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Authentication is off and no credentials were sent: the single local user.
    Local,
    /// A signed-in user (session) or a personal access token.
    User { user: User, via: Via },
    /// A project access token.
    Project { token: Token, project_id: i64, role: Role },
}

/// How a user proved who they are.
#[derive(Debug, Clone)]
pub enum Via {
    /// A session cookie; state-changing requests must echo its CSRF token.
    Session {
        csrf: String,
    },
    Token(Token),
}

impl Caller {
    fn scopes_allow(&self, wanted: &[Scope]) -> bool {
        match self {
            Caller::Local | Caller::User { via: Via::Session { .. }, .. } => true,
            Caller::User { via: Via::Token(token), .. } | Caller::Project { token, .. } => token.has_scope(wanted),
        }
    }

    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Local => true,
            Caller::User { user, .. } => user.admin,
            Caller::Project { .. } => false,
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::User { user, .. } => Some(user),
            _ => None,
        }
    }

    /// A short description for responses (`/auth/me`) and logs: never a secret.
    pub fn describe(&self) -> String {
        match self {
            Caller::Local => "the local user (authentication is off)".into(),
            Caller::User { user, via: Via::Session { .. } } => format!("user {} (signed in)", user.username),
            Caller::User { user, via: Via::Token(token) } => format!("user {} (token {:?})", user.username, token.name),
            Caller::Project { token, project_id, .. } => format!("project {project_id} (token {:?})", token.name),
        }
    }
}

/// A project named by a request: `namespace/project` (IDs or paths), or a project ID alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub namespace: Option<String>,
    pub project: String,
}

impl ProjectRef {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let invalid = || {
            AccessError::BadRequest(format!(
                "invalid project {text:?}: name it as <namespace>/<project> (IDs or paths) or by its numeric ID"
            ))
        };
        match text.split_once('/') {
            Some((ns, project)) if !ns.is_empty() && !project.is_empty() && !project.contains('/') => {
                Ok(Self { namespace: Some(ns.to_owned()), project: project.to_owned() })
            }
            None if text.parse::<i64>().is_ok() => Ok(Self { namespace: None, project: text.to_owned() }),
            _ => Err(invalid()),
        }
    }
}

impl std::fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.project),
            None => f.write_str(&self.project),
        }
    }
}

/// The project a request reads from or writes to, resolved and checked.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: Namespace,
    pub project: Project,
    pub role: Role,
    pub tenant: TenantId,
}

/// Settings of [`Tenancy`].
#[derive(Debug, Clone)]
pub struct TenancyOptions {
    /// Whether every request must authenticate (`--auth required`).
    pub auth_required: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// Limits of namespaces created without explicit ones.
    pub default_limits: Limits,
    /// The window the ingest rate limit is measured over: a namespace may send
    /// `ingest_bytes_per_second × rate_window` bytes in any such window.
    pub rate_window: Duration,
}

impl Default for TenancyOptions {
    fn default() -> Self {
        Self {
            auth_required: false,
            session_ttl: Duration::from_secs(30 * 86_400),
            default_limits: Limits::default(),
            rate_window: Duration::from_secs(10),
        }
    }
}

/// The project header (and gRPC metadata key) naming the project of a request.
pub const PROJECT_HEADER: &str = "x-clew-project";

/// Tenancy as the receivers and APIs use it. Cheap to clone.
#[derive(Clone)]
pub struct Tenancy {
    metadata: Metadata,
    options: Arc<TenancyOptions>,
    clock: Arc<dyn Clock>,
    limiter: Arc<dyn RateLimiter>,
    usage: Usage,
}

/// Token uses are recorded at most this often per token.
const TOUCH_EVERY_SECS: i64 = 60;

impl Tenancy {
    /// Wraps `metadata`, creating the default namespace and project when missing.
    pub async fn new(
        metadata: Metadata,
        options: TenancyOptions,
        clock: Arc<dyn Clock>,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<Self> {
        let usage = Usage::new(metadata.clone(), clock.clone());
        let tenancy = Self { metadata, options: Arc::new(options), clock, limiter, usage };
        tenancy.ensure_default().await?;
        Ok(tenancy)
    }

    /// Tenancy on one node: the machine's clock, rate limits in this process's memory.
    pub async fn local(metadata: Metadata, options: TenancyOptions) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(crate::SystemClock);
        let limiter = Arc::new(crate::LocalRateLimiter::new(options.rate_window, clock.clone()));
        Self::new(metadata, options, clock, limiter).await
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    pub fn options(&self) -> &TenancyOptions {
        &self.options
    }

    pub fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }

    async fn ensure_default(&self) -> Result<()> {
        let namespace = match self.metadata.namespace(DEFAULT_TENANT).await? {
            Some(ns) => ns,
            None => {
                self.metadata
                    .create_namespace(DEFAULT_TENANT, "Default", self.options.default_limits, self.now())
                    .await?
            }
        };
        if self.metadata.project_in(namespace.id, DEFAULT_TENANT).await?.is_none() {
            self.metadata.create_project(namespace.id, DEFAULT_TENANT, Some(DEFAULT_TENANT), true, self.now()).await?;
        }
        Ok(())
    }

    /// The first admin of a server that requires authentication, created when there is no
    /// user yet: with `token` (an automated deployment's `CLEW_BOOTSTRAP_ADMIN_TOKEN`) as a
    /// personal token with every scope, and with `password`, or else a generated password.
    /// Returns what to tell the operator (the generated password, once), or `None` when users
    /// exist already.
    pub async fn bootstrap_admin(&self, token: Option<&str>, password: Option<&str>) -> Result<Option<String>> {
        if self.metadata.user_count().await? > 0 {
            return Ok(None);
        }
        if let Some(token) = token {
            if token.len() < secret::MIN_TOKEN_CHARS {
                return Err(AccessError::BadRequest(format!(
                    "the bootstrap admin token must have at least {} characters",
                    secret::MIN_TOKEN_CHARS
                )));
            }
        }
        let generated = password.is_none() && token.is_none();
        let password = match password {
            Some(p) => Some(p.to_owned()),
            None if generated => Some(secret::new_session_secret()[..24].to_owned()),
            None => None,
        };
        let hash = match &password {
            Some(p) => Some(hash_password(p.clone()).await?),
            None => None,
        };
        let admin = self.metadata.create_user("admin", hash.as_deref(), true, self.now()).await?;
        if let Some(token) = token {
            let new = NewToken {
                owner: TokenOwner::User(admin.id),
                name: "bootstrap".into(),
                role: None,
                scopes: Scope::ALL.to_vec(),
                expires_at: None,
            };
            self.metadata.create_token(&new, &secret::digest(token), self.now()).await?;
        }
        Ok(Some(match (generated, password) {
            (true, Some(password)) => format!(
                "created the first admin: sign in as user \"admin\" with password {password} \
                 (shown once; change it with `clew admin user password admin`)"
            ),
            _ => "created the first admin, user \"admin\", with the credentials from the environment".into(),
        }))
    }

    // Authentication.

    /// Who sent a request with `credentials`.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<Caller> {
        let now = self.now();
        if let Some(secret) = credentials.token.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let token = self
                .metadata
                .token_by_digest(&secret::digest(secret))
                .await?
                .filter(|token| token.is_active(now))
                .ok_or_else(|| {
                    AccessError::Unauthenticated("the access token is invalid, expired or revoked".into())
                })?;
            if token.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY_SECS) {
                self.metadata.touch_token(token.id, now).await?;
            }
            return match token.owner {
                TokenOwner::Project(project_id) => {
                    let role = token.role.unwrap_or(Role::Developer);
                    Ok(Caller::Project { token, project_id, role })
                }
                TokenOwner::User(user_id) => {
                    let user = self.metadata.user(user_id).await?.ok_or_else(|| {
                        AccessError::Unauthenticated("the access token's user no longer exists".into())
                    })?;
                    Ok(Caller::User { user, via: Via::Token(token) })
                }
            };
        }
        if let Some(session) = credentials.session.as_deref().filter(|s| !s.is_empty()) {
            if let Some((user, csrf)) = self.metadata.session(&secret::digest(session), now).await? {
                return Ok(Caller::User { user, via: Via::Session { csrf } });
            }
            if self.options.auth_required {
                return Err(AccessError::Unauthenticated("your session has expired: sign in again".into()));
            }
        }
        if self.options.auth_required {
            return Err(AccessError::Unauthenticated(
                "authentication required: send an access token in the PRIVATE-TOKEN header or as \
                 Authorization: Bearer <token>, or sign in"
                    .into(),
            ));
        }
        Ok(Caller::Local)
    }

    /// Refuses a state-changing request from a signed-in browser that does not echo the
    /// session's CSRF token in `X-CSRF-Token`.
    pub fn check_csrf(&self, caller: &Caller, credentials: &Credentials) -> Result<()> {
        if let Caller::User { via: Via::Session { csrf }, .. } = caller {
            let sent = credentials.csrf.as_deref().unwrap_or("");
            if !secret::same(sent, csrf) {
                return Err(AccessError::Forbidden(
                    "missing or wrong X-CSRF-Token header: send the csrf_token from sign-in or /api/v1/auth/me".into(),
                ));
            }
        }
        Ok(())
    }

    /// Signs a user in: a new session (its secret, for the cookie) and its CSRF token.
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<(User, String, String)> {
        let found = self.metadata.user_by_name(username).await?;
        let hash = found.as_ref().and_then(|(_, hash)| hash.clone());
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || secret::verify_password(&password, hash.as_deref()))
            .await
            .map_err(|e| AccessError::internal("verify a password", e))?;
        let user = match (found, matches) {
            (Some((user, _)), true) => user,
            _ => return Err(AccessError::Unauthenticated("wrong username or password".into())),
        };
        let (session, csrf) = (secret::new_session_secret(), secret::new_session_secret());
        let now = self.now();
        let expires = now + i64::try_from(self.options.session_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.metadata.create_session(&secret::digest(&session), user.id, &csrf, expires, now).await?;
        Ok((user, session, csrf))
    }

    pub async fn sign_out(&self, session: &str) -> Result<()> {
        Ok(self.metadata.delete_session(&secret::digest(session)).await?)
    }

    // Projects.

    async fn find_project(&self, reference: &ProjectRef) -> Result<Option<(Namespace, Project)>> {
        let metadata = &self.metadata;
        Ok(match &reference.namespace {
            Some(ns) => match metadata.namespace(ns).await? {
                Some(namespace) => metadata.project_in(namespace.id, &reference.project).await?.map(|p| (namespace, p)),
                None => None,
            },
            None => match reference.project.parse::<i64>() {
                Ok(id) => match metadata.project(id).await? {
                    Some(project) => {
                        metadata.namespace(&project.namespace_id.to_string()).await?.map(|ns| (ns, project))
                    }
                    None => None,
                },
                Err(_) => None,
            },
        })
    }

    /// The caller's role in `project`, if any.
    pub async fn role_in(&self, caller: &Caller, project: &Project) -> Result<Option<Role>> {
        Ok(match caller {
            Caller::Local => Some(Role::Owner),
            Caller::User { user, .. } if user.admin => Some(Role::Owner),
            Caller::User { user, .. } => self.metadata.project_role(user.id, project).await?,
            Caller::Project { project_id, role, .. } => (*project_id == project.id).then_some(*role),
        })
    }

    /// The caller's role in a namespace: admins and the local user own every namespace.
    pub async fn namespace_role(&self, caller: &Caller, namespace: &Namespace) -> Result<Option<Role>> {
        Ok(match caller {
            Caller::Local => Some(Role::Owner),
            Caller::User { user, .. } if user.admin => Some(Role::Owner),
            Caller::User { user, .. } => self.metadata.namespace_role(user.id, namespace.id).await?,
            Caller::Project { .. } => None,
        })
    }

    /// The project `reference` names (or the caller's own: a project token's, or the default
    /// project in single-user mode) with the caller's role in it. Unknown projects and
    /// projects the caller has no role in are both "not found".
    pub async fn project(&self, caller: &Caller, reference: Option<&ProjectRef>) -> Result<Target> {
        let reference = match (reference, caller) {
            (Some(reference), _) => reference.clone(),
            (None, Caller::Project { project_id, .. }) => {
                ProjectRef { namespace: None, project: project_id.to_string() }
            }
            (None, Caller::Local) => {
                ProjectRef { namespace: Some(DEFAULT_TENANT.into()), project: DEFAULT_TENANT.into() }
            }
            (None, Caller::User { .. }) => {
                return Err(AccessError::BadRequest(format!(
                    "which project? name it as <namespace>/<project> in the {PROJECT_HEADER} header \
                     (reads also take the `project` query parameter; ingest also takes \
                     /v3/<namespace>/<project>/ingest/traces)"
                )))
            }
        };
        let not_found = || AccessError::NotFound(format!("project {reference} not found"));
        let (namespace, project) = self.find_project(&reference).await?.ok_or_else(not_found)?;
        let role = self.role_in(caller, &project).await?.ok_or_else(not_found)?;
        let tenant =
            project.tenant.parse().map_err(|e| AccessError::internal(format!("read project {}", project.id), e))?;
        Ok(Target { namespace, project, role, tenant })
    }

    /// The project a caller reads traces from.
    pub async fn read_target(&self, caller: &Caller, reference: Option<&ProjectRef>) -> Result<Target> {
        let target = self.project(caller, reference).await?;
        require_role(&target, Role::Developer, "read traces")?;
        if !caller.scopes_allow(&[Scope::ReadApi, Scope::ReadObservability, Scope::Api]) {
            return Err(AccessError::Forbidden(
                "this token cannot read traces: it needs the read_api or read_observability scope".into(),
            ));
        }
        Ok(target)
    }

    /// The project a caller sends spans to. Refusals of a known project count in its
    /// namespace's usage.
    pub async fn write_target(&self, caller: &Caller, reference: Option<&ProjectRef>) -> Result<Target> {
        let target = self.project(caller, reference).await?;
        let refused = |reason: Refusal, e: AccessError| {
            self.usage.refused(target.namespace.id, reason, 0);
            Err(e)
        };
        if let Err(e) = require_role(&target, Role::Developer, "send spans") {
            return refused(Refusal::Forbidden, e);
        }
        if !caller.scopes_allow(&[Scope::WriteObservability, Scope::Api]) {
            return refused(
                Refusal::Forbidden,
                AccessError::Forbidden("this token cannot send spans: it needs the write_observability scope".into()),
            );
        }
        if !target.project.tracing_enabled {
            let project = &target.project;
            return refused(
                Refusal::TracingDisabled,
                AccessError::Forbidden(format!(
                    "tracing is not enabled for project {}/{} (ID {}): a maintainer enables it with \
                     `clew admin project enable-tracing {}` or PUT /api/v1/projects/{}/tracing",
                    target.namespace.path, project.path, project.id, project.id, project.id
                )),
            );
        }
        Ok(target)
    }

    /// Counts a request of `bytes` against its namespace's ingest rate limit.
    pub async fn admit(&self, target: &Target, bytes: u64) -> Result<()> {
        let Some(rate) = target.namespace.limits.ingest_bytes_per_second else { return Ok(()) };
        match self.limiter.admit(target.namespace.id, bytes, rate).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.usage.refused(target.namespace.id, Refusal::RateLimited, bytes);
                Err(e.into())
            }
        }
    }

    // Settings: the checks every management endpoint makes.

    /// Allows reading settings (`write == false`) or changing them.
    pub fn require_settings_scope(&self, caller: &Caller, write: bool) -> Result<()> {
        let wanted: &[Scope] = if write { &[Scope::Api] } else { &[Scope::Api, Scope::ReadApi] };
        if caller.scopes_allow(wanted) {
            Ok(())
        } else {
            Err(AccessError::Forbidden(format!(
                "this token cannot {} settings: it needs the {} scope",
                if write { "change" } else { "read" },
                if write { "api" } else { "read_api or api" }
            )))
        }
    }

    pub fn require_admin(&self, caller: &Caller) -> Result<()> {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(AccessError::Forbidden("only an administrator may do this".into()))
        }
    }

    /// The namespace `key` (ID or path) if the caller has at least `role` in it; a namespace
    /// the caller has no role in is "not found".
    pub async fn namespace_with(&self, caller: &Caller, key: &str, role: Role, action: &str) -> Result<Namespace> {
        let not_found = || AccessError::NotFound(format!("namespace {key} not found"));
        let namespace = self.metadata.namespace(key).await?.ok_or_else(not_found)?;
        match self.namespace_role(caller, &namespace).await? {
            None => Err(not_found()),
            Some(have) if have < role => Err(AccessError::Forbidden(format!(
                "to {action} you need the {role} role or above in namespace {}; you are {have}",
                namespace.path
            ))),
            Some(_) => Ok(namespace),
        }
    }

    /// The project with ID `id` if the caller has at least `role` in it.
    pub async fn project_with(&self, caller: &Caller, id: i64, role: Role, action: &str) -> Result<Target> {
        let target = self.project(caller, Some(&ProjectRef { namespace: None, project: id.to_string() })).await?;
        require_role(&target, role, action)?;
        Ok(target)
    }

    /// Issues a token; returns it with its secret, which is shown once and never stored.
    pub async fn create_token(&self, new: &NewToken) -> Result<(Token, String)> {
        if new.scopes.is_empty() {
            return Err(AccessError::BadRequest(
                "a token needs at least one scope: api, read_api, read_observability, write_observability".into(),
            ));
        }
        if new.expires_at.is_some_and(|at| at <= self.now()) {
            return Err(AccessError::BadRequest("the expiry must be in the future".into()));
        }
        let secret = secret::new_token();
        let token = self.metadata.create_token(new, &secret::digest(&secret), self.now()).await?;
        Ok((token, secret))
    }

    /// A new user; `password` is hashed with argon2id.
    pub async fn create_user(&self, username: &str, password: Option<&str>, admin: bool) -> Result<User> {
        let valid = !username.is_empty()
            && username.len() <= 64
            && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(AccessError::BadRequest(format!(
                "invalid username {username:?}: use 1 to 64 characters from a-z, A-Z, 0-9, '_', '-' and '.'"
            )));
        }
        let hash = match password {
            Some(p) => Some(hash_password(checked_password(p)?.to_owned()).await?),
            None => None,
        };
        Ok(self.metadata.create_user(username, hash.as_deref(), admin, self.now()).await?)
    }

    pub async fn set_password(&self, user_id: i64, password: &str) -> Result<bool> {
        let hash = hash_password(checked_password(password)?.to_owned()).await?;
        Ok(self.metadata.set_password(user_id, &hash).await?)
    }

    /// A new namespace with the default limits.
    pub async fn create_namespace(&self, path: &str, name: Option<&str>) -> Result<Namespace> {
        check_path("namespace", path)?;
        let now = self.now();
        Ok(self.metadata.create_namespace(path, name.unwrap_or(path), self.options.default_limits, now).await?)
    }

    /// A new project, tracing disabled until a maintainer enables it.
    pub async fn create_project(&self, namespace: &Namespace, path: &str) -> Result<Project> {
        check_path("project", path)?;
        Ok(self.metadata.create_project(namespace.id, path, None, false, self.now()).await?)
    }
}

fn require_role(target: &Target, role: Role, action: &str) -> Result<()> {
    if target.role >= role {
        Ok(())
    } else {
        Err(AccessError::Forbidden(format!(
            "to {action} in project {}/{} you need the {role} role or above; you are {}",
            target.namespace.path, target.project.path, target.role
        )))
    }
}

fn check_path(what: &str, path: &str) -> Result<()> {
    let valid = !path.is_empty()
        && path.len() <= 64
        && path.parse::<i64>().is_err()
        && path.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(AccessError::BadRequest(format!(
            "invalid {what} path {path:?}: use 1 to 64 characters from a-z, A-Z, 0-9, '_', '-' and '.', \
             starting with a letter or digit, and not only digits"
        )))
    }
}

fn checked_password(password: &str) -> Result<&str> {
    if password.chars().count() < 8 {
        return Err(AccessError::BadRequest("a password needs at least 8 characters".into()));
    }
    Ok(password)
}

async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| AccessError::internal("hash a password", e))?
        .map_err(|e| AccessError::internal("hash a password", e))
}
