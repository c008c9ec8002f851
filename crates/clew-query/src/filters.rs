//! Simple search filters (service, span name, kind, status, duration, attributes), as the
//! native, Jaeger and Tempo search parameters give them, turned into one TraceQL spanset filter:
//! every filter applies to the same span.

use clew_traceql::{
    CmpOp, Field, FieldExpr, Intrinsic, KindValue, Pattern, Query, Scope, SpansetExpr, Static, StatusValue,
};

use crate::{QueryError, Result};

#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub service: Option<String>,
    pub name: Option<String>,
    pub kind: Option<KindValue>,
    pub status: Option<StatusValue>,
    /// Nanoseconds, inclusive.
    pub min_duration: Option<u64>,
    /// Nanoseconds, inclusive.
    pub max_duration: Option<u64>,
    pub attributes: Vec<FieldExpr>,
}

impl Filters {
    /// The query these filters make, combined with `traceql` (which must also match) if given.
    pub fn to_query(&self, traceql: Option<Query>) -> Query {
        let mut conditions = Vec::new();
        if let Some(service) = &self.service {
            conditions.push(FieldExpr::compare(
                Field::resource("service.name"),
                CmpOp::Eq,
                Static::Str(service.clone()),
            ));
        }
        if let Some(name) = &self.name {
            conditions.push(FieldExpr::compare(
                Field::Intrinsic(Intrinsic::Name),
                CmpOp::Eq,
                Static::Str(name.clone()),
            ));
        }
        if let Some(kind) = self.kind {
            conditions.push(FieldExpr::compare(Field::Intrinsic(Intrinsic::Kind), CmpOp::Eq, Static::Kind(kind)));
        }
        if let Some(status) = self.status {
            conditions.push(FieldExpr::compare(Field::Intrinsic(Intrinsic::Status), CmpOp::Eq, Static::Status(status)));
        }
        let duration = Field::Intrinsic(Intrinsic::Duration);
        if let Some(min) = self.min_duration {
            conditions.push(FieldExpr::compare(duration.clone(), CmpOp::Ge, Static::Duration(min)));
        }
        if let Some(max) = self.max_duration {
            conditions.push(FieldExpr::compare(duration, CmpOp::Le, Static::Duration(max)));
        }
        conditions.extend(self.attributes.iter().cloned());
        let filter = conditions.into_iter().reduce(FieldExpr::and).map(SpansetExpr::Filter);
        let root = match (traceql, filter) {
            (Some(query), Some(filter)) => SpansetExpr::And(Box::new(query.root), Box::new(filter)),
            (Some(query), None) => query.root,
            (None, Some(filter)) => filter,
            (None, None) => SpansetExpr::Filter(FieldExpr::Static(Static::Bool(true))),
        };
        Query { root }
    }
}

/// TraceQL's name for an OTLP span kind.
pub fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

/// A span kind by its TraceQL name (`server`, `client`, ...; any case).
pub fn kind(text: &str) -> Result<KindValue> {
    [
        KindValue::Unspecified,
        KindValue::Internal,
        KindValue::Server,
        KindValue::Client,
        KindValue::Producer,
        KindValue::Consumer,
    ]
    .into_iter()
    .find(|k| k.keyword().eq_ignore_ascii_case(text))
    .ok_or_else(|| {
        QueryError::invalid(format!(
            "span kind must be one of unspecified, internal, server, client, producer, consumer; not {text:?}"
        ))
    })
}

/// A span status by its TraceQL name (`ok`, `error`, `unset`; any case).
pub fn status(text: &str) -> Result<StatusValue> {
    [StatusValue::Unset, StatusValue::Ok, StatusValue::Error]
        .into_iter()
        .find(|s| s.keyword().eq_ignore_ascii_case(text))
        .ok_or_else(|| QueryError::invalid(format!("status must be one of ok, error, unset; not {text:?}")))
}

/// A field named as in TraceQL (`span.http.method`, `resource.host.name`, `.user.id`, `name`,
/// `span:duration`); a bare name that is no intrinsic is an attribute of any scope.
pub fn field(text: &str) -> Result<Field> {
    // ASCII blanks only (as the pattern in docs/openapi.yaml states): other Unicode spaces
    // are part of the name.
    let text = text.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if text.is_empty() {
        return Err(QueryError::invalid("attribute name is empty"));
    }
    if let Some(intrinsic) =
        Intrinsic::ALL.into_iter().find(|i| i.canonical_name() == text || i.short_name() == Some(text))
    {
        return Ok(Field::Intrinsic(intrinsic));
    }
    let (scope, name) = if let Some(name) = text.strip_prefix("span.") {
        (Scope::Span, name)
    } else if let Some(name) = text.strip_prefix("resource.") {
        (Scope::Resource, name)
    } else {
        (Scope::Any, text.strip_prefix('.').unwrap_or(text))
    };
    if name.is_empty() {
        return Err(QueryError::invalid(format!("attribute name missing after the scope in {text:?}")));
    }
    Ok(Field::Attribute { scope, name: name.to_owned() })
}

/// The operators of an attribute filter, longest first so `>=` is not read as `>`.
const OPERATORS: [(&str, CmpOp); 8] = [
    ("!=", CmpOp::Ne),
    (">=", CmpOp::Ge),
    ("<=", CmpOp::Le),
    ("=~", CmpOp::Match),
    ("!~", CmpOp::NotMatch),
    ("=", CmpOp::Eq),
    (">", CmpOp::Gt),
    ("<", CmpOp::Lt),
];

