//! Who may read what, and the settings API under `/api/v1`: sign-in, users, namespaces,
//! projects, memberships, tokens, limits and usage (described in `docs/openapi.yaml`). The
//! rules themselves live in `clew-tenancy`; this module maps requests onto them. Responses are
//! typed and their keys snake_case, as in the request bodies.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clew_pipeline::{PipelineSettings, ProjectPipeline};
use clew_tenancy::headers::{credentials, SESSION_COOKIE};
use clew_tenancy::maintenance;
use clew_tenancy::{
    AccessError, Caller, Limits, Member, MemberOf, Namespace, NewToken, Project, RefusedCount, Role, Scope, Tenancy,
    Token, TokenOwner, UsageDay, User, Via,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::params::{Params, Path};
use crate::routes::Routes;
use crate::AppState;

/// An authenticated caller of the settings API. Requests that change something need a token
/// with the `api` scope, or, from a signed-in browser, the session's CSRF token.
pub(crate) struct Settings(Caller);

impl FromRequestParts<AppState> for Settings {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let tenancy = &state.tenancy;
        let credentials = credentials(&parts.headers);
        let caller = tenancy.authenticate(&credentials).await?;
        let write = !matches!(parts.method, Method::GET | Method::HEAD);
        tenancy.require_settings_scope(&caller, write)?;
        if write {
            tenancy.check_csrf(&caller, &credentials)?;
        }
        Ok(Settings(caller))
    }
}

pub(crate) fn routes() -> Routes {
    Routes::new()
        .post("/api/v1/auth/login", login)
        .post("/api/v1/auth/logout", logout)
        .get("/api/v1/auth/me", me)
        .get("/api/v1/status", status)
        .get("/api/v1/admin/users", users)
        .post("/api/v1/admin/users", create_user)
        .delete("/api/v1/admin/users/{user}", delete_user)
        .put("/api/v1/admin/users/{user}/password", set_password)
        .get("/api/v1/namespaces", namespaces)
        .post("/api/v1/namespaces", create_namespace)
        .get("/api/v1/namespaces/{ns}", namespace)
        .get("/api/v1/namespaces/{ns}/limits", limits)
        .put("/api/v1/namespaces/{ns}/limits", set_limits)
        .get("/api/v1/namespaces/{ns}/usage", usage)
        .get("/api/v1/namespaces/{ns}/members", namespace_members)
        .post("/api/v1/namespaces/{ns}/members", add_namespace_member)
        .delete("/api/v1/namespaces/{ns}/members/{user}", remove_namespace_member)
        .get("/api/v1/namespaces/{ns}/projects", projects)
        .post("/api/v1/namespaces/{ns}/projects", create_project)
        .get("/api/v1/projects/{id}", project)
        .put("/api/v1/projects/{id}/tracing", enable_tracing)
        .delete("/api/v1/projects/{id}/tracing", disable_tracing)
        .get("/api/v1/projects/{id}/pipeline", pipeline)
        .put("/api/v1/projects/{id}/pipeline", set_pipeline)
        .delete("/api/v1/projects/{id}/pipeline", clear_pipeline)
        .get("/api/v1/projects/{id}/members", project_members)
        .post("/api/v1/projects/{id}/members", add_project_member)
        .delete("/api/v1/projects/{id}/members/{user}", remove_project_member)
        .get("/api/v1/projects/{id}/tokens", project_tokens)
        .post("/api/v1/projects/{id}/tokens", create_project_token)
        .delete("/api/v1/projects/{id}/tokens/{token}", revoke_project_token)
        .get("/api/v1/user/tokens", personal_tokens)
        .post("/api/v1/user/tokens", create_personal_token)
        .delete("/api/v1/user/tokens/{token}", revoke_personal_token)
}

type Answer = Result<Response, ApiError>;

fn ok(value: impl Serialize) -> Answer {
    Ok(Json(value).into_response())
}

