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

/// Chooses the small segments of one tenant and day to merge: the day with the most small
/// segments, if it has at least `min_segments`, smallest first up to `target_spans`.
pub(crate) fn pick(
    segments: &BTreeMap<TenantId, Vec<Arc<Segment>>>,
    min_segments: usize,
    target_spans: u64,
) -> Option<Vec<Arc<Segment>>> {
    let mut days: HashMap<(&TenantId, u32), Vec<&Arc<Segment>>> = HashMap::new();
    for (tenant, list) in segments {
        for segment in list.iter().filter(|s| s.spans < target_spans) {
            days.entry((tenant, segment.meta.day)).or_default().push(segment);
        }
    }
    let (_, mut small) =
        days.into_iter().filter(|(_, s)| s.len() >= min_segments.max(2)).max_by_key(|(_, s)| s.len())?;
    small.sort_by_key(|s| (s.spans, s.meta.id));
    let mut total = 0;
    let chosen: Vec<Arc<Segment>> = small
        .into_iter()
        .take_while(|s| {
            total += s.spans;
            total <= target_spans
        })
        .cloned()
        .collect();
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
