//! xorshift64*, seeded from `PRECOMPYLE_TEST_SEED` or the clock: the random
//! choices of the pyc unit tests and of the kill tests in `tests/it`
//! (included there by path, as `support::Rng`).

use std::time::Duration;

/// xorshift64*: reproducible random choices without a rand dependency,
/// seeded from `PRECOMPYLE_TEST_SEED` when set (to replay a failure) or
/// from the clock.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("PRECOMPYLE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        Rng(seed | 1)
    }

    pub fn seed(&self) -> u64 {
        self.0
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, bound)`.
    pub fn below(&mut self, bound: Duration) -> Duration {
        let micros = bound.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % micros)
    }
}
