//! helm v4 (`$HELM`, else `<workspace>/.tools/bin/helm`) against a real etcd and
//! rkube-apiserver: install, list, upgrade, rollback and uninstall of a chart with a Deployment,
//! Service, ConfigMap and Secret. helm keeps its releases in Secrets, which must round-trip
//! exactly.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn helm_binary() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".tools/bin/helm");
    assert!(p.exists(), "helm v4 not found at {} (scripts/install-deps installs it)", p.display());
    p
}

fn write_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("shop");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: shop\nversion: 0.1.0\nappVersion: \"1.0\"\n").unwrap();
    std::fs::write(chart.join("values.yaml"), "replicas: 2\ncolor: blue\nimage: nginx:1.27\n").unwrap();
    let templates = [
        (
            "deployment.yaml",
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app: {{ .Release.Name }}-web
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}-web
    spec:
      containers:
      - name: web
        image: {{ .Values.image }}
        ports:
        - containerPort: 80
        envFrom:
        - configMapRef:
            name: {{ .Release.Name }}-config
"#,
        ),
        (
            "service.yaml",
            r#"apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector:
    app: {{ .Release.Name }}-web
  ports:
  - port: 80
    targetPort: 80
"#,
        ),
        (
            "configmap.yaml",
            r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  COLOR: {{ .Values.color | quote }}
"#,
        ),
        (
            "secret.yaml",
            r#"apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-secret
type: Opaque
stringData:
  token: t0ps3cret
"#,
        ),
    ];
    for (name, body) in templates {
        std::fs::write(chart.join("templates").join(name), body).unwrap();
    }
    chart
}

struct Helm<'a> {
    env: &'a Env,
    bin: PathBuf,
}

impl Helm<'_> {
    fn run(&self, args: &[&str]) -> Out {
        let home = self.env.dir.path().join("helm");
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null());
        self.env.run_command(cmd, &format!("helm {args:?}"))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "helm {args:?}\nstdout: {}\nstderr: {}\nserver log:\n{}", out.stdout, out.stderr, self.env.api.log_tail());
        out.stdout
    }
}

#[test]
fn helm_install_upgrade_rollback_uninstall() {
    let env = Env::start();
    let helm = Helm { env: &env, bin: helm_binary() };
    let chart = write_chart(env.dir.path());
    let chart = chart.to_str().unwrap();
    env.clean(&["create", "namespace", "shop"]);

    let installed = helm.ok(&["install", "r1", chart, "-n", "shop"]);
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    let deploy = env.stored("/apis/apps/v1/namespaces/shop/deployments/r1-web");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(env.stored("/api/v1/namespaces/shop/configmaps/r1-config")["data"]["COLOR"], "blue");
    assert_eq!(env.stored("/api/v1/namespaces/shop/secrets/r1-secret")["data"]["token"], "dDBwczNjcmV0");
    assert_eq!(env.stored("/api/v1/namespaces/shop/services/r1-web")["spec"]["ports"][0]["port"], 80);
    let release = env.stored("/api/v1/namespaces/shop/secrets/sh.helm.release.v1.r1.v1");
    assert_eq!(release["type"], "helm.sh/release.v1");

    let list = helm.ok(&["list", "-n", "shop"]);
    assert!(list.lines().any(|l| l.starts_with("r1") && l.contains("deployed") && l.contains("shop-0.1.0")), "{list}");

    helm.ok(&["upgrade", "r1", chart, "-n", "shop", "--set", "replicas=3", "--set", "color=green"]);
    assert_eq!(env.stored("/apis/apps/v1/namespaces/shop/deployments/r1-web")["spec"]["replicas"], 3);
    assert_eq!(env.stored("/api/v1/namespaces/shop/configmaps/r1-config")["data"]["COLOR"], "green");
    let history = helm.ok(&["history", "r1", "-n", "shop"]);
    assert_eq!(history.lines().count(), 3, "header and two revisions: {history}");

    helm.ok(&["rollback", "r1", "1", "-n", "shop"]);
    assert_eq!(env.stored("/apis/apps/v1/namespaces/shop/deployments/r1-web")["spec"]["replicas"], 2);
    assert_eq!(env.stored("/api/v1/namespaces/shop/configmaps/r1-config")["data"]["COLOR"], "blue");
    let status = helm.ok(&["status", "r1", "-n", "shop"]);
    assert!(status.contains("REVISION: 3"), "{status}");

    helm.ok(&["uninstall", "r1", "-n", "shop"]);
    for path in [
        "/apis/apps/v1/namespaces/shop/deployments/r1-web",
        "/api/v1/namespaces/shop/configmaps/r1-config",
        "/api/v1/namespaces/shop/secrets/r1-secret",
        "/api/v1/namespaces/shop/services/r1-web",
        "/api/v1/namespaces/shop/secrets/sh.helm.release.v1.r1.v1",
    ] {
        assert_eq!(env.rest(path).0, 404, "{path} is gone after uninstall");
    }
    assert!(helm.ok(&["list", "-n", "shop", "-q"]).trim().is_empty());
}
