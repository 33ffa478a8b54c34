//! The ServiceAccount controller against a real API server: every namespace gets a `default`
//! ServiceAccount, and gets it back when it is deleted.

mod common;

use common::Cluster;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::DeleteParams;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_has_a_default_service_account() {
    let c = Cluster::start("serviceaccount", &[]);
    let ns =
        Namespace { metadata: ObjectMeta { name: Some("team-a".into()), ..Default::default() }, ..Default::default() };
    c.api::<Namespace>(None).create(&ns).await.unwrap();
    let accounts = c.api::<ServiceAccount>(Some("team-a"));
    let first = c.eventually(20, "default SA in team-a", || async { accounts.get_opt("default").await.unwrap() }).await;

    accounts.delete("default", &DeleteParams::default()).await.unwrap();
    let again = c
        .eventually(20, "default SA recreated", || async {
            accounts.get_opt("default").await.unwrap().filter(|sa| sa.metadata.uid != first.metadata.uid)
        })
        .await;
    assert_ne!(again.metadata.uid, first.metadata.uid);
    // `default` exists from the start as well.
    c.eventually(20, "default SA in default", || async {
        c.api::<ServiceAccount>(Some("default")).get_opt("default").await.unwrap()
    })
    .await;
}
