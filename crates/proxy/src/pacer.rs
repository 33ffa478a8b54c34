//! When a sync loop syncs: at once on start, after each burst of changes (folded by the
//! minimum sync period), on a doubling back-off after a failure, and with a full check of its
//! nftables table once per sync period however busy it is. The Service proxier and the
//! NetworkPolicy enforcer share it.

use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// After a failed sync, the next attempt waits this long (doubling up to the sync period).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The timing state of one sync loop.
pub struct SyncPacer {
    min_sync_period: Duration,
    sync_period: Duration,
    last_start: Option<Instant>,
    retry: Option<Duration>,
    due: bool,
    next_check: Instant,
}

impl SyncPacer {
    /// A pacer whose first sync is due at once.
    pub fn new(min_sync_period: Duration, sync_period: Duration) -> SyncPacer {
        SyncPacer {
            min_sync_period,
            sync_period,
            last_start: None,
            retry: None,
            due: true,
            next_check: Instant::now() + sync_period,
        }
    }

    /// Waits until the next sync is due; `Some(check)` then says whether this sync should also
    /// check the table, `None` that `token` was cancelled.
    pub async fn next(&mut self, wake: &Notify, token: &CancellationToken) -> Option<bool> {
        if !self.due {
            let until = match (self.retry, self.last_start) {
                (Some(delay), Some(t)) => t + delay,
                _ => self.next_check,
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = token.cancelled() => return None,
            }
        }
        self.due = false;
        // Fold a burst of changes into one sync; after a failure, back off.
        let gap = self.min_sync_period.max(self.retry.unwrap_or_default());
        if let Some(wait) = self.last_start.map(|t| (t + gap).saturating_duration_since(Instant::now()))
            && !wait.is_zero()
        {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = token.cancelled() => return None,
            }
        }
        self.last_start = Some(Instant::now());
        let check = Instant::now() >= self.next_check;
        if check {
            self.next_check = Instant::now() + self.sync_period;
        }
        Some(check)
    }

    /// The sync succeeded: no back-off.
    pub fn succeeded(&mut self) {
        self.retry = None;
    }

    /// The sync failed: returns how long until the next attempt.
    pub fn failed(&mut self) -> Duration {
        let next = self.retry.map(|d| (d * 2).min(self.sync_period)).unwrap_or(RETRY_DELAY);
        self.retry = Some(next);
        next
    }
}
