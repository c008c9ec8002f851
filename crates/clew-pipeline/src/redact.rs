//! Redaction: regex matches in chosen attribute values (span, event, link and resource
//! attributes, strings inside arrays and maps included) and, when a rule says so, in span
//! names, are replaced with a mask before anything is written.

use std::borrow::Cow;

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::any_value::Value;
use clew_model::otlp::common::v1::KeyValue;
use clew_model::wire::{AttributesRef, ValueRef};
use clew_model::{SpanAttribute, SpanAttributes, SpanBatch};
use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::RuleError;

fn default_mask() -> String {
    "[redacted]".into()
}

/// One redaction rule: in attributes whose key matches one of `keys` (exact or glob; every
/// attribute when empty), each match of `pattern` becomes `mask`; with `span_names`, span
/// names are masked too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedactRule {
    pub name: String,
    #[serde(default)]
    pub keys: Vec<String>,
    pub pattern: String,
    #[serde(default = "default_mask")]
    pub mask: String,
    #[serde(default)]
    pub span_names: bool,
}

/// Rules Clew ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// 11-digit national identity numbers (Norway's fødselsnummer: DDMMYY + 5 digits) in
    /// `db.statement` and `messaging.kafka.message.key`. On by default.
    NationalId,
    /// E-mail addresses, in any attribute and span names.
    Email,
    /// Payment card numbers (13 to 19 digits, spaces or dashes allowed, Luhn-checked), in any
    /// attribute and span names.
    PaymentCard,
    /// `Bearer <token>` credentials, in any attribute.
    BearerToken,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::NationalId => "national_id",
            Builtin::Email => "email",
            Builtin::PaymentCard => "payment_card",
            Builtin::BearerToken => "bearer_token",
        }
    }

    fn check(self) -> Option<fn(&str) -> bool> {
        match self {
            Builtin::NationalId => Some(national_id_shaped),
            Builtin::PaymentCard => Some(luhn_valid),
            _ => None,
        }
    }

    fn rule(self) -> RedactRule {
        let (keys, pattern, mask, span_names): (&[&str], &str, &str, bool) = match self {
            Builtin::NationalId => (
                &["db.statement", "messaging.kafka.message.key"],
                // Every run of digits; `national_id_shaped` keeps those that are one.
                r"[0-9]+",
                "***********",
                false,
            ),
            Builtin::Email => {
                (&[], r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[email]", true)
            }
            Builtin::PaymentCard => (&[], r"\b[0-9](?:[ -]?[0-9]){12,18}\b", "[card]", true),
            Builtin::BearerToken => (&[], r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]+=*", "Bearer [redacted]", false),
        };
        RedactRule {
            name: self.name().into(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            pattern: pattern.into(),
            mask: mask.into(),
            span_names,
        }
    }
}

#[derive(Debug)]
enum Keys {
    Any,
    Exact(Vec<String>),
    Glob(GlobSet),
}

impl Keys {
    /// [`Keys::matches`] for an attribute whose key is read only when a glob needs it.
    fn matches_attribute(&self, attribute: &SpanAttribute<'_>) -> bool {
        match self {
            Keys::Any => true,
            Keys::Exact(keys) => keys.iter().any(|k| k.as_bytes() == attribute.key_bytes()),
            Keys::Glob(set) => set.is_match(attribute.key()),
        }
    }

    fn matches(&self, key: &str) -> bool {
        match self {
            Keys::Any => true,
            Keys::Exact(keys) => keys.iter().any(|k| k == key),
            Keys::Glob(set) => set.is_match(key),
        }
    }
}

#[derive(Debug)]
struct Compiled {
    name: String,
    keys: Keys,
    regex: Regex,
    mask: String,
    span_names: bool,
    /// Replace only the matches this accepts (the built-ins' checksums and shapes).
    check: Option<fn(&str) -> bool>,
}

impl Compiled {
    /// Whether [`Compiled::mask`] would mask something in `text`.
    fn would_mask(&self, text: &str) -> bool {
        self.regex.find_iter(text).any(|found| self.check.is_none_or(|check| check(found.as_str())))
    }

    /// `text` with every match masked, and how many were.
    fn mask<'a>(&self, text: &'a str) -> (Cow<'a, str>, u64) {
        let mut count = 0;
        let out = self.regex.replace_all(text, |caps: &regex::Captures<'_>| {
            let found = &caps[0];
            if self.check.is_some_and(|check| !check(found)) {
                found.to_owned()
            } else {
                count += 1;
                self.mask.clone()
            }
        });
        (out, count)
    }
}

