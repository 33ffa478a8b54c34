//! rkube-scheduler: watches unscheduled pods and nodes, filters and scores nodes, and binds
//! each pod to the best one. The core is I/O-free (the cache of nodes and assigned pods, the
//! Kubernetes filter and score plugins, node selection); `run` wires it to the API server.

pub mod algorithm;
pub mod cache;
pub mod config;
pub mod filter;
pub mod hash;
pub mod pod_info;
pub mod queue;
pub mod resources;
pub mod run;
pub mod score;
pub mod selector;

#[cfg(test)]
mod testutil;

pub use algorithm::{FitError, ScheduleOptions, ScheduleResult, schedule, schedule_with};
pub use cache::{CacheError, NodeInfo, SchedulerCache};
pub use config::Config;
pub use pod_info::{PodInfo, pod_key};
pub use resources::Resources;
pub use run::{SchedulerError, run};
