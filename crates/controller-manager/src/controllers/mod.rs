//! The controllers, one module each. Every module exposes `register`, which asks the shared
//! informers for the stores it reads, wires handlers that queue keys, and returns the
//! controller with its queue.

use crate::informers::SharedInformers;
use crate::{Context, Registration};

pub mod deployment;
pub mod garbagecollector;
pub mod replicaset;
pub mod endpoints;
pub mod endpointslice;
pub mod nodelifecycle;
pub mod serviceaccount;
pub mod job;
pub mod cronjob;
pub mod daemonset;
pub mod history;
pub mod statefulset;

/// A controller's registration function.
pub type Register = fn(&Context, &SharedInformers) -> Registration;

/// Every controller by its `--controllers` name, in start order.
pub const ALL: &[(&str, Register)] = &[
    ("serviceaccount", serviceaccount::register),
    ("deployment", deployment::register),
    ("job", job::register),
    ("cronjob", cronjob::register),
    ("endpoint", endpoints::register),
    ("endpointslice", endpointslice::register),
    ("nodelifecycle", nodelifecycle::register),
    ("taint-eviction-controller", nodelifecycle::eviction::register),
    ("garbagecollector", garbagecollector::register),
    ("replicaset", replicaset::register),
    ("replicationcontroller", replicaset::register_rc),
    ("daemonset", daemonset::register),
    ("statefulset", statefulset::register),
];
