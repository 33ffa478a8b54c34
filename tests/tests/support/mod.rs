//! Shared harness of the end-to-end tests: a real etcd and rkube-apiserver per test, the real
//! kubectl (`$KUBECTL`, else `<workspace>/.tools/bin/kubectl`; never /usr/bin/kubectl) with a
//! private cache dir, manifests in a temp dir, and REST reads of the stored objects.
#![allow(dead_code)]

pub mod kubelet;
pub mod node;
pub mod rkubectl;

use rkube_testkit::{ApiServer, Etcd};
use serde_json::Value;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one kubectl invocation may take before the test fails instead of hanging.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(45);

pub fn kubectl_binary() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL").filter(|k| !k.is_empty()) {
        let p = PathBuf::from(k);
        assert!(p.exists(), "$KUBECTL={} does not exist", p.display());
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".tools/bin/kubectl");
    assert!(
        p.exists(),
        "kubectl v1.33 not found: set $KUBECTL or install it at {} (scripts/install-deps does); \
         /usr/bin/kubectl is a different version and is not used",
        p.display()
    );
    p
}

/// What one kubectl run produced.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// etcd + API server + a kubeconfig and a private kubectl cache dir.
pub struct Env {
    pub api: ApiServer,
    // Dropped after the API server.
    _etcd: Etcd,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    pub kubectl: PathBuf,
}

impl Env {
    pub fn start() -> Env {
        Self::start_with(&[])
    }

    /// Like [`Env::start`], with extra API server flags.
    pub fn start_with(api_args: &[&str]) -> Env {
        let kubectl = kubectl_binary();
        let etcd = Etcd::start().expect("etcd starts");
        let api = ApiServer::start_with(&etcd, api_args)
            .expect("rkube-apiserver starts (run `cargo build -p rkube-apiserver` first)");
        let kubeconfig = api.kubeconfig().expect("kubeconfig written");
        let dir = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("temp dir");
        Env { api, _etcd: etcd, kubeconfig, dir, kubectl }
    }

    /// Like [`Env::start`], the API server serving HTTPS with `pki`'s certificates and
    /// checking credentials; `kubeconfig` is an admin (system:masters) client certificate.
    pub fn start_secure(pki: &rkube_testkit::TestPki, api_args: &[&str]) -> Env {
        let kubectl = kubectl_binary();
        let etcd = Etcd::start().expect("etcd starts");
        let api = ApiServer::start_secure(&etcd, pki, api_args).expect("rkube-apiserver starts with TLS");
        let kubeconfig = api.kubeconfig().expect("kubeconfig written");
        let dir = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("temp dir");
        Env { api, _etcd: etcd, kubeconfig, dir, kubectl }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_as(&self.kubeconfig, args)
    }

    /// kubectl with another kubeconfig (another user).
    pub fn command_as(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs kubectl to completion, killing it (and failing the test) after KUBECTL_TIMEOUT.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_command(self.command(args), &format!("kubectl {args:?}"))
    }

    /// Runs kubectl as the user of `kubeconfig`.
    pub fn run_as(&self, kubeconfig: &Path, args: &[&str]) -> Out {
        self.run_command(self.command_as(kubeconfig, args), &format!("kubectl {args:?} as {}", kubeconfig.display()))
    }

    /// Runs any client command (kubectl, helm) to completion, killing it and failing the test
    /// after KUBECTL_TIMEOUT instead of hanging.
    pub fn run_command(&self, mut cmd: Command, what: &str) -> Out {
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{what} spawns: {e}"));
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let deadline = Instant::now() + KUBECTL_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the client") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} did not finish within {KUBECTL_TIMEOUT:?}\nstdout: {}\nstderr: {}\nserver log:\n{}",
                    stdout.recv().unwrap_or_default(),
                    stderr.recv().unwrap_or_default(),
                    self.api.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Out {
            code: status.code().unwrap_or(-1),
            stdout: stdout.recv().unwrap_or_default(),
            stderr: stderr.recv().unwrap_or_default(),
        }
    }

