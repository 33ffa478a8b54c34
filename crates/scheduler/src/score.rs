//! Scores: one function per Kubernetes score plugin (0..=100 per node once normalised), and
//! their weighted sum over the nodes that passed the filters.

use crate::cache::{NodeInfo, SchedulerCache};
use crate::filter::tolerations_tolerate;
use crate::hash::FastMap;
use crate::pod_info::PodInfo;
use crate::selector::node_selector_term_matches;

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Weight of NodeResourcesFit (LeastAllocated) in the default profile.
pub const WEIGHT_LEAST_ALLOCATED: i64 = 1;
/// Weight of NodeResourcesBalancedAllocation in the default profile.
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;
/// Weight of TaintToleration in the default profile.
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
/// Weight of NodeAffinity in the default profile.
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
/// Weight of InterPodAffinity in the default profile.
pub const WEIGHT_INTER_POD_AFFINITY: i64 = 2;
/// Weight of spreading same-owner pods (PodTopologySpread's slot) in the default profile.
pub const WEIGHT_SPREAD: i64 = 2;

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        return 0;
    }
    // i128 because capacities come from user objects and may be huge.
    let s = i128::from(capacity - requested) * i128::from(MAX_NODE_SCORE) / i128::from(capacity);
    s as i64
}

/// NodeResourcesFit LeastAllocated: the share of CPU and memory (equally weighted) left free
/// after placing the pod, using requests with defaults so request-less pods still count.
pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let (p, n, a) = (&pod.non_zero_requests, &node.non_zero_requested, &node.allocatable);
    let cpu = least_requested(n.milli_cpu.saturating_add(p.milli_cpu), a.milli_cpu);
    let mem = least_requested(n.memory.saturating_add(p.memory), a.memory);
    (cpu + mem) / 2
}

/// NodeResourcesBalancedAllocation: how evenly CPU and memory would be used after placing the
/// pod (100 when the used fractions are equal), on declared requests. Returns None for a pod
/// requesting neither, which Kubernetes skips.
pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> Option<i64> {
    let (p, n, a) = (&pod.requests, &node.requested, &node.allocatable);
    if p.milli_cpu == 0 && p.memory == 0 {
        return None;
    }
    let fraction = |used: i64, cap: i64| (cap > 0).then(|| (used as f64 / cap as f64).min(1.0));
    let cpu = fraction(n.milli_cpu.saturating_add(p.milli_cpu), a.milli_cpu);
    let mem = fraction(n.memory.saturating_add(p.memory), a.memory);
    let std = match (cpu, mem) {
        (Some(c), Some(m)) => (c - m).abs() / 2.0,
        _ => 0.0,
    };
    Some(((1.0 - std) * MAX_NODE_SCORE as f64) as i64)
}

/// TaintToleration (raw): how many PreferNoSchedule taints of the node the pod doesn't
/// tolerate; normalised in reverse, so fewer is better.
pub fn intolerable_prefer_no_schedule_taints(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let taints = node.node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    let tolerations = pod.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
    taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|t| !tolerations_tolerate(tolerations, &t.key, t.value.as_deref().unwrap_or_default(), &t.effect))
        .count() as i64
}

/// NodeAffinity (raw): the sum of the weights of the pod's preferred node affinity terms the
/// node matches.
pub fn preferred_node_affinity(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let preferred = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default();
    preferred
        .iter()
        .filter(|t| t.weight != 0 && node_selector_term_matches(&t.preference, node.labels(), &node.name))
        .map(|t| i64::from(t.weight))
        .sum()
}

/// InterPodAffinity (raw) for a pod: per topology key and value, the summed weights of the
/// pod's preferred terms matching pods there and of existing pods' terms matching the pod.
#[derive(Debug, Default)]
pub struct InterPodAffinityScorer<'a> {
    domains: FastMap<&'a str, FastMap<&'a str, i64>>,
}

impl<'a> InterPodAffinityScorer<'a> {
    /// Gathers the domain weights (Kubernetes' PreScore) from the whole cluster.
    pub fn new(pod: &'a PodInfo, cache: &'a SchedulerCache) -> InterPodAffinityScorer<'a> {
        let mut s = InterPodAffinityScorer::default();
        let value_of = |node_name: &str, key: &str| -> Option<&'a str> {
            cache.node(node_name).and_then(|n| n.labels().get(key)).map(String::as_str)
        };
        let own =
            pod.preferred_affinity.iter().map(|w| (w, 1)).chain(pod.preferred_anti_affinity.iter().map(|w| (w, -1)));
        for (w, sign) in own {
            let key = w.term.topology_key.as_str();
            let weight = i64::from(w.weight) * sign;
            cache.for_each_pod_matching(&w.term, |p| {
                if let Some(v) = value_of(&p.node_name, key) {
                    *s.domains.entry(key).or_default().entry(v).or_default() += weight;
                }
            });
        }
        for (term, weight, group) in cache.scoring_terms() {
            if !term.matches(&pod.namespace, pod.labels()) {
                continue;
            }
            let key = term.topology_key.as_str();
            for (node_name, count) in &group.nodes {
                if let Some(v) = value_of(node_name, key) {
                    *s.domains.entry(key).or_default().entry(v).or_default() += i64::from(weight) * i64::from(*count);
                }
            }
        }
        s
    }

    /// Whether no term applies anywhere, so every node scores the same.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The node's raw score: the weights of the domains it belongs to.
    pub fn raw(&self, node: &NodeInfo) -> i64 {
        let labels = node.labels();
        self.domains.iter().filter_map(|(k, m)| labels.get(*k).and_then(|v| m.get(v.as_str()))).sum()
    }
}

