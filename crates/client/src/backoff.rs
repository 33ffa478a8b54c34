//! Exponential back-off with jitter, for reconnects and requeues.

use std::time::Duration;

/// Doubles from `initial` up to `max` on each [`Backoff::next_delay`], with ±10% jitter so
/// many clients restarted together don't retry in lockstep; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A back-off starting at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, current: initial }
    }

    /// The delay to wait now; the next one will be twice as long.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::random_range(0.9..1.1);
        base.mul_f64(jitter).min(self.max)
    }

    /// Back to the initial delay.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl Default for Backoff {
    /// 200 ms doubling to 10 s: the reconnect back-off of informers and leader election.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let d: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert!((90..=110).contains(&d[0]), "{d:?}");
        assert!((180..=220).contains(&d[1]), "{d:?}");
        assert!((360..=440).contains(&d[2]), "{d:?}");
        assert!(d[3] <= 500 && d[4] <= 500 && d[4] >= 450, "{d:?}");
        b.reset();
        assert!(b.next_delay().as_millis() <= 110);
    }
}
