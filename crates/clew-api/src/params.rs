//! Query-string parameters, including repeated ones (`attr=a&attr=b`, Jaeger's `tag=`), with
//! errors that name the parameter.

use std::str::FromStr;

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

    /// A number parameter, `default` when absent.
    pub(crate) fn number<T: FromStr>(&self, name: &str, default: T) -> Result<T, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("`{name}` must be a non-negative integer, not {text:?}"))),
        }
    }
}
