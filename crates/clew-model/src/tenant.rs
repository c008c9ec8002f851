use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Why a string cannot name a tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant {name:?}: use 1 to 128 characters from a-z, A-Z, 0-9, '_', '-' and '.', not starting with '.'")]
pub struct TenantError {
    name: String,
}

/// The owner of stored spans. Tenants never see each other's data, and a tenant ID is used as a
/// directory name by the local engine, so its alphabet is restricted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// The tenant everything belongs to while no authentication is configured.
    pub fn default_tenant() -> Self {
        Self(Arc::from("default"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = TenantError;

    fn from_str(s: &str) -> Result<Self, TenantError> {
        let valid = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if valid {
            Ok(Self(Arc::from(s)))
        } else {
            Err(TenantError { name: s.to_owned() })
        }
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_path_safe_names_are_tenants() {
        for ok in ["default", "team-a", "ns_1.prod"] {
            assert_eq!(ok.parse::<TenantId>().unwrap().as_str(), ok);
        }
        for bad in ["", "..", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(bad.parse::<TenantId>().is_err(), "{bad:?} accepted");
        }
    }
}