/// Whether a run of digits is 11 long and starts with a day (01-31, or 41-71 for D-numbers)
/// and a month (01-12, or 41-52 for H-numbers).
fn national_id_shaped(digits: &str) -> bool {
    let number = |range: std::ops::Range<usize>| digits[range].parse::<u32>().unwrap_or(0);
    digits.len() == 11 && matches!(number(0..2), 1..=31 | 41..=71) && matches!(number(2..4), 1..=12 | 41..=52)
}

/// Whether the digits of `text` pass the Luhn checksum.
fn luhn_valid(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    digits.len() >= 13 && sum.is_multiple_of(10)
}

/// A compiled set of redaction rules.
#[derive(Debug, Default)]
pub struct Redactor {
    rules: Vec<Compiled>,
}

impl Redactor {
    /// The built-ins asked for, then the custom rules.
    pub fn new(builtins: &[Builtin], rules: &[RedactRule]) -> Result<Self, RuleError> {
        let all = builtins.iter().map(|b| (b.rule(), b.check())).chain(rules.iter().map(|r| (r.clone(), None)));
        let compiled = all
            .map(|(rule, check)| {
                let regex = Regex::new(&rule.pattern).map_err(|e| RuleError::Regex {
                    rule: rule.name.clone(),
                    pattern: rule.pattern.clone(),
                    reason: e.to_string(),
                })?;
                let keys = if rule.keys.is_empty() {
                    Keys::Any
                } else if rule.keys.iter().all(|k| !k.contains(['*', '?', '[', '{'])) {
                    Keys::Exact(rule.keys.clone())
                } else {
                    let mut builder = GlobSetBuilder::new();
                    for key in &rule.keys {
                        builder.add(Glob::new(key).map_err(|e| RuleError::Glob {
                            rule: rule.name.clone(),
                            pattern: key.clone(),
                            reason: e.kind().to_string(),
                        })?);
                    }
                    Keys::Glob(builder.build().map_err(|e| RuleError::Glob {
                        rule: rule.name.clone(),
                        pattern: rule.keys.join(", "),
                        reason: e.to_string(),
                    })?)
                };
                Ok(Compiled { name: rule.name, keys, regex, mask: rule.mask, span_names: rule.span_names, check })
            })
            .collect::<Result<_, RuleError>>()?;
        Ok(Self { rules: compiled })
    }

