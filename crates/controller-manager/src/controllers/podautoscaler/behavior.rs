//! Turning a metric-based recommendation into the replica count to set: stabilization windows
//! over each HPA's recent recommendations, rate policies over its recent scale events, and the
//! min/max clamp, with the AbleToScale / ScalingLimited reasons Kubernetes reports.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use std::time::Duration;

/// Which policy wins when several allow different steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One rate policy: at most `value` pods or percent per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Whether `value` is a percentage of the replicas at the period's start (else pods).
    pub percent: bool,
    /// Pods or percent.
    pub value: i32,
    /// The window the change is counted over.
    pub period: Duration,
}

/// The rules for one direction (autoscaling/v2 HPAScalingRules with defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// How far back recommendations count.
    pub stabilization: Duration,
    /// How policies combine.
    pub select: Select,
    /// The rate policies.
    pub policies: Vec<Policy>,
}

/// How an HPA scales: with `spec.behavior` (defaults filled in), or without it (Kubernetes'
/// older rules: a downscale stabilization window and scale-up to at most max(2x, 4)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// No `spec.behavior`.
    Legacy {
        /// `--horizontal-pod-autoscaler-downscale-stabilization`.
        downscale_window: Duration,
    },
    /// `spec.behavior` was given.
    Rules {
        /// Scale-up rules.
        up: Rules,
        /// Scale-down rules.
        down: Rules,
    },
}

fn policy(percent: bool, value: i32, seconds: u64) -> Policy {
    Policy { percent, value, period: Duration::from_secs(seconds) }
}

fn rules(spec: Option<&HPAScalingRules>, default: Rules) -> Rules {
    let Some(spec) = spec else { return default };
    let select = match spec.select_policy.as_deref() {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(_) => Select::Max,
        None => default.select,
    };
    let policies = match &spec.policies {
        Some(ps) => ps
            .iter()
            .map(|p| policy(p.type_ == "Percent", p.value, u64::try_from(p.period_seconds).unwrap_or(0)))
            .collect(),
        None => default.policies,
    };
    let stabilization = spec
        .stabilization_window_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
        .unwrap_or(default.stabilization);
    Rules { stabilization, select, policies }
}

impl Behavior {
    /// The behavior of an HPA with `spec.behavior` = `spec`, Kubernetes' defaults filling gaps
    /// (scale-up: no window, max of 4 pods or 100% per 15 s; scale-down: `downscale_window`,
    /// 100% per 15 s).
    pub fn new(spec: Option<&HorizontalPodAutoscalerBehavior>, downscale_window: Duration) -> Behavior {
        let Some(spec) = spec else { return Behavior::Legacy { downscale_window } };
        let up = Rules {
            stabilization: Duration::ZERO,
            select: Select::Max,
            policies: vec![policy(false, 4, 15), policy(true, 100, 15)],
        };
        let down =
            Rules { stabilization: downscale_window, select: Select::Max, policies: vec![policy(true, 100, 15)] };
        Behavior::Rules { up: rules(spec.scale_up.as_ref(), up), down: rules(spec.scale_down.as_ref(), down) }
    }

    fn longest_window(&self) -> Duration {
        match self {
            Behavior::Legacy { downscale_window } => *downscale_window,
            Behavior::Rules { up, down } => up.stabilization.max(down.stabilization),
        }
    }
}

/// Why the recommendation was or was not changed (AbleToScale) and whether a limit applied
/// (ScalingLimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The replica count to set.
    pub desired: i32,
    /// AbleToScale reason.
    pub able_reason: &'static str,
    /// AbleToScale message.
    pub able_message: &'static str,
    /// Whether ScalingLimited is True.
    pub limited: bool,
    /// ScalingLimited reason.
    pub limited_reason: &'static str,
    /// ScalingLimited message.
    pub limited_message: &'static str,
}

