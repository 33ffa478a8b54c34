//! NetworkPolicy enforcement for the pods of this node, as the Kubernetes "Network Policies"
//! concept page describes it: a pod selected by a policy with `Ingress` (`Egress`) in its
//! policyTypes is isolated in that direction and accepts only what some rule of those policies
//! allows (the union); a rule's peers are pods (podSelector, namespaceSelector, both) or CIDRs
//! (ipBlock minus except), empty `from`/`to` meaning everyone and empty `ports` every port;
//! named ports resolve on the destination pod; replies of allowed connections, a pod's traffic
//! to itself and traffic between a pod and its own node always pass.
//!
//! [`model`] turns Pods, Namespaces and NetworkPolicies into per-local-pod allowances without
//! I/O; [`rules`] turns those into the content of one nftables table (`ip <proxy table>-netpol`,
//! separate from the Service table); [`enforcer`] keeps the kernel in step with it.

pub mod enforcer;
pub mod model;
pub mod rules;

pub use enforcer::{Enforcer, table_name};
