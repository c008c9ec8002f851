//! Evaluates a query against one trace, with Tempo's semantics.
//!
//! Parent links are resolved once per trace into indexes, and every structural operator runs in
//! linear time in the number of spans, so deep or wide traces of many thousands of spans stay
//! cheap. Malformed traces (cycles, duplicate IDs, missing parents) are evaluated without panics.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::ast::{
    AggFunc, CmpOp, Field, FieldExpr, Intrinsic, KindValue, Query, Scope, SpansetExpr, Stage, Static, StatusValue,
    StructuralOp,
};
use crate::trace::{Span, Trace, Value};

/// Spans of one trace selected by a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanset {
    /// Indexes into [`Trace::spans`], ascending, without duplicates.
    pub spans: Vec<usize>,
    /// Parallel to `spans`: for each span, the values of the fields named by `select(...)` stages
    /// that reached it, in the order they were named, leaving out fields the span lacks.
    pub selected: Vec<Vec<(Field, FieldValue)>>,
}

impl Spanset {
    /// Each span index with its selected values.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[(Field, FieldValue)])> {
        self.spans.iter().copied().zip(self.selected.iter().map(Vec::as_slice))
    }
}

/// The value of a field on a span, as `select(...)` reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(u64),
    Status(StatusValue),
    Kind(KindValue),
    /// An array, map or bytes attribute.
    Other,
}

/// Runs `query` on `trace`. `None` (or an empty vector) means the trace does not match.
///
/// Without grouping every expression yields at most one spanset, so a match is one spanset.
pub fn evaluate(query: &Query, trace: &Trace) -> Option<Vec<Spanset>> {
    let mut evaluator = Evaluator {
        spans: &trace.spans,
        trace_id: trace.trace_id,
        index: TraceIndex::new(&trace.spans),
        selections: vec![Vec::new()],
        merged: HashMap::new(),
    };
    let set = evaluator.spanset(&query.root)?;
    Some(vec![evaluator.finish(set)])
}

/// Parent links and trace-level values, computed once per trace.
struct TraceIndex {
    parent: Vec<Option<usize>>,
    root: Option<usize>,
    trace_duration: u64,
}

impl TraceIndex {
    fn new(spans: &[Span]) -> TraceIndex {
        let mut by_id: HashMap<[u8; 8], usize> = HashMap::with_capacity(spans.len());
        for (i, span) in spans.iter().enumerate() {
            by_id.entry(span.span_id).or_insert(i);
        }
        let parent = spans
            .iter()
            .enumerate()
            .map(|(i, span)| {
                let id = span.parent_span_id.filter(|id| *id != [0; 8])?;
                by_id.get(&id).copied().filter(|&p| p != i)
            })
            .collect();
        let earliest =
            |candidates: &mut dyn Iterator<Item = usize>| candidates.min_by_key(|&i| (spans[i].start_unix_nano, i));
        let is_root = |span: &Span| span.parent_span_id.is_none_or(|id| id == [0; 8]);
        // Tempo's root is the span without a parent; when the root is missing, the earliest
        // span stands in for it.
        let root =
            earliest(&mut (0..spans.len()).filter(|&i| is_root(&spans[i]))).or_else(|| earliest(&mut (0..spans.len())));
        let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
        TraceIndex { parent, root, trace_duration: end.saturating_sub(start) }
    }
}

/// A spanset during evaluation: ascending span indexes, each with the id of the list of fields
/// `select(...)` attached to it (0 = none).
type Set = Vec<(usize, u32)>;

struct Evaluator<'t> {
    spans: &'t [Span],
    trace_id: [u8; 16],
    index: TraceIndex,
    /// Distinct select lists; entry 0 is empty.
    selections: Vec<Vec<Field>>,
    /// (a, b) -> the list with the fields of `a`, then those of `b` not in `a`.
    merged: HashMap<(u32, u32), u32>,
}

/// A field's value on a span, borrowed from the trace.
#[derive(Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Duration(u64),
    Status(StatusValue),
    Kind(KindValue),
    SpanId([u8; 8]),
    TraceId([u8; 16]),
    Other,
}

impl<'t> Evaluator<'t> {
    fn spanset(&mut self, expr: &SpansetExpr) -> Option<Set> {
        match expr {
            SpansetExpr::Filter(cond) => {
                let set: Set = (0..self.spans.len()).filter(|&i| self.matches(cond, i)).map(|i| (i, 0)).collect();
                non_empty(set)
            }
            SpansetExpr::And(a, b) => {
                let a = self.spanset(a)?;
                let b = self.spanset(b)?;
                Some(self.union(a, b))
            }
            SpansetExpr::Or(a, b) => match (self.spanset(a), self.spanset(b)) {
                (Some(a), Some(b)) => Some(self.union(a, b)),
                (a, b) => a.or(b),
            },
            SpansetExpr::Structural(op, a, b) => {
                let a = self.spanset(a)?;
                let b = self.spanset(b)?;
                non_empty(self.structural(*op, &a, b))
            }
            SpansetExpr::Pipeline(source, stages) => {
                let mut set = self.spanset(source)?;
                for stage in stages {
                    set = self.stage(stage, set)?;
                }
                Some(set)
            }
        }
    }

