//! Background maintenance: history compaction (coordinated across API servers through a
//! CAS on one key) and defragmentation to hand freed space back to the filesystem.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::StorageError;
use crate::store::{DbStatus, Store};

/// Key whose value is the last compacted revision; whoever wins the CAS on it compacts.
pub const COMPACT_KEY: &str = "/registry/compact_rev_key";

/// Every `interval`, compacts etcd to the revision observed one tick earlier, so at least
/// one interval of history stays available for continue tokens and lagging watchers.
///
/// Several API servers may run this. Each remembers the mod revision of [`COMPACT_KEY`]
/// from its previous tick and only compacts if the key is unchanged, i.e. nobody else
/// compacted during its interval; that keeps the cluster at about one compaction per
/// interval instead of one per server.
pub fn spawn_compactor(store: Store, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // (revision observed at the previous tick, COMPACT_KEY mod revision at that tick)
        let mut previous: Option<(i64, i64)> = None;
        loop {
            ticker.tick().await;
            match compact_tick(&store, previous).await {
                Ok(next) => previous = Some(next),
                Err(e) => {
                    // Forget the observation: compacting to a stale one later is harmless,
                    // but a fresh start keeps the "one interval of history" promise simple.
                    tracing::warn!(error = %e, "compaction tick failed");
                    previous = None;
                }
            }
        }
    })
}

async fn compact_tick(store: &Store, previous: Option<(i64, i64)>) -> Result<(i64, i64), StorageError> {
    let current = store.current_revision().await?;
    let key_rev = store.get(COMPACT_KEY).await?.map_or(0, |kv| kv.mod_revision);
    let Some((target, seen_key_rev)) = previous else {
        return Ok((current, key_rev));
    };
    if key_rev != seen_key_rev {
        tracing::debug!(key_rev, seen_key_rev, "another server compacted this interval");
        return Ok((current, key_rev));
    }
    let value = target.to_string().into_bytes();
    let won = if seen_key_rev == 0 {
        store.create(COMPACT_KEY, value).await
    } else {
        store.update(COMPACT_KEY, value, seen_key_rev).await
    };
    let new_key_rev = match won {
        Ok(rev) => rev,
        Err(StorageError::AlreadyExists { .. } | StorageError::Conflict { .. } | StorageError::NotFound { .. }) => {
            tracing::debug!(target, "lost the compaction race");
            let key_rev = store.get(COMPACT_KEY).await?.map_or(0, |kv| kv.mod_revision);
            return Ok((current, key_rev));
        }
        Err(e) => return Err(e),
    };
    match store.compact(target).await {
        Ok(()) => tracing::info!(revision = target, "compacted etcd"),
        // Someone compacted further by hand; nothing left to do.
        Err(StorageError::Expired { .. }) => tracing::debug!(revision = target, "already compacted"),
        Err(e) => return Err(e),
    }
    Ok((current, new_key_rev))
}

/// Handle to a running defragmenter.
pub struct DefragHandle {
    /// The background task.
    pub task: JoinHandle<()>,
    /// The most recent status observed (`None` until the first successful poll), for /metrics.
    pub status: watch::Receiver<Option<DbStatus>>,
}

/// Every `interval`, polls etcd's size and defragments when at least `min_db_bytes` is
/// allocated and the unused part is at least `max_fragmentation_ratio` of it.
/// Defragmentation blocks the member briefly, hence the thresholds.
pub fn spawn_defragmenter(
    store: Store,
    interval: Duration,
    min_db_bytes: i64,
    max_fragmentation_ratio: f64,
) -> DefragHandle {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let before = match store.status().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "etcd status failed");
                    continue;
                }
            };
            tx.send_replace(Some(before));
            let free = before.db_size - before.db_size_in_use;
            let ratio = if before.db_size > 0 { free as f64 / before.db_size as f64 } else { 0.0 };
            if before.db_size < min_db_bytes || ratio < max_fragmentation_ratio {
                continue;
            }
            tracing::info!(db_size = before.db_size, in_use = before.db_size_in_use, ratio, "defragmenting etcd");
            if let Err(e) = store.defragment().await {
                tracing::warn!(error = %e, "defragment failed");
                continue;
            }
            match store.status().await {
                Ok(after) => {
                    tracing::info!(
                        before = before.db_size,
                        after = after.db_size,
                        in_use = after.db_size_in_use,
                        "defragmented etcd"
                    );
                    tx.send_replace(Some(after));
                }
                Err(e) => tracing::warn!(error = %e, "etcd status after defragment failed"),
            }
        }
    });
    DefragHandle { task, status: rx }
}
