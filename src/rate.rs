//! Rate limits: a token bucket.
//!
//! Lab 06's UDP echo server answers whoever writes a source address on a
//! datagram, and logs every datagram: a forged datagram or a flood must
//! not make it send, or log, without bound. A token bucket bounds both.

/// A token bucket: it holds at most `burst` tokens and gains `rate` a
/// second; each use takes one, and with none left the use is refused. So
/// `burst` uses pass at once, then `rate` a second. Counted in millionths
/// of a token, in integers, so that the C twin counts the very same.
pub struct TokenBucket {
    burst: u64,
    rate: u64,
    /// What it holds, in millionths of a token.
    millionths: u64,
    /// When it was last filled, in microseconds since the server started.
    filled_us: u64,
}

impl TokenBucket {
    pub fn new(burst: u64, rate: u64) -> TokenBucket {
        TokenBucket {
            burst,
            rate,
            millionths: burst * 1_000_000,
            filled_us: 0,
        }
    }

    /// Takes a token at `now_us` (microseconds since the server started),
    /// if there is one.
    pub fn take(&mut self, now_us: u64) -> bool {
        let full = self.burst * 1_000_000;
        // Full anyway after `full` microseconds; and the product cannot overflow.
        let elapsed = now_us.saturating_sub(self.filled_us).min(full);
        // `rate` tokens a second are `rate` millionths a microsecond.
        self.millionths = (self.millionths + elapsed * self.rate).min(full);
        self.filled_us = now_us;
        if self.millionths < 1_000_000 {
            return false;
        }
        self.millionths -= 1_000_000;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate() {
        let mut bucket = TokenBucket::new(3, 10);
        assert!((0..3).all(|_| bucket.take(0)));
        assert!(!bucket.take(0));
        // 10 a second: one token every 100,000 µs.
        assert!(!bucket.take(99_999));
        assert!(bucket.take(100_000));
        assert!(!bucket.take(100_000));
        // Never more than the burst, however long it waited.
        assert!((0..3).all(|_| bucket.take(u64::MAX)));
        assert!(!bucket.take(u64::MAX));
    }
}