/// One HPA's memory between syncs: recent recommendations and scale events.
#[derive(Debug, Default, Clone)]
pub struct History {
    recommendations: Vec<(jiff::Timestamp, i32)>,
    scale_ups: Vec<(jiff::Timestamp, i32)>,
    scale_downs: Vec<(jiff::Timestamp, i32)>,
}

fn ago(now: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    now.checked_sub(d).unwrap_or(jiff::Timestamp::MIN)
}

/// Replicas added (or removed) by `events` within `period` before `now`.
fn changed_within(events: &[(jiff::Timestamp, i32)], period: Duration, now: jiff::Timestamp) -> i32 {
    let cutoff = ago(now, period);
    events.iter().filter(|(at, _)| *at > cutoff).map(|(_, n)| *n).sum()
}

const READY: (&str, &str) = ("ReadyForNewScale", "recommended size matches current size");
const WITHIN: (&str, &str) = ("DesiredWithinRange", "the desired count is within the acceptable range");
const TOO_FEW: (&str, &str) = ("TooFewReplicas", "the desired replica count is less than the minimum replica count");
const TOO_MANY: (&str, &str) = ("TooManyReplicas", "the desired replica count is more than the maximum replica count");
const UP_LIMIT: (&str, &str) =
    ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate");
const DOWN_LIMIT: (&str, &str) =
    ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate");
const DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);

impl History {
    /// Seeds the history with the current size the first time an HPA is seen, so a fresh
    /// controller does not scale down at once.
    pub fn record_initial(&mut self, current: i32, now: jiff::Timestamp) {
        if self.recommendations.is_empty() {
            self.recommendations.push((now, current));
        }
    }

    fn record(&mut self, behavior: &Behavior, recommendation: i32, now: jiff::Timestamp) {
        let cutoff = ago(now, behavior.longest_window());
        self.recommendations.retain(|(at, _)| *at >= cutoff);
        self.recommendations.push((now, recommendation));
    }

    /// The replica count to set for `desired` (the metrics' proposal) from `current`.
    pub fn normalize(
        &mut self,
        behavior: &Behavior,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        now: jiff::Timestamp,
    ) -> Outcome {
        let (stabilized, able, (limited_to, limit)) = match behavior {
            Behavior::Legacy { downscale_window } => {
                let cutoff = ago(now, *downscale_window);
                let highest = self.recommendations.iter().filter(|(at, _)| *at >= cutoff).map(|(_, r)| *r);
                let stabilized = highest.fold(desired, i32::max);
                self.record(behavior, desired, now);
                let able = if stabilized != desired { DOWN_STABILIZED } else { READY };
                // Without behavior, a scale-up may at most double (or reach 4).
                let up_limit = current.saturating_mul(2).max(4);
                let (ceiling, why) = if max > up_limit { (up_limit, UP_LIMIT) } else { (max, TOO_MANY) };
                let limited = if stabilized < min {
                    (min, TOO_FEW)
                } else if stabilized > ceiling {
                    (ceiling, why)
                } else {
                    (stabilized, WITHIN)
                };
                (stabilized, able, limited)
            }
            Behavior::Rules { up, down } => {
                // Scale up only to the lowest recommendation of the up window, down only to
                // the highest of the down window.
                let (up_cut, down_cut) = (ago(now, up.stabilization), ago(now, down.stabilization));
                let (mut up_rec, mut down_rec) = (desired, desired);
                for (at, r) in &self.recommendations {
                    if *at > up_cut {
                        up_rec = up_rec.min(*r);
                    }
                    if *at > down_cut {
                        down_rec = down_rec.max(*r);
                    }
                }
                let stabilized = current.max(up_rec).min(down_rec);
                self.record(behavior, desired, now);
                let able = match stabilized == desired {
                    true => READY,
                    false if desired >= current => UP_STABILIZED,
                    false => DOWN_STABILIZED,
                };
                (stabilized, able, self.rate_limit(up, down, current, stabilized, (min, max), now))
            }
        };
        Outcome {
            desired: limited_to,
            able_reason: able.0,
            able_message: able.1,
            limited: limited_to != stabilized,
            limited_reason: limit.0,
            limited_message: limit.1,
        }
    }

