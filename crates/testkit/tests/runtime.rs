//! Proof that the node runtime environment works: a testkit containerd answers CRI, pulls from a
//! testkit registry over plain HTTP, runs a pod whose container logs, survives its own crash,
//! and leaves nothing on the machine when dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use rkube_testkit::images::{self, BUSYBOX_ARCHIVE, BUSYBOX_IMAGE, PAUSE_IMAGE};
use rkube_testkit::{Containerd, Registry};
use tonic::transport::{Channel, Endpoint, Uri};

struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

async fn connect(socket: PathBuf) -> Cri {
    let channel = Endpoint::try_from("http://[::1]:50051")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }))
        .await
        .expect("connect to the CRI socket");
    Cri { runtime: RuntimeServiceClient::new(channel.clone()), images: ImageServiceClient::new(channel) }
}

fn sandbox_config(ctrd: &Containerd, name: &str) -> cri::PodSandboxConfig {
    let uid = format!("uid-{name}-{}", std::process::id());
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: ctrd.logs_dir().join(format!("default_{name}_{uid}")).to_string_lossy().into_owned(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

async fn image_present(cri: &mut Cri, image: &str) -> bool {
    let req = cri::ImageStatusRequest {
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        verbose: false,
    };
    cri.images.image_status(req).await.expect("ImageStatus").into_inner().image.is_some()
}

async fn run_pod(cri: &mut Cri, config: &cri::PodSandboxConfig) -> String {
    let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    cri.runtime.run_pod_sandbox(req).await.expect("RunPodSandbox").into_inner().pod_sandbox_id
}

async fn start_container(
    cri: &mut Cri,
    sandbox: &str,
    config: &cri::PodSandboxConfig,
    name: &str,
    image: &str,
    command: &[&str],
) -> String {
    let container = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    };
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: sandbox.into(),
        config: Some(container),
        sandbox_config: Some(config.clone()),
    };
    let id = cri.runtime.create_container(req).await.expect("CreateContainer").into_inner().container_id;
    cri.runtime.start_container(cri::StartContainerRequest { container_id: id.clone() }).await.expect("StartContainer");
    id
}

async fn container_status(cri: &mut Cri, id: &str) -> cri::ContainerStatus {
    let req = cri::ContainerStatusRequest { container_id: id.into(), verbose: false };
    cri.runtime.container_status(req).await.expect("ContainerStatus").into_inner().status.expect("status")
}

