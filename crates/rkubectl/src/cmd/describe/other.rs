//! The remaining kinds kubectl has a describer for that rkube serves: EndpointSlice,
//! PodDisruptionBudget, RoleBinding, ClusterRoleBinding, StorageClass, IngressClass,
//! PersistentVolume, Ingress and HorizontalPodAutoscaler.

use super::Api;
use super::text::W;
use crate::error::Result;
use serde_json::Value;

/// Describes `obj` when kubectl has a describer for its kind; returns the kind its events are
/// searched by, or `None` (nothing written) for the generic describer.
pub fn describe(_w: &mut W, _api: &Api, _group: &str, _kind: &str, _obj: &Value) -> Result<Option<&'static str>> {
    Ok(None)
}
