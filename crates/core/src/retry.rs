//! Backoff for transient failures, computed without a clock or RNG so the
//! schedule is testable; callers do the sleeping.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Total tries, the first included.
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            attempts: 6,
        }
    }
}

impl Backoff {
    /// Delay before retry number `retry` (0-based), "equal jitter": half the
    /// exponential step plus a share of the other half picked by `seed`, so
    /// many families throttled together do not retry in lockstep.
    pub fn delay(&self, retry: u32, seed: u64) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        let half = step / 2;
        let spread = half.as_millis() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            splitmix(seed ^ u64::from(retry)) % (spread + 1)
        };
        half + Duration::from_millis(jitter)
    }
}

/// FNV-1a over `bytes`: a short hash that is stable across builds of this
/// code (std's hasher does not promise that), for seeds and tokens.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finalizer: a good-enough mixing function, so a choice can
/// be a pure function of a seed and a counter.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_under_cap() {
        let b = Backoff::default();
        let mut last_floor = Duration::ZERO;
        for retry in 0..10 {
            let d = b.delay(retry, 42);
            let step = (b.base * 2u32.pow(retry)).min(b.cap);
            assert!(d >= step / 2 && d <= step, "retry {retry}: {d:?}");
            assert!(step / 2 >= last_floor);
            last_floor = step / 2;
        }
        assert!(b.delay(1000, 1) <= b.cap);
    }

    #[test]
    fn seeds_spread_delays() {
        let b = Backoff::default();
        let distinct: std::collections::BTreeSet<_> = (0..50).map(|s| b.delay(3, s)).collect();
        assert!(distinct.len() > 10);
    }
}
