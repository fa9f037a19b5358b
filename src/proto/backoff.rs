//! Exponential back-off with deterministic jitter (xorshift seeded from `Config::seed`).

use super::message::Millis;

/// Exponential back-off: the n-th consecutive failure waits `min(cap, base·2^(n-1))`, jittered
/// uniformly into `[delay/2, delay]`, and never less than 1 ms.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Millis,
    cap: Millis,
    state: u64,
}

impl Backoff {
    /// A back-off with the given base, cap and jitter seed.
    pub fn new(base: Millis, cap: Millis, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            // xorshift must not start at 0; mix the seed so nearby seeds diverge.
            state: (seed ^ 0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// The un-jittered delay of the `n`-th consecutive failure (0 for `n == 0`).
    pub fn ceiling(&self, n: u32) -> Millis {
        if n == 0 {
            return 0;
        }
        let factor = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
        self.base.saturating_mul(factor).min(self.cap).max(1)
    }

    /// The jittered delay of the `n`-th consecutive failure (0 for `n == 0`, else ≥ 1 ms).
    pub fn delay(&mut self, n: u32) -> Millis {
        let d = self.ceiling(n);
        if d == 0 {
            return 0;
        }
        let low = d / 2;
        let span = d - low + 1;
        (low + self.next_u64() % span).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_capped_jittered() {
        let mut b = Backoff::new(500, 30_000, 7);
        assert_eq!(b.delay(0), 0);
        let mut seen = Vec::new();
        for n in 1..=12 {
            let c = b.ceiling(n);
            assert_eq!(c, (500u64 << (n - 1)).min(30_000));
            for _ in 0..50 {
                let d = b.delay(n);
                assert!(d >= c / 2 && d <= c, "n={n} d={d} c={c}");
                seen.push(d);
            }
        }
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() > 100, "jitter should vary");
        assert_eq!(b.ceiling(200), 30_000);
    }

    #[test]
    fn deterministic_per_seed() {
        let mut a = Backoff::new(500, 30_000, 42);
        let mut b = Backoff::new(500, 30_000, 42);
        let xs: Vec<_> = (1..10).map(|n| a.delay(n)).collect();
        let ys: Vec<_> = (1..10).map(|n| b.delay(n)).collect();
        assert_eq!(xs, ys);
        let mut z = Backoff::new(0, 0, 0);
        assert_eq!(z.delay(3), 1);
    }
}
