//! policy/v1 PodDisruptionBudget: the budget (minAvailable or maxUnavailable, each a count or a
//! percentage), the selector, the unhealthy-pod eviction policy, and the status the disruption
//! controller and the eviction subresource write (counts and metav1.Conditions).

use super::meta::{is_qualified_name, push_msgs};
use super::workloads::validate_label_selector;
use super::{Errs, NON_NEGATIVE, arr_at, at, index, is_set, join, non_negative, str_at};
use crate::FieldError;
use serde_json::Value;
use std::collections::HashSet;

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const BOTH_SET: &str = "minAvailable and maxUnavailable cannot be both set";
const EVICTION_POLICIES: [&str; 2] = ["AlwaysAllow", "IfHealthyBudget"];
const CONDITION_STATUSES: [&str; 3] = ["False", "True", "Unknown"];
const REASON_MSG: &str = "a condition reason must start with alphabetic character, optionally followed by a string of alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')";
const MAX_REASON_LEN: usize = 1024;
const MAX_MESSAGE_LEN: usize = 32 * 1024;

/// Validates a PodDisruptionBudget (spec and status).
pub(super) fn validate_pdb(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    if is_set(spec, "minAvailable") && is_set(spec, "maxUnavailable") {
        errs.push(FieldError::invalid("spec", spec, BOTH_SET));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        if is_set(spec, field) {
            count_or_percent(at(spec, field), &join("spec", field), errs);
        }
    }
    // A missing selector is allowed: it selects no pods.
    if is_set(spec, "selector") {
        validate_label_selector(at(spec, "selector"), "spec.selector", errs);
    }
    if is_set(spec, "unhealthyPodEvictionPolicy") {
        let policy = at(spec, "unhealthyPodEvictionPolicy");
        if !policy.as_str().is_some_and(|p| EVICTION_POLICIES.contains(&p)) {
            errs.push(FieldError::not_supported("spec.unhealthyPodEvictionPolicy", policy, &EVICTION_POLICIES));
        }
    }
    validate_status(at(obj, "status"), errs);
}

/// An IntOrString budget: a non-negative count, or a percentage from 0% to 100%.
fn count_or_percent(v: &Value, path: &str, errs: &mut Errs) {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(n) if n >= 0 => {}
            _ => errs.push(FieldError::invalid(path, v, NON_NEGATIVE)),
        },
        Value::String(s) => match parse_percent(s) {
            Some(p) if p > 100 => errs.push(FieldError::invalid(path, v, "must not be greater than 100%")),
            Some(_) => {}
            None => errs.push(FieldError::invalid(path, v, PERCENT_MSG)),
        },
        _ => errs.push(FieldError::invalid(path, v, "must be an integer or percentage (e.g '5%')")),
    }
}

/// The number in "N%", if `s` is digits followed by '%'.
fn parse_percent(s: &str) -> Option<u64> {
    let digits = s.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))?;
    // Digits too many for u64 are still over 100%.
    Some(digits.parse().unwrap_or(u64::MAX))
}

fn validate_status(status: &Value, errs: &mut Errs) {
    for field in ["disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods", "observedGeneration"] {
        non_negative(status, field, "status", errs);
    }
    validate_conditions(arr_at(status, "conditions"), "status.conditions", errs);
}

/// metav1.Conditions: a qualified type (unique), a known status, a transition time and a
/// well-formed reason.
fn validate_conditions(conditions: &[Value], path: &str, errs: &mut Errs) {
    let mut seen = HashSet::new();
    for (i, c) in conditions.iter().enumerate() {
        let cpath = index(path, i);
        let ty = str_at(c, "type");
        push_msgs(errs, &join(&cpath, "type"), ty, is_qualified_name(ty));
        if !seen.insert(ty) {
            errs.push(FieldError::duplicate(join(&cpath, "type"), &Value::from(ty)));
        }
        let status = str_at(c, "status");
        if !CONDITION_STATUSES.contains(&status) {
            errs.push(FieldError::not_supported(join(&cpath, "status"), &Value::from(status), &CONDITION_STATUSES));
        }
        if let Some(g) = c.get("observedGeneration").and_then(Value::as_i64)
            && g < 0
        {
            errs.push(FieldError::invalid(
                join(&cpath, "observedGeneration"),
                &Value::from(g),
                "must be greater than or equal to zero",
            ));
        }
        if str_at(c, "lastTransitionTime").is_empty() {
            errs.push(FieldError::required(join(&cpath, "lastTransitionTime"), "must be set"));
        }
        let reason = str_at(c, "reason");
        if reason.is_empty() {
            errs.push(FieldError::required(join(&cpath, "reason"), "must be set"));
        } else {
            if !is_condition_reason(reason) {
                errs.push(FieldError::invalid(join(&cpath, "reason"), &Value::from(reason), REASON_MSG));
            }
            if reason.len() > MAX_REASON_LEN {
                errs.push(FieldError::too_long(join(&cpath, "reason"), MAX_REASON_LEN));
            }
        }
        if str_at(c, "message").len() > MAX_MESSAGE_LEN {
            errs.push(FieldError::too_long(join(&cpath, "message"), MAX_MESSAGE_LEN));
        }
    }
}

