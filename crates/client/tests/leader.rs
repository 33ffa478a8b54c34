//! Leader election against a real rkube-apiserver and etcd: one leader at a time, hand-over
//! at once on release, and after the lease duration when the leader dies without releasing.

use k8s_openapi::api::coordination::v1::Lease;
use rkube_client::{Client, LeaderElectionConfig, LeaderElector};
use rkube_testkit::{ApiServer, Etcd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn config(identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
        ..LeaderElectionConfig::new("kube-system", "test-lease", identity)
    }
}

/// Starts a candidate that reports when it leads and counts concurrent leaders.
fn candidate(
    client: &Client,
    identity: &'static str,
    leaders: Arc<AtomicUsize>,
    led: mpsc::UnboundedSender<&'static str>,
) -> (CancellationToken, tokio::task::JoinHandle<rkube_client::Result<()>>) {
    let cancel = CancellationToken::new();
    let elector = LeaderElector::new(client, config(identity));
    let task = tokio::spawn(elector.run(cancel.clone(), move |leading| async move {
        let now = leaders.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(now, 1, "two leaders at once");
        let _ = led.send(identity);
        leading.cancelled().await;
        leaders.fetch_sub(1, Ordering::SeqCst);
    }));
    (cancel, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_on_release_and_after_expiry() {
    let etcd = Etcd::start().expect("etcd");
    let server = ApiServer::start(&etcd).expect("apiserver");
    let client = Client::new(&server.url()).unwrap();
    let leaders = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();

    let (cancel_a, task_a) = candidate(&client, "a", leaders.clone(), tx.clone());
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap(), Some("a"));
    let (cancel_b, task_b) = candidate(&client, "b", leaders.clone(), tx.clone());
    // b stays a standby while a renews, well past the lease duration.
    assert!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.is_err(), "b must not lead while a renews");
    let lease = client.api::<Lease>(Some("kube-system")).get("test-lease").await.unwrap();
    assert_eq!(lease.spec.as_ref().unwrap().holder_identity.as_deref(), Some("a"));

    // a shuts down cleanly: it releases, and b takes over within a retry period or two.
    let t = Instant::now();
    cancel_a.cancel();
    task_a.await.unwrap().expect("a returns Ok after releasing");
    assert_eq!(tokio::time::timeout(Duration::from_secs(3), rx.recv()).await.unwrap(), Some("b"));
    assert!(t.elapsed() < Duration::from_secs(3), "hand-over after release took {:?}", t.elapsed());
    let lease = client.api::<Lease>(Some("kube-system")).get("test-lease").await.unwrap();
    assert_eq!(
        lease.spec.as_ref().unwrap().lease_transitions,
        Some(0),
        "a released (empty holder), so b's take-over is not a transition from a live holder"
    );

    // b dies without releasing (its task is aborted); c takes over once the lease expires.
    let (cancel_c, task_c) = candidate(&client, "c", leaders.clone(), tx.clone());
    let t = Instant::now();
    task_b.abort();
    let _ = task_b.await;
    leaders.fetch_sub(1, Ordering::SeqCst);
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap(), Some("c"));
    assert!(t.elapsed() >= Duration::from_secs(2), "c must wait out b's lease, took {:?}", t.elapsed());
    let lease = client.api::<Lease>(Some("kube-system")).get("test-lease").await.unwrap();
    assert_eq!(lease.spec.as_ref().unwrap().holder_identity.as_deref(), Some("c"));
    assert_eq!(lease.spec.as_ref().unwrap().lease_transitions, Some(1));
    cancel_b.cancel();
    cancel_c.cancel();
    task_c.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_steps_down_when_it_cannot_renew() {
    let etcd = Etcd::start().expect("etcd");
    let mut server = ApiServer::start(&etcd).expect("apiserver");
    let client = Client::new(&server.url()).unwrap();
    let leaders = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_cancel, task) = candidate(&client, "a", leaders.clone(), tx);
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap(), Some("a"));
    server.stop();
    let outcome =
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("gives up within the renew deadline").unwrap();
    assert!(matches!(outcome, Err(rkube_client::ClientError::LeaseLost(_))), "{outcome:?}");
    assert_eq!(leaders.load(Ordering::SeqCst), 0, "the work was told to stop");
}