    /// Whether a rule would mask something in `batch`: only then does [`Redactor::apply`]
    /// change it.
    pub fn any_match(&self, batch: &SpanBatch) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        let attributes = |list: AttributesRef<'_>| {
            list.iter()
                .any(|a| self.rules.iter().any(|rule| rule.keys.matches(a.key) && value_would_mask(rule, &a.value)))
        };
        let span_attributes = |list: SpanAttributes<'_>| {
            list.iter().any(|a| {
                self.rules.iter().any(|rule| rule.keys.matches_attribute(&a) && value_would_mask(rule, &a.value()))
            })
        };
        batch.resources().any(|resource| attributes(resource.attributes()))
            || batch.spans().any(|span| {
                span_attributes(span.attributes())
                    || span.events().any(|event| attributes(event.attributes()))
                    || span.links().any(|link| attributes(link.attributes()))
                    || self.rules.iter().any(|rule| rule.span_names && rule.would_mask(span.name()))
            })
    }

    /// Masks in place; returns how many values each rule masked.
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) -> Vec<(String, u64)> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        let mut counts = vec![0u64; self.rules.len()];
        for resource in &mut request.resource_spans {
            if let Some(resource) = &mut resource.resource {
                self.attributes(&mut resource.attributes, &mut counts);
            }
            for scope in &mut resource.scope_spans {
                for span in &mut scope.spans {
                    self.attributes(&mut span.attributes, &mut counts);
                    for event in &mut span.events {
                        self.attributes(&mut event.attributes, &mut counts);
                    }
                    for link in &mut span.links {
                        self.attributes(&mut link.attributes, &mut counts);
                    }
                    for (rule, count) in self.rules.iter().zip(&mut counts) {
                        if rule.span_names {
                            if let (Cow::Owned(masked), n) = rule.mask(&span.name) {
                                span.name = masked;
                                *count += n;
                            }
                        }
                    }
                }
            }
        }
        self.rules.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(rule, n)| (rule.name.clone(), n)).collect()
    }

    fn attributes(&self, attributes: &mut [KeyValue], counts: &mut [u64]) {
        for kv in attributes {
            for (rule, count) in self.rules.iter().zip(counts.iter_mut()) {
                if rule.keys.matches(&kv.key) {
                    if let Some(value) = kv.value.as_mut().and_then(|v| v.value.as_mut()) {
                        *count += mask_value(rule, value);
                    }
                }
            }
        }
    }
}

/// Whether [`mask_value`] would mask something in `value`.
fn value_would_mask(rule: &Compiled, value: &ValueRef<'_>) -> bool {
    match value {
        ValueRef::Str(text) => rule.would_mask(text),
        ValueRef::Array(values) => values.iter().any(|v| value_would_mask(rule, &v)),
        ValueRef::Map(list) => list.iter().any(|a| value_would_mask(rule, &a.value)),
        _ => false,
    }
}

