//! Latency distributions that merge: a DDSketch with 1% relative accuracy.

use std::fmt;

use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every quantile read from a [`Latency`]: the library's default
/// configuration (1%, 2,048 bins), which is also what decoding assumes, so that decoded
/// sketches merge with new ones.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// The distribution of span durations in nanoseconds. Any quantile read back is within 1% of
/// the true value; two distributions merge exactly (merging then reading equals reading one
/// built from all values).
#[derive(Clone)]
pub struct Latency(DDSketch);

impl Default for Latency {
    fn default() -> Self {
        Self(DDSketch::new(Config::defaults()))
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latency").field("count", &self.0.count()).field("p50", &self.quantile(0.5)).finish()
    }
}

impl Latency {
    /// Records a duration `weight` times. Sampling weights are rounded to whole spans here
    /// (at least one); counts and rates keep them exactly.
    pub fn add(&mut self, nanos: u64, weight: f64) {
        let times = if weight.is_finite() { weight.round().max(1.0) as u64 } else { 1 };
        self.0.add_with_count(nanos as f64, times);
    }

    pub fn merge(&mut self, other: &Latency) {
        // Built and decoded with the same configuration, so merging cannot fail (the tests
        // merge decoded sketches into new ones).
        let merged = self.0.merge(&other.0);
        debug_assert!(merged.is_ok(), "latency sketches of different configurations");
    }

    /// The `q`-quantile (0..=1) in nanoseconds, or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        self.0.quantile(q).ok().flatten().map(|v| v.max(0.0).round() as u64)
    }

    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// The compact binary form (DataDog's DDSketch protobuf-free encoding).
    pub fn encode(&self) -> Vec<u8> {
        self.0.to_java_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        DDSketch::from_java_bytes(bytes).map(Self).map_err(|e| format!("invalid latency sketch: {e:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_one_percent(mut values in proptest::collection::vec(1u64..10_000_000_000, 1..400), split in 0usize..400) {
            let mut a = Latency::default();
            let mut b = Latency::default();
            for (i, v) in values.iter().enumerate() {
                if i < split { a.add(*v, 1.0) } else { b.add(*v, 1.0) }
            }
            // Decoded sketches merge into new ones, as when rollups are read from files.
            let mut decoded = Latency::default();
            decoded.merge(&Latency::decode(&a.encode()).unwrap());
            decoded.merge(&Latency::decode(&b.encode()).unwrap());
            values.sort_unstable();
            for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
                let exact = exact_quantile(&values, q) as f64;
                let got = decoded.quantile(q).unwrap() as f64;
                prop_assert!((got - exact).abs() <= exact * RELATIVE_ACCURACY + 1.0, "q{q}: {got} vs {exact}");
            }
            prop_assert_eq!(decoded.count(), values.len() as u64);
        }
    }

    #[test]
    fn weights_count_as_repeated_values() {
        let mut latency = Latency::default();
        latency.add(1_000, 1.0);
        latency.add(9_000_000, 9.0);
        assert_eq!(latency.count(), 10);
        assert!(latency.quantile(0.5).unwrap() > 8_900_000);
        assert!(Latency::default().quantile(0.5).is_none());
        assert!(Latency::decode(b"\x01\x02").is_err());
    }
}
