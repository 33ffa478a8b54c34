//! RollingUpdate for DaemonSets without surge: which old pods to delete now so that no more
//! than `maxUnavailable` nodes lack an available daemon pod (Kubernetes' rollingUpdate; the
//! next sync recreates the deleted pods from the current template).

use super::{Snapshot, pod_updated};
use crate::objects::pod_available;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::sync::Arc;

/// `value` (a count or a percentage of `total`, rounded up) as a count.
fn scaled(value: Option<&IntOrString>, total: i32) -> i32 {
    match value {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let percent = s.trim_end_matches('%').parse::<i64>().unwrap_or(0);
            i32::try_from((percent * i64::from(total) + 99) / 100).unwrap_or(i32::MAX)
        }
        None => 0,
    }
}

/// maxUnavailable for `desired` nodes (at least one, so a rollout always progresses).
pub fn max_unavailable(snap: &Snapshot, desired: i32) -> i32 {
    let ru = snap.ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let value = ru.and_then(|r| r.max_unavailable.as_ref());
    let n = if value.is_none() { 1 } else { scaled(value, desired) };
    n.max(1)
}

/// Old pods to delete now: unavailable old pods always (they cost nothing), and available
/// ones while fewer than maxUnavailable nodes are without an available pod.
pub fn old_pods_to_replace(snap: &Snapshot, now: jiff::Timestamp) -> Vec<Arc<Pod>> {
    let min_ready = snap.ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let desired = snap.nodes.iter().filter(|n| snap.fit(n).should_run).count();
    let max = max_unavailable(snap, i32::try_from(desired).unwrap_or(i32::MAX));
    let mut nodes: Vec<&String> = snap.by_node.keys().collect();
    nodes.sort();
    let (mut unavailable, mut replace, mut candidates) = (0, Vec::new(), Vec::new());
    for node in nodes {
        let pods: Vec<&Arc<Pod>> =
            snap.by_node[node].iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        let (new, old): (Vec<&Arc<Pod>>, Vec<&Arc<Pod>>) =
            pods.into_iter().partition(|p| pod_updated(p, &snap.hash, &snap.generation));
        match (new.as_slice(), old.as_slice()) {
            // Several pods, or none left: manage() is still sorting this node out.
            ([], []) | ([_], [_]) => unavailable += 1,
            ([n], []) => {
                if !pod_available(n, min_ready, now) {
                    unavailable += 1;
                }
            }
            ([], [o]) => {
                if !pod_available(o, min_ready, now) {
                    replace.push(Arc::clone(o));
                } else if unavailable < max {
                    candidates.push(Arc::clone(o));
                }
            }
            _ => unavailable += 1,
        }
    }
    let room = usize::try_from((max - unavailable).max(0)).unwrap_or(0).min(candidates.len());
    replace.extend(candidates.into_iter().take(room));
    replace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(Some(&IntOrString::String("10%".into())), 3), 1);
        assert_eq!(scaled(Some(&IntOrString::String("50%".into())), 5), 3);
        assert_eq!(scaled(Some(&IntOrString::Int(2)), 5), 2);
        assert_eq!(scaled(None, 5), 0);
    }
}