    fn rate_limit(
        &self,
        up: &Rules,
        down: &Rules,
        current: i32,
        desired: i32,
        (min, max): (i32, i32),
        now: jiff::Timestamp,
    ) -> (i32, (&'static str, &'static str)) {
        if desired > current {
            let limit = match up.select {
                Select::Disabled => current,
                select => {
                    let proposals = up.policies.iter().map(|p| {
                        let start = current - changed_within(&self.scale_ups, p.period, now);
                        if p.percent {
                            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
                        } else {
                            start.saturating_add(p.value)
                        }
                    });
                    let pick = if select == Select::Min { proposals.min() } else { proposals.max() };
                    // Past the allowance until older events age out: hold.
                    pick.unwrap_or(current).max(current)
                }
            };
            let (ceiling, why) = if max > limit { (limit, UP_LIMIT) } else { (max, TOO_MANY) };
            if desired > ceiling {
                return (ceiling, why);
            }
        } else if desired < current {
            let limit = match down.select {
                Select::Disabled => current,
                select => {
                    let proposals = down.policies.iter().map(|p| {
                        let start = current + changed_within(&self.scale_downs, p.period, now);
                        if p.percent {
                            (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
                        } else {
                            start.saturating_sub(p.value)
                        }
                    });
                    // The smallest change is the highest floor.
                    let pick = if select == Select::Min { proposals.max() } else { proposals.min() };
                    pick.unwrap_or(current).min(current)
                }
            };
            let (floor, why) = if min < limit { (limit, DOWN_LIMIT) } else { (min, TOO_FEW) };
            if desired < floor {
                return (floor, why);
            }
        }
        (desired, WITHIN)
    }

    /// Remembers a rescale from `from` to `to`, for the rate policies.
    pub fn record_scale(&mut self, behavior: &Behavior, from: i32, to: i32, now: jiff::Timestamp) {
        let Behavior::Rules { up, down } = behavior else { return };
        let (events, rules, change) = if to > from {
            (&mut self.scale_ups, up, to - from)
        } else if to < from {
            (&mut self.scale_downs, down, from - to)
        } else {
            return;
        };
        let longest = rules.policies.iter().map(|p| p.period).max().unwrap_or_default();
        let cutoff = ago(now, longest);
        events.retain(|(at, _)| *at > cutoff);
        events.push((now, change));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn behavior(v: serde_json::Value) -> Behavior {
        let spec: HorizontalPodAutoscalerBehavior = serde_json::from_value(v).unwrap();
        Behavior::new(Some(&spec), Duration::from_secs(300))
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let b = behavior(json!({}));
        let Behavior::Rules { up, down } = &b else { panic!("{b:?}") };
        assert_eq!(up.stabilization, Duration::ZERO);
        assert_eq!(up.policies, vec![policy(false, 4, 15), policy(true, 100, 15)]);
        assert_eq!(down.stabilization, Duration::from_secs(300));
        assert_eq!(down.policies, vec![policy(true, 100, 15)]);
        let b = behavior(json!({"scaleDown": {"stabilizationWindowSeconds": 2}}));
        let Behavior::Rules { down, .. } = &b else { panic!("{b:?}") };
        assert_eq!((down.stabilization, down.select), (Duration::from_secs(2), Select::Max));
        assert_eq!(
            Behavior::new(None, Duration::from_secs(9)),
            Behavior::Legacy { downscale_window: Duration::from_secs(9) }
        );
    }

    #[test]
    fn scale_down_stabilization_takes_the_highest_recommendation_in_the_window() {
        let b = behavior(json!({"scaleDown": {"stabilizationWindowSeconds": 60}}));
        let mut h = History::default();
        h.record_initial(5, at(0));
        assert_eq!(h.normalize(&b, 5, 8, (1, 10), at(10)).desired, 8);
        // Recommendations 5 (t=0) and 8 (t=10) are in the window: stay at the highest, 8.
        let o = h.normalize(&b, 8, 2, (1, 10), at(20));
        assert_eq!((o.desired, o.able_reason), (8, "ScaleDownStabilized"));
        assert_eq!(h.normalize(&b, 8, 3, (1, 10), at(65)).desired, 8, "t=10's 8 is still within 60 s");
        // Past t=70 only 2 and 3 remain: the highest is 3.
        let o = h.normalize(&b, 8, 2, (1, 10), at(71));
        assert_eq!((o.desired, o.able_reason, o.limited), (3, "ScaleDownStabilized", false));
    }

    #[test]
    fn the_legacy_window_also_stabilizes_scale_down() {
        let b = Behavior::new(None, Duration::from_secs(300));
        let mut h = History::default();
        h.record_initial(4, at(0));
        assert_eq!(h.normalize(&b, 4, 1, (1, 10), at(15)).desired, 4);
        assert_eq!(h.normalize(&b, 4, 1, (1, 10), at(301)).desired, 1);
        // Scale-up limited to max(2x, 4) without behavior.
        let o = h.normalize(&b, 3, 9, (1, 10), at(302));
        assert_eq!((o.desired, o.limited, o.limited_reason), (6, true, "ScaleUpLimit"));
        let o = h.normalize(&b, 3, 9, (1, 5), at(303));
        assert_eq!((o.desired, o.limited_reason), (5, "TooManyReplicas"));
    }

    #[test]
    fn policies_limit_the_step_per_period() {
        let b = behavior(json!({"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}));
        let mut h = History::default();
        h.record_initial(2, at(0));
        let o = h.normalize(&b, 2, 10, (1, 20), at(1));
        assert_eq!((o.desired, o.limited, o.limited_reason), (4, true, "ScaleUpLimit"));
        h.record_scale(&b, 2, 4, at(1));
        // The 2 pods added at t=1 used this minute's allowance.
        assert_eq!(h.normalize(&b, 4, 10, (1, 20), at(30)).desired, 4);
        assert_eq!(h.normalize(&b, 4, 10, (1, 20), at(62)).desired, 6);
        // maxReplicas below the policy limit: TooManyReplicas.
        let o = h.normalize(&b, 4, 10, (1, 5), at(200));
        assert_eq!((o.desired, o.limited_reason), (5, "TooManyReplicas"));
    }

    #[test]
    fn scale_down_policies_and_min_replicas() {
        let b = behavior(json!({"scaleDown": {"stabilizationWindowSeconds": 0,
            "policies": [
                {"type": "Percent", "value": 50, "periodSeconds": 60},
                {"type": "Pods", "value": 1, "periodSeconds": 60},
            ],
            "selectPolicy": "Min"}}));
        let mut h = History::default();
        // Min of (50% of 10 = 5 removed, 1 removed) is the smaller change: 9.
        let o = h.normalize(&b, 10, 2, (1, 20), at(0));
        assert_eq!((o.desired, o.limited_reason), (9, "ScaleDownLimit"));
        let o = h.normalize(&b, 3, 1, (1, 20), at(100));
        assert_eq!((o.desired, o.limited_reason), (2, "ScaleDownLimit"));
        let disabled = behavior(json!({"scaleDown": {"selectPolicy": "Disabled", "stabilizationWindowSeconds": 0}}));
        assert_eq!(h.normalize(&disabled, 3, 1, (1, 20), at(200)).desired, 3);
        let free = behavior(json!({"scaleDown": {"stabilizationWindowSeconds": 0}}));
        let o = h.normalize(&free, 3, 0, (1, 20), at(300));
        assert_eq!((o.desired, o.limited, o.limited_reason), (1, true, "TooFewReplicas"));
    }
}
