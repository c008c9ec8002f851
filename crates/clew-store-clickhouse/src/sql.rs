//! Span conditions as ClickHouse SQL: every [`Condition`] compiles to an expression over one
//! row of `spans` that holds exactly when the condition holds for that span.

use clew_storage::{Condition, Op, Target, Test, Value};

use crate::client::quote;

/// A SQL boolean expression for `condition`.
pub(crate) fn condition(condition: &Condition) -> String {
    match condition {
        Condition::True => "1".into(),
        Condition::All(all) if all.is_empty() => "1".into(),
        Condition::Any(any) if any.is_empty() => "0".into(),
        Condition::All(all) => join(all, " AND "),
        Condition::Any(any) => join(any, " OR "),
        Condition::Test { target, test } => target_test(target, test),
    }
}

fn join(conditions: &[Condition], op: &str) -> String {
    let parts: Vec<String> = conditions.iter().map(condition).collect();
    format!("({})", parts.join(op))
}

fn op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

/// A number as a SQL literal that reads back as the same value.
fn float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f:?}")
    }
}

fn int(i: i64) -> String {
    // The most negative Int64 has no positive literal to negate.
    if i == i64::MIN {
        "toInt64('-9223372036854775808')".into()
    } else {
        i.to_string()
    }
}

/// The column behind an intrinsic target, and whether it is a string.
fn column(target: &Target) -> Option<(&'static str, bool)> {
    Some(match target {
        Target::Name => ("name", true),
        Target::Service => ("service_name", true),
        Target::StatusMessage => ("status_message", true),
        Target::Kind => ("kind", false),
        Target::Status => ("status_code", false),
        Target::Duration => ("if(end_unix_nano > start_unix_nano, end_unix_nano - start_unix_nano, 0)", false),
        _ => return None,
    })
}

fn target_test(target: &Target, test: &Test) -> String {
    if let Some((column, is_string)) = column(target) {
        return match test {
            Test::Exists(exists) => u8::from(*exists).to_string(),
            Test::Compare(o, Value::Str(s)) if is_string => format!("{column} {} {}", op(*o), quote(s)),
            Test::Compare(o, Value::Int(i)) if !is_string => format!("{column} {} {}", op(*o), int(*i)),
            Test::Compare(o, Value::Float(f)) if !is_string => format!("{column} {} {}", op(*o), float(*f)),
            Test::Regex { regex, negate } if is_string => regex_test(column, regex.as_str(), *negate),
            _ => "0".into(),
        };
    }
    match target {
        Target::SpanAttribute(key) => attribute_test("attr", key, test),
        Target::ResourceAttribute(key) => attribute_test("res", key, test),
        Target::AnyAttribute(key) => {
            // The span's attribute when it has one, else the resource's.
            let on_span = has("attr", key);
            match test {
                Test::Exists(true) => format!("({on_span} OR {})", has("res", key)),
                Test::Exists(false) => format!("(NOT {on_span} AND NOT {})", has("res", key)),
                _ => format!(
                    "(({on_span} AND {}) OR (NOT {on_span} AND {}))",
                    attribute_test("attr", key, test),
                    attribute_test("res", key, test)
                ),
            }
        }
        _ => "0".into(),
    }
}

fn regex_test(value: &str, pattern: &str, negate: bool) -> String {
    let matches = format!("match({value}, {})", quote(pattern));
    if negate {
        format!("NOT {matches}")
    } else {
        matches
    }
}

/// Whether the attribute set `prefix` has `key`, whatever its type.
fn has(prefix: &str, key: &str) -> String {
    let key = quote(key);
    let parts: Vec<String> =
        ["str", "int", "float", "bool", "other"].iter().map(|t| format!("has({prefix}_{t}_keys, {key})")).collect();
    format!("({})", parts.join(" OR "))
}

/// Whether an attribute `key` of type `kind` in set `prefix` passes `predicate` (over `x_v`).
fn exists_where(prefix: &str, kind: &str, key: &str, predicate: &str) -> String {
    format!(
        "arrayExists((x_k, x_v) -> x_k = {} AND {predicate}, {prefix}_{kind}_keys, {prefix}_{kind}_values)",
        quote(key)
    )
}

fn attribute_test(prefix: &str, key: &str, test: &Test) -> String {
    match test {
        Test::Exists(true) => has(prefix, key),
        Test::Exists(false) => format!("NOT {}", has(prefix, key)),
        Test::Compare(o, Value::Str(s)) => exists_where(prefix, "str", key, &format!("x_v {} {}", op(*o), quote(s))),
        Test::Compare(o, number @ (Value::Int(_) | Value::Float(_))) => {
            let literal = match number {
                Value::Int(i) => int(*i),
                Value::Float(f) => float(*f),
                _ => unreachable!("matched above"),
            };
            let predicate = format!("x_v {} {literal}", op(*o));
            format!(
                "({} OR {})",
                exists_where(prefix, "int", key, &predicate),
                exists_where(prefix, "float", key, &predicate)
            )
        }
        Test::Compare(o, Value::Bool(b)) => {
            exists_where(prefix, "bool", key, &format!("x_v {} {}", op(*o), u8::from(*b)))
        }
        Test::Compare(_, Value::Other) => "0".into(),
        Test::Regex { regex, negate } => exists_where(prefix, "str", key, &regex_test("x_v", regex.as_str(), *negate)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(target: Target, test: Test) -> Condition {
        Condition::Test { target, test }
    }

    #[test]
    fn intrinsics_compare_only_with_values_of_their_type() {
        let name = test(Target::Name, Test::Compare(Op::Eq, Value::Str("GET 'x'".into())));
        assert_eq!(condition(&name), r"name = 'GET \'x\''");
        assert_eq!(condition(&test(Target::Name, Test::Compare(Op::Eq, Value::Int(1)))), "0");
        let kind = test(Target::Kind, Test::Compare(Op::Ge, Value::Float(2.5)));
        assert_eq!(condition(&kind), "kind >= 2.5");
        assert_eq!(condition(&test(Target::Kind, Test::Exists(false))), "0");
    }

    #[test]
    fn numbers_match_int_and_float_attributes() {
        let c = test(Target::SpanAttribute("code".into()), Test::Compare(Op::Gt, Value::Float(502.5)));
        let sql = condition(&c);
        assert!(sql.contains("attr_int_keys, attr_int_values") && sql.contains("attr_float_keys"), "{sql}");
        assert!(sql.contains("x_v > 502.5"), "{sql}");
    }

    #[test]
    fn combinations_and_empty_lists() {
        assert_eq!(condition(&Condition::All(vec![])), "1");
        assert_eq!(condition(&Condition::Any(vec![])), "0");
        let both = Condition::Any(vec![
            test(Target::Status, Test::Compare(Op::Eq, Value::Int(2))),
            test(Target::Name, Test::Regex { regex: regex::Regex::new("^a").unwrap(), negate: true }),
        ]);
        assert_eq!(condition(&both), "(status_code = 2 OR NOT match(name, '^a'))");
    }
}
