//! The controllers, one module each. Every module exposes `register`, which asks the shared
//! informers for the stores it reads, wires handlers that queue keys, and returns the
//! controller with its queue.

use crate::informers::SharedInformers;
use crate::{Context, Registration};

pub mod certificates;
pub mod clusterroleaggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod replicaset;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod statefulset;

/// Whether the controller `name` can run with these flags: some need a flag to do anything
/// (root-ca-cert-publisher needs `--root-ca-file`) and are left out without it.
pub fn configured(ctx: &Context, name: &str) -> bool {
    match name {
        "root-ca-cert-publisher" => rootcacertpublisher::configured(ctx),
        "csrsigning" => certificates::signer::configured(ctx),
        _ => true,
    }
}

/// A controller's registration function.
pub type Register = fn(&Context, &SharedInformers) -> Registration;

/// Every controller: its `--controllers` name, the component its Events name (as
/// kube-controller-manager's controllers report themselves), and its registration. All start
/// together once the shared informers have synced, so the order carries no meaning.
pub const ALL: &[(&str, &str, Register)] = &[
    ("clusterrole-aggregation", "clusterrole-aggregation-controller", clusterroleaggregation::register),
    ("cronjob", "cronjob-controller", cronjob::register),
    ("csrapproving", "certificate-controller", certificates::approver::register),
    ("csrsigning", "certificate-controller", certificates::signer::register),
    ("daemonset", "daemonset-controller", daemonset::register),
    ("deployment", "deployment-controller", deployment::register),
    ("disruption", "controllermanager", disruption::register),
    ("endpoint", "endpoint-controller", endpoints::register),
    ("endpointslice", "endpoint-slice-controller", endpointslice::register),
    ("garbagecollector", "garbage-collector-controller", garbagecollector::register),
    ("horizontalpodautoscaling", "horizontal-pod-autoscaler", podautoscaler::register),
    ("job", "job-controller", job::register),
    ("nodelifecycle", "node-controller", nodelifecycle::register),
    ("replicaset", "replicaset-controller", replicaset::register),
    ("replicationcontroller", "replication-controller", replicaset::register_rc),
    ("root-ca-cert-publisher", "root-ca-cert-publisher", rootcacertpublisher::register),
    ("serviceaccount", "service-account-controller", serviceaccount::register),
    ("statefulset", "statefulset-controller", statefulset::register),
    ("taint-eviction-controller", "taint-eviction-controller", nodelifecycle::eviction::register),
];
