//! Comparing two traces, typically of the same request: which parts of the call tree appeared,
//! disappeared, got slower or faster.
//!
//! Spans are matched by their path from the root: the (service, span name) of each ancestor and
//! of the span itself, written `frontend:GET /cart > cart:GetCart > redis:GET`. The spans that
//! share a path are matched k-th to k-th in start order (A's third `redis:GET` with B's third),
//! wherever they sit under that path. A span whose parent is not in its trace (an orphan, or a
//! second root) starts a path of its own; where parent links loop, the earliest span of the loop
//! does. Trace A is the baseline: differences are B minus A.

use std::cmp::Reverse;
use std::collections::HashMap;

use clew_model::{SpanId, SpanRow};
use serde::Serialize;

use crate::critical_path::parents;
use crate::decimal;
use crate::STATUS_ERROR;

/// A difference is significant when it exceeds both this many nanoseconds (1 ms)…
pub const SIGNIFICANT_NANOS: u64 = 1_000_000;
/// …and this share of A's duration, in percent.
pub const SIGNIFICANT_PERCENT: u64 = 10;

/// Two traces compared, path by path.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub totals: ComparisonTotals,
    /// Every path of either trace as a flat tree: depth first, each path followed by the paths
    /// under it; siblings in order of their first span's start (offset from its trace's start;
    /// A's span when A has one, else B's), then by service and name.
    pub paths: Vec<PathComparison>,
}

/// The traces as wholes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonTotals {
    /// From the earliest span start to the latest span end.
    #[serde(with = "decimal")]
    pub duration_nanos_a: u64,
    #[serde(with = "decimal")]
    pub duration_nanos_b: u64,
    /// B minus A.
    #[serde(with = "decimal")]
    pub diff_nanos: i64,
    /// B divided by A; `None` when A lasted zero nanoseconds.
    pub ratio: Option<f64>,
    pub change: Change,
    pub spans_a: usize,
    pub spans_b: usize,
    pub errors_a: usize,
    pub errors_b: usize,
    /// Spans of B matched with a span of A (as many as spans of A matched).
    pub matched_spans: usize,
    /// Spans of B without a match in A.
    pub added_spans: usize,
    /// Spans of A without a match in B.
    pub missing_spans: usize,
}

/// One path and its spans in both traces.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathComparison {
    /// `service:name` of each span from the top down, joined by ` > `.
    pub path: String,
    /// The path this one is under; `None` at the top.
    pub parent_path: Option<String>,
    /// 0 at the top.
    pub depth: usize,
    pub service: String,
    pub name: String,
    pub status: PathStatus,
    pub count_a: usize,
    pub count_b: usize,
    pub errors_a: usize,
    pub errors_b: usize,
    /// The durations of the path's spans, summed.
    #[serde(with = "decimal")]
    pub duration_nanos_a: u64,
    #[serde(with = "decimal")]
    pub duration_nanos_b: u64,
    /// B minus A.
    #[serde(with = "decimal")]
    pub diff_nanos: i64,
    /// B divided by A; `None` when A's spans lasted zero nanoseconds (or there are none).
    pub ratio: Option<f64>,
    /// Whether B is significantly slower or faster; `None` unless the path is in both traces.
    pub change: Option<Change>,
    /// The spans matched k-th to k-th in start order; one side is `None` where a trace has
    /// fewer spans on this path.
    pub spans: Vec<SpanPair>,
}

/// Where a path occurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathStatus {
    /// In both traces (not necessarily as many times).
    Matched,
    /// Only in B.
    Added,
    /// Only in A.
    Missing,
}

/// How B's duration compares with A's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Longer by more than [`SIGNIFICANT_NANOS`] and more than [`SIGNIFICANT_PERCENT`] of A.
    Slower,
    /// Shorter by more than [`SIGNIFICANT_NANOS`] and more than [`SIGNIFICANT_PERCENT`] of A.
    Faster,
    /// Neither.
    Similar,
}

/// The k-th span of a path in A and in B.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpanPair {
    pub a: Option<ComparedSpan>,
    pub b: Option<ComparedSpan>,
}

/// One span of a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparedSpan {
    pub span_id: SpanId,
    /// From the start of its trace (its earliest span).
    #[serde(with = "decimal")]
    pub start_offset_nanos: u64,
    #[serde(with = "decimal")]
    pub duration_nanos: u64,
    /// Whether its status is error.
    pub error: bool,
}