/// Masks a value: strings, and strings inside arrays and maps.
fn mask_value(rule: &Compiled, value: &mut Value) -> u64 {
    match value {
        Value::StringValue(text) => match rule.mask(text) {
            (Cow::Owned(masked), n) => {
                *text = masked;
                n
            }
            (Cow::Borrowed(_), n) => n,
        },
        Value::ArrayValue(array) => {
            array.values.iter_mut().filter_map(|v| v.value.as_mut()).map(|v| mask_value(rule, v)).sum()
        }
        Value::KvlistValue(list) => list
            .values
            .iter_mut()
            .filter_map(|kv| kv.value.as_mut().and_then(|v| v.value.as_mut()))
            .map(|v| mask_value(rule, v))
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use clew_model::otlp::common::v1::{AnyValue, ArrayValue};
    use clew_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..KeyValue::default() }
    }

    fn s(text: &str) -> Value {
        Value::StringValue(text.into())
    }

    fn one_span(name: &str, attributes: Vec<KeyValue>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span { name: name.into(), attributes, ..Span::default() }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn attr(request: &ExportTraceServiceRequest, key: &str) -> Value {
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone()?.value).unwrap()
    }

    #[test]
    fn national_ids_are_masked_in_statements_and_kafka_keys_only() {
        let redactor = Redactor::new(&[Builtin::NationalId], &[]).unwrap();
        let mut r = one_span(
            "SELECT 01017012345",
            vec![
                kv("db.statement", s("SELECT * FROM person WHERE fnr = '01017012345' OR fnr = '31129912345'")),
                kv("messaging.kafka.message.key", s("01017012345")),
                kv("user.note", s("01017012345")),
                kv("db.statement.other", s("12345678901 and 320170123456")),
            ],
        );
        assert_eq!(redactor.apply(&mut r), vec![("national_id".to_owned(), 3)]);
        assert_eq!(
            attr(&r, "db.statement"),
            s("SELECT * FROM person WHERE fnr = '***********' OR fnr = '***********'")
        );
        assert_eq!(attr(&r, "messaging.kafka.message.key"), s("***********"));
        assert_eq!(attr(&r, "user.note"), s("01017012345"), "other keys are left alone");
        assert_eq!(r.resource_spans[0].scope_spans[0].spans[0].name, "SELECT 01017012345", "names only when asked");
    }

    #[test]
    fn only_date_shaped_eleven_digit_runs_are_national_ids() {
        let redactor = Redactor::new(&[Builtin::NationalId], &[]).unwrap();
        for (text, masked) in [
            ("01017012345", true),
            ("41017012345", true), // D-number: day + 40
            ("32017012345", false),
            ("01137012345", false),
            ("0101701234", false),
            ("010170123456", false),
            ("id=01017012345;", true),
            ("fnr01017012345abc", true),
            ("01017012345 01017012345", true),
        ] {
            let mut r = one_span("q", vec![kv("db.statement", s(text))]);
            assert_eq!(!redactor.apply(&mut r).is_empty(), masked, "{text}");
        }
    }

    #[test]
    fn optional_builtins_mask_emails_luhn_valid_cards_and_bearer_tokens_anywhere() {
        let redactor = Redactor::new(&[Builtin::Email, Builtin::PaymentCard, Builtin::BearerToken], &[]).unwrap();
        let mut r = one_span(
            "mail ola.nordmann@example.no",
            vec![
                kv("enduser.email", s("Ola <ola.nordmann@example.no>")),
                kv("payment", s("card 4111 1111 1111 1111, order 4111 1111 1111 1112")),
                kv(
                    "http.request.header.authorization",
                    Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue { value: Some(s("Bearer eyJhbGciOi.J9.abc-_=")) }],
                    }),
                ),
            ],
        );
        let applied = redactor.apply(&mut r);
        assert_eq!(attr(&r, "enduser.email"), s("Ola <[email]>"));
        assert_eq!(
            attr(&r, "payment"),
            s("card [card], order 4111 1111 1111 1112"),
            "a failed Luhn check is not a card"
        );
        assert_eq!(
            attr(&r, "http.request.header.authorization"),
            Value::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(s("Bearer [redacted]")) }] })
        );
        assert_eq!(r.resource_spans[0].scope_spans[0].spans[0].name, "mail [email]");
        assert_eq!(
            applied,
            vec![("email".to_owned(), 2), ("payment_card".to_owned(), 1), ("bearer_token".to_owned(), 1)]
        );
    }

    #[test]
    fn custom_rules_take_key_globs_and_say_what_is_wrong() {
        let rule = RedactRule {
            name: "session ids".into(),
            keys: vec!["app.session.*".into()],
            pattern: "sess-[0-9a-f]+".into(),
            mask: "sess-?".into(),
            span_names: false,
        };
        let redactor = Redactor::new(&[], std::slice::from_ref(&rule)).unwrap();
        let mut r = one_span("x", vec![kv("app.session.id", s("sess-12ab")), kv("app.user", s("sess-12ab"))]);
        redactor.apply(&mut r);
        assert_eq!((attr(&r, "app.session.id"), attr(&r, "app.user")), (s("sess-?"), s("sess-12ab")));
        let err = Redactor::new(&[], &[RedactRule { pattern: "(".into(), ..rule }]).unwrap_err();
        assert!(err.to_string().contains("session ids") && err.to_string().contains("regex"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn masked_text_never_contains_a_national_id(prefix in "[a-z =']{0,20}", day in 1u32..=31, month in 1u32..=12, rest in 0u64..10_000_000, suffix in "[a-z ']{0,20}") {
            let id = format!("{day:02}{month:02}{rest:07}");
            let redactor = Redactor::new(&[Builtin::NationalId], &[]).unwrap();
            let mut r = one_span("q", vec![kv("db.statement", s(&format!("{prefix}{id}{suffix}")))]);
            redactor.apply(&mut r);
            let Value::StringValue(out) = attr(&r, "db.statement") else { unreachable!() };
            proptest::prop_assert!(!out.contains(&id), "{out}");
        }
    }
}