/// `[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?`
fn is_condition_reason(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':');
    let last_ok = b.last().is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    b.first().is_some_and(u8::is_ascii_alphabetic) && b.iter().all(inner) && last_ok
}

#[cfg(test)]
mod tests {
    use super::super::validate_create;
    use super::*;
    use crate::registry::lookup;
    use serde_json::json;

    fn pdb(spec: Value) -> Value {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn problems(obj: &Value) -> Vec<(String, String)> {
        let res = lookup("policy", "v1", "poddisruptionbudgets").expect("PDBs are served");
        validate_create(res, obj).into_iter().map(|e| (e.field, e.message)).collect()
    }

    fn fields(obj: &Value) -> Vec<String> {
        problems(obj).into_iter().map(|(f, _)| f).collect()
    }

    #[test]
    fn budgets_as_counts_or_percentages_pass() {
        let sel = json!({"matchLabels": {"app": "web"}});
        for budget in [
            json!({"minAvailable": 2}),
            json!({"minAvailable": "50%"}),
            json!({"maxUnavailable": 0}),
            json!({"maxUnavailable": "100%"}),
            json!({"maxUnavailable": "0%"}),
            json!({}),
        ] {
            let mut spec = budget.clone();
            spec["selector"] = sel.clone();
            assert_eq!(problems(&pdb(spec)), vec![], "{budget}");
        }
        // No selector at all is allowed (it selects nothing); so is every eviction policy.
        assert_eq!(problems(&pdb(json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}))), vec![]);
        assert_eq!(problems(&pdb(json!({"unhealthyPodEvictionPolicy": "IfHealthyBudget"}))), vec![]);
    }

    #[test]
    fn bad_budgets_name_their_field() {
        let both = problems(&pdb(json!({"minAvailable": 1, "maxUnavailable": 1})));
        assert_eq!(both.len(), 1);
        assert_eq!(both[0].0, "spec");
        assert!(both[0].1.ends_with(BOTH_SET), "{}", both[0].1);

        let negative = problems(&pdb(json!({"minAvailable": -1})));
        assert_eq!(negative, vec![("spec.minAvailable".into(), format!("Invalid value: -1: {NON_NEGATIVE}"))]);

        let over = problems(&pdb(json!({"maxUnavailable": "101%"})));
        assert_eq!(
            over,
            vec![("spec.maxUnavailable".into(), "Invalid value: \"101%\": must not be greater than 100%".into())]
        );

        for bad in ["50", "%", "5.5%", "-5%", "ten%", " 5%"] {
            let errs = problems(&pdb(json!({"minAvailable": bad})));
            assert_eq!(errs.len(), 1, "{bad}");
            assert_eq!(errs[0].0, "spec.minAvailable");
            assert!(errs[0].1.contains("a valid percent string"), "{}", errs[0].1);
        }
        assert_eq!(fields(&pdb(json!({"maxUnavailable": 1.5}))), ["spec.maxUnavailable"]);
        assert_eq!(fields(&pdb(json!({"maxUnavailable": "99999999999999999999999%"}))), ["spec.maxUnavailable"]);
    }

    #[test]
    fn selector_and_policy_are_checked() {
        let bad_op =
            pdb(json!({"selector": {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["a"]}]}}));
        assert_eq!(fields(&bad_op), ["spec.selector.matchExpressions[0].operator"]);
        let no_values = pdb(json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}));
        assert_eq!(fields(&no_values), ["spec.selector.matchExpressions[0].values"]);
        let bad_label = pdb(json!({"selector": {"matchLabels": {"app": "has space"}}}));
        assert_eq!(fields(&bad_label), ["spec.selector.matchLabels"]);
        let policy = problems(&pdb(json!({"unhealthyPodEvictionPolicy": "Sometimes"})));
        assert_eq!(
            policy,
            vec![(
                "spec.unhealthyPodEvictionPolicy".into(),
                "Unsupported value: \"Sometimes\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\"".into()
            )]
        );
    }

    #[test]
    fn status_counts_and_conditions_are_checked() {
        let mut obj = pdb(json!({"minAvailable": 1}));
        obj["status"] = json!({"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2,
            "observedGeneration": 1,
            "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": "",
                            "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}]});
        assert_eq!(problems(&obj), vec![]);
        obj["status"]["disruptionsAllowed"] = json!(-1);
        obj["status"]["conditions"] = json!([
            {"type": "DisruptionAllowed", "status": "Maybe", "reason": "9lives", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "DisruptionAllowed", "status": "False", "reason": "", "observedGeneration": -1}
        ]);
        assert_eq!(
            fields(&obj),
            [
                "status.disruptionsAllowed",
                "status.conditions[0].status",
                "status.conditions[0].reason",
                "status.conditions[1].type",
                "status.conditions[1].observedGeneration",
                "status.conditions[1].lastTransitionTime",
                "status.conditions[1].reason",
            ]
        );
    }

    #[test]
    fn condition_reasons_follow_the_regex() {
        for ok in ["SufficientPods", "a", "A_b:c,D", "x_"] {
            assert!(is_condition_reason(ok), "{ok}");
        }
        for bad in ["", "1a", "a:", "a,", "a-b", "_a", "a b"] {
            assert!(!is_condition_reason(bad), "{bad}");
        }
    }
}
