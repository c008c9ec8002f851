//! [`Reader`]: who may read traces, and from which project.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use clew_model::TenantId;
use clew_tenancy::headers::credentials;
use clew_tenancy::ProjectRef;

use crate::error::{ApiError, ErrorFormat, Failure, Native};
use crate::params::Params;
use crate::AppState;

/// The storage tenant of the project a read may see: from the caller's token or session and
/// the project they name (`X-Clew-Project` header, `project` query parameter, Tempo's
/// `X-Scope-OrgID`), checked for the right to read traces. A refusal is answered in the
/// format `F` of the API asked.
pub(crate) struct Reader<F = Native>(pub(crate) TenantId, pub(crate) PhantomData<F>);

impl<F: ErrorFormat + Send> FromRequestParts<AppState> for Reader<F> {
    type Rejection = Failure<F>;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure<F>> {
        let tenancy = &state.tenancy;
        let caller = tenancy.authenticate(&credentials(&parts.headers)).await?;
        let from_query = Params::parse(parts.uri.query())?.get("project").map(ProjectRef::parse).transpose()?;
        let project = match from_query {
            Some(project) => Some(project),
            None => clew_tenancy::headers::project(&parts.headers).map_err(ApiError::from)?,
        };
        Ok(Reader(tenancy.read_target(&caller, project.as_ref()).await?.tenant, PhantomData))
    }
}
