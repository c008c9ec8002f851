//! Credentials and the project as HTTP requests and gRPC metadata carry them (gRPC metadata
//! is HTTP/2 headers, so one reader serves both).

use http::HeaderMap;

use crate::access::{AccessError, Credentials, ProjectRef, PROJECT_HEADER};

/// The cookie holding a signed-in browser's session.
pub const SESSION_COOKIE: &str = "clew_session";
/// The header a signed-in browser echoes its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// GitLab's token header.
pub const PRIVATE_TOKEN_HEADER: &str = "private-token";

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The token (`PRIVATE-TOKEN`, or `Authorization: Bearer`), session cookie and CSRF header.
pub fn credentials(headers: &HeaderMap) -> Credentials {
    let bearer = text(headers, "authorization").and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
    });
    let token = text(headers, PRIVATE_TOKEN_HEADER).map(str::to_owned).or(bearer);
    let session = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned());
    Credentials { token, session, csrf: text(headers, CSRF_HEADER).map(str::to_owned) }
}

/// The project named by the `X-Clew-Project` header, or by Tempo's `X-Scope-OrgID` (so that
/// Grafana's Tempo data source can name it), if any.
pub fn project(headers: &HeaderMap) -> Result<Option<ProjectRef>, AccessError> {
    text(headers, PROJECT_HEADER).or_else(|| text(headers, "x-scope-orgid")).map(ProjectRef::parse).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), http::HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn tokens_come_from_private_token_or_bearer() {
        assert_eq!(credentials(&headers(&[("private-token", "abc")])).token.as_deref(), Some("abc"));
        assert_eq!(credentials(&headers(&[("authorization", "Bearer  xyz ")])).token.as_deref(), Some("xyz"));
        assert_eq!(credentials(&headers(&[("authorization", "Basic xyz")])).token, None);
        let both = credentials(&headers(&[("private-token", "a"), ("authorization", "Bearer b")]));
        assert_eq!(both.token.as_deref(), Some("a"));
    }

    #[test]
    fn the_session_comes_from_its_cookie() {
        let c = credentials(&headers(&[("cookie", "theme=dark; clew_session=s3cr3t; x=y"), ("x-csrf-token", "t")]));
        assert_eq!((c.session.as_deref(), c.csrf.as_deref()), (Some("s3cr3t"), Some("t")));
        assert_eq!(credentials(&headers(&[("cookie", "clew_sessionx=1")])).session, None);
    }

    #[test]
    fn projects_are_named_by_path_or_id() {
        let p = project(&headers(&[("x-clew-project", "team-a/web")])).unwrap().unwrap();
        assert_eq!((p.namespace.as_deref(), p.project.as_str()), (Some("team-a"), "web"));
        let p = project(&headers(&[("x-scope-orgid", "42")])).unwrap().unwrap();
        assert_eq!((p.namespace, p.project.as_str()), (None, "42"));
        assert!(project(&headers(&[("x-clew-project", "web")])).is_err());
        assert!(project(&headers(&[("x-clew-project", "a/b/c")])).is_err());
        assert_eq!(project(&HeaderMap::new()).unwrap(), None);
    }
}