    fn stage(&mut self, stage: &Stage, set: Set) -> Option<Set> {
        match stage {
            Stage::Filter(cond) => non_empty(set.into_iter().filter(|&(i, _)| self.matches(cond, i)).collect()),
            Stage::Aggregate { func, field, op, value } => {
                self.aggregate_holds(*func, field.as_ref(), *op, value, &set).then_some(set)
            }
            Stage::Select(fields) => {
                let mut extended: HashMap<u32, u32> = HashMap::new();
                let mut out = Vec::with_capacity(set.len());
                for (i, sel) in set {
                    let new = match extended.get(&sel) {
                        Some(&new) => new,
                        None => {
                            let new = self.extend_selection(sel, fields);
                            extended.insert(sel, new);
                            new
                        }
                    };
                    out.push((i, new));
                }
                Some(out)
            }
        }
    }

    fn extend_selection(&mut self, base: u32, fields: &[Field]) -> u32 {
        let mut list = self.selections[base as usize].clone();
        for field in fields {
            if !list.contains(field) {
                list.push(field.clone());
            }
        }
        if list.len() == self.selections[base as usize].len() {
            return base;
        }
        self.selections.push(list);
        (self.selections.len() - 1) as u32
    }

    fn merge_selection(&mut self, a: u32, b: u32) -> u32 {
        if a == b || b == 0 {
            return a;
        }
        if a == 0 {
            return b;
        }
        if let Some(&merged) = self.merged.get(&(a, b)) {
            return merged;
        }
        let fields = self.selections[b as usize].clone();
        let merged = self.extend_selection(a, &fields);
        self.merged.insert((a, b), merged);
        merged
    }

    /// Merges two ascending sets.
    fn union(&mut self, a: Set, b: Set) -> Set {
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
        loop {
            match (a.peek().copied(), b.peek().copied()) {
                (Some(x), Some(y)) => match x.0.cmp(&y.0) {
                    Ordering::Less => {
                        out.push(x);
                        a.next();
                    }
                    Ordering::Greater => {
                        out.push(y);
                        b.next();
                    }
                    Ordering::Equal => {
                        out.push((x.0, self.merge_selection(x.1, y.1)));
                        a.next();
                        b.next();
                    }
                },
                (Some(x), None) => {
                    out.push(x);
                    a.next();
                }
                (None, Some(y)) => {
                    out.push(y);
                    b.next();
                }
                (None, None) => return out,
            }
        }
    }

    /// The spans of `right` related by `op` to some span of `left`.
    fn structural(&self, op: StructuralOp, left: &Set, right: Set) -> Set {
        let n = self.spans.len();
        let parent = &self.index.parent;
        let mut in_left = vec![false; n];
        for &(i, _) in left {
            in_left[i] = true;
        }
        let keep: Vec<bool> = match op {
            StructuralOp::Child => parent.iter().map(|p| p.is_some_and(|p| in_left[p])).collect(),
            StructuralOp::Parent => {
                let mut is_parent = vec![false; n];
                for &(i, _) in left {
                    if let Some(p) = parent[i] {
                        is_parent[p] = true;
                    }
                }
                is_parent
            }
            StructuralOp::Descendant => has_ancestor_in(parent, &in_left),
            StructuralOp::Ancestor => {
                // Walk up from each left span, stopping at spans already marked: their
                // ancestors were marked by the walk that reached them first.
                let mut is_ancestor = vec![false; n];
                for &(i, _) in left {
                    let mut current = parent[i];
                    while let Some(p) = current {
                        if is_ancestor[p] {
                            break;
                        }
                        is_ancestor[p] = true;
                        current = parent[p];
                    }
                }
                is_ancestor
            }
            StructuralOp::Sibling => {
                let mut left_children = vec![0u32; n];
                for &(i, _) in left {
                    if let Some(p) = parent[i] {
                        left_children[p] += 1;
                    }
                }
                // Spans without a parent have no siblings; a span is not its own sibling.
                (0..n).map(|i| parent[i].is_some_and(|p| left_children[p] > u32::from(in_left[i]))).collect()
            }
        };
        right.into_iter().filter(|&(i, _)| keep[i]).collect()
    }

