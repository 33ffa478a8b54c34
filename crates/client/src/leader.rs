//! Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: a candidate takes
//! a Lease that is free or whose holder has not renewed it for `leaseDurationSeconds`
//! (measured on the candidate's own clock from when it last saw the record change, so clock
//! skew between machines does not matter), renews it every retry period, and gives it up on
//! shutdown so a standby takes over at once.

use crate::{Api, Client, ClientError, Result};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where the Lease is, who we are, and the timings (Kubernetes' defaults: 15 s / 10 s / 2 s).
#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease, usually `kube-system`.
    pub namespace: String,
    /// Name of the Lease, e.g. `kube-scheduler`.
    pub name: String,
    /// This candidate's identity, unique per process (host name plus a random suffix).
    pub identity: String,
    /// How long a Lease holds without renewal before others may take it.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// A config with Kubernetes' default timings.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaderElectionConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// An identity for this process: `<hostname>_<random>`.
    pub fn default_identity() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}_{:08x}", host.trim(), rand::random::<u32>())
    }
}

/// Runs work only while holding the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    /// The last Lease record seen and when it was first seen (our clock).
    observed: Option<(LeaseSpec, Instant)>,
}

impl LeaderElector {
    /// An elector for the Lease `config` names.
    pub fn new(client: &Client, config: LeaderElectionConfig) -> Self {
        LeaderElector { api: client.api(Some(&config.namespace)), config, observed: None }
    }

    /// Waits until this candidate holds the Lease, then runs `lead` with a token that is
    /// cancelled when leadership ends, renewing meanwhile. Returns `Ok` after `cancel` fires
    /// (the Lease is released) or `lead` returns, and [`ClientError::LeaseLost`] when the
    /// Lease could not be renewed within the renew deadline; a daemon should then exit, as
    /// Kubernetes' daemons do, so it restarts as a clean standby.
    pub async fn run<F, Fut>(mut self, cancel: CancellationToken, lead: F) -> Result<()>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %self.config.name, error = %e, "acquiring the lease failed"),
            }
            self.pause(&cancel).await;
        }
        tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
        let leading = cancel.child_token();
        let mut work = tokio::spawn(lead(leading.clone()));
        let mut last_renew = Instant::now();
        let mut work_done = false;
        let outcome = loop {
            tokio::select! {
                _ = cancel.cancelled() => break Ok(()),
                _ = &mut work => {
                    work_done = true;
                    break Ok(());
                }
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
            let attempt =
                tokio::time::timeout(self.config.retry_period.max(Duration::from_secs(1)), self.try_acquire_or_renew())
                    .await;
            match attempt {
                Ok(Ok(true)) => last_renew = Instant::now(),
                Ok(Ok(false)) => break Err(ClientError::LeaseLost(self.config.name.clone())),
                Ok(Err(e)) => tracing::warn!(lease = %self.config.name, error = %e, "renewing the lease failed"),
                Err(_) => tracing::warn!(lease = %self.config.name, "renewing the lease timed out"),
            }
            if last_renew.elapsed() > self.config.renew_deadline {
                break Err(ClientError::LeaseLost(self.config.name.clone()));
            }
        };
        leading.cancel();
        if !work_done {
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut work).await;
        }
        match &outcome {
            Ok(()) => {
                if let Err(e) = self.release().await {
                    tracing::warn!(lease = %self.config.name, error = %e, "releasing the lease failed");
                }
                tracing::info!(lease = %self.config.name, "stopped leading");
            }
            Err(e) => tracing::error!(lease = %self.config.name, error = %e, "leadership lost"),
        }
        outcome
    }

    async fn pause(&self, cancel: &CancellationToken) {
        let jittered = self.config.retry_period.mul_f64(rand::random_range(1.0..1.2));
        tokio::select! {
            _ = tokio::time::sleep(jittered) => {}
            _ = cancel.cancelled() => {}
        }
    }

    fn now() -> Option<MicroTime> {
        Some(MicroTime(Timestamp::now()))
    }

    /// One attempt: true when this candidate holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> Result<bool> {
        let me = self.config.identity.clone();
        let duration_seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let spec = LeaseSpec {
                holder_identity: Some(me),
                lease_duration_seconds: Some(duration_seconds),
                acquire_time: Self::now(),
                renew_time: Self::now(),
                lease_transitions: Some(0),
                ..Default::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
            };
            return match self.api.create(&lease).await {
                Ok(_) => {
                    self.observed = Some((spec, Instant::now()));
                    Ok(true)
                }
                Err(e) if e.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(seen, _)| *seen != current) {
            self.observed = Some((current.clone(), Instant::now()));
        }
        let holder = current.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == me;
        if !holder.is_empty() && !held_by_me {
            let seen_at = self.observed.as_ref().map(|(_, at)| *at).unwrap_or_else(Instant::now);
            let their_duration =
                Duration::from_secs(current.lease_duration_seconds.unwrap_or(duration_seconds).max(0) as u64);
            if seen_at.elapsed() < their_duration {
                return Ok(false);
            }
        }
        let spec = LeaseSpec {
            holder_identity: Some(me),
            lease_duration_seconds: Some(duration_seconds),
            acquire_time: if held_by_me { current.acquire_time.clone() } else { Self::now() },
            renew_time: Self::now(),
            lease_transitions: Some(
                current.lease_transitions.unwrap_or(0) + i32::from(!held_by_me && !holder.is_empty()),
            ),
            ..current
        };
        lease.spec = Some(spec.clone());
        // The update carries the resourceVersion read above: a racing candidate gets 409.
        match self.api.update(&lease).await {
            Ok(_) => {
                self.observed = Some((spec, Instant::now()));
                Ok(true)
            }
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (empty holder, 1 s duration) so a standby need not wait it out.
    async fn release(&mut self) -> Result<()> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else { return Ok(()) };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Self::now();
        lease.spec = Some(spec);
        self.api.update(&lease).await?;
        Ok(())
    }
}