/// Kubernetes' DefaultNormalizeScore: scales so the highest is 100 (or, reversed, the highest
/// becomes 0 and zero becomes 100).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// InterPodAffinity's normalisation: maps [min, max] onto [0, 100] (all 0 when equal), so
/// negative anti-affinity weights end at the bottom.
pub fn min_max_normalize(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    let diff = max - min;
    for s in scores {
        *s = if diff > 0 { (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64 } else { 0 };
    }
}

/// Spreading of pods with the same controlling owner (SelectorSpread's formula): nodes with
/// fewer of the owner's pods score higher, and when nodes have zones, zones with fewer count
/// for two thirds. Counts are over `nodes`, the feasible set. A pod without owner scores 0
/// everywhere.
pub fn spread(pod: &PodInfo, nodes: &[&NodeInfo]) -> Vec<i64> {
    let Some(uid) = pod.owner_uid.as_deref() else {
        return vec![0; nodes.len()];
    };
    let counts: Vec<i64> = nodes.iter().map(|n| n.owner_counts.get(uid).map_or(0, |c| i64::from(*c))).collect();
    let max_node = counts.iter().copied().max().unwrap_or(0);
    if max_node == 0 {
        return vec![MAX_NODE_SCORE; nodes.len()];
    }
    let zone_slots = nodes.iter().filter_map(|n| n.zone).max().map_or(0, |z| z as usize + 1);
    let mut zones = vec![0i64; zone_slots];
    for (n, c) in nodes.iter().zip(&counts) {
        if let Some(z) = n.zone {
            zones[z as usize] += c;
        }
    }
    let max_zone = zones.iter().copied().max().unwrap_or(0);
    const ZONE_WEIGHTING: f64 = 2.0 / 3.0;
    nodes
        .iter()
        .zip(&counts)
        .map(|(n, c)| {
            let mut f = MAX_NODE_SCORE as f64 * ((max_node - c) as f64 / max_node as f64);
            if let Some(z) = n.zone {
                let zc = zones[z as usize];
                let zone_score = if max_zone > 0 {
                    MAX_NODE_SCORE as f64 * ((max_zone - zc) as f64 / max_zone as f64)
                } else {
                    MAX_NODE_SCORE as f64
                };
                f = f * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zone_score;
            }
            f as i64
        })
        .collect()
}

/// Scores the feasible nodes with every plugin, normalises each over the set and returns the
/// weighted totals, in the order of `nodes`.
pub fn score_nodes(pod: &PodInfo, cache: &SchedulerCache, nodes: &[&NodeInfo]) -> Vec<i64> {
    let mut total: Vec<i64> = Vec::with_capacity(nodes.len());
    let mut taints: Vec<i64> = Vec::with_capacity(nodes.len());
    let has_node_preferences =
        pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref()).and_then(|a| a.node_affinity.as_ref()).is_some_and(
            |na| na.preferred_during_scheduling_ignored_during_execution.as_ref().is_some_and(|p| !p.is_empty()),
        );
    for n in nodes {
        let mut t = WEIGHT_LEAST_ALLOCATED * least_allocated(pod, n);
        t += WEIGHT_BALANCED_ALLOCATION * balanced_allocation(pod, n).unwrap_or(0);
        total.push(t);
        taints.push(intolerable_prefer_no_schedule_taints(pod, n));
    }
    let mut add = |scores: &[i64], weight: i64| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += weight * s;
        }
    };
    default_normalize(&mut taints, true);
    add(&taints, WEIGHT_TAINT_TOLERATION);
    if has_node_preferences {
        let mut s: Vec<i64> = nodes.iter().map(|n| preferred_node_affinity(pod, n)).collect();
        default_normalize(&mut s, false);
        add(&s, WEIGHT_NODE_AFFINITY);
    }
    let ipa = InterPodAffinityScorer::new(pod, cache);
    if !ipa.is_empty() {
        let mut s: Vec<i64> = nodes.iter().map(|n| ipa.raw(n)).collect();
        min_max_normalize(&mut s);
        add(&s, WEIGHT_INTER_POD_AFFINITY);
    }
    add(&spread(pod, nodes), WEIGHT_SPREAD);
    total
}

#[cfg(test)]
mod tests;
