//! Starts real etcd and real rkube daemons (as processes) on free ports in a temp dir for tests,
//! and stops them by PID when dropped.

pub mod apiserver;
pub mod etcd;

pub use apiserver::ApiServer;
pub use etcd::Etcd;
