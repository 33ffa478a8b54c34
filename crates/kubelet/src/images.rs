//! Image pulls by imagePullPolicy, in parallel up to a bound, with one pull per image at a time
//! however many pods want it.

use crate::cri::{Cri, CriError};
use k8s_openapi::api::core::v1::Container;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, watch};

/// Why an image is not there.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullError {
    /// The registry or runtime refused the pull.
    #[error("{0}")]
    Failed(String),
    /// Policy Never and the image is absent.
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
}

/// How a successful ensure went, for the Pulled event.
#[derive(Debug, Clone)]
pub enum Pulled {
    /// The image was already present and policy allowed using it.
    Present(String),
    /// Freshly pulled: the image reference, and how long the pull took.
    Pulled(String, std::time::Duration),
}

impl Pulled {
    /// The image reference (digest) the runtime knows the image by.
    pub fn image_ref(&self) -> &str {
        match self {
            Pulled::Present(r) | Pulled::Pulled(r, _) => r,
        }
    }
}

type InFlight = watch::Receiver<Option<Result<String, String>>>;

/// Pulls images for containers.
pub struct ImageManager {
    cri: Cri,
    slots: Semaphore,
    in_flight: Mutex<HashMap<String, InFlight>>,
}

/// The pull policy in effect: the container's, else Kubernetes' default (Always for `:latest`
/// or untagged images, IfNotPresent otherwise).
pub fn pull_policy(container: &Container) -> &str {
    if let Some(p) = container.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p;
    }
    let image = container.image.as_deref().unwrap_or_default();
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        "IfNotPresent"
    } else {
        match name.split_once(':') {
            None | Some((_, "latest")) => "Always",
            _ => "IfNotPresent",
        }
    }
}

impl ImageManager {
    /// A manager running at most `parallel` pulls at once.
    pub fn new(cri: Cri, parallel: usize) -> Arc<ImageManager> {
        Arc::new(ImageManager { cri, slots: Semaphore::new(parallel.max(1)), in_flight: Mutex::default() })
    }

    /// Whether `image` is present, by policy, without pulling; None means a pull is needed.
    pub async fn present(&self, image: &str, policy: &str) -> Result<Option<String>, PullError> {
        if policy == "Always" {
            return Ok(None);
        }
        match self.cri.image_status(image).await {
            Ok(Some(i)) => Ok(Some(i.id)),
            Ok(None) if policy == "Never" => Err(PullError::NeverPull(image.to_string())),
            Ok(None) => Ok(None),
            Err(e) => Err(PullError::Failed(e.to_string())),
        }
    }

    /// Makes `image` present under `policy`, pulling if needed.
    pub async fn ensure(&self, image: &str, policy: &str) -> Result<Pulled, PullError> {
        if let Some(r) = self.present(image, policy).await? {
            return Ok(Pulled::Present(r));
        }
        let started = std::time::Instant::now();
        let r = self.pull(image).await.map_err(PullError::Failed)?;
        Ok(Pulled::Pulled(r, started.elapsed()))
    }

    /// Pulls once per image however many callers ask at the same time.
    async fn pull(&self, image: &str) -> Result<String, String> {
        let (mut rx, leader) = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(image) {
                Some(rx) => (rx.clone(), None),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(image.to_string(), rx.clone());
                    (rx, Some(tx))
                }
            }
        };
        if let Some(tx) = leader {
            let result = {
                let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
                self.cri.pull_image(image, None).await.map_err(|e: CriError| e.to_string())
            };
            self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(image);
            let _ = tx.send(Some(result.clone()));
            return result;
        }
        loop {
            if let Some(r) = rx.borrow().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                return Err(format!("pull of {image} was abandoned"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_follows_the_tag() {
        let c = |image: &str| Container { image: Some(image.into()), ..Default::default() };
        assert_eq!(pull_policy(&c("busybox")), "Always");
        assert_eq!(pull_policy(&c("busybox:latest")), "Always");
        assert_eq!(pull_policy(&c("127.0.0.1:5000/busybox")), "Always");
        assert_eq!(pull_policy(&c("127.0.0.1:5000/busybox:1.0")), "IfNotPresent");
        assert_eq!(pull_policy(&c("busybox@sha256:abc")), "IfNotPresent");
        let mut never = c("busybox");
        never.image_pull_policy = Some("Never".into());
        assert_eq!(pull_policy(&never), "Never");
    }
}