    fn matches(&self, cond: &FieldExpr, i: usize) -> bool {
        match cond {
            FieldExpr::And(a, b) => self.matches(a, i) && self.matches(b, i),
            FieldExpr::Or(a, b) => self.matches(a, i) || self.matches(b, i),
            FieldExpr::Not(a) => !self.matches(a, i),
            FieldExpr::Compare { field, op, value } => {
                // A span without the field matches no comparison, not even `!=` (Tempo).
                self.value(field, i).is_some_and(|v| compare(v, *op, value))
            }
            FieldExpr::Exists { field, exists } => self.value(field, i).is_some() == *exists,
            FieldExpr::Truthy(field) => matches!(self.value(field, i), Some(Val::Bool(true))),
            FieldExpr::Static(value) => matches!(value, Static::Bool(true)),
        }
    }

    fn value(&self, field: &Field, i: usize) -> Option<Val<'t>> {
        let spans: &'t [Span] = self.spans;
        let span = &spans[i];
        match field {
            Field::Intrinsic(intrinsic) => Some(match intrinsic {
                Intrinsic::Name => Val::Str(&span.name),
                Intrinsic::Status => Val::Status(span.status),
                Intrinsic::StatusMessage => Val::Str(&span.status_message),
                Intrinsic::Kind => Val::Kind(span.kind),
                Intrinsic::Duration => Val::Duration(span.end_unix_nano.saturating_sub(span.start_unix_nano)),
                Intrinsic::RootServiceName => Val::Str(&spans[self.index.root?].service_name),
                Intrinsic::RootName => Val::Str(&spans[self.index.root?].name),
                Intrinsic::TraceDuration => Val::Duration(self.index.trace_duration),
                Intrinsic::SpanId => Val::SpanId(span.span_id),
                Intrinsic::TraceId => Val::TraceId(self.trace_id),
            }),
            Field::Attribute { scope, name } => {
                let from_span = || lookup(&span.span_attributes, name);
                let from_resource = || {
                    lookup(&span.resource_attributes, name).or_else(|| {
                        (name == "service.name" && !span.service_name.is_empty())
                            .then_some(Val::Str(&span.service_name))
                    })
                };
                match scope {
                    Scope::Span => from_span(),
                    Scope::Resource => from_resource(),
                    Scope::Any => from_span().or_else(from_resource),
                }
            }
        }
    }

    fn aggregate_holds(&self, func: AggFunc, field: Option<&Field>, op: CmpOp, value: &Static, set: &Set) -> bool {
        let target = match value {
            Static::Int(v) => Num::Int(i128::from(*v)),
            Static::Float(v) => Num::Float(*v),
            Static::Duration(v) => Num::Int(i128::from(*v)),
            _ => return false,
        };
        let aggregate = match (func, field) {
            (AggFunc::Count, _) => Num::Int(set.len() as i128),
            (_, None) => return false,
            (func, Some(field)) => {
                let mut values = set.iter().filter_map(|&(i, _)| match self.value(field, i)? {
                    Val::Int(v) => Some(Num::Int(i128::from(v))),
                    Val::Float(v) => Some(Num::Float(v)),
                    Val::Duration(v) => Some(Num::Int(i128::from(v))),
                    _ => None,
                });
                let Some(first) = values.next() else {
                    // Nothing to aggregate: the spanset has no value, so no comparison holds.
                    return false;
                };
                let (mut acc, mut count) = (first, 1u64);
                for v in values {
                    count += 1;
                    acc = match func {
                        AggFunc::Min if v.cmp(acc) == Some(Ordering::Less) => v,
                        AggFunc::Max if v.cmp(acc) == Some(Ordering::Greater) => v,
                        AggFunc::Sum | AggFunc::Avg => acc.add(v),
                        _ => acc,
                    };
                }
                if func == AggFunc::Avg {
                    Num::Float(acc.as_f64() / count as f64)
                } else {
                    acc
                }
            }
        };
        holds(op, aggregate.cmp(target))
    }

    fn finish(&self, set: Set) -> Spanset {
        let mut spans = Vec::with_capacity(set.len());
        let mut selected = Vec::with_capacity(set.len());
        for (i, sel) in set {
            spans.push(i);
            let values = self.selections[sel as usize]
                .iter()
                .filter_map(|field| Some((field.clone(), self.value(field, i)?.to_field_value())))
                .collect();
            selected.push(values);
        }
        Spanset { spans, selected }
    }
}

fn non_empty(set: Set) -> Option<Set> {
    (!set.is_empty()).then_some(set)
}

fn lookup<'a>(attributes: &'a [(String, Value)], name: &str) -> Option<Val<'a>> {
    let (_, value) = attributes.iter().find(|(key, _)| key == name)?;
    Some(match value {
        Value::Str(s) => Val::Str(s),
        Value::Int(v) => Val::Int(*v),
        Value::Float(v) => Val::Float(*v),
        Value::Bool(v) => Val::Bool(*v),
        Value::Other => Val::Other,
    })
}

