//! Cluster-policy kinds: RBAC bindings, scheduling priorities, leases, disruption budgets,
//! certificates, admission configuration, API priority and fairness, dynamic resources.

use serde_json::Value;

use crate::columns::{AGE, Col, NAME, Printer};
use crate::duration::{age, human_duration};
use crate::fields::{
    at, bool_at, count, format_label_selector, int_at, int_or_string, list, name, opt_int, opt_str, or, str_at,
};

const BINDING_COLUMNS: [Col; 6] = [
    NAME,
    Col::text("Role", "The role granted, as kind/name."),
    AGE,
    Col::text("Users", "Users the role is granted to.").wide(),
    Col::text("Groups", "Groups the role is granted to.").wide(),
    Col::text("ServiceAccounts", "Service accounts the role is granted to, as namespace/name.").wide(),
];

/// RoleBindings.
pub(crate) static ROLE_BINDING: Printer = Printer::new(&BINDING_COLUMNS, binding);

/// ClusterRoleBindings.
pub(crate) static CLUSTER_ROLE_BINDING: Printer = Printer::new(&BINDING_COLUMNS, binding);

fn binding(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let role = format!("{}/{}", str_at(obj, "/roleRef/kind"), str_at(obj, "/roleRef/name"));
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(obj, "/subjects") {
        let subject_name = str_at(subject, "/name");
        match str_at(subject, "/kind") {
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            "ServiceAccount" => accounts.push(format!("{}/{subject_name}", str_at(subject, "/namespace"))),
            _ => {}
        }
    }
    vec![
        name(obj).into(),
        role.into(),
        age(obj, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
}

/// PriorityClasses.
pub(crate) static PRIORITY_CLASS: Printer = Printer::new(
    &[
        NAME,
        Col::int("Value", "The priority of pods using the class."),
        Col::boolean("Global-Default", "Whether pods without a class get this one."),
        AGE,
        Col::text("PreemptionPolicy", "Whether pods of this class may preempt lower-priority pods."),
    ],
    |obj, now| {
        vec![
            name(obj).into(),
            int_at(obj, "/value").into(),
            bool_at(obj, "/globalDefault").into(),
            age(obj, now),
            str_at(obj, "/preemptionPolicy").into(),
        ]
    },
);

/// Leases.
pub(crate) static LEASE: Printer =
    Printer::new(&[NAME, Col::text("Holder", "Identity of the current holder."), AGE], |obj, now| {
        vec![name(obj).into(), str_at(obj, "/spec/holderIdentity").into(), age(obj, now)]
    });

/// LeaseCandidates.
pub(crate) static LEASE_CANDIDATE: Printer = Printer::new(
    &[
        NAME,
        Col::text("LeaseName", "The lease the candidate runs for."),
        Col::text("BinaryVersion", "Binary version of the candidate."),
        Col::text("EmulationVersion", "Emulated version of the candidate."),
        AGE,
    ],
    |obj, now| {
        let spec = |f: &str| -> Value { str_at(obj, &format!("/spec/{f}")).into() };
        vec![name(obj).into(), spec("leaseName"), spec("binaryVersion"), spec("emulationVersion"), age(obj, now)]
    },
);

/// PodDisruptionBudgets.
pub(crate) static POD_DISRUPTION_BUDGET: Printer = Printer::new(
    &[
        NAME,
        Col::text("Min Available", "Pods that must stay available."),
        Col::text("Max Unavailable", "Pods that may be unavailable."),
        Col::int("Allowed Disruptions", "Pods that may be disrupted right now."),
        AGE,
    ],
    |obj, now| {
        let bound = |f: &str| -> Value { at(obj, &format!("/spec/{f}")).map_or("N/A".into(), int_or_string).into() };
        vec![
            name(obj).into(),
            bound("minAvailable"),
            bound("maxUnavailable"),
            int_at(obj, "/status/disruptionsAllowed").into(),
            age(obj, now),
        ]
    },
);

/// RuntimeClasses.
pub(crate) static RUNTIME_CLASS: Printer =
    Printer::new(&[NAME, Col::text("Handler", "The CRI handler running the pods."), AGE], |obj, now| {
        vec![name(obj).into(), str_at(obj, "/handler").into(), age(obj, now)]
    });

/// CertificateSigningRequests.
pub(crate) static CERTIFICATE_SIGNING_REQUEST: Printer = Printer::new(
    &[
        NAME,
        AGE,
        Col::text("SignerName", "The signer asked to sign the request."),
        Col::text("Requestor", "The user who created the request."),
        Col::text("RequestedDuration", "The validity asked for."),
        Col::text("Condition", "Approval state of the request."),
    ],
    |obj, now| {
        let duration = opt_int(obj, "/spec/expirationSeconds")
            .map_or("<none>".into(), |s| human_duration(i128::from(s) * 1_000_000_000));
        vec![
            name(obj).into(),
            age(obj, now),
            or(str_at(obj, "/spec/signerName"), "<none>").into(),
            str_at(obj, "/spec/username").into(),
            duration.into(),
            csr_condition(obj).into(),
        ]
    },
);

/// "Approved,Issued", "Denied", "Pending,Failed"...: the decision first, then the outcome.
fn csr_condition(obj: &Value) -> String {
    let has = |kind: &str| list(obj, "/status/conditions").iter().any(|c| str_at(c, "/type") == kind);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_at(obj, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    status
}

const WEBHOOK_COLUMNS: [Col; 3] = [NAME, Col::int("Webhooks", "Number of webhooks in the configuration."), AGE];

fn webhooks(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![name(obj).into(), count(obj, "/webhooks").into(), age(obj, now)]
}

/// MutatingWebhookConfigurations.
pub(crate) static MUTATING_WEBHOOK: Printer = Printer::new(&WEBHOOK_COLUMNS, webhooks);

/// ValidatingWebhookConfigurations.
pub(crate) static VALIDATING_WEBHOOK: Printer = Printer::new(&WEBHOOK_COLUMNS, webhooks);

/// "apiVersion/kind" of the policy's parameter objects, or "<unset>".
fn param_kind(obj: &Value) -> String {
    match at(obj, "/spec/paramKind") {
        Some(p) => format!("{}/{}", str_at(p, "/apiVersion"), str_at(p, "/kind")),
        None => "<unset>".into(),
    }
}

/// ValidatingAdmissionPolicies.
pub(crate) static VALIDATING_ADMISSION_POLICY: Printer = Printer::new(
    &[
        NAME,
        Col::int("Validations", "Number of validation rules."),
        Col::text("ParamKind", "The kind of the objects parameterizing the policy."),
        AGE,
    ],
    |obj, now| vec![name(obj).into(), count(obj, "/spec/validations").into(), param_kind(obj).into(), age(obj, now)],
);

/// MutatingAdmissionPolicies.
pub(crate) static MUTATING_ADMISSION_POLICY: Printer = Printer::new(
    &[
        NAME,
        Col::int("Mutations", "Number of mutation rules."),
        Col::text("ParamKind", "The kind of the objects parameterizing the policy."),
        AGE,
    ],
    |obj, now| vec![name(obj).into(), count(obj, "/spec/mutations").into(), param_kind(obj).into(), age(obj, now)],
);

const POLICY_BINDING_COLUMNS: [Col; 4] = [
    NAME,
    Col::text("PolicyName", "The policy being bound."),
    Col::text("ParamRef", "The parameter object, as namespace/name."),
    AGE,
];

/// ValidatingAdmissionPolicyBindings.
pub(crate) static VALIDATING_ADMISSION_POLICY_BINDING: Printer = Printer::new(&POLICY_BINDING_COLUMNS, policy_binding);

/// MutatingAdmissionPolicyBindings.
pub(crate) static MUTATING_ADMISSION_POLICY_BINDING: Printer = Printer::new(&POLICY_BINDING_COLUMNS, policy_binding);

fn policy_binding(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let param = match at(obj, "/spec/paramRef") {
        Some(p) => match (str_at(p, "/name"), str_at(p, "/namespace"), at(p, "/selector")) {
            // Kubernetes prints a selector reference in Go's struct notation; the selector
            // syntax says the same more readably.
            ("", _, Some(selector)) => format_label_selector(Some(selector)),
            ("", _, None) => "<unset>".into(),
            // A param without a namespace may be cluster-scoped or per-namespace: "*".
            (param, "", _) => format!("*/{param}"),
            (param, namespace, _) => format!("{namespace}/{param}"),
        },
        None => "<unset>".into(),
    };
    vec![name(obj).into(), str_at(obj, "/spec/policyName").into(), param.into(), age(obj, now)]
}

/// FlowSchemas, listed in the order the server matches them.
pub(crate) static FLOW_SCHEMA: Printer = Printer {
    order: Some(flow_schema_order),
    ..Printer::new(
        &[
            NAME,
            Col::text("PriorityLevel", "The priority level requests are assigned to."),
            Col::text("MatchingPrecedence", "Lower values are matched first."),
            Col::text("DistinguisherMethod", "How requests are split into flows."),
            AGE,
            Col::text("MissingPL", "Whether the priority level does not exist."),
        ],
        |obj, now| {
            let dangling = list(obj, "/status/conditions").iter().find(|c| str_at(c, "/type") == "Dangling");
            vec![
                name(obj).into(),
                str_at(obj, "/spec/priorityLevelConfiguration/name").into(),
                int_at(obj, "/spec/matchingPrecedence").into(),
                opt_str(obj, "/spec/distinguisherMethod/type").unwrap_or("<none>").into(),
                age(obj, now),
                dangling.map_or("?", |c| str_at(c, "/status")).into(),
            ]
        },
    )
};

/// Lower matching precedence first, then by name.
fn flow_schema_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let key = |v| (int_at(v, "/spec/matchingPrecedence"), name(v));
    key(a).cmp(&key(b))
}

/// PriorityLevelConfigurations.
pub(crate) static PRIORITY_LEVEL: Printer = Printer::new(
    &[
        NAME,
        Col::text("Type", "Limited or Exempt."),
        Col::text("NominalConcurrencyShares", "Share of the server's concurrency."),
        Col::text("Queues", "Number of queues."),
        Col::text("HandSize", "Queues considered for each flow."),
        Col::text("QueueLengthLimit", "Requests each queue may hold."),
        AGE,
    ],
    |obj, now| {
        let limited = at(obj, "/spec/limited");
        let queuing = limited.and_then(|l| at(l, "/limitResponse/queuing"));
        let number = |v: Option<&Value>, f: &str| -> Value { v.map_or("<none>".into(), |v| int_at(v, f).into()) };
        vec![
            name(obj).into(),
            str_at(obj, "/spec/type").into(),
            number(limited, "/nominalConcurrencyShares"),
            number(queuing, "/queues"),
            number(queuing, "/handSize"),
            number(queuing, "/queueLengthLimit"),
            age(obj, now),
        ]
    },
);

const NAME_AGE: [Col; 2] = [NAME, AGE];

fn name_age(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![name(obj).into(), age(obj, now)]
}

/// DeviceClasses.
pub(crate) static DEVICE_CLASS: Printer = Printer::new(&NAME_AGE, name_age);

/// ResourceClaimTemplates.
pub(crate) static RESOURCE_CLAIM_TEMPLATE: Printer = Printer::new(&NAME_AGE, name_age);

/// ResourceClaims.
pub(crate) static RESOURCE_CLAIM: Printer = Printer::new(
    &[NAME, Col::text("State", "Allocation state: pending, allocated, reserved, deleted."), AGE],
    |obj, now| {
        let mut states = Vec::new();
        let deleted = crate::fields::deleting(obj);
        if deleted {
            states.push("deleted");
        }
        if at(obj, "/status/allocation").is_none() {
            if !deleted {
                states.push("pending");
            }
        } else {
            states.push("allocated");
            if !list(obj, "/status/reservedFor").is_empty() {
                states.push("reserved");
            }
        }
        vec![name(obj).into(), states.join(",").into(), age(obj, now)]
    },
);

/// ResourceSlices.
pub(crate) static RESOURCE_SLICE: Printer = Printer::new(
    &[
        NAME,
        Col::text("Node", "The node providing the devices."),
        Col::text("Driver", "The driver managing the devices."),
        Col::text("Pool", "The pool the slice belongs to."),
        AGE,
    ],
    |obj, now| {
        let spec = |f: &str| -> Value { str_at(obj, &format!("/spec/{f}")).into() };
        vec![name(obj).into(), spec("nodeName"), spec("driver"), spec("pool/name"), age(obj, now)]
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(p: &Printer, obj: Value) -> Value {
        let now: jiff::Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        Value::from((p.cells)(&obj, now))
    }

    #[test]
    fn role_binding_row() {
        let rb = json!({"metadata": {"name": "admins"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}, {"kind": "User", "name": "bob"}]});
        assert_eq!(
            row(&ROLE_BINDING, rb),
            json!(["admins", "ClusterRole/admin", "<unknown>", "alice, bob", "ops", "build/ci"])
        );
    }

    #[test]
    fn priority_lease_and_pdb() {
        let pc = json!({"metadata": {"name": "high"}, "value": 1000000, "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(row(&PRIORITY_CLASS, pc), json!(["high", 1000000, false, "<unknown>", "PreemptLowerPriority"]));
        let lease = json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "cp-1_abc"}});
        assert_eq!(row(&LEASE, lease), json!(["kube-scheduler", "cp-1_abc", "<unknown>"]));
        let pdb =
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(row(&POD_DISRUPTION_BUDGET, pdb), json!(["web", "50%", "N/A", 1, "<unknown>"]));
        let pdb2 = json!({"metadata": {"name": "db"}, "spec": {"maxUnavailable": 1}});
        assert_eq!(row(&POD_DISRUPTION_BUDGET, pdb2), json!(["db", "N/A", "1", 0, "<unknown>"]));
    }

    #[test]
    fn csr_and_admission() {
        let csr = json!({"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client",
            "username": "alice", "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved"}], "certificate": "LS0t"}});
        assert_eq!(
            row(&CERTIFICATE_SIGNING_REQUEST, csr),
            json!(["c", "<unknown>", "kubernetes.io/kube-apiserver-client", "alice", "24h", "Approved,Issued"])
        );
        let vapb = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p", "paramRef": {"name": "cfg"}}});
        assert_eq!(row(&VALIDATING_ADMISSION_POLICY_BINDING, vapb)[2], "*/cfg");
        let wh = json!({"metadata": {"name": "w"}, "webhooks": [{}, {}]});
        assert_eq!(row(&VALIDATING_WEBHOOK, wh), json!(["w", 2, "<unknown>"]));
    }

    #[test]
    fn flow_control() {
        let plc = json!({"metadata": {"name": "workload-low"}, "spec": {"type": "Limited", "limited":
            {"nominalConcurrencyShares": 100, "limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}}});
        assert_eq!(row(&PRIORITY_LEVEL, plc), json!(["workload-low", "Limited", 100, 128, 6, 50, "<unknown>"]));
        let exempt = json!({"metadata": {"name": "exempt"}, "spec": {"type": "Exempt"}});
        assert_eq!(
            row(&PRIORITY_LEVEL, exempt),
            json!(["exempt", "Exempt", "<none>", "<none>", "<none>", "<none>", "<unknown>"])
        );
        let fs = json!({"metadata": {"name": "system-nodes"}, "spec": {"priorityLevelConfiguration": {"name": "system"},
            "matchingPrecedence": 500, "distinguisherMethod": {"type": "ByUser"}},
            "status": {"conditions": [{"type": "Dangling", "status": "False"}]}});
        assert_eq!(row(&FLOW_SCHEMA, fs), json!(["system-nodes", "system", 500, "ByUser", "<unknown>", "False"]));
    }
}
