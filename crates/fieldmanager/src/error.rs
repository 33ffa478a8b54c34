//! Errors of apply and update, worded like Kubernetes' so clients show familiar messages.

use std::fmt;

/// Why an apply or update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldManagerError {
    /// 409 Conflict: the apply would change fields other managers own (retry with force, drop
    /// the fields, or apply their current values). Each conflict is one Status `details.causes`
    /// entry with reason `FieldManagerConflict`.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// 400/422: the applied configuration is unusable (not an object, missing or mismatched
    /// apiVersion/kind/name, bad list-map keys...). `path` is a field path like `.spec.ports`,
    /// empty for the whole object.
    #[error("{}", invalid_message(.path, .message))]
    Invalid {
        /// Where the problem is (`.metadata.name`), or empty.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// 500: the stored object's managedFields can't be decoded, so apply can't tell who owns
    /// what. (Updates never fail on this: like Kubernetes they reset the managedFields.)
    #[error("failed to decode managed fields: {0}")]
    InvalidManagedFields(String),
}

impl FieldManagerError {
    /// An [`FieldManagerError::Invalid`] at `path`.
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> FieldManagerError {
        FieldManagerError::Invalid { path: path.into(), message: message.into() }
    }
}

fn invalid_message(path: &str, message: &str) -> String {
    if path.is_empty() { message.to_string() } else { format!("{path}: {message}") }
}

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// Its operation ("Apply" or "Update").
    pub operation: String,
    /// The apiVersion its entry records (printed for Update managers only, as Kubernetes does).
    pub api_version: String,
    /// Its subresource ("" for the main resource).
    pub subresource: String,
    /// The field path, like `.spec.replicas` (the cause's `field`).
    pub field: String,
}

impl Conflict {
    /// The cause message: `conflict with "kubectl" using apps/v1`.
    pub fn message(&self) -> String {
        format!("conflict with {}", self.who())
    }

    /// The manager as Kubernetes prints it: quoted name, subresource, and for Update
    /// managers the apiVersion they wrote with.
    fn who(&self) -> String {
        let mut out = quote(&self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {}", quote(&self.subresource)));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message(), self.field)
    }
}

/// Go's `%q` for the strings managers are named with (JSON quoting agrees on them).
pub(crate) fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Kubernetes' summary: one conflict inline, several grouped by manager.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: {only}");
    }
    let mut lines = Vec::new();
    let mut previous: Option<String> = None;
    for c in conflicts {
        let who = c.who();
        if previous.as_deref() != Some(who.as_str()) {
            lines.push(format!("conflicts with {who}:"));
            previous = Some(who);
        }
        lines.push(format!("- {}", c.field));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(manager: &str, operation: &str, field: &str) -> Conflict {
        Conflict {
            manager: manager.into(),
            operation: operation.into(),
            api_version: "apps/v1".into(),
            subresource: String::new(),
            field: field.into(),
        }
    }

    #[test]
    fn messages_read_like_kubernetes() {
        let one = FieldManagerError::Conflicts(vec![conflict("kubectl-client-side-apply", "Update", ".spec.replicas")]);
        assert_eq!(
            one.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        let many = FieldManagerError::Conflicts(vec![
            conflict("helm", "Apply", ".spec.replicas"),
            conflict("kubectl", "Update", ".metadata.labels.app"),
            conflict("kubectl", "Update", ".spec.paused"),
        ]);
        assert_eq!(
            many.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"helm\":\n- .spec.replicas\nconflicts with \"kubectl\" using apps/v1:\n- .metadata.labels.app\n- .spec.paused"
        );
        let mut status = conflict("kubelet", "Update", ".status.phase");
        status.subresource = "status".into();
        assert_eq!(status.message(), "conflict with \"kubelet\" with subresource \"status\" using apps/v1");
        assert_eq!(FieldManagerError::invalid(".kind", "must be specified").to_string(), ".kind: must be specified");
    }
}