fn created(value: impl Serialize) -> Answer {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn not_found(what: &str, key: impl std::fmt::Display) -> ApiError {
    ApiError::from(AccessError::NotFound(format!("{what} {key} not found")))
}

/// A JSON body, with a 400 that says what is wrong instead of axum's 422.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

// Sign-in.

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

fn session_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u64) -> HeaderValue {
    let forwarded_tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let secure = if state.secure_cookies || forwarded_tls { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn login(State(state): State<AppState>, headers: HeaderMap, payload: axum::body::Bytes) -> Answer {
    let login: Login = body(&payload)?;
    let (user, session, csrf) = state.tenancy.sign_in(&login.username, &login.password).await?;
    let ttl = state.tenancy.options().session_ttl.as_secs();
    let mut response = Json(SignedIn { user, csrf_token: csrf }).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &headers, &session, ttl));
    Ok(response)
}

#[derive(Serialize)]
struct SignedIn {
    user: User,
    csrf_token: String,
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let credentials = credentials(&headers);
    if let Some(session) = &credentials.session {
        // Signing out is refused without the CSRF token, so other sites cannot sign users out.
        if let Ok(caller @ Caller::User { via: Via::Session { .. }, .. }) =
            state.tenancy.authenticate(&credentials).await
        {
            state.tenancy.check_csrf(&caller, &credentials)?;
        }
        state.tenancy.sign_out(session).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &headers, "", 0));
    Ok(response)
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let caller = state.tenancy.authenticate(&credentials(&headers)).await?;
    let csrf = match &caller {
        Caller::User { via: Via::Session { csrf }, .. } => Some(csrf.clone()),
        _ => None,
    };
    let (token, project) = match &caller {
        Caller::User { via: Via::Token(token), .. } => (Some(token.clone()), None),
        Caller::Project { token, project_id, .. } => (Some(token.clone()), Some(*project_id)),
        _ => (None, None),
    };
    ok(Me {
        caller: caller.describe(),
        user: caller.user(),
        admin: caller.is_admin(),
        token,
        project_id: project,
        csrf_token: csrf,
        auth_required: state.tenancy.options().auth_required,
    })
}

/// Who the caller is, and how they signed in.
#[derive(Serialize)]
struct Me<'a> {
    caller: String,
    user: Option<&'a User>,
    admin: bool,
    /// The token the request came with, when it came with one.
    token: Option<Token>,
    project_id: Option<i64>,
    /// The session's CSRF token, for a signed-in browser.
    csrf_token: Option<String>,
    auth_required: bool,
}

/// What a client needs to know about this node: its version, whether sign-in is required, and
/// where it receives spans (shown to people setting up an SDK).
async fn status(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    state.tenancy.authenticate(&credentials(&headers)).await?;
    let listeners = state.listeners;
    ok(Status {
        version: env!("CARGO_PKG_VERSION"),
        auth_required: state.tenancy.options().auth_required,
        http: listeners.http.to_string(),
        otlp_grpc: listeners.otlp_grpc.to_string(),
        otlp_http: listeners.otlp_http.to_string(),
    })
}

#[derive(Serialize)]
struct Status {
    version: &'static str,
    auth_required: bool,
    http: String,
    otlp_grpc: String,
    otlp_http: String,
}

// Users (administrators).

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: Option<String>,
    #[serde(default)]
    admin: bool,
}

async fn users(State(state): State<AppState>, Settings(caller): Settings) -> Answer {
    state.tenancy.require_admin(&caller)?;
    ok(Users { users: state.tenancy.metadata().users().await? })
}

#[derive(Serialize)]
struct Users {
    users: Vec<User>,
}

async fn create_user(State(state): State<AppState>, Settings(caller): Settings, payload: axum::body::Bytes) -> Answer {
    state.tenancy.require_admin(&caller)?;
    let new: NewUser = body(&payload)?;
    let user = state.tenancy.create_user(&new.username, new.password.as_deref(), new.admin).await?;
    created(user)
}

/// A user named by ID or username.
async fn find_user(tenancy: &Tenancy, key: &str) -> Result<clew_tenancy::User, ApiError> {
    let metadata = tenancy.metadata();
    let user = match key.parse::<i64>() {
        Ok(id) => metadata.user(id).await?,
        Err(_) => metadata.user_by_name(key).await?.map(|(user, _)| user),
    };
    user.ok_or_else(|| not_found("user", key))
}

async fn delete_user(State(state): State<AppState>, Settings(caller): Settings, Path(key): Path<String>) -> Answer {
    state.tenancy.require_admin(&caller)?;
    let user = find_user(&state.tenancy, &key).await?;
    if caller.user().is_some_and(|me| me.id == user.id) {
        return Err(ApiError::BadRequest("you cannot delete yourself".into()));
    }
    state.tenancy.metadata().delete_user(user.id).await?;
    no_content()
}

