//! Rate limits: a token bucket, and IRC's flood timer.
//!
//! Lab 06's UDP echo server answers whoever writes a source address on a
//! datagram, and logs every datagram: a forged datagram or a flood must
//! not make it send, or log, without bound. A token bucket bounds both.
//!
//! Lab 07's chat server reads a client's lines no faster than RFC 1459's
//! flood control lets it (§8.10): a [`FloodTimer`] per client.

use std::time::{Duration, Instant};

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

/// How far ahead of now a client's flood timer may run before the server
/// stops reading its lines (RFC 1459 §8.10: "more than 10 seconds ahead").
pub const FLOOD_WINDOW: Duration = Duration::from_secs(10);

/// A client's flood timer, as RFC 1459 §8.10 gives it: when it is behind
/// now, it is set to now; each line moves it ahead by a penalty; while it is
/// more than [`FLOOD_WINDOW`] ahead, the client's lines wait. So a burst
/// passes at once (10 s of penalties and one more: 6 lines of 2 s), then
/// one line per penalty. A penalty of zero never holds a line.
#[derive(Debug, Clone, Copy)]
pub struct FloodTimer {
    at: Instant,
}

impl FloodTimer {
    pub fn new(now: Instant) -> FloodTimer {
        FloodTimer { at: now }
    }

    /// Whether a line may be taken at `now`: the timer is not more than
    /// FLOOD_WINDOW ahead.
    pub fn allows(&self, now: Instant) -> bool {
        self.at <= now + FLOOD_WINDOW
    }

    /// A line taken at `now`: the timer, brought up to now if behind,
    /// moves `penalty` ahead.
    pub fn charge(&mut self, now: Instant, penalty: Duration) {
        self.at = self.at.max(now) + penalty;
    }

    /// When [`allows`](Self::allows) becomes true again.
    pub fn allows_at(&self) -> Instant {
        self.at.checked_sub(FLOOD_WINDOW).unwrap_or(self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_lines_pass_at_once_then_one_per_penalty() {
        let t0 = Instant::now();
        let penalty = Duration::from_secs(2);
        let mut timer = FloodTimer::new(t0);
        let mut taken = 0;
        while timer.allows(t0) {
            timer.charge(t0, penalty);
            taken += 1;
        }
        assert_eq!(taken, 6);
        assert_eq!(timer.allows_at(), t0 + penalty);
        assert!(!timer.allows(t0 + penalty - Duration::from_millis(1)));
        assert!(timer.allows(t0 + penalty));
        // A timer behind now is set to now: an idle client has its burst again.
        let later = t0 + Duration::from_secs(60);
        timer.charge(later, penalty);
        assert_eq!(timer.allows_at(), later - Duration::from_secs(8));
        // No penalty, no wait.
        let mut free = FloodTimer::new(t0);
        for _ in 0..1000 {
            free.charge(t0, Duration::ZERO);
        }
        assert!(free.allows(t0));
    }

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