/// For each span, whether one of its ancestors is in `set`; linear time, and cycles end the walk.
fn has_ancestor_in(parent: &[Option<usize>], set: &[bool]) -> Vec<bool> {
    const UNKNOWN: u8 = 0;
    const ON_PATH: u8 = 1;
    const KNOWN: u8 = 2;
    let mut state = vec![UNKNOWN; parent.len()];
    let mut result = vec![false; parent.len()];
    let mut path = Vec::new();
    for start in 0..parent.len() {
        let mut current = start;
        while state[current] == UNKNOWN {
            state[current] = ON_PATH;
            path.push(current);
            match parent[current] {
                Some(p) => current = p,
                None => break,
            }
        }
        if state[current] == ON_PATH && path.last().is_some_and(|&last| parent[last] == Some(current)) {
            // The walk closed a cycle: its spans are each other's (and their own) ancestors,
            // and have no others.
            if let Some(cycle_start) = path.iter().rposition(|&j| j == current) {
                let in_set = path[cycle_start..].iter().any(|&j| set[j]);
                for &j in &path[cycle_start..] {
                    result[j] = in_set;
                    state[j] = KNOWN;
                }
                path.truncate(cycle_start);
            }
        }
        // Resolve from the topmost span down: each one's parent is known by then.
        while let Some(j) = path.pop() {
            result[j] = parent[j].is_some_and(|p| set[p] || result[p]);
            state[j] = KNOWN;
        }
    }
    result
}

fn compare(value: Val<'_>, op: CmpOp, literal: &Static) -> bool {
    match (value, literal) {
        (Val::Str(s), Static::Str(l)) => holds(op, Some(s.cmp(l.as_str()))),
        (Val::Str(s), Static::Regex(pattern)) => match op {
            CmpOp::Match => pattern.is_match(s),
            CmpOp::NotMatch => !pattern.is_match(s),
            _ => false,
        },
        (Val::Int(a), Static::Int(b)) => holds(op, Some(a.cmp(b))),
        (Val::Int(a), Static::Float(b)) => holds(op, (a as f64).partial_cmp(b)),
        (Val::Float(a), Static::Int(b)) => holds(op, a.partial_cmp(&(*b as f64))),
        (Val::Float(a), Static::Float(b)) => holds(op, a.partial_cmp(b)),
        (Val::Bool(a), Static::Bool(b)) => holds_equality(op, a == *b),
        (Val::Duration(a), Static::Duration(b)) => holds(op, Some(a.cmp(b))),
        (Val::Status(a), Static::Status(b)) => holds_equality(op, a == *b),
        (Val::Kind(a), Static::Kind(b)) => holds_equality(op, a == *b),
        (Val::SpanId(id), Static::Str(hex)) => {
            parse_hex(hex, 16).is_some_and(|v| holds_equality(op, u128::from(u64::from_be_bytes(id)) == v))
        }
        (Val::TraceId(id), Static::Str(hex)) => {
            parse_hex(hex, 32).is_some_and(|v| holds_equality(op, u128::from_be_bytes(id) == v))
        }
        _ => false,
    }
}

/// Whether `op` holds for an ordering; an unordered pair (NaN) is only unequal.
fn holds(op: CmpOp, ordering: Option<Ordering>) -> bool {
    match (op, ordering) {
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        (CmpOp::Ne, None) => true,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        _ => false,
    }
}

fn holds_equality(op: CmpOp, equal: bool) -> bool {
    match op {
        CmpOp::Eq => equal,
        CmpOp::Ne => !equal,
        _ => false,
    }
}

/// A hex ID literal as a number, so `"1"` equals ID `0000000000000001` as in Tempo.
fn parse_hex(hex: &str, max_digits: usize) -> Option<u128> {
    if hex.is_empty() || hex.len() > max_digits || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Val<'_> {
    fn to_field_value(self) -> FieldValue {
        match self {
            Val::Str(s) => FieldValue::Str(s.to_owned()),
            Val::Int(v) => FieldValue::Int(v),
            Val::Float(v) => FieldValue::Float(v),
            Val::Bool(v) => FieldValue::Bool(v),
            Val::Duration(v) => FieldValue::Duration(v),
            Val::Status(v) => FieldValue::Status(v),
            Val::Kind(v) => FieldValue::Kind(v),
            Val::SpanId(id) => FieldValue::Str(to_hex(&id)),
            Val::TraceId(id) => FieldValue::Str(to_hex(&id)),
            Val::Other => FieldValue::Other,
        }
    }
}

/// A number for aggregates: exact while everything is an integer.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }

    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.checked_add(b).map_or(Num::Float(a as f64 + b as f64), Num::Int),
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }
}

#[cfg(test)]
mod tests;