/// Compares trace `b` with trace `a` (the baseline); the rows of each in any order.
pub fn compare(a: &[SpanRow], b: &[SpanRow]) -> Comparison {
    let mut tree = Tree::default();
    tree.place(0, a);
    tree.place(1, b);
    let traces = [a, b];
    let starts = traces.map(|rows| rows.iter().map(|r| r.start_unix_nano).min().unwrap_or(0));
    let ends = traces.map(|rows| rows.iter().map(|r| r.end_unix_nano).max().unwrap_or(0));
    let durations = [0, 1].map(|t| ends[t].saturating_sub(starts[t]));

    // Each node's spans in start order, then the tree flattened depth first.
    for node in &mut tree.nodes {
        for (side, spans) in node.spans.iter_mut().enumerate() {
            spans.sort_by_key(|&i| (traces[side][i].start_unix_nano, traces[side][i].span_id));
        }
    }
    let first_start = |node: &Node| {
        let side = if node.spans[0].is_empty() { 1 } else { 0 };
        node.spans[side].first().map_or(0, |&i| traces[side][i].start_unix_nano.saturating_sub(starts[side]))
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); tree.nodes.len()];
    let mut top = Vec::new();
    for (i, node) in tree.nodes.iter().enumerate() {
        match node.parent {
            Some(parent) => children[parent].push(i),
            None => top.push(i),
        }
    }
    for siblings in children.iter_mut().chain([&mut top]) {
        siblings.sort_by_key(|&i| (first_start(&tree.nodes[i]), tree.nodes[i].service, tree.nodes[i].name));
    }
    let mut order = Vec::with_capacity(tree.nodes.len());
    let mut stack: Vec<usize> = top.into_iter().rev().collect();
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(children[i].iter().rev());
    }

    let mut texts: Vec<String> = vec![String::new(); tree.nodes.len()];
    let mut paths = Vec::with_capacity(order.len());
    let (mut matched, mut added, mut missing) = (0, 0, 0);
    for i in order {
        let node = &tree.nodes[i];
        let parent_path = node.parent.map(|p| texts[p].clone());
        let segment = format!("{}:{}", node.service, node.name);
        texts[i] = match &parent_path {
            Some(parent) => format!("{parent} > {segment}"),
            None => segment,
        };
        let side = |t: usize, k: usize| {
            node.spans[t].get(k).map(|&row| {
                let row = &traces[t][row];
                ComparedSpan {
                    span_id: row.span_id,
                    start_offset_nanos: row.start_unix_nano.saturating_sub(starts[t]),
                    duration_nanos: row.duration_nanos(),
                    error: row.status_code == STATUS_ERROR,
                }
            })
        };
        let [count_a, count_b] = [0, 1].map(|t| node.spans[t].len());
        let spans: Vec<SpanPair> =
            (0..count_a.max(count_b)).map(|k| SpanPair { a: side(0, k), b: side(1, k) }).collect();
        let total = |t: usize| node.spans[t].iter().map(|&row| traces[t][row].duration_nanos()).sum::<u64>();
        let errors = |t: usize| node.spans[t].iter().filter(|&&row| traces[t][row].status_code == STATUS_ERROR).count();
        let (duration_a, duration_b) = (total(0), total(1));
        let status = match (count_a, count_b) {
            (0, _) => PathStatus::Added,
            (_, 0) => PathStatus::Missing,
            _ => PathStatus::Matched,
        };
        matched += count_a.min(count_b);
        added += count_b.saturating_sub(count_a);
        missing += count_a.saturating_sub(count_b);
        paths.push(PathComparison {
            path: texts[i].clone(),
            parent_path,
            depth: node.depth,
            service: node.service.to_owned(),
            name: node.name.to_owned(),
            status,
            count_a,
            count_b,
            errors_a: errors(0),
            errors_b: errors(1),
            duration_nanos_a: duration_a,
            duration_nanos_b: duration_b,
            diff_nanos: diff(duration_a, duration_b),
            ratio: ratio(duration_a, duration_b),
            change: (status == PathStatus::Matched).then(|| change(duration_a, duration_b)),
            spans,
        });
    }
    let errors = |rows: &[SpanRow]| rows.iter().filter(|r| r.status_code == STATUS_ERROR).count();
    Comparison {
        totals: ComparisonTotals {
            duration_nanos_a: durations[0],
            duration_nanos_b: durations[1],
            diff_nanos: diff(durations[0], durations[1]),
            ratio: ratio(durations[0], durations[1]),
            change: change(durations[0], durations[1]),
            spans_a: a.len(),
            spans_b: b.len(),
            errors_a: errors(a),
            errors_b: errors(b),
            matched_spans: matched,
            added_spans: added,
            missing_spans: missing,
        },
        paths,
    }
}