    /// Runs kubectl and asserts it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.code,
            0,
            "kubectl {args:?} failed\nstdout: {}\nstderr: {}\nserver log:\n{}",
            out.stdout,
            out.stderr,
            self.api.log_tail()
        );
        out.stdout
    }

    /// Runs kubectl and asserts it succeeded without printing anything on stderr (no warnings,
    /// as against Kubernetes); returns stdout.
    pub fn clean(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.code == 0 && out.stderr.trim().is_empty(),
            "kubectl {args:?}: exit {}\nstdout: {}\nstderr: {}\nserver log:\n{}",
            out.code,
            out.stdout,
            out.stderr,
            self.api.log_tail()
        );
        out.stdout
    }

    /// Polls `kubectl args` until it succeeds with output satisfying `done`, failing after
    /// `limit` with the last output and `context()` (the daemons' logs).
    pub fn until(
        &self,
        args: &[&str],
        what: &str,
        limit: Duration,
        done: impl Fn(&str) -> bool,
        context: impl Fn() -> String,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let out = self.run(args);
            if out.code == 0 && done(&out.stdout) {
                return out.stdout;
            }
            assert!(Instant::now() < deadline, "{what}: last output {:?} {:?}\n{}", out.stdout, out.stderr, context());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs kubectl and asserts it failed; returns its output.
    pub fn fails(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_ne!(out.code, 0, "kubectl {args:?} should fail\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
        out
    }

    /// `kubectl ... -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {all:?} printed no JSON ({e}): {out}"))
    }

    /// Writes a manifest into the temp dir and returns its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).expect("manifest written");
        path.to_string_lossy().into_owned()
    }

    /// `GET path` straight to the API server: (status code, JSON body).
    pub fn rest(&self, path: &str) -> (u16, Value) {
        let (code, body) = self.api.get(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} returned no JSON ({e}): {body}"));
        (code, json)
    }

    /// An object read over REST, which must exist.
    pub fn stored(&self, path: &str) -> Value {
        let (code, body) = self.rest(path);
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    /// Applies the standard fixture: Namespace `ns`, ConfigMap `cfg` and Pod `web` in it.
    pub fn create_fixture(&self, ns: &str) {
        let path = self.manifest(&format!("{ns}-fixture.yaml"), &fixture(ns));
        let out = self.ok(&["create", "-f", &path]);
        for line in [format!("namespace/{ns} created"), "configmap/cfg created".into(), "pod/web created".into()] {
            assert!(out.contains(&line), "create output lacks {line:?}: {out}");
        }
    }
}

/// Reads a pipe to the end on a thread; the result arrives on the channel.
pub fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

pub fn fixture(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    team: e2e
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: {ns}
  labels:
    app: demo
data:
  greeting: hello
  color: blue
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
spec:
  containers:
  - name: main
    image: nginx:1.27
"#
    )
}

pub fn configmap_yaml(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  key: \"{value}\"\n"
    )
}

pub fn rv(obj: &Value) -> u64 {
    let s = obj["metadata"]["resourceVersion"].as_str().unwrap_or_else(|| panic!("no resourceVersion in {obj}"));
    s.parse().unwrap_or_else(|_| panic!("resourceVersion {s:?} is not a number"))
}

pub fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or_else(|| panic!("no metadata.{field} in {obj}"))
}

/// A `kubectl get -w` child process whose stdout is parsed into JSON documents on a thread.
pub struct Watcher {
    pub child: Child,
    pub events: mpsc::Receiver<Value>,
    pub stderr: mpsc::Receiver<String>,
}

impl Watcher {
    pub fn start(env: &Env, args: &[&str]) -> Watcher {
        let mut child =
            env.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kubectl -w spawns");
        let stdout = child.stdout.take().unwrap();
        let stderr = drain(child.stderr.take().unwrap());
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            // kubectl prints one (pretty-printed) JSON document per event.
            for doc in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>() {
                match doc {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Watcher { child, events, stderr }
    }

    /// The next event, failing the test if none arrives in time.
    pub fn next(&mut self, what: &str) -> Value {
        match self.events.recv_timeout(Duration::from_secs(20)) {
            Ok(v) => v,
            Err(_) => {
                self.stop();
                panic!(
                    "kubectl -w: no event for {what} within 20 s; stderr: {}",
                    self.stderr.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
                );
            }
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}
