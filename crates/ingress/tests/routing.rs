//! rkube-ingress in-process against a real etcd and rkube-apiserver, routing to plain HTTP
//! backends on loopback ports through Services without selectors and hand-written
//! EndpointSlices: two hosts to two Services over HTTP and HTTPS (the SNI picks the right
//! certificate), Exact vs Prefix, round-robin over kept-alive connections, forwarded headers,
//! the status address, Ingress, EndpointSlice and Secret updates taking effect, the default
//! backend, 503 and retries, protocol upgrades, HTTP/2, and the real binary with a default
//! IngressClass.

mod common;

use common::*;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use rkube_client::Client;
use rkube_testkit::{ApiServer, Etcd};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NS: &str = "default";

fn rule(host: &str, paths: serde_json::Value) -> serde_json::Value {
    json!({"host": host, "http": {"paths": paths}})
}

fn path(kind: &str, p: &str, service: &str, port: serde_json::Value) -> serde_json::Value {
    json!({"path": p, "pathType": kind, "backend": {"service": {"name": service, "port": port}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_route_to_two_services_over_http_and_https() {
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    let (alpha1, alpha2, beta) =
        (TestBackend::start("alpha").await, TestBackend::start("alpha").await, TestBackend::start("beta").await);
    service_for(&client, NS, "alpha", &[&alpha1, &alpha2]).await;
    service_for(&client, NS, "beta", &[&beta]).await;
    let ca = TestCa::new();
    let (a_der, a_crt, a_key) = ca.issue(&["a.example.com"]);
    let (b_der, b_crt, b_key) = ca.issue(&["b.example.com"]);
    put_tls_secret(&client, NS, "a-tls", &a_crt, &a_key).await;
    put_tls_secret(&client, NS, "b-tls", &b_crt, &b_key).await;
    put_ingress(
        &client,
        NS,
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "ingressClassName": "rkube",
                "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}, {"hosts": ["b.example.com"], "secretName": "b-tls"}],
                "rules": [
                    rule("a.example.com", json!([
                        path("Prefix", "/", "alpha", json!({"number": 80})),
                        path("Exact", "/exact", "beta", json!({"name": "http"})),
                    ])),
                    rule("b.example.com", json!([
                        path("Prefix", "/api", "beta", json!({"number": 80})),
                        path("ImplementationSpecific", "/api/v2", "alpha", json!({"number": 80})),
                    ])),
                ],
            },
        }),
    )
    .await;

    let cancel = CancellationToken::new();
    let ingress = rkube_ingress::start(ingress_config(&api.url(), &[]), cancel.clone()).await.unwrap();
    let (http, https) = (ingress.http, ingress.https);
    let (first, took) = eventually(Duration::from_secs(20), "the first route", || async move {
        let r = http_get(http, "a.example.com", "/").await;
        (r.status == 200).then_some(r)
    })
    .await;
    eprintln!("first request routed {took:?} after start");
    assert!(first.backend().starts_with("alpha@"), "{first:?}");

    // The IngressClass was created for the controller.
    let classes = client.api::<IngressClass>(None);
    let (class, _) = eventually(Duration::from_secs(10), "the IngressClass", || {
        let classes = classes.clone();
        async move { classes.get_opt("rkube").await.ok().flatten() }
    })
    .await;
    assert_eq!(class.spec.and_then(|s| s.controller).as_deref(), Some(rkube_ingress::CONTROLLER_NAME));

    // Host and path routing over HTTP.
    let cases = [
        ("a.example.com", "/anything/deep", "alpha"),
        ("A.EXAMPLE.COM:80", "/x", "alpha"),
        ("a.example.com", "/exact", "beta"),
        ("a.example.com", "/exact/", "alpha"),
        ("a.example.com", "/exactly", "alpha"),
        ("b.example.com", "/api", "beta"),
        ("b.example.com", "/api/v1/users", "beta"),
        ("b.example.com", "/api/v2", "alpha"),
        ("b.example.com", "/api/v2/users?x=1", "alpha"),
    ];
    for (host, p, want) in cases {
        let r = http_get(http, host, p).await;
        assert_eq!(r.status, 200, "{host}{p}: {r:?}");
        assert!(r.backend().starts_with(&format!("{want}@")), "{host}{p} went to {}", r.backend());
        assert_eq!(r.json["path"], p, "the backend gets the original path and query");
    }
    for (host, p) in [("b.example.com", "/apix"), ("b.example.com", "/"), ("c.example.com", "/")] {
        let r = http_get(http, host, p).await;
        assert_eq!(r.status, 404, "{host}{p} matches no rule and there is no default backend: {r:?}");
    }

    // Forwarded headers, with the original Host kept.
    let r = http_get(http, "a.example.com", "/h").await;
    assert_eq!(r.json["host"], "a.example.com");
    assert_eq!(r.json["x-forwarded-for"], "127.0.0.1");
    assert_eq!(r.json["x-real-ip"], "127.0.0.1");
    assert_eq!(r.json["x-forwarded-proto"], "http");
    assert_eq!(r.json["x-forwarded-host"], "a.example.com");

    // Round-robin: consecutive requests alternate between alpha's two endpoints.
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(http_get(http, "a.example.com", "/rr").await.backend().to_string());
    }
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "round-robin alternates: {seen:?}");
    }
    assert_eq!(seen.iter().collect::<std::collections::BTreeSet<_>>().len(), 2, "{seen:?}");

    // Backend connections are kept alive and reused across client connections.
    let before = beta.connections.load(Ordering::SeqCst);
    for _ in 0..40 {
        assert_eq!(http_get(http, "b.example.com", "/api/keepalive").await.status, 200);
    }
    let opened = beta.connections.load(Ordering::SeqCst) - before;
    assert!(opened <= 1, "40 sequential requests opened {opened} backend connections");

    // HTTPS: the SNI picks each host's certificate (verified against the test CA for that
    // name), and routing is the same.
    let tls = ca.client_config();
    let r = https_get(https, &tls, "a.example.com", "/secure").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.cert.as_ref(), Some(&a_der));
    assert!(r.backend().starts_with("alpha@"));
    assert_eq!(r.json["x-forwarded-proto"], "https");
    let r = https_get(https, &tls, "b.example.com", "/api/x").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.cert.as_ref(), Some(&b_der));
    assert!(r.backend().starts_with("beta@"));

    // The status address is written through the status subresource.
    let ingresses = client.api::<Ingress>(Some(NS));
    let (ip, _) = eventually(Duration::from_secs(10), "status.loadBalancer", || {
        let ingresses = ingresses.clone();
        async move {
            let ing = ingresses.get("web").await.ok()?;
            ing.status?.load_balancer?.ingress?.first()?.ip.clone()
        }
    })
    .await;
    assert_eq!(ip, "192.0.2.10");
    let writes = ingress.metrics.status_updates.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ingress.metrics.status_updates.load(Ordering::Relaxed), writes, "an unchanged status is not rewritten");

    // An Ingress update takes effect quickly: /exact moves to alpha, /new appears.
    put_ingress(
        &client,
        NS,
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "ingressClassName": "rkube",
                "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}, {"hosts": ["b.example.com"], "secretName": "b-tls"}],
                "rules": [
                    rule("a.example.com", json!([path("Exact", "/new", "beta", json!({"number": 80}))])),
                    rule("b.example.com", json!([path("Prefix", "/api", "beta", json!({"number": 80}))])),
                ],
            },
        }),
    )
    .await;
    let (_, took) = eventually(Duration::from_secs(5), "the updated Ingress", || async move {
        let r = http_get(http, "a.example.com", "/new").await;
        r.backend().starts_with("beta@").then_some(())
    })
    .await;
    eprintln!("Ingress update took effect after {took:?}");
    assert_eq!(http_get(http, "a.example.com", "/").await.status, 404, "the old / rule is gone");

    // An EndpointSlice update takes effect: beta's only endpoint goes unready -> 503.
    put_slice(&client, NS, "beta", "beta-0", beta.addr.port(), &[false]).await;
    let (r, took) = eventually(Duration::from_secs(5), "503 without ready endpoints", || async move {
        let r = http_get(http, "b.example.com", "/api").await;
        (r.status == 503).then_some(r)
    })
    .await;
    eprintln!("EndpointSlice update took effect after {took:?}");
    assert!(r.text.contains("default/beta:80"), "{}", r.text);

    // A Secret update takes effect: a new certificate for a.example.com is served.
    let (a2_der, a2_crt, a2_key) = ca.issue(&["a.example.com"]);
    put_tls_secret(&client, NS, "a-tls", &a2_crt, &a2_key).await;
    let tls2 = tls.clone();
    eventually(Duration::from_secs(5), "the rotated certificate", || {
        let tls = tls2.clone();
        let want = a2_der.clone();
        async move { (https_get(https, &tls, "a.example.com", "/new").await.cert == Some(want)).then_some(()) }
    })
    .await;

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(15), ingress.wait()).await.expect("shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backend_no_endpoints_and_retry_past_a_dead_endpoint() {
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    let (fallback, live) = (TestBackend::start("fallback").await, TestBackend::start("live").await);
    service_for(&client, NS, "fallback", &[&fallback]).await;
    create_service(&client, NS, "empty").await;
    put_slice(&client, NS, "empty", "empty-0", 8080, &[]).await;
    // "flaky": one endpoint where nothing listens, one live.
    create_service(&client, NS, "flaky").await;
    put_slice(&client, NS, "flaky", "flaky-dead", dead_port().await, &[true]).await;
    put_slice(&client, NS, "flaky", "flaky-live", live.addr.port(), &[true]).await;
    put_ingress(
        &client,
        NS,
        json!({
            "metadata": {"name": "mixed"},
            "spec": {
                "ingressClassName": "rkube",
                "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
                "rules": [
                    rule("empty.example.com", json!([path("Prefix", "/", "empty", json!({"number": 80}))])),
                    rule("flaky.example.com", json!([path("Prefix", "/", "flaky", json!({"number": 80}))])),
                    rule("nosvc.example.com", json!([path("Prefix", "/", "missing", json!({"number": 80}))])),
                    rule("paths.example.com", json!([path("Exact", "/only", "flaky", json!({"number": 80}))])),
                ],
            },
        }),
    )
    .await;
    // An Ingress of another class is not ours.
    put_ingress(
        &client,
        NS,
        json!({
            "metadata": {"name": "foreign"},
            "spec": {"ingressClassName": "someone-else",
                "rules": [rule("foreign.example.com", json!([path("Prefix", "/", "flaky", json!({"number": 80}))]))]},
        }),
    )
    .await;

    let cancel = CancellationToken::new();
    let ingress = rkube_ingress::start(ingress_config(&api.url(), &[]), cancel.clone()).await.unwrap();
    let http = ingress.http;
    eventually(Duration::from_secs(20), "the ingress to serve", || async move {
        (http_get(http, "flaky.example.com", "/").await.status == 200).then_some(())
    })
    .await;

    // The default backend takes hosts no rule names, hosts of other classes' Ingresses, and
    // paths a host does not route.
    for (host, p) in [("unknown.example.com", "/x"), ("foreign.example.com", "/"), ("paths.example.com", "/other")] {
        let r = http_get(http, host, p).await;
        assert!(r.backend().starts_with("fallback@"), "{host}{p}: {r:?}");
    }
    assert!(http_get(http, "paths.example.com", "/only").await.backend().starts_with("live@"));

    // No ready endpoint, or no Service at all: 503.
    for host in ["empty.example.com", "nosvc.example.com"] {
        let r = http_get(http, host, "/").await;
        assert_eq!(r.status, 503, "{host}: {r:?}");
    }

    // A dead endpoint costs no request: each goes on to the live one.
    for i in 0..20 {
        let r = http_get(http, "flaky.example.com", &format!("/try/{i}")).await;
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        assert!(r.backend().starts_with("live@"));
    }
    assert!(ingress.metrics.connect_failures.load(Ordering::Relaxed) >= 1);
    assert!(ingress.metrics.retries.load(Ordering::Relaxed) >= 1);
    // The dead endpoint is set aside after refusing: far fewer failures than requests.
    assert!(ingress.metrics.connect_failures.load(Ordering::Relaxed) <= 3);

    // A request body reaches the backend intact.
    let r = {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(http).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::post("/upload")
            .header("host", "flaky.example.com")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"payload-123")))
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(r["method"], "POST");
    assert_eq!(r["body"], "payload-123");

    // Without the default backend, unmatched requests get 404.
    put_ingress(
        &client,
        NS,
        json!({
            "metadata": {"name": "mixed"},
            "spec": {"ingressClassName": "rkube",
                "rules": [rule("flaky.example.com", json!([path("Prefix", "/", "flaky", json!({"number": 80}))]))]},
        }),
    )
    .await;
    eventually(Duration::from_secs(5), "404 once the default backend is gone", || async move {
        (http_get(http, "unknown.example.com", "/").await.status == 404).then_some(())
    })
    .await;

    // Deleting the Ingress removes its routes.
    delete::<Ingress>(&client, NS, "mixed").await;
    eventually(Duration::from_secs(5), "404 once the Ingress is gone", || async move {
        (http_get(http, "flaky.example.com", "/").await.status == 404).then_some(())
    })
    .await;
    cancel.cancel();
    ingress.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingresses_without_a_class_are_served_when_our_class_is_the_default() {
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    let web = TestBackend::start("web").await;
    service_for(&client, NS, "web", &[&web]).await;
    put_ingress(
        &client,
        NS,
        json!({"metadata": {"name": "classless"},
            "spec": {"rules": [rule("web.example.com", json!([path("Prefix", "/", "web", json!({"number": 80}))]))]}}),
    )
    .await;

    // Run the real binary this time, on free ports.
    let (http_port, https_port) = (dead_port().await, dead_port().await);
    let mut daemon = rkube_testkit::Daemon::start(
        "rkube-ingress",
        &api,
        &[
            "--listen-address=127.0.0.1",
            &format!("--http-port={http_port}"),
            &format!("--https-port={https_port}"),
            "--publish-address=lb.example.com",
        ],
    )
    .unwrap();
    let http: std::net::SocketAddr = ([127, 0, 0, 1], http_port).into();
    let classes = client.api::<IngressClass>(None);
    eventually(Duration::from_secs(20), "the IngressClass", || {
        let classes = classes.clone();
        async move { classes.get_opt("rkube").await.ok().flatten() }
    })
    .await;
    let serving = || async move {
        match tokio::net::TcpStream::connect(http).await {
            Ok(_) => Some(http_get(http, "web.example.com", "/").await),
            Err(_) => None,
        }
    };
    let (r, _) = eventually(Duration::from_secs(20), "the binary to serve", serving).await;
    assert_eq!(r.status, 404, "no class and our class is not the default: not ours ({})", daemon.log_tail());

    let mut class = classes.get("rkube").await.unwrap();
    class.metadata.annotations =
        Some(BTreeMap::from([("ingressclass.kubernetes.io/is-default-class".to_string(), "true".to_string())]));
    classes.update(&class).await.unwrap();
    let (_, took) = eventually(Duration::from_secs(5), "the classless Ingress to be served", || async move {
        http_get(http, "web.example.com", "/").await.backend().starts_with("web@").then_some(())
    })
    .await;
    eprintln!("default class took effect after {took:?}");
    let ingresses = client.api::<Ingress>(Some(NS));
    let (hostname, _) = eventually(Duration::from_secs(10), "status hostname", || {
        let ingresses = ingresses.clone();
        async move { ingresses.get("classless").await.ok()?.status?.load_balancer?.ingress?.first()?.hostname.clone() }
    })
    .await;
    assert_eq!(hostname, "lb.example.com");
    assert!(daemon.is_running(), "{}", daemon.log_tail());
    daemon.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_http2_and_backends_that_close_idle_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let etcd = Etcd::start().unwrap();
    let api = ApiServer::start(&etcd).unwrap();
    let client = Client::new(&api.url()).unwrap();
    let ws = TestBackend::start("ws").await;
    let closer = TestBackend::start_with("closer", Some(Duration::from_millis(50))).await;
    service_for(&client, NS, "ws", &[&ws]).await;
    service_for(&client, NS, "closer", &[&closer]).await;
    let ca = TestCa::new();
    let (_, crt, key) = ca.issue(&["ws.example.com"]);
    put_tls_secret(&client, NS, "ws-tls", &crt, &key).await;
    put_ingress(
        &client,
        NS,
        json!({
            "metadata": {"name": "misc"},
            "spec": {
                "ingressClassName": "rkube",
                "tls": [{"hosts": ["ws.example.com"], "secretName": "ws-tls"}],
                "rules": [
                    rule("ws.example.com", json!([path("Prefix", "/", "ws", json!({"number": 80}))])),
                    rule("closer.example.com", json!([path("Prefix", "/", "closer", json!({"number": 80}))])),
                ],
            },
        }),
    )
    .await;
    let cancel = CancellationToken::new();
    let ingress = rkube_ingress::start(ingress_config(&api.url(), &[]), cancel.clone()).await.unwrap();
    let (http, https) = (ingress.http, ingress.https);
    eventually(Duration::from_secs(20), "the ingress to serve", || async move {
        (http_get(http, "ws.example.com", "/").await.status == 200).then_some(())
    })
    .await;

    // An upgraded connection is relayed both ways.
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "connection closed in the response head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"ping-123").await.unwrap();
    let mut echoed = [0u8; 8];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, b"ping-123");

    // HTTP/2 by ALPN over TLS, and with prior knowledge on the plain port.
    let mut tls = (*ca.client_config()).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let stream = tokio::net::TcpStream::connect(https).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(rustls_pki_types::ServerName::try_from("ws.example.com").unwrap(), stream)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let plain = tokio::net::TcpStream::connect(http).await.unwrap();
    for (echo, scheme) in [(h2_get(stream, "https").await, "https"), (h2_get(plain, "http").await, "http")] {
        assert!(echo["backend"].as_str().unwrap().starts_with("ws@"), "{echo}");
        assert_eq!(echo["host"], "ws.example.com", "HTTP/2's :authority becomes the backend's Host");
        assert_eq!(echo["x-forwarded-proto"], scheme);
    }

    // A backend closing idle kept-alive connections costs no request.
    for i in 0..6 {
        let r = http_get(http, "closer.example.com", &format!("/{i}")).await;
        assert_eq!(r.status, 200, "request {i}: {r:?}");
        tokio::time::sleep(Duration::from_millis(if i % 2 == 0 { 50 } else { 120 })).await;
    }
    assert!(closer.connections.load(Ordering::SeqCst) >= 2, "the backend did close idle connections");
    cancel.cancel();
    ingress.wait().await;
}

/// GET `<scheme>://ws.example.com/h2` over HTTP/2 on `io`; the backend's echo.
async fn h2_get<S>(io: S, scheme: &str) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(io))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("{scheme}://ws.example.com/h2"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200, "{scheme}");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    conn.abort();
    serde_json::from_slice(&body).unwrap()
}
