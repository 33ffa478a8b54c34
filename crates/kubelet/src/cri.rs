//! The CRI client: containerd's `runtime.v1` RuntimeService and ImageService over its unix
//! socket, with gRPC failures turned into [`CriError`] once, here.

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as api;

/// A failed CRI call.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The socket could not be reached.
    #[error("container runtime at {endpoint} is unreachable: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    /// The object (container, sandbox, image tag) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// ExecSync ran past its timeout.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// Any other failure; containerd reports nearly everything as UNKNOWN with the text here.
    #[error("{0}")]
    Runtime(String),
}

impl From<tonic::Status> for CriError {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::NotFound => CriError::NotFound(s.message().to_string()),
            tonic::Code::DeadlineExceeded => CriError::DeadlineExceeded(s.message().to_string()),
            _ => CriError::Runtime(format!("{}: {}", s.code(), s.message())),
        }
    }
}

/// Result of a CRI call.
pub type Result<T, E = CriError> = std::result::Result<T, E>;

/// Both CRI services on one channel; cheap to clone.
#[derive(Clone)]
pub struct Cri {
    /// RuntimeService: sandboxes, containers, exec/attach/port-forward, stats.
    pub runtime: RuntimeServiceClient<Channel>,
    /// ImageService: pulls and image status.
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    /// Connects (lazily) to `endpoint`, `unix:///path/to.sock` or a bare socket path.
    pub fn connect(endpoint: &str) -> Result<Cri> {
        let path = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
        // The URI is required by tonic but unused: every connection goes to the socket.
        let channel = Endpoint::try_from("http://[::1]:50051")
            .map_err(|source| CriError::Connect { endpoint: endpoint.to_string(), source })?
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }));
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20),
            images: ImageServiceClient::new(channel).max_decoding_message_size(64 << 20),
        })
    }

    /// The runtime's name and version, e.g. ("containerd", "1.6.20").
    pub async fn version(&self) -> Result<api::VersionResponse> {
        Ok(self.runtime.clone().version(api::VersionRequest { version: "v1".into() }).await?.into_inner())
    }

    /// Whether RuntimeReady and NetworkReady both hold, with the reason when not.
    pub async fn ready(&self) -> Result<Result<(), String>> {
        let status = self.runtime.clone().status(api::StatusRequest { verbose: false }).await?.into_inner();
        let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
        for wanted in ["RuntimeReady", "NetworkReady"] {
            match conditions.iter().find(|c| c.r#type == wanted) {
                Some(c) if c.status => {}
                Some(c) => return Ok(Err(format!("{wanted}=false reason:{} message:{}", c.reason, c.message))),
                None => return Ok(Err(format!("runtime reports no {wanted} condition"))),
            }
        }
        Ok(Ok(()))
    }

    /// Every sandbox.
    pub async fn list_sandboxes(&self) -> Result<Vec<api::PodSandbox>> {
        Ok(self.runtime.clone().list_pod_sandbox(api::ListPodSandboxRequest { filter: None }).await?.into_inner().items)
    }

    /// The sandboxes carrying `label=value`, filtered by the runtime (a pod's own, by its UID
    /// label), so a pod's sync does not read every pod on the node.
    pub async fn list_sandboxes_labelled(&self, label: &str, value: &str) -> Result<Vec<api::PodSandbox>> {
        let filter = api::PodSandboxFilter {
            label_selector: [(label.to_string(), value.to_string())].into(),
            ..Default::default()
        };
        let req = api::ListPodSandboxRequest { filter: Some(filter) };
        Ok(self.runtime.clone().list_pod_sandbox(req).await?.into_inner().items)
    }

    /// The containers carrying `label=value`, filtered by the runtime.
    pub async fn list_containers_labelled(&self, label: &str, value: &str) -> Result<Vec<api::Container>> {
        let filter = api::ContainerFilter {
            label_selector: [(label.to_string(), value.to_string())].into(),
            ..Default::default()
        };
        let req = api::ListContainersRequest { filter: Some(filter) };
        Ok(self.runtime.clone().list_containers(req).await?.into_inner().containers)
    }

    /// Every container, running or not.
    pub async fn list_containers(&self) -> Result<Vec<api::Container>> {
        Ok(self
            .runtime
            .clone()
            .list_containers(api::ListContainersRequest { filter: None })
            .await?
            .into_inner()
            .containers)
    }

    /// The sandbox's status (its IP among it).
    pub async fn sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        self.runtime
            .clone()
            .pod_sandbox_status(api::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false })
            .await?
            .into_inner()
            .status
            .ok_or_else(|| CriError::NotFound(format!("sandbox {id} has no status")))
    }

    /// One container's status.
    pub async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        self.runtime
            .clone()
            .container_status(api::ContainerStatusRequest { container_id: id.into(), verbose: false })
            .await?
            .into_inner()
            .status
            .ok_or_else(|| CriError::NotFound(format!("container {id} has no status")))
    }

    /// Stops a container: SIGTERM, then SIGKILL after `timeout_seconds`.
    pub async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()> {
        match self
            .runtime
            .clone()
            .stop_container(api::StopContainerRequest { container_id: id.into(), timeout: timeout_seconds })
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(s.into()),
        }
    }

    /// Removes a container; a missing one counts as removed.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        match self.runtime.clone().remove_container(api::RemoveContainerRequest { container_id: id.into() }).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(s.into()),
        }
    }

    /// Stops and removes a sandbox; a missing one counts as removed.
    pub async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let mut rt = self.runtime.clone();
        match rt.stop_pod_sandbox(api::StopPodSandboxRequest { pod_sandbox_id: id.into() }).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(()),
            Err(s) => return Err(s.into()),
        }
        match rt.remove_pod_sandbox(api::RemovePodSandboxRequest { pod_sandbox_id: id.into() }).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(s.into()),
        }
    }

    /// Runs `cmd` in a container and waits up to `timeout` for it: (exit code, stdout, stderr).
    pub async fn exec_sync(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> Result<(i32, Vec<u8>, Vec<u8>)> {
        let r = self
            .runtime
            .clone()
            .exec_sync(api::ExecSyncRequest { container_id: id.into(), cmd, timeout: timeout.as_secs().max(1) as i64 })
            .await?
            .into_inner();
        Ok((r.exit_code, r.stdout, r.stderr))
    }

    /// The image's local status, or None when it is not present.
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>> {
        let r = self
            .images
            .clone()
            .image_status(api::ImageStatusRequest {
                image: Some(api::ImageSpec { image: image.into(), ..Default::default() }),
                verbose: false,
            })
            .await?
            .into_inner();
        Ok(r.image)
    }

    /// Pulls an image; returns its reference (digest).
    pub async fn pull_image(&self, image: &str, sandbox: Option<api::PodSandboxConfig>) -> Result<String> {
        let r = self
            .images
            .clone()
            .pull_image(api::PullImageRequest {
                image: Some(api::ImageSpec { image: image.into(), ..Default::default() }),
                auth: None,
                sandbox_config: sandbox,
            })
            .await?
            .into_inner();
        Ok(r.image_ref)
    }
}
