//! Waiting in async tests for something that becomes true eventually.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `f` every 200 ms until it gives Some; panics with `what` and `context()` (the daemons'
/// logs, say) after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, context: impl Fn() -> String, f: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", context());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