/// One attribute filter: `key op value` with op one of `= != > >= < <= =~ !~`, `key` (the
/// attribute exists) or `!key` (it does not). The value is typed as it reads: an integer, a
/// float, `true`/`false`, else a string; double quotes force a string.
pub fn attribute_filter(text: &str) -> Result<FieldExpr> {
    let text = text.trim();
    let position = OPERATORS
        .iter()
        .filter_map(|(symbol, op)| text.find(symbol).map(|at| (at, *symbol, *op)))
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.len().cmp(&a.1.len())));
    let Some((at, symbol, op)) = position else {
        return Ok(match text.strip_prefix('!') {
            Some(key) => FieldExpr::Exists { field: field(key)?, exists: false },
            None => FieldExpr::Exists { field: field(text)?, exists: true },
        });
    };
    let key = field(&text[..at])?;
    let raw = text[at + symbol.len()..].trim();
    let value = if op.is_regex() {
        Static::Regex(Pattern::new(raw.trim_matches('"')).map_err(|e| QueryError::invalid(e.to_string()))?)
    } else if let Some(quoted) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Static::Str(quoted.to_owned())
    } else {
        typed_literal(raw).unwrap_or_else(|| Static::Str(raw.to_owned()))
    };
    if matches!(key, Field::Intrinsic(_)) {
        // Intrinsics take typed values (`status=error`, `duration>1s`): the TraceQL parser reads
        // and checks them.
        // Keywords and durations as written; a string intrinsic's value quoted.
        let query = clew_traceql::parse(&format!("{{ {key} {} {raw} }}", op.symbol()))
            .or_else(|_| clew_traceql::parse(&format!("{{ {key} {} {value} }}", op.symbol())))?;
        if let SpansetExpr::Filter(expr) = query.root {
            return Ok(expr);
        }
    }
    Ok(FieldExpr::Compare { field: key, op, value })
}

/// The typed value `text` reads as: an integer, a finite float, `true` or `false`; `None` for
/// other text.
pub fn typed_literal(text: &str) -> Option<Static> {
    if let Ok(i) = text.parse::<i64>() {
        Some(Static::Int(i))
    } else if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
        Some(Static::Float(f))
    } else {
        text.parse::<bool>().ok().map(Static::Bool)
    }
}

/// `field = text` for filters that carry every value as text (Jaeger and Zipkin tags, Tempo's
/// logfmt): text that reads as a number or boolean also matches that typed value, so
/// `http.status_code=500` finds both `"500"` and `500`.
pub fn text_equals(field: Field, text: &str) -> FieldExpr {
    let as_text = FieldExpr::compare(field.clone(), CmpOp::Eq, Static::Str(text.to_owned()));
    match typed_literal(text) {
        Some(typed) => FieldExpr::or(FieldExpr::compare(field, CmpOp::Eq, typed), as_text),
        None => as_text,
    }
}

/// A duration such as `250ms`, `1.5s`, `1m30s` or `2h` (units `ns`, `us`/`µs`, `ms`, `s`, `m`,
/// `h`, as Go writes them), in nanoseconds.
pub fn duration(name: &str, text: &str) -> Result<u64> {
    let bad = || QueryError::invalid(format!("`{name}` must be a duration like 250ms, 1.5s or 1m30s, not {text:?}"));
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * unit;
        rest = &rest[unit_len..];
    }
    Ok(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(duration("d", "250ms").unwrap(), 250_000_000);
        assert_eq!(duration("d", "1.5s").unwrap(), 1_500_000_000);
        assert_eq!(duration("d", "1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration("d", "3µs").unwrap(), 3_000);
        assert!(duration("d", "fast").unwrap_err().to_string().contains("like 250ms"));
        assert!(duration("d", "10").is_err(), "a unit is required");
    }

    #[test]
    fn attribute_filters_are_typed_by_their_value() {
        let shown = |t: &str| attribute_filter(t).unwrap().to_string();
        assert_eq!(shown("http.status_code>=500"), ".http.status_code >= 500");
        assert_eq!(shown("span.http.method=GET"), "span.http.method = \"GET\"");
        assert_eq!(shown("resource.host.name != \"node-1\""), "resource.host.name != \"node-1\"");
        assert_eq!(shown("ratio<0.5"), ".ratio < 0.5");
        assert_eq!(shown("cached=true"), ".cached = true");
        assert_eq!(shown("user.id"), ".user.id != nil");
        assert_eq!(shown("!user.id"), ".user.id = nil");
        assert_eq!(shown("span.http.route=~/api/.*"), "span.http.route =~ \"/api/.*\"");
        assert_eq!(shown("status=error"), "span:status = error");
        assert!(attribute_filter("duration=fast").is_err(), "intrinsics are type checked");
        assert!(attribute_filter("span.=1").is_err());
    }

    #[test]
    fn filters_apply_to_one_span_and_combine_with_traceql() {
        let filters = Filters { service: Some("api".into()), min_duration: Some(1_000_000), ..Default::default() };
        assert_eq!(filters.to_query(None).to_string(), "{ resource.service.name = \"api\" && span:duration >= 1ms }");
        let q = clew_traceql::parse("{ name = \"x\" }").unwrap();
        assert!(filters.to_query(Some(q)).to_string().contains(" && {"));
        assert_eq!(Filters::default().to_query(None).to_string(), "{}");
    }
}
