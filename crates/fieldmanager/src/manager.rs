//! Who writes: the manager identity a request records, and the default name for requests
//! that don't give one.

/// The operation a managedFields entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply (PATCH with `application/apply-patch+yaml`).
    Apply,
    /// Any other write: create, update (PUT), non-apply patch.
    Update,
}

impl Operation {
    /// The managedFields spelling: "Apply" or "Update".
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// What a write does, for managedFields. [`crate::apply`] always records `Apply` and
/// [`crate::update`] `Update`; `operation` lets callers carry one value per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Manager<'a> {
    /// The `fieldManager` (or [`default_manager_name`] when the request has none).
    pub name: &'a str,
    /// Apply or Update.
    pub operation: Operation,
    /// The apiVersion of the request ("apps/v1"), recorded in the entry.
    pub api_version: &'a str,
    /// "" for the main resource, else the subresource written ("status", "scale").
    pub subresource: &'a str,
}

/// Kubernetes' `fieldManager` validation limit, which the derived name is cut to.
const MAX_MANAGER_LEN: usize = 128;

/// The manager name Kubernetes uses for a request without `fieldManager`: the User-Agent up to
/// its first `/` ("kubectl/v1.33.0 (linux/amd64) ..." gives "kubectl", "Helm/4.0" gives
/// "Helm"), without unprintable characters, cut to 128 bytes. No User-Agent gives "".
/// (kubectl's client-side apply sends `fieldManager=kubectl-client-side-apply` itself.)
pub fn default_manager_name(user_agent: Option<&str>) -> String {
    let prefix = user_agent.unwrap_or_default().split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|&c| is_print(c)) {
        if out.len() + c.len_utf8() > MAX_MANAGER_LEN {
            break;
        }
        out.push(c);
    }
    out
}

/// Go's `unicode.IsPrint`: graphic characters and the ASCII space, no other spacing or
/// control characters.
fn is_print(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_names_from_user_agents() {
        assert_eq!(default_manager_name(Some("kubectl/v1.33.0 (linux/amd64) kubernetes/abc")), "kubectl");
        assert_eq!(default_manager_name(Some("Helm/4.0.0")), "Helm");
        assert_eq!(default_manager_name(Some("python-requests/2.31")), "python-requests");
        assert_eq!(default_manager_name(Some("curl")), "curl");
        assert_eq!(default_manager_name(Some("my\tagent\u{7}/1")), "myagent");
        assert_eq!(default_manager_name(Some("")), "");
        assert_eq!(default_manager_name(None), "");
        assert_eq!(default_manager_name(Some(&"é".repeat(100))).len(), 128);
    }
}