#[derive(Deserialize)]
struct Password {
    password: String,
}

async fn set_password(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(key): Path<String>,
    payload: axum::body::Bytes,
) -> Answer {
    // Checked before looking the user up, so that the answer does not tell who exists.
    let is_me = caller.user().is_some_and(|me| me.username == key || me.id.to_string() == key);
    if !caller.is_admin() && !is_me {
        return Err(AccessError::Forbidden("only an administrator may change another user's password".into()).into());
    }
    let user = find_user(&state.tenancy, &key).await?;
    let Password { password } = body(&payload)?;
    state.tenancy.set_password(user.id, &password).await?;
    no_content()
}

// Namespaces.

async fn namespaces(State(state): State<AppState>, Settings(caller): Settings) -> Answer {
    let tenancy = &state.tenancy;
    let mut visible = Vec::new();
    for namespace in tenancy.metadata().namespaces().await? {
        if let Some(role) = visible_role(tenancy, &caller, &namespace).await? {
            visible.push(NamespaceRole { namespace, role });
        }
    }
    ok(Namespaces { namespaces: visible })
}

#[derive(Serialize)]
struct Namespaces {
    namespaces: Vec<NamespaceRole>,
}

/// A namespace and the caller's role in it.
#[derive(Serialize)]
struct NamespaceRole {
    namespace: Namespace,
    role: Role,
}

/// The caller's role in a namespace, or in any of its projects (which makes the namespace
/// visible, with only those projects).
async fn visible_role(
    tenancy: &Tenancy,
    caller: &Caller,
    namespace: &clew_tenancy::Namespace,
) -> Result<Option<Role>, ApiError> {
    if let Some(role) = tenancy.namespace_role(caller, namespace).await? {
        return Ok(Some(role));
    }
    let mut best = None;
    for project in tenancy.metadata().projects(Some(namespace.id)).await? {
        best = best.max(tenancy.role_in(caller, &project).await?);
    }
    Ok(best.map(|_| Role::Guest))
}

#[derive(Deserialize)]
struct NewNamespace {
    path: String,
    name: Option<String>,
}

async fn create_namespace(
    State(state): State<AppState>,
    Settings(caller): Settings,
    payload: axum::body::Bytes,
) -> Answer {
    state.tenancy.require_admin(&caller)?;
    let new: NewNamespace = body(&payload)?;
    created(state.tenancy.create_namespace(&new.path, new.name.as_deref()).await?)
}

async fn namespace(State(state): State<AppState>, Settings(caller): Settings, Path(ns): Path<String>) -> Answer {
    let tenancy = &state.tenancy;
    let namespace = tenancy.metadata().namespace(&ns).await?;
    let Some(namespace) = namespace else { return Err(not_found("namespace", ns)) };
    let Some(role) = visible_role(tenancy, &caller, &namespace).await? else { return Err(not_found("namespace", ns)) };
    ok(NamespaceRole { namespace, role })
}

async fn limits(State(state): State<AppState>, Settings(caller): Settings, Path(ns): Path<String>) -> Answer {
    let namespace = state.tenancy.namespace_with(&caller, &ns, Role::Owner, "see the limits").await?;
    ok(namespace.limits)
}

async fn set_limits(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(ns): Path<String>,
    payload: axum::body::Bytes,
) -> Answer {
    let namespace = state.tenancy.namespace_with(&caller, &ns, Role::Owner, "change the limits").await?;
    state.tenancy.require_admin(&caller)?;
    let limits: Limits = body(&payload)?;
    if limits.retention_days == 0 {
        return Err(ApiError::BadRequest("retention_days must be at least 1".into()));
    }
    state.tenancy.metadata().set_limits(namespace.id, limits).await?;
    ok(limits)
}

/// A namespace's limits, what it stores now, and what it sent day by day.
#[derive(Serialize)]
struct NamespaceUsage {
    namespace: String,
    limits: Limits,
    stored: Stored,
    days: Vec<Day>,
}

#[derive(Serialize)]
struct Stored {
    bytes: u64,
    spans: u64,
    projects: Vec<maintenance::Stored>,
}