async fn wait_exited(cri: &mut Cri, id: &str) -> cri::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = container_status(cri, id).await;
        if status.state == cri::ContainerState::ContainerExited as i32 {
            return status;
        }
        assert!(Instant::now() < deadline, "container {id} still in state {} after 30s", status.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything an instance could leave behind, for asserting that nothing is; `ids` are the
/// sandboxes and containers it ran.
fn leftovers(dir: &Path, bridge: &str, ids: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let dir_text = dir.to_string_lossy().into_owned();
    if dir.exists() {
        found.push(format!("dir {dir_text}"));
    }
    if Path::new("/sys/class/net").join(bridge).exists() {
        found.push(format!("bridge {bridge}"));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    found.extend(mountinfo.lines().filter(|l| l.contains(&dir_text)).map(|l| format!("mount {l}")));
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&dir_text) {
            found.push(format!("process {}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    for entry in std::fs::read_dir("/var/lib/cni/results").into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if text.contains(&dir_text) || text.contains(&format!("\"networkName\":\"{bridge}\"")) {
            found.push(format!("CNI cache entry {}", entry.path().display()));
        }
    }
    // portmap's DNAT rules name the sandbox id.
    let nat = std::process::Command::new("iptables").args(["-t", "nat", "-S"]).output().expect("iptables");
    for rule in String::from_utf8_lossy(&nat.stdout).lines() {
        if ids.iter().any(|id| rule.contains(id)) {
            found.push(format!("iptables rule {rule}"));
        }
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        for id in ids {
            let cgroup = hierarchy.path().join("k8s.io").join(id);
            if cgroup.exists() {
                found.push(format!("cgroup {}", cgroup.display()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_pulls_from_the_registry_and_runs_a_pod_that_logs() {
    let started = Instant::now();
    let ctrd = Containerd::start().expect("start containerd");
    let start_time = started.elapsed();
    let registry = Registry::start().expect("start registry");
    let image = registry.image("rkube/busybox:1.0");
    registry.push(&images::archive(BUSYBOX_ARCHIVE).expect("archive"), "rkube/busybox:1.0").expect("push");
    eprintln!("containerd ready in {start_time:?}, registry up and image pushed at {:?}", started.elapsed());
    let (dir, bridge) = (ctrd.path().to_path_buf(), ctrd.bridge());
    let mut cri = connect(ctrd.socket()).await;

    let version = cri.runtime.version(cri::VersionRequest { version: "v1".into() }).await.expect("Version");
    assert_eq!(version.into_inner().runtime_name, "containerd");
    let status = cri.runtime.status(cri::StatusRequest { verbose: false }).await.expect("Status").into_inner();
    let conditions = status.status.expect("runtime status").conditions;
    for wanted in ["RuntimeReady", "NetworkReady"] {
        let c = conditions.iter().find(|c| c.r#type == wanted).unwrap_or_else(|| panic!("no {wanted}: {conditions:?}"));
        assert!(c.status, "{wanted} is false: {c:?}");
    }

    // Imported at start; the registry image is not there until pulled.
    assert!(image_present(&mut cri, BUSYBOX_IMAGE).await, "{BUSYBOX_IMAGE} not imported");
    assert!(image_present(&mut cri, PAUSE_IMAGE).await, "{PAUSE_IMAGE} not imported");
    assert!(!image_present(&mut cri, &image).await);
    let pull = Instant::now();
    let req = cri::PullImageRequest {
        image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }),
        ..Default::default()
    };
    let image_ref = cri.images.pull_image(req).await.expect("PullImage over plain HTTP").into_inner().image_ref;
    eprintln!("pulled {image} as {image_ref} in {:?}", pull.elapsed());
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    assert!(image_present(&mut cri, &image).await);

    let config = sandbox_config(&ctrd, "hello");
    let t = Instant::now();
    let sandbox = run_pod(&mut cri, &config).await;
    eprintln!("RunPodSandbox took {:?}", t.elapsed());
    let req = cri::PodSandboxStatusRequest { pod_sandbox_id: sandbox.clone(), verbose: false };
    let sandbox_status = cri.runtime.pod_sandbox_status(req).await.expect("PodSandboxStatus").into_inner();
    let ip = sandbox_status.status.and_then(|s| s.network).map(|n| n.ip).unwrap_or_default();
    let prefix = ctrd.subnet().trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "pod IP {ip:?} not in {}", ctrd.subnet());

    let id = start_container(&mut cri, &sandbox, &config, "hi", &image, &["sh", "-c", "echo hi; sleep 1"]).await;
    let exited = wait_exited(&mut cri, &id).await;
    assert_eq!((exited.exit_code, exited.reason.as_str()), (0, "Completed"), "{exited:?}");
    let log_file = Path::new(&config.log_directory).join("hi/0.log");
    let log = std::fs::read_to_string(&log_file).expect("container log");
    // `<RFC3339Nano> stdout F hi`
    assert!(log.lines().any(|l| l.ends_with(" stdout F hi")), "{log_file:?}: {log:?}");

    // The pause image exits on SIGTERM through its trap (0), not after the grace period (137).
    let pause = start_container(&mut cri, &sandbox, &config, "pause", PAUSE_IMAGE, &[]).await;
    let t = Instant::now();
    let req = cri::StopContainerRequest { container_id: pause.clone(), timeout: 30 };
    cri.runtime.stop_container(req).await.expect("StopContainer");
    let stopped = container_status(&mut cri, &pause).await;
    eprintln!("pause container stopped in {:?} with exit code {}", t.elapsed(), stopped.exit_code);
    assert_eq!(stopped.exit_code, 0, "{stopped:?}");

    let t = Instant::now();
    let req = cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() };
    cri.runtime.stop_pod_sandbox(req).await.expect("StopPodSandbox");
    let req = cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() };
    cri.runtime.remove_pod_sandbox(req).await.expect("RemovePodSandbox");
    eprintln!("pod teardown took {:?}", t.elapsed());

    drop(cri);
    drop(registry);
    drop(ctrd);
    let left = leftovers(&dir, &bridge, &[&sandbox, &id, &pause]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_survive_a_containerd_crash_and_drop_cleans_up_running_pods() {
    let mut ctrd = Containerd::start().expect("start containerd");
    let (dir, bridge) = (ctrd.path().to_path_buf(), ctrd.bridge());
    let mut cri = connect(ctrd.socket()).await;
    let mut config = sandbox_config(&ctrd, "survivor");
    // A hostPort: portmap's iptables rules live outside the pod's netns, so Drop must run CNI DEL.
    let host_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    config.port_mappings =
        vec![cri::PortMapping { container_port: 8080, host_port: host_port.into(), ..Default::default() }];
    let sandbox = run_pod(&mut cri, &config).await;
    let id = start_container(&mut cri, &sandbox, &config, "sleeper", BUSYBOX_IMAGE, &["sleep", "3600"]).await;
    assert_eq!(container_status(&mut cri, &id).await.state, cri::ContainerState::ContainerRunning as i32);

    let old_pid = ctrd.pid().expect("pid");
    ctrd.kill();
    assert_eq!(ctrd.pid(), None);
    ctrd.restart().expect("restart containerd");
    assert_ne!(ctrd.pid(), Some(old_pid));
    let mut cri = connect(ctrd.socket()).await;
    let status = container_status(&mut cri, &id).await;
    assert_eq!(status.state, cri::ContainerState::ContainerRunning as i32, "{status:?}");

    // A mount, a netns, a veth on the bridge, a shim and a container process exist now; drop
    // without any CRI teardown must remove them all.
    assert!(Path::new("/sys/class/net").join(&bridge).exists());
    let running = leftovers(&dir, &bridge, &[&sandbox, &id]);
    for what in ["bridge", "mount", "process", "CNI cache entry", "cgroup", "iptables rule"] {
        assert!(running.iter().any(|l| l.starts_with(what)), "no {what} while running: {running:#?}");
    }
    drop(cri);
    drop(ctrd);
    let left = leftovers(&dir, &bridge, &[&sandbox, &id]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn parallel_instances_get_their_own_bridge_and_subnet() {
    let a = Containerd::start().expect("start a");
    let b = Containerd::start().expect("start b");
    assert_ne!(a.bridge(), b.bridge());
    assert_ne!(a.subnet(), b.subnet());
    assert_ne!(a.socket(), b.socket());
    assert_ne!(a.stream_port(), b.stream_port());
    assert!(a.ctr(&["images", "ls", "-q"]).expect("ctr").contains(BUSYBOX_IMAGE));
}
