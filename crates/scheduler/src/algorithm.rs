//! Picking a node for one pod: filter nodes from a rotating start until enough fit, score
//! those, take the best (ties broken at random), or explain why none fits.

use crate::cache::{NodeInfo, SchedulerCache};
use crate::filter::{InterPodAffinityState, Reason, Unschedulable, run_filters};
use crate::pod_info::PodInfo;
use crate::score::score_nodes;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rand::Rng;
use std::collections::HashMap;
use std::fmt;

/// Below this many nodes every node is filtered; above, at least this many feasible nodes are
/// looked for.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage of nodes to score never drops below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;
/// The adaptive percentage starts here and falls by one per 125 nodes.
pub const BASE_PERCENTAGE_OF_NODES_TO_SCORE: usize = 50;
/// The message (condition and event) when the cluster has no nodes at all.
pub const NO_NODES_AVAILABLE_MSG: &str = "no nodes available to schedule pods";
/// PodScheduled=False reason for a pod that fits nowhere.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// Event reason for a pod that couldn't be scheduled.
pub const EVENT_REASON_FAILED_SCHEDULING: &str = "FailedScheduling";
/// Event reason for a pod that was bound.
pub const EVENT_REASON_SCHEDULED: &str = "Scheduled";

/// Tunables of one scheduling attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// percentageOfNodesToScore; 0 means Kubernetes' adaptive default.
    pub percentage_of_nodes_to_score: u32,
}

/// How many feasible nodes to find before scoring (Kubernetes' numFeasibleNodesToFind): all
/// nodes below 100; otherwise `percentage` of them (adaptive: 50% minus 1% per 125 nodes,
/// at least 5%), but never fewer than 100.
pub fn num_feasible_nodes_to_find(num_all_nodes: usize, percentage: u32) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let pct = match percentage as usize {
        0 => BASE_PERCENTAGE_OF_NODES_TO_SCORE
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND),
        p if p >= 100 => return num_all_nodes,
        p => p,
    };
    (num_all_nodes * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Where a pod should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The chosen node.
    pub node_name: String,
    /// How many nodes were run through the filters.
    pub evaluated: usize,
    /// How many of them passed.
    pub feasible: usize,
}

impl ScheduleResult {
    /// The message of the "Scheduled" event, as Kubernetes words it.
    pub fn event_message(&self, pod: &PodInfo) -> String {
        format!("Successfully assigned {}/{} to {}", pod.namespace, pod.name(), self.node_name)
    }
}

/// Why a pod fits no node: the reasons of every node evaluated (which, on failure, is every
/// node in the cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// Number of nodes in the cache.
    pub num_all_nodes: usize,
    /// Node name -> the reasons it was rejected.
    pub node_reasons: Vec<(String, Vec<Reason>)>,
}

impl FitError {
    /// The PodScheduled=False message and FailedScheduling event message, worded like
    /// Kubernetes: `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable.`
    /// (each distinct reason with its node count; entries sorted as strings, count included).
    /// Without nodes: `no nodes available to schedule pods`.
    pub fn message(&self) -> String {
        if self.num_all_nodes == 0 {
            return NO_NODES_AVAILABLE_MSG.to_string();
        }
        let mut histogram: HashMap<&str, usize> = HashMap::new();
        for (_, reasons) in &self.node_reasons {
            for r in reasons {
                *histogram.entry(r.as_ref()).or_default() += 1;
            }
        }
        let mut entries: Vec<String> = histogram.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
        entries.sort();
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if !entries.is_empty() {
            msg.push(' ');
            msg.push_str(&entries.join(", "));
            msg.push('.');
        }
        msg
    }

    /// The reason of the PodScheduled=False condition (Kubernetes uses Unschedulable for both
    /// "fits nowhere" and "no nodes").
    pub fn condition_reason(&self) -> &'static str {
        REASON_UNSCHEDULABLE
    }

    /// The PodScheduled=False condition to write to the pod's status.
    pub fn condition(&self, now: Time) -> PodCondition {
        PodCondition {
            type_: "PodScheduled".to_string(),
            status: "False".to_string(),
            reason: Some(self.condition_reason().to_string()),
            message: Some(self.message()),
            last_transition_time: Some(now),
            ..PodCondition::default()
        }
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FitError {}

/// Picks a node for `pod` with the default options; see [`schedule_with`].
pub fn schedule<R: Rng + ?Sized>(
    pod: &PodInfo,
    cache: &SchedulerCache,
    next_start_index: &mut usize,
    rng: &mut R,
) -> Result<ScheduleResult, FitError> {
    schedule_with(pod, cache, next_start_index, rng, &ScheduleOptions::default())
}

/// Picks a node for `pod`: filters nodes starting at `next_start_index` (advanced past the
/// nodes looked at, so successive pods start at different nodes and the early-stop doesn't
/// always favour the same ones) until enough feasible nodes are found, scores them and
/// returns the highest-scoring one, choosing uniformly among equals.
pub fn schedule_with<R: Rng + ?Sized>(
    pod: &PodInfo,
    cache: &SchedulerCache,
    next_start_index: &mut usize,
    rng: &mut R,
    options: &ScheduleOptions,
) -> Result<ScheduleResult, FitError> {
    let nodes = cache.nodes();
    let n = nodes.len();
    if n == 0 {
        return Err(FitError { num_all_nodes: 0, node_reasons: Vec::new() });
    }
    let want = num_feasible_nodes_to_find(n, options.percentage_of_nodes_to_score);
    let state = InterPodAffinityState::new(pod, cache);
    let start = *next_start_index % n;
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want);
    let mut rejected: Vec<(&NodeInfo, Unschedulable)> = Vec::new();
    for i in 0..n {
        let node = &nodes[(start + i) % n];
        match run_filters(&state, pod, node) {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(u) => rejected.push((node, u)),
        }
    }
    let evaluated = feasible.len() + rejected.len();
    *next_start_index = (start + evaluated) % n;
    let chosen = match feasible.len() {
        0 => {
            let node_reasons = rejected.into_iter().map(|(node, u)| (node.name.clone(), u.0)).collect();
            return Err(FitError { num_all_nodes: n, node_reasons });
        }
        1 => feasible[0],
        _ => {
            let scores = score_nodes(pod, cache, &feasible);
            feasible[select_host(&scores, rng)]
        }
    };
    Ok(ScheduleResult { node_name: chosen.name.clone(), evaluated, feasible: feasible.len() })
}

/// Index of the highest score; among equal highest, each is equally likely (reservoir
/// sampling, one pass).
pub fn select_host<R: Rng + ?Sized>(scores: &[i64], rng: &mut R) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &s) in scores.iter().enumerate() {
        if i == 0 || s > scores[best] {
            best = i;
            ties = 1;
        } else if s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests;