/// Whether `b` differs from `a` by more than [`SIGNIFICANT_NANOS`] and more than
/// [`SIGNIFICANT_PERCENT`] of `a`.
pub fn change(a: u64, b: u64) -> Change {
    let difference = a.abs_diff(b);
    let significant = difference > SIGNIFICANT_NANOS
        && u128::from(difference) * 100 > u128::from(a) * u128::from(SIGNIFICANT_PERCENT);
    match (significant, b > a) {
        (false, _) => Change::Similar,
        (true, true) => Change::Slower,
        (true, false) => Change::Faster,
    }
}

fn diff(a: u64, b: u64) -> i64 {
    let difference = i128::from(b) - i128::from(a);
    i64::try_from(difference).unwrap_or(if difference > 0 { i64::MAX } else { i64::MIN })
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (a > 0).then(|| b as f64 / a as f64)
}

/// One path: the node under `parent` for a (service, name).
struct Node<'r> {
    parent: Option<usize>,
    depth: usize,
    service: &'r str,
    name: &'r str,
    /// Rows of A and of B on this path.
    spans: [Vec<usize>; 2],
}

/// The paths of both traces, shared so that equal paths are one node.
#[derive(Default)]
struct Tree<'r> {
    nodes: Vec<Node<'r>>,
    index: HashMap<(Option<usize>, &'r str, &'r str), usize>,
}

