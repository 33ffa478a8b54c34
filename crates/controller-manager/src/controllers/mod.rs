//! The controllers, one module each. Every module exposes `register`, which asks the shared
//! informers for the stores it reads, wires handlers that queue keys, and returns the
//! controller with its queue.

use crate::informers::SharedInformers;
use crate::{Context, Registration};

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod replicaset;
pub mod serviceaccount;
pub mod statefulset;

/// A controller's registration function.
pub type Register = fn(&Context, &SharedInformers) -> Registration;

/// Every controller by its `--controllers` name. All start together once the shared
/// informers have synced, so the order carries no meaning beyond readability.
pub const ALL: &[(&str, Register)] = &[
    ("cronjob", cronjob::register),
    ("daemonset", daemonset::register),
    ("deployment", deployment::register),
    ("endpoint", endpoints::register),
    ("endpointslice", endpointslice::register),
    ("garbagecollector", garbagecollector::register),
    ("horizontalpodautoscaling", podautoscaler::register),
    ("job", job::register),
    ("nodelifecycle", nodelifecycle::register),
    ("replicaset", replicaset::register),
    ("replicationcontroller", replicaset::register_rc),
    ("serviceaccount", serviceaccount::register),
    ("statefulset", statefulset::register),
    ("taint-eviction-controller", nodelifecycle::eviction::register),
];
