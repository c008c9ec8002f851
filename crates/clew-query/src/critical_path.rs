//! The critical path of a trace: the chain of spans its end-to-end latency waited on.
//!
//! Computed as Jaeger UI computes it. Start at the root's end; among the span's children take
//! the one that ends last at or before the cursor, walk into it the same way, then move the
//! cursor back to that child's start. What the chosen children leave uncovered is the span's
//! own time on the path ("self time"). Children are first clipped to their parent's window: a
//! child that started before its parent or outlived it counts only while the parent ran, and one
//! wholly outside (or of zero length) is never on the path. So the segments tile the root's
//! window exactly, and their self times add up to the root's duration.

use std::cmp::Reverse;
use std::collections::HashMap;

use clew_model::{SpanId, SpanRow};
use serde::Serialize;

use crate::decimal;

/// The critical path of one trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CriticalPath {
    /// The span the path starts from: the root, or a stand-in (see [`critical_path`]); `None`
    /// only for a trace without spans.
    pub root_span_id: Option<SpanId>,
    /// Whether no span of the trace is a root, so the path starts from a stand-in.
    pub root_missing: bool,
    #[serde(with = "decimal")]
    pub start_unix_nano: u64,
    /// The root's duration: the sum of every segment's self time.
    #[serde(with = "decimal")]
    pub duration_nanos: u64,
    /// The path in time order; each segment starts where the previous one ends.
    pub segments: Vec<PathSegment>,
    /// Every span on the path with its self time summed over its segments, most first (ties in
    /// order of first appearance on the path).
    pub spans: Vec<PathSpan>,
}

/// A stretch of the path during which `span_id` itself (not one of its children) was the work
/// being waited on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathSegment {
    pub span_id: SpanId,
    pub service: String,
    pub name: String,
    #[serde(with = "decimal")]
    pub start_unix_nano: u64,
    #[serde(with = "decimal")]
    pub end_unix_nano: u64,
    /// `end_unix_nano - start_unix_nano`.
    #[serde(with = "decimal")]
    pub self_time_nanos: u64,
}

/// One span's share of the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathSpan {
    pub span_id: SpanId,
    pub service: String,
    pub name: String,
    #[serde(with = "decimal")]
    pub self_time_nanos: u64,
    /// How many segments of the path are this span's.
    pub segments: usize,
}

/// The critical path of the trace whose spans are `rows` (in any order).
///
/// The path starts from the root span. When there are several roots or none (the root was not
/// received), it starts from the span that ends last among the spans without a parent in the
/// trace; when every span has one (parent links that form a cycle), from the span that ends
/// last. Spans that are not descendants of that span (orphans beside a root) are not on the
/// path. Parent links that loop are followed at most once per span.
pub fn critical_path(rows: &[SpanRow]) -> CriticalPath {
    let parents = parents(rows);
    let Some((root, found)) = start_span(rows, &parents) else {
        return CriticalPath {
            root_span_id: None,
            root_missing: true,
            start_unix_nano: 0,
            duration_nanos: 0,
            segments: Vec::new(),
            spans: Vec::new(),
        };
    };
    let mut children = vec![Vec::new(); rows.len()];
    for (child, parent) in parents.iter().enumerate() {
        if let Some(parent) = parent {
            children[*parent].push(child);
        }
    }
    let (start, end) = (rows[root].start_unix_nano, rows[root].end_unix_nano.max(rows[root].start_unix_nano));
    let pieces = walk(rows, &children, root, start, end);

    let mut spans: Vec<PathSpan> = Vec::new();
    let mut position: HashMap<usize, usize> = HashMap::new();
    let segments = pieces
        .into_iter()
        .map(|(row, start, end)| {
            let span = &rows[row];
            let i = *position.entry(row).or_insert_with(|| {
                spans.push(PathSpan {
                    span_id: span.span_id,
                    service: span.service_name.to_string(),
                    name: span.name.clone(),
                    self_time_nanos: 0,
                    segments: 0,
                });
                spans.len() - 1
            });
            spans[i].self_time_nanos += end - start;
            spans[i].segments += 1;
            PathSegment {
                span_id: span.span_id,
                service: span.service_name.to_string(),
                name: span.name.clone(),
                start_unix_nano: start,
                end_unix_nano: end,
                self_time_nanos: end - start,
            }
        })
        .collect();
    // Stable: equal self times keep their order of first appearance.
    spans.sort_by_key(|s| Reverse(s.self_time_nanos));
    CriticalPath {
        root_span_id: Some(rows[root].span_id),
        root_missing: !found,
        start_unix_nano: start,
        duration_nanos: end - start,
        segments,
        spans,
    }
}

