//! Compaction: merges the small segments of one tenant and day into one, streaming, so memory
//! stays at a few batches per input whatever the segment sizes; their rollups add up.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io;
use std::path::Path;
use std::sync::Arc;

use clew_model::{SpanRow, TenantId};

use crate::attributes;
use crate::segment::{sort_key, Segment, SegmentMeta, SegmentWriter, BATCH_ROWS, ZSTD_FAST, ZSTD_FINAL};

/// Segments of one merge are less than this many times the size of its smallest: merging
/// segments of a similar size rewrites a span about once per size tier on its way to
/// `target_spans`, instead of each time newer small segments join a large one.
const TIER: u64 = 4;

/// Chooses the small segments of one tenant and day to merge: in the day with the most small
/// segments (at least `min_segments`), the smallest segments of a similar size ([`TIER`]), at
/// least `min_segments` of them, up to `target_spans`. A day whose small segments are too
/// unequal to form such a group merges smallest first once it has twice `min_segments`.
pub(crate) fn pick(
    segments: &BTreeMap<TenantId, Vec<Arc<Segment>>>,
    min_segments: usize,
    target_spans: u64,
) -> Option<Vec<Arc<Segment>>> {
    let min_segments = min_segments.max(2);
    let mut days: HashMap<(&TenantId, u32), Vec<&Arc<Segment>>> = HashMap::new();
    for (tenant, list) in segments {
        for segment in list.iter().filter(|s| s.spans < target_spans) {
            days.entry((tenant, segment.meta.day)).or_default().push(segment);
        }
    }
    let (_, mut small) = days.into_iter().filter(|(_, s)| s.len() >= min_segments).max_by_key(|(_, s)| s.len())?;
    small.sort_by_key(|s| (s.spans, s.meta.id));
    let sizes: Vec<u64> = small.iter().map(|s| s.spans).collect();
    let chosen = choose(&sizes, min_segments, target_spans)?;
    Some(small[chosen].iter().map(|s| (*s).clone()).collect())
}

/// [`pick`] within one day, over its small segments' sizes in ascending order: which to merge.
/// A group of similar sizes qualifies with `min_segments` members, or with two when the next
/// would take it past `target_spans` (it cannot grow any more).
fn choose(sizes: &[u64], min_segments: usize, target_spans: u64) -> Option<std::ops::Range<usize>> {
    let group = |from: usize, tier: u64| {
        let limit = sizes[from].max(1).saturating_mul(tier);
        let (mut total, mut len) = (0, 0);
        for &spans in &sizes[from..] {
            if spans >= limit {
                return (from..from + len, false);
            }
            if total + spans > target_spans {
                return (from..from + len, true);
            }
            total += spans;
            len += 1;
        }
        (from..from + len, false)
    };
    let tiered = (0..sizes.len())
        .map(|from| group(from, TIER))
        .find(|(chosen, full)| chosen.len() >= min_segments || (*full && chosen.len() >= 2));
    let chosen = match tiered {
        Some((chosen, _)) => chosen,
        None if sizes.len() >= 2 * min_segments => group(0, u64::MAX).0,
        None => return None,
    };
    (chosen.len() >= 2).then_some(chosen)
}

/// One input of the merge: its remaining batches and the current batch.
struct Input<I> {
    batches: I,
    current: std::vec::IntoIter<SpanRow>,
}

impl<I: Iterator<Item = io::Result<Vec<SpanRow>>>> Input<I> {
    fn next(&mut self) -> io::Result<Option<SpanRow>> {
        loop {
            if let Some(row) = self.current.next() {
                return Ok(Some(row));
            }
            match self.batches.next() {
                Some(batch) => self.current = batch?.into_iter(),
                None => return Ok(None),
            }
        }
    }
}