#[derive(Serialize)]
struct Day {
    /// `YYYY-MM-DD`, UTC.
    date: String,
    ingested_bytes: u64,
    ingested_spans: u64,
    refused: BTreeMap<String, RefusedCount>,
}

impl From<UsageDay> for Day {
    fn from(day: UsageDay) -> Self {
        Day {
            date: clew_model::day_name(day.day),
            ingested_bytes: day.ingested_bytes,
            ingested_spans: day.ingested_spans,
            refused: day.refused,
        }
    }
}

async fn usage(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let namespace = state.tenancy.namespace_with(&caller, &ns, Role::Owner, "see the usage").await?;
    let days = Params::parse(query.as_deref())?.number("days", 30u64)?.clamp(1, 366) as u32;
    let usage = state.tenancy.usage().days(namespace.id, days).await?;
    let stored = maintenance::stored(state.tenancy.metadata(), &*state.storage, namespace.id)
        .await
        .map_err(|e| ApiError::internal("read stored usage", e))?;
    ok(NamespaceUsage {
        namespace: namespace.path,
        limits: namespace.limits,
        stored: Stored {
            bytes: stored.iter().map(|s| s.bytes).sum(),
            spans: stored.iter().map(|s| s.spans).sum(),
            projects: stored,
        },
        days: usage.into_iter().map(Day::from).collect(),
    })
}

// Members.

#[derive(Deserialize)]
struct NewMember {
    /// User ID or username.
    user: serde_json::Value,
    role: Role,
}

#[derive(Serialize)]
struct Members {
    members: Vec<Member>,
}

async fn member_user(tenancy: &Tenancy, new: &NewMember) -> Result<clew_tenancy::User, ApiError> {
    let key = match &new.user {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(ApiError::BadRequest("`user` must be a user ID or username".into())),
    };
    find_user(tenancy, &key).await
}

/// Refuses granting a role above the caller's own.
fn check_grant(have: Role, granted: Role) -> Result<(), ApiError> {
    if granted > have {
        return Err(AccessError::Forbidden(format!("you cannot grant the {granted} role: you are {have}")).into());
    }
    Ok(())
}

async fn namespace_members(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(ns): Path<String>,
) -> Answer {
    let namespace = state.tenancy.namespace_with(&caller, &ns, Role::Guest, "see the members").await?;
    let members = state.tenancy.metadata().members(MemberOf::Namespace(namespace.id)).await?;
    ok(Members { members })
}

async fn add_namespace_member(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(ns): Path<String>,
    payload: axum::body::Bytes,
) -> Answer {
    let tenancy = &state.tenancy;
    let namespace = tenancy.namespace_with(&caller, &ns, Role::Owner, "manage members").await?;
    let new: NewMember = body(&payload)?;
    let user = member_user(tenancy, &new).await?;
    tenancy.metadata().set_member(MemberOf::Namespace(namespace.id), user.id, new.role).await?;
    created(Member { user_id: user.id, username: user.username, role: new.role })
}

async fn remove_namespace_member(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path((ns, key)): Path<(String, String)>,
) -> Answer {
    let tenancy = &state.tenancy;
    let namespace = tenancy.namespace_with(&caller, &ns, Role::Owner, "manage members").await?;
    let user = find_user(tenancy, &key).await?;
    if !tenancy.metadata().remove_member(MemberOf::Namespace(namespace.id), user.id).await? {
        return Err(not_found("member", key));
    }
    no_content()
}

// Projects.

async fn projects(State(state): State<AppState>, Settings(caller): Settings, Path(ns): Path<String>) -> Answer {
    let tenancy = &state.tenancy;
    let namespace = tenancy.metadata().namespace(&ns).await?;
    let Some(namespace) = namespace else { return Err(not_found("namespace", ns)) };
    let mut visible = Vec::new();
    for project in tenancy.metadata().projects(Some(namespace.id)).await? {
        if let Some(role) = tenancy.role_in(&caller, &project).await? {
            visible.push(ProjectRole { project, role });
        }
    }
    if visible.is_empty() && tenancy.namespace_role(&caller, &namespace).await?.is_none() {
        return Err(not_found("namespace", ns));
    }
    ok(Projects { projects: visible })
}

#[derive(Serialize)]
struct Projects {
    projects: Vec<ProjectRole>,
}