/// For each row, the index of its parent's row when the parent is in the trace: the first row
/// with that span ID, never the row itself.
pub(crate) fn parents(rows: &[SpanRow]) -> Vec<Option<usize>> {
    let mut by_id: HashMap<&[u8], usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        by_id.entry(row.span_id.as_bytes()).or_insert(i);
    }
    rows.iter()
        .enumerate()
        .map(|(i, row)| by_id.get(&row.parent_span_id[..]).copied().filter(|&parent| parent != i))
        .collect()
}

/// The row the path starts from, and whether the trace has a real root.
fn start_span(rows: &[SpanRow], parents: &[Option<usize>]) -> Option<(usize, bool)> {
    let roots: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].parent_span_id.is_empty()).collect();
    if let [root] = roots[..] {
        return Some((root, true));
    }
    // Ends last; of those, started first (the longest), then the lowest span ID.
    let last_ending = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates.max_by_key(|&i| (rows[i].end_unix_nano, Reverse(rows[i].start_unix_nano), Reverse(rows[i].span_id)))
    };
    last_ending(&mut (0..rows.len()).filter(|&i| parents[i].is_none()))
        .or_else(|| last_ending(&mut (0..rows.len())))
        .map(|i| (i, !roots.is_empty()))
}

/// A span being walked: its clipped window, the cursor moving back from its end, and its
/// clipped children, latest end first, not yet passed over.
struct Frame {
    row: usize,
    start: u64,
    cursor: u64,
    /// `(start, end, row)`, ordered by end descending, then start ascending.
    children: Vec<(u64, u64, usize)>,
    next: usize,
}

impl Frame {
    fn new(rows: &[SpanRow], children: &[Vec<usize>], row: usize, start: u64, end: u64) -> Self {
        let mut clipped: Vec<(u64, u64, usize)> = children[row]
            .iter()
            .filter_map(|&child| {
                let child_start = rows[child].start_unix_nano.max(start);
                let child_end = rows[child].end_unix_nano.min(end);
                (child_start < child_end).then_some((child_start, child_end, child))
            })
            .collect();
        clipped.sort_by_key(|&(start, end, child)| (Reverse(end), start, rows[child].span_id));
        Self { row, start, cursor: end, children: clipped, next: 0 }
    }
}