/// Writes the rows of `inputs` (one tenant and day) as one new segment `id` that replaces them.
/// Identical rows (a span stored twice) are kept once. A result of at least half of
/// `target_spans` is likely final and is compressed harder.
pub(crate) fn merge(root: &Path, id: u64, inputs: &[Arc<Segment>], target_spans: u64) -> io::Result<Segment> {
    let first = inputs.first().ok_or_else(|| io::Error::other("nothing to compact"))?;
    let meta = SegmentMeta {
        id,
        tenant: first.meta.tenant.clone(),
        day: first.meta.day,
        replaces: inputs.iter().map(|s| s.meta.id).collect(),
        flush: None,
    };
    let columns = attributes::union(inputs.iter().map(|s| s.columns.as_slice()));
    let spans: u64 = inputs.iter().map(|s| s.spans).sum();
    let level = if spans >= target_spans / 2 { ZSTD_FINAL } else { ZSTD_FAST };
    let mut writer = SegmentWriter::create(root, meta, columns, level)?;
    let mut sources = Vec::with_capacity(inputs.len());
    let mut heap = BinaryHeap::new();
    for (i, segment) in inputs.iter().enumerate() {
        let mut input = Input { batches: segment.scan()?, current: Vec::new().into_iter() };
        if let Some(row) = input.next()? {
            heap.push(Reverse((sort_key(&row), i)));
            sources.push((input, Some(row)));
        } else {
            sources.push((input, None));
        }
    }
    let mut out: Vec<SpanRow> = Vec::with_capacity(BATCH_ROWS);
    let mut last: Option<SpanRow> = None;
    while let Some(Reverse((_, i))) = heap.pop() {
        let (input, slot) = &mut sources[i];
        let Some(row) = slot.take() else { continue };
        if let Some(next) = input.next()? {
            heap.push(Reverse((sort_key(&next), i)));
            *slot = Some(next);
        }
        if last.as_ref() == Some(&row) {
            continue;
        }
        last = Some(row.clone());
        out.push(row);
        if out.len() == BATCH_ROWS {
            writer.write(&out.iter().collect::<Vec<_>>())?;
            out.clear();
        }
    }
    writer.write(&out.iter().collect::<Vec<_>>())?;
    let mut rollup = clew_rollup::Rollup::default();
    for (i, segment) in inputs.iter().enumerate() {
        let part = crate::rollup_file::read(&crate::rollup_file::path_of(&segment.path))?;
        if i == 0 {
            rollup = part;
        } else {
            rollup.merge(part);
        }
    }
    writer.finish(&rollup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picked(sizes: &[u64]) -> Option<Vec<u64>> {
        let mut sizes = sizes.to_vec();
        sizes.sort_unstable();
        choose(&sizes, 4, 2_000_000).map(|chosen| sizes[chosen].to_vec())
    }

    #[test]
    fn segments_of_a_similar_size_are_merged_together() {
        assert_eq!(picked(&[100, 110, 120, 130]), Some(vec![100, 110, 120, 130]));
        // The large segment waits for peers of its size rather than being rewritten each time.
        assert_eq!(picked(&[400_000, 100_000, 100_000, 100_000, 100_000]), Some(vec![100_000; 4]));
        assert_eq!(picked(&[400_000, 400_000, 400_000, 100_000, 100_000]), None);
        assert_eq!(picked(&[400_000, 400_000, 400_000, 400_000, 100_000]), Some(vec![400_000; 4]));
        // Segments at the target are done; a merge stops before passing it.
        assert_eq!(picked(&[2_000_000, 2_000_000, 2_000_000, 2_000_000]), None);
        assert_eq!(picked(&[900_000, 900_000, 900_000, 900_000]), Some(vec![900_000; 2]));
    }

    #[test]
    fn unequal_segments_are_merged_once_there_are_many() {
        let sizes = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
        assert_eq!(picked(&sizes), None);
        assert_eq!(
            picked(&[sizes.as_slice(), &[5]].concat()),
            Some(vec![1, 5, 10, 100, 1_000, 10_000, 100_000, 1_000_000])
        );
    }
}
