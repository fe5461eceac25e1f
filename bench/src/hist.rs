//! A latency histogram of fixed size: recording is an array increment, never
//! an allocation, and two histograms merge by adding their counts.
//!
//! Log-linear buckets (as HdrHistogram): exact below 32 ns, then 32 buckets
//! per power of two, so a percentile is within about 3% of the true value.

/// Buckets per power of two (5 bits below the leading one).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any u64 value.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// Counts of durations in nanoseconds.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

fn bucket(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let log2 = 63 - ns.leading_zeros(); // >= SUB_BITS
    let shift = log2 - SUB_BITS;
    let sub = (ns >> shift) as usize & (SUB - 1);
    (shift as usize + 1) * SUB + sub
}

/// The middle of a bucket's range of values.
fn midpoint(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let shift = (index / SUB - 1) as u32;
    let low = ((SUB + index % SUB) as u64) << shift;
    low + (1u64 << shift) / 2
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded, exactly.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` (0 to 1) of the recorded values
    /// lie, in nanoseconds; 0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return midpoint(index).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            31,
            32,
            33,
            63,
            64,
            65,
            127,
            128,
            1000,
            1 << 40,
            u64::MAX,
        ] {
            let b = bucket(ns);
            assert!(b >= last, "{ns} went back to bucket {b}");
            assert!(b < BUCKETS);
            last = b;
        }
        assert_eq!(bucket(31) + 1, bucket(32));
        assert_eq!(bucket(63) + 1, bucket(64));
    }

    #[test]
    fn quantiles_are_within_a_few_percent() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (1.0, 1_000_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.035, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.count(), 1000);
        let mut sum = Histogram::default();
        sum.merge(&h);
        sum.merge(&h);
        assert_eq!(sum.count(), 2000);
        assert_eq!(sum.quantile(0.5), h.quantile(0.5));
        assert_eq!(Histogram::default().quantile(0.99), 0);
    }
}