/// A project and the caller's role in it.
#[derive(Serialize)]
struct ProjectRole {
    project: Project,
    role: Role,
}

#[derive(Deserialize)]
struct NewProject {
    path: String,
}

async fn create_project(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(ns): Path<String>,
    payload: axum::body::Bytes,
) -> Answer {
    let namespace = state.tenancy.namespace_with(&caller, &ns, Role::Maintainer, "create projects").await?;
    let new: NewProject = body(&payload)?;
    created(state.tenancy.create_project(&namespace, &new.path).await?)
}

async fn project(State(state): State<AppState>, Settings(caller): Settings, Path(id): Path<i64>) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Guest, "see the project").await?;
    ok(ProjectInNamespace { project: target.project, namespace: target.namespace.path, role: target.role })
}

#[derive(Serialize)]
struct ProjectInNamespace {
    project: Project,
    /// The namespace's path.
    namespace: String,
    role: Role,
}

async fn set_tracing(state: &AppState, caller: &Caller, id: i64, enabled: bool) -> Answer {
    let action = if enabled { "enable tracing" } else { "disable tracing" };
    let target = state.tenancy.project_with(caller, id, Role::Maintainer, action).await?;
    state.tenancy.metadata().set_tracing(target.project.id, enabled).await?;
    ok(Tracing { project_id: target.project.id, tracing_enabled: enabled })
}

#[derive(Serialize)]
struct Tracing {
    project_id: i64,
    tracing_enabled: bool,
}

async fn enable_tracing(State(state): State<AppState>, Settings(caller): Settings, Path(id): Path<i64>) -> Answer {
    set_tracing(&state, &caller, id, true).await
}

/// A project's own pipeline settings and the pipeline its spans go through.
fn pipeline_answer(state: &AppState, project_id: i64, own: Option<ProjectPipeline>) -> Answer {
    let effective = own.as_ref().map_or_else(|| (*state.pipeline).clone(), |own| state.pipeline.with_project(own));
    ok(Pipeline { project_id, settings: own, effective })
}

/// A project's own pipeline settings (`null` when it has none) and what its spans go through.
#[derive(Serialize)]
struct Pipeline {
    project_id: i64,
    settings: Option<ProjectPipeline>,
    effective: PipelineSettings,
}

async fn pipeline(State(state): State<AppState>, Settings(caller): Settings, Path(id): Path<i64>) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Reporter, "see the pipeline settings").await?;
    let own = match &target.project.pipeline {
        Some(json) => Some(
            serde_json::from_str::<ProjectPipeline>(json)
                .map_err(|e| AccessError::internal("read back the stored pipeline settings", e))?,
        ),
        None => None,
    };
    pipeline_answer(&state, target.project.id, own)
}

async fn set_pipeline(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(id): Path<i64>,
    payload: axum::body::Bytes,
) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Maintainer, "change the pipeline settings").await?;
    let own: ProjectPipeline = body(&payload)?;
    state.pipeline.with_project(&own).build().map_err(|e| ApiError::BadRequest(format!("pipeline settings: {e}")))?;
    let json = serde_json::to_string(&own).map_err(|e| AccessError::internal("encode the pipeline settings", e))?;
    state.tenancy.metadata().set_pipeline(target.project.id, Some(&json)).await?;
    pipeline_answer(&state, target.project.id, Some(own))
}

async fn clear_pipeline(State(state): State<AppState>, Settings(caller): Settings, Path(id): Path<i64>) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Maintainer, "change the pipeline settings").await?;
    state.tenancy.metadata().set_pipeline(target.project.id, None).await?;
    no_content()
}

async fn disable_tracing(State(state): State<AppState>, Settings(caller): Settings, Path(id): Path<i64>) -> Answer {
    set_tracing(&state, &caller, id, false).await
}

async fn project_members(State(state): State<AppState>, Settings(caller): Settings, Path(id): Path<i64>) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Guest, "see the members").await?;
    let members = state.tenancy.metadata().members(MemberOf::Project(target.project.id)).await?;
    ok(Members { members })
}

async fn add_project_member(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(id): Path<i64>,
    payload: axum::body::Bytes,
) -> Answer {
    let tenancy = &state.tenancy;
    let target = tenancy.project_with(&caller, id, Role::Maintainer, "manage members").await?;
    let new: NewMember = body(&payload)?;
    check_grant(target.role, new.role)?;
    let user = member_user(tenancy, &new).await?;
    tenancy.metadata().set_member(MemberOf::Project(target.project.id), user.id, new.role).await?;
    created(Member { user_id: user.id, username: user.username, role: new.role })
}