impl<'r> Tree<'r> {
    fn node(&mut self, parent: Option<usize>, row: &'r SpanRow) -> usize {
        let key = (parent, &*row.service_name, row.name.as_str());
        if let Some(&node) = self.index.get(&key) {
            return node;
        }
        let depth = parent.map_or(0, |p| self.nodes[p].depth + 1);
        self.nodes.push(Node { parent, depth, service: key.1, name: key.2, spans: [Vec::new(), Vec::new()] });
        self.index.insert(key, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// Puts each row of trace `side` on its path: top-level paths from the spans without a
    /// parent in the trace, then, for spans a loop kept out of reach, from the earliest of them.
    fn place(&mut self, side: usize, rows: &'r [SpanRow]) {
        let parents = parents(rows);
        let mut children = vec![Vec::new(); rows.len()];
        for (child, parent) in parents.iter().enumerate() {
            if let Some(parent) = parent {
                children[*parent].push(child);
            }
        }
        let mut by_start: Vec<usize> = (0..rows.len()).collect();
        by_start.sort_by_key(|&i| (rows[i].start_unix_nano, Reverse(rows[i].end_unix_nano), rows[i].span_id));
        let mut node_of: Vec<Option<usize>> = vec![None; rows.len()];
        let tops = by_start.iter().filter(|&&i| parents[i].is_none()).chain(&by_start);
        for &top in tops {
            if node_of[top].is_some() {
                continue;
            }
            node_of[top] = Some(self.node(None, &rows[top]));
            let mut stack = vec![top];
            while let Some(row) = stack.pop() {
                for &child in &children[row] {
                    if node_of[child].is_none() {
                        node_of[child] = Some(self.node(node_of[row], &rows[child]));
                        stack.push(child);
                    }
                }
            }
        }
        for (row, node) in node_of.into_iter().enumerate() {
            if let Some(node) = node {
                self.nodes[node].spans[side].push(row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::critical_path::tests::span;

    const MS: u64 = 1_000_000;

    /// A span whose times are given in milliseconds.
    fn ms(id: u8, parent: Option<u8>, service: &str, name: &str, start: u64, end: u64) -> SpanRow {
        span(id, parent, service, name, start * MS, end * MS)
    }

    fn failed(mut row: SpanRow) -> SpanRow {
        row.status_code = STATUS_ERROR;
        row
    }

    fn by_path<'c>(comparison: &'c Comparison, path: &str) -> &'c PathComparison {
        comparison.paths.iter().find(|p| p.path == path).unwrap_or_else(|| panic!("no path {path}: {comparison:?}"))
    }

    /// `(path, status, count A, count B, change)` of every path, in order.
    fn outline(comparison: &Comparison) -> Vec<(&str, PathStatus, usize, usize, Option<Change>)> {
        comparison.paths.iter().map(|p| (p.path.as_str(), p.status, p.count_a, p.count_b, p.change)).collect()
    }

    fn cart_a() -> Vec<SpanRow> {
        vec![
            ms(1, None, "frontend", "GET /cart", 0, 100),
            ms(2, Some(1), "cart", "GetCart", 10, 60),
            ms(3, Some(2), "redis", "GET", 20, 30),
            ms(4, Some(2), "redis", "GET", 30, 50),
            ms(5, Some(1), "pricing", "Quote", 60, 90),
        ]
    }

    #[test]
    fn a_trace_compared_with_itself_matches_everywhere() {
        let comparison = compare(&cart_a(), &cart_a());
        assert!(comparison.paths.iter().all(|p| p.status == PathStatus::Matched && p.change == Some(Change::Similar)));
        assert!(comparison.paths.iter().all(|p| p.diff_nanos == 0 && p.ratio == Some(1.0)));
        let totals = &comparison.totals;
        assert_eq!((totals.matched_spans, totals.added_spans, totals.missing_spans), (5, 0, 0));
        assert_eq!((totals.duration_nanos_a, totals.change), (100 * MS, Change::Similar));
    }

    #[test]
    fn missing_added_and_slower_spans_are_found_on_their_paths() {
        // B: cart is slower, redis has a third GET, pricing is gone, recommendations is new
        // and failed. Start times are shifted by 1 s: offsets from the trace start count.
        let b: Vec<SpanRow> = [
            ms(1, None, "frontend", "GET /cart", 0, 130),
            ms(2, Some(1), "cart", "GetCart", 10, 100),
            ms(3, Some(2), "redis", "GET", 20, 30),
            ms(4, Some(2), "redis", "GET", 30, 50),
            ms(6, Some(2), "redis", "GET", 50, 65),
            failed(ms(7, Some(1), "recommendations", "List", 100, 120)),
        ]
        .into_iter()
        .map(|mut r| {
            r.start_unix_nano += 1000 * MS;
            r.end_unix_nano += 1000 * MS;
            r
        })
        .collect();
        let comparison = compare(&cart_a(), &b);
        use Change::*;
        use PathStatus::*;
        assert_eq!(
            outline(&comparison),
            [
                ("frontend:GET /cart", Matched, 1, 1, Some(Slower)),
                ("frontend:GET /cart > cart:GetCart", Matched, 1, 1, Some(Slower)),
                ("frontend:GET /cart > cart:GetCart > redis:GET", Matched, 2, 3, Some(Slower)),
                ("frontend:GET /cart > pricing:Quote", Missing, 1, 0, None),
                ("frontend:GET /cart > recommendations:List", Added, 0, 1, None),
            ]
        );
        let root = by_path(&comparison, "frontend:GET /cart");
        assert_eq!((root.depth, root.parent_path.as_deref()), (0, None));
        assert_eq!((root.duration_nanos_a, root.duration_nanos_b, root.diff_nanos), (100 * MS, 130 * MS, 30_000_000));
        assert_eq!(root.ratio, Some(1.3));
        let redis = by_path(&comparison, "frontend:GET /cart > cart:GetCart > redis:GET");
        assert_eq!((redis.depth, redis.parent_path.as_deref()), (2, Some("frontend:GET /cart > cart:GetCart")));
        assert_eq!((redis.duration_nanos_a, redis.duration_nanos_b, redis.ratio), (30 * MS, 45 * MS, Some(1.5)));
        let pairs: Vec<_> = redis
            .spans
            .iter()
            .map(|p| (p.a.as_ref().map(|s| s.span_id.as_bytes()[0]), p.b.as_ref().map(|s| s.span_id.as_bytes()[0])))
            .collect();
        assert_eq!(pairs, [(Some(3), Some(3)), (Some(4), Some(4)), (None, Some(6))]);
        let third = redis.spans[2].b.as_ref().unwrap();
        assert_eq!((third.start_offset_nanos, third.duration_nanos, third.error), (50 * MS, 15 * MS, false));
        let pricing = by_path(&comparison, "frontend:GET /cart > pricing:Quote");
        assert_eq!((pricing.duration_nanos_a, pricing.duration_nanos_b, pricing.diff_nanos), (30 * MS, 0, -30_000_000));
        assert_eq!(pricing.ratio, Some(0.0));
        assert!(pricing.spans[0].b.is_none());
        let recommendations = by_path(&comparison, "frontend:GET /cart > recommendations:List");
        assert_eq!((recommendations.errors_a, recommendations.errors_b, recommendations.ratio), (0, 1, None));
        assert!(recommendations.spans[0].b.as_ref().unwrap().error);

        let totals = &comparison.totals;
        assert_eq!(
            (totals.duration_nanos_a, totals.duration_nanos_b, totals.diff_nanos),
            (100 * MS, 130 * MS, 30 * MS as i64)
        );
        assert_eq!((totals.ratio, totals.change), (Some(1.3), Change::Slower));
        assert_eq!((totals.spans_a, totals.spans_b, totals.errors_a, totals.errors_b), (5, 6, 0, 1));
        assert_eq!((totals.matched_spans, totals.added_spans, totals.missing_spans), (4, 2, 1));
    }

    #[test]
    fn repeated_siblings_are_matched_in_start_order() {
        // Three calls in A; in B, listed out of order, the second is gone.
        let a = [
            ms(1, None, "api", "batch", 0, 100),
            ms(2, Some(1), "db", "query", 10, 20),
            ms(3, Some(1), "db", "query", 30, 40),
            ms(4, Some(1), "db", "query", 50, 90),
        ];
        let b = [
            ms(1, None, "api", "batch", 0, 100),
            ms(7, Some(1), "db", "query", 50, 60),
            ms(6, Some(1), "db", "query", 10, 25),
        ];
        let comparison = compare(&a, &b);
        let query = by_path(&comparison, "api:batch > db:query");
        let pairs: Vec<_> = query
            .spans
            .iter()
            .map(|p| (p.a.as_ref().map(|s| s.span_id.as_bytes()[0]), p.b.as_ref().map(|s| s.span_id.as_bytes()[0])))
            .collect();
        assert_eq!(pairs, [(Some(2), Some(6)), (Some(3), Some(7)), (Some(4), None)]);
        assert_eq!((query.status, query.change), (PathStatus::Matched, Some(Change::Faster)));
        let totals = &comparison.totals;
        assert_eq!((totals.matched_spans, totals.added_spans, totals.missing_spans), (3, 0, 1));
    }

    #[test]
    fn a_change_is_flagged_only_past_both_thresholds() {
        assert_eq!(change(100 * MS, 111 * MS), Change::Slower);
        assert_eq!(change(100 * MS, 89 * MS), Change::Faster);
        // 5 ms is only 5 %.
        assert_eq!(change(100 * MS, 105 * MS), Change::Similar);
        // 50 % is only 0.5 ms.
        assert_eq!(change(MS, MS + MS / 2), Change::Similar);
        // Exactly 10 % or exactly 1 ms is not more than the threshold.
        assert_eq!(change(20 * MS, 22 * MS), Change::Similar);
        assert_eq!(change(5 * MS / 10, 15 * MS / 10), Change::Similar);
        assert_eq!(change(0, 2 * MS), Change::Slower);
        assert_eq!(change(0, 0), Change::Similar);
    }

    #[test]
    fn a_renamed_parent_moves_its_whole_subtree() {
        let a = [ms(1, None, "api", "GET /v1", 0, 10), ms(2, Some(1), "db", "query", 1, 5)];
        let b = [ms(1, None, "api", "GET /v2", 0, 10), ms(2, Some(1), "db", "query", 1, 5)];
        use PathStatus::*;
        assert_eq!(
            outline(&compare(&a, &b)),
            [
                ("api:GET /v1", Missing, 1, 0, None),
                ("api:GET /v1 > db:query", Missing, 1, 0, None),
                ("api:GET /v2", Added, 0, 1, None),
                ("api:GET /v2 > db:query", Added, 0, 1, None),
            ]
        );
    }

    #[test]
    fn orphans_and_loops_start_paths_of_their_own() {
        // 3's parent was never received; 4 and 5 are each other's parent.
        let a = [
            ms(1, None, "api", "GET", 0, 100),
            ms(3, Some(9), "worker", "job", 20, 30),
            ms(4, Some(5), "x", "loop", 40, 50),
            ms(5, Some(4), "y", "loop", 41, 49),
        ];
        let comparison = compare(&a, &a[..2]);
        use Change::*;
        use PathStatus::*;
        assert_eq!(
            outline(&comparison),
            [
                ("api:GET", Matched, 1, 1, Some(Similar)),
                ("worker:job", Matched, 1, 1, Some(Similar)),
                ("x:loop", Missing, 1, 0, None),
                ("x:loop > y:loop", Missing, 1, 0, None),
            ]
        );
    }

    #[test]
    fn empty_traces_compare_to_nothing() {
        let comparison = compare(&[], &cart_a());
        assert!(comparison.paths.iter().all(|p| p.status == PathStatus::Added));
        assert_eq!((comparison.totals.ratio, comparison.totals.change), (None, Change::Slower));
        assert!(compare(&[], &[]).paths.is_empty());
    }
}
