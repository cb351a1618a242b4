//! Reconnect delays: jittered exponential backoff (1 s doubling to 60 s), reset after a
//! connection that lasted at least 60 s.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// First delay.
pub const MIN_DELAY: Duration = Duration::from_secs(1);
/// Largest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A connection at least this long counts as stable and resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: MIN_DELAY }
    }
}

impl Backoff {
    /// The delay before the next attempt, given how long the last attempt lasted. The delay is
    /// uniformly jittered in [base/2, base], so many devices that lost the controller at the
    /// same moment do not come back in lockstep.
    pub fn next_delay(&mut self, lasted: Duration) -> Duration {
        if lasted >= STABLE_AFTER {
            self.base = MIN_DELAY;
        }
        let base = self.base;
        self.base = (self.base * 2).min(MAX_DELAY);
        let half = base / 2;
        half + half.mul_f64(unit_random())
    }
}

/// A random number in [0, 1) from the standard library's randomly keyed hasher (no RNG crate
/// needed for jitter).
fn unit_random() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let mut bases = Vec::new();
        for _ in 0..10 {
            let base = backoff.base;
            let delay = backoff.next_delay(Duration::from_secs(1));
            assert!(
                delay >= base / 2 && delay <= base,
                "{delay:?} outside [{base:?}/2, {base:?}]"
            );
            bases.push(base.as_secs());
        }
        assert_eq!(bases, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        let delay = backoff.next_delay(STABLE_AFTER);
        assert!(delay <= MIN_DELAY);
        assert_eq!(backoff.base, MIN_DELAY * 2);
    }

    #[test]
    fn jitter_varies() {
        let samples: std::collections::HashSet<u64> =
            (0..20).map(|_| (unit_random() * 1e9) as u64).collect();
        assert!(samples.len() > 10);
        assert!((0..1000)
            .map(|_| unit_random())
            .all(|x| (0.0..1.0).contains(&x)));
    }
}