async fn remove_project_member(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path((id, key)): Path<(i64, String)>,
) -> Answer {
    let tenancy = &state.tenancy;
    let target = tenancy.project_with(&caller, id, Role::Maintainer, "manage members").await?;
    let user = find_user(tenancy, &key).await?;
    if !tenancy.metadata().remove_member(MemberOf::Project(target.project.id), user.id).await? {
        return Err(not_found("member", key));
    }
    no_content()
}

// Tokens.

#[derive(Deserialize)]
struct TokenRequest {
    name: String,
    scopes: Vec<Scope>,
    /// Unix seconds.
    expires_at: Option<i64>,
    /// Project tokens only; developer when absent.
    role: Option<Role>,
}

fn issued(token: clew_tenancy::Token, secret: String) -> Answer {
    created(IssuedToken { token, secret, note: "the secret is shown only now; store it safely" })
}

#[derive(Serialize)]
struct IssuedToken {
    token: Token,
    secret: String,
    note: &'static str,
}

#[derive(Serialize)]
struct Tokens {
    tokens: Vec<Token>,
}

async fn project_tokens(State(state): State<AppState>, Settings(caller): Settings, Path(id): Path<i64>) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Maintainer, "manage tokens").await?;
    let tokens = state.tenancy.metadata().tokens(TokenOwner::Project(target.project.id)).await?;
    ok(Tokens { tokens })
}

async fn create_project_token(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(id): Path<i64>,
    payload: axum::body::Bytes,
) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Maintainer, "manage tokens").await?;
    let request: TokenRequest = body(&payload)?;
    let role = request.role.unwrap_or(Role::Developer);
    check_grant(target.role, role)?;
    let new = NewToken {
        owner: TokenOwner::Project(target.project.id),
        name: request.name,
        role: Some(role),
        scopes: request.scopes,
        expires_at: request.expires_at,
    };
    let (token, secret) = state.tenancy.create_token(&new).await?;
    issued(token, secret)
}

async fn revoke_project_token(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path((id, token)): Path<(i64, i64)>,
) -> Answer {
    let target = state.tenancy.project_with(&caller, id, Role::Maintainer, "manage tokens").await?;
    let now = state.tenancy.now();
    let owner = TokenOwner::Project(target.project.id);
    if !state.tenancy.metadata().revoke_token(owner, token, now).await? {
        return Err(not_found("token", token));
    }
    no_content()
}

fn signed_in_user(caller: &Caller) -> Result<&clew_tenancy::User, ApiError> {
    caller.user().ok_or_else(|| {
        AccessError::Forbidden("personal tokens belong to users: sign in or use a personal token".into()).into()
    })
}

async fn personal_tokens(State(state): State<AppState>, Settings(caller): Settings) -> Answer {
    let user = signed_in_user(&caller)?;
    let tokens = state.tenancy.metadata().tokens(TokenOwner::User(user.id)).await?;
    ok(Tokens { tokens })
}

async fn create_personal_token(
    State(state): State<AppState>,
    Settings(caller): Settings,
    payload: axum::body::Bytes,
) -> Answer {
    let user = signed_in_user(&caller)?;
    let request: TokenRequest = body(&payload)?;
    if request.role.is_some() {
        return Err(ApiError::BadRequest(
            "personal tokens act with their user's roles; `role` is for project tokens".into(),
        ));
    }
    let new = NewToken {
        owner: TokenOwner::User(user.id),
        name: request.name,
        role: None,
        scopes: request.scopes,
        expires_at: request.expires_at,
    };
    let (token, secret) = state.tenancy.create_token(&new).await?;
    issued(token, secret)
}

async fn revoke_personal_token(
    State(state): State<AppState>,
    Settings(caller): Settings,
    Path(token): Path<i64>,
) -> Answer {
    let user = signed_in_user(&caller)?;
    let now = state.tenancy.now();
    if !state.tenancy.metadata().revoke_token(TokenOwner::User(user.id), token, now).await? {
        return Err(not_found("token", token));
    }
    no_content()
}
