//! Query-string parameters, including repeated ones (`attr=a&attr=b`, Jaeger's `tag=`), with
//! errors that name the parameter.

use crate::ApiError;

pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        Ok(Self { pairs })
    }

    /// The last value of `name`, if given and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable filter parameter (`attr=a&attr=b`), in order. Unlike other
    /// parameters, an empty one is refused: an empty filter is a mistake, not a default.
    pub(crate) fn filters<'a>(&'a self, name: &'a str) -> Result<Vec<&'a str>, ApiError> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| match v.as_str() {
                "" => Err(ApiError::BadRequest(format!("`{name}` is empty; leave it out or give a filter"))),
                v => Ok(v),
            })
            .collect()
    }

    /// A whole-number parameter (at most [`MAX_NUMBER`]), `default` when absent.
    pub(crate) fn number<T: TryFrom<u64>>(&self, name: &str, default: T) -> Result<T, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => whole(text).and_then(|n| T::try_from(n).ok()).ok_or_else(|| {
                ApiError::BadRequest(format!("`{name}` must be a whole number from 0 to {MAX_NUMBER}, not {text:?}"))
            }),
        }
    }
}

/// The largest whole number a query parameter may hold, 2^52: JSON (and JavaScript) carry it
/// and its neighbours exactly, so any client can send it and `docs/openapi.yaml` can state it,
/// and times in microseconds up to it reach the year 2112.
pub(crate) const MAX_NUMBER: u64 = 1 << 52;

/// `text` as a whole number of at most [`MAX_NUMBER`].
pub(crate) fn whole(text: &str) -> Option<u64> {
    text.parse::<u64>().ok().filter(|&n| n <= MAX_NUMBER)
}

/// A path parameter, refused with the native API's JSON error (axum's own refusal is plain
/// text): `/api/v1/projects/abc` is a 400 that names what was expected.
pub(crate) struct Path<T>(pub(crate) T);

impl<T, S> axum::extract::FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))),
        }
    }
}