/// The path through `root`'s window `[start, end]` as `(row, start, end)` segments in time
/// order. Iterative, so a deep trace cannot overflow the stack; each span is entered at most
/// once, so looping parent links terminate.
fn walk(rows: &[SpanRow], children: &[Vec<usize>], root: usize, start: u64, end: u64) -> Vec<(usize, u64, u64)> {
    let mut entered = vec![false; rows.len()];
    entered[root] = true;
    let mut stack = vec![Frame::new(rows, children, root, start, end)];
    // Built from the end backwards.
    let mut segments = Vec::new();
    while let Some(frame) = stack.last_mut() {
        let mut chosen = None;
        // The cursor only moves back, so a child ending after it is passed over for good.
        while let Some(&(child_start, child_end, child)) = frame.children.get(frame.next) {
            frame.next += 1;
            if child_end <= frame.cursor && !entered[child] {
                chosen = Some((child_start, child_end, child));
                break;
            }
        }
        match chosen {
            Some((child_start, child_end, child)) => {
                if child_end < frame.cursor {
                    segments.push((frame.row, child_end, frame.cursor));
                }
                frame.cursor = child_start;
                entered[child] = true;
                stack.push(Frame::new(rows, children, child, child_start, child_end));
            }
            None => {
                if frame.start < frame.cursor {
                    segments.push((frame.row, frame.start, frame.cursor));
                }
                stack.pop();
            }
        }
    }
    segments.reverse();
    segments
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use clew_model::TraceId;

    use super::*;

    /// A span of trace `01…01` with ID `[id; 8]`, running `[start, end]`; other fields empty.
    pub(crate) fn span(id: u8, parent: Option<u8>, service: &str, name: &str, start: u64, end: u64) -> SpanRow {
        SpanRow {
            trace_id: TraceId::from_bytes([1; 16]).unwrap(),
            span_id: SpanId::from_bytes([id; 8]).unwrap(),
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default().into(),
            trace_state: String::new(),
            flags: 0,
            name: name.into(),
            kind: 2,
            start_unix_nano: start,
            end_unix_nano: end,
            status_code: 0,
            status_message: String::new(),
            service_name: Arc::from(service),
            resource: Default::default(),
            scope: Default::default(),
            attributes: Default::default(),
            dropped_attributes_count: 0,
            events: Default::default(),
            dropped_events_count: 0,
            links: Default::default(),
            dropped_links_count: 0,
        }
    }

    /// A span of service `svc` named after its ID.
    fn s(id: u8, parent: Option<u8>, start: u64, end: u64) -> SpanRow {
        span(id, parent, "svc", &format!("op-{id}"), start, end)
    }

    /// The path as `(span ID byte, start, end)`, after checking that the segments tile the
    /// root's window and that the per-span totals add up to its duration.
    fn path(rows: &[SpanRow]) -> Vec<(u8, u64, u64)> {
        let path = critical_path(rows);
        check_tiling(&path);
        path.segments.iter().map(|s| (s.span_id.as_bytes()[0], s.start_unix_nano, s.end_unix_nano)).collect()
    }

    fn check_tiling(path: &CriticalPath) {
        let mut cursor = path.start_unix_nano;
        for segment in &path.segments {
            assert_eq!(segment.start_unix_nano, cursor, "segments must be contiguous: {path:?}");
            assert!(segment.end_unix_nano > segment.start_unix_nano, "empty segment: {path:?}");
            assert_eq!(segment.self_time_nanos, segment.end_unix_nano - segment.start_unix_nano);
            cursor = segment.end_unix_nano;
        }
        if !path.segments.is_empty() {
            assert_eq!(cursor, path.start_unix_nano + path.duration_nanos, "{path:?}");
        }
        assert_eq!(path.spans.iter().map(|s| s.self_time_nanos).sum::<u64>(), path.duration_nanos);
        assert_eq!(path.spans.iter().map(|s| s.segments).sum::<usize>(), path.segments.len());
    }

    /// Self time per span as `(span ID byte, nanos)`, in the order the result lists them.
    fn totals(rows: &[SpanRow]) -> Vec<(u8, u64)> {
        critical_path(rows).spans.iter().map(|s| (s.span_id.as_bytes()[0], s.self_time_nanos)).collect()
    }

    #[test]
    fn sequential_children_are_all_on_the_path_with_the_gaps_as_self_time() {
        // root 0..100: A 10..40, then B 40..90 right after it.
        let rows = [s(1, None, 0, 100), s(2, Some(1), 10, 40), s(3, Some(1), 40, 90)];
        assert_eq!(path(&rows), [(1, 0, 10), (2, 10, 40), (3, 40, 90), (1, 90, 100)]);
        assert_eq!(totals(&rows), [(3, 50), (2, 30), (1, 20)]);
        let result = critical_path(&rows);
        assert_eq!(result.duration_nanos, 100);
        assert_eq!(result.root_span_id, Some(SpanId::from_bytes([1; 8]).unwrap()));
        assert!(!result.root_missing);
        assert_eq!(result.spans.iter().find(|s| s.span_id.as_bytes()[0] == 1).unwrap().segments, 2);
    }

    #[test]
    fn of_parallel_children_the_last_to_finish_is_followed_and_overlapping_ones_skipped() {
        // A 10..60 and B 20..80 run together; C 70..90 starts while B runs; C has a child.
        let rows = [
            s(1, None, 0, 100),
            s(2, Some(1), 10, 60),
            s(3, Some(1), 20, 80),
            s(4, Some(1), 70, 90),
            s(5, Some(4), 72, 88),
        ];
        // From 100: C ends last (90); then from C's start (70) B (ends 80) is skipped and A
        // (ends 60) is taken.
        assert_eq!(
            path(&rows),
            [(1, 0, 10), (2, 10, 60), (1, 60, 70), (4, 70, 72), (5, 72, 88), (4, 88, 90), (1, 90, 100)]
        );
        assert_eq!(totals(&rows), [(2, 50), (1, 30), (5, 16), (4, 4)]);
    }

    #[test]
    fn children_ending_together_take_the_longest_first() {
        let rows = [s(1, None, 0, 100), s(2, Some(1), 50, 90), s(3, Some(1), 20, 90)];
        assert_eq!(path(&rows), [(1, 0, 20), (3, 20, 90), (1, 90, 100)]);
    }

    #[test]
    fn children_are_clipped_to_their_parent() {
        // Root 100..200. A started before its parent (50..120); B outlives it (150..300), and
        // B's child 250..280 runs only after the root ended; C is wholly after the root.
        let rows = [
            s(1, None, 100, 200),
            s(2, Some(1), 50, 120),
            s(3, Some(1), 150, 300),
            s(4, Some(3), 250, 280),
            s(5, Some(1), 210, 220),
        ];
        assert_eq!(path(&rows), [(2, 100, 120), (1, 120, 150), (3, 150, 200)]);
        assert_eq!(critical_path(&rows).duration_nanos, 100);
    }

    #[test]
    fn zero_length_spans_are_never_on_the_path() {
        let rows = [s(1, None, 0, 100), s(2, Some(1), 50, 50), s(3, Some(2), 50, 50)];
        assert_eq!(path(&rows), [(1, 0, 100)]);
        // A zero-length root: an empty path of zero duration, still naming the root.
        let result = critical_path(&[s(1, None, 7, 7)]);
        assert_eq!((result.duration_nanos, result.segments.len()), (0, 0));
        assert_eq!(result.root_span_id, Some(SpanId::from_bytes([1; 8]).unwrap()));
        // An end before the start counts as zero length.
        assert_eq!(critical_path(&[s(1, None, 9, 3)]).duration_nanos, 0);
    }

    #[test]
    fn without_a_root_the_last_ending_orphan_stands_in() {
        // Parents 9 and 8 were never received.
        let rows = [s(1, Some(9), 0, 50), s(2, Some(8), 10, 80), s(3, Some(2), 20, 70)];
        let result = critical_path(&rows);
        assert!(result.root_missing);
        assert_eq!(result.root_span_id, Some(SpanId::from_bytes([2; 8]).unwrap()));
        assert_eq!(path(&rows), [(2, 10, 20), (3, 20, 70), (2, 70, 80)]);
    }

    #[test]
    fn of_several_roots_the_last_ending_is_taken_and_orphans_beside_a_root_are_ignored() {
        let rows = [s(1, None, 0, 100), s(2, None, 0, 120), s(3, Some(9), 0, 500)];
        // Several roots: the last ending among parentless spans, orphans included.
        assert_eq!(path(&rows), [(3, 0, 500)]);
        assert!(!critical_path(&rows).root_missing);
        // One root: an orphan that ends later is still not on the path.
        let rows = [s(1, None, 0, 100), s(3, Some(9), 0, 500)];
        assert_eq!(path(&rows), [(1, 0, 100)]);
    }

    #[test]
    fn parent_links_that_loop_terminate() {
        // 1 and 2 are each other's parent, 3 is its own: no span is parentless but 3.
        let rows = [s(1, Some(2), 0, 100), s(2, Some(1), 10, 50), s(3, Some(3), 0, 10)];
        assert_eq!(path(&rows), [(3, 0, 10)]);
        // Only the loop: the last-ending span stands in, and each span is entered once.
        let rows = [s(1, Some(2), 0, 100), s(2, Some(1), 10, 50)];
        assert_eq!(path(&rows), [(1, 0, 10), (2, 10, 50), (1, 50, 100)]);
        assert!(critical_path(&rows).root_missing);
        // A second span with the root's ID, under the root's child: no loop either.
        let rows = [s(1, None, 0, 100), s(2, Some(1), 10, 90), s(1, Some(2), 20, 80)];
        assert_eq!(path(&rows), [(1, 0, 10), (2, 10, 20), (1, 20, 80), (2, 80, 90), (1, 90, 100)]);
    }

    #[test]
    fn an_empty_trace_has_an_empty_path() {
        let result = critical_path(&[]);
        assert_eq!((result.root_span_id, result.duration_nanos, result.segments.len()), (None, 0, 0));
    }

    #[test]
    fn a_deep_trace_does_not_overflow_the_stack() {
        let rows: Vec<SpanRow> = (0..100_000u64)
            .map(|i| {
                let mut row = s(1, None, i, 200_000 - i);
                row.span_id = SpanId::from_bytes((i + 1).to_be_bytes()).unwrap();
                if i > 0 {
                    row.parent_span_id = i.to_be_bytes().to_vec().into();
                }
                row
            })
            .collect();
        let result = critical_path(&rows);
        check_tiling(&result);
        assert_eq!(result.segments.len(), 2 * 100_000 - 1);
    }

    /// Random traces (loops, orphans, overlaps, spans outliving parents, zero lengths) always
    /// give a path that tiles the root's window.
    #[test]
    fn any_trace_gives_a_path_that_tiles_the_root() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..2000 {
            let count = 1 + next(12) as u8;
            let rows: Vec<SpanRow> = (1..=count)
                .map(|id| {
                    let parent = match next(10) {
                        0 => None,
                        1 => Some(200),
                        _ => Some(1 + next(u64::from(count)) as u8),
                    };
                    let start = next(100);
                    s(id, parent, start, start + next(60))
                })
                .collect();
            let result = critical_path(&rows);
            check_tiling(&result);
            let root = rows.iter().find(|r| Some(r.span_id) == result.root_span_id).unwrap();
            assert_eq!(result.duration_nanos, root.duration_nanos(), "{rows:?}");
        }
    }
}
