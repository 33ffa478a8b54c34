//! rkubectl beside the real kubectl in the e2e tests: the binary, a command line against an
//! [`Env`] as `Env::run` gives kubectl's, and the age words both clients print.

use super::{Env, Out};
use rkube_testkit::apiserver::bin_dir;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The rkubectl binary next to the daemons (build it first).
pub fn rkubectl_binary() -> PathBuf {
    let p = bin_dir().join("rkubectl");
    assert!(p.exists(), "{} does not exist: run `cargo build -p rkubectl` first", p.display());
    p
}

/// rkubectl with `env`'s kubeconfig and its own cache dir, no stdin.
pub fn rk_command(env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(rkubectl_binary());
    cmd.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg("--cache-dir")
        .arg(env.dir.path().join("rk-cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    cmd
}

/// Runs rkubectl like `Env::run` runs kubectl.
pub fn rk(env: &Env, args: &[&str]) -> Out {
    env.run_command(rk_command(env, args), &format!("rkubectl {args:?}"))
}

/// Whether `word` is an age as kubectl prints them (`5s`, `2m30s`, `3h`, `4d`, `1y`).
pub fn is_age(word: &str) -> bool {
    let mut saw_digit = false;
    let mut saw_unit = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            saw_digit = true;
        } else if matches!(c, 's' | 'm' | 'h' | 'd' | 'y') && saw_digit {
            saw_unit = true;
            saw_digit = false;
        } else {
            return false;
        }
    }
    saw_unit && !saw_digit
}

/// A control plane where objects move without containers: etcd, the API server, the scheduler,
/// the controller-manager, one Node made from a manifest, and the kubelet stand-in.
pub struct ControlPlane {
    /// etcd, the API server and kubectl.
    pub env: Env,
    _scheduler: rkube_testkit::Daemon,
    /// The controller-manager, for its log.
    pub controllers: rkube_testkit::Daemon,
    _kubelet: super::kubelet::KubeletStandIn,
}

impl ControlPlane {
    /// Starts it all; `node_yaml` is the one Node's manifest.
    pub fn start(node_yaml: &str) -> ControlPlane {
        let env = Env::start();
        let scheduler =
            rkube_testkit::Daemon::start("rkube-scheduler", &env.api, &["--leader-elect=false"]).expect("scheduler");
        let controllers = rkube_testkit::Daemon::start("rkube-controller-manager", &env.api, &["--leader-elect=false"])
            .expect("controller-manager");
        env.clean(&["create", "-f", &env.manifest("node.yaml", node_yaml)]);
        let kubelet = super::kubelet::KubeletStandIn::start(&env.api.url());
        ControlPlane { env, _scheduler: scheduler, controllers, _kubelet: kubelet }
    }
}

/// Replaces every age-like word (`5s`, `2m30s`, `3h`) by `AGE`, keeping everything else —
/// spacing included — byte for byte.
pub fn mask_ages(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if c == ' ' || c == '\n' || c == '(' || c == ')' {
            out.push_str(if is_age(&word) { "AGE" } else { &word });
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(if is_age(&word) { "AGE" } else { &word });
    out
}

/// Runs `args` with kubectl and rkubectl until their stdout agree byte for byte (an age that
/// ticks between the two runs, or a Lease renewed in between, changes one run); should that
/// never settle, the outputs must still agree with their ages masked. Stderr and exit codes
/// must match. Returns rkubectl's stdout.
pub fn same_bytes(env: &Env, args: &[&str]) -> String {
    let mut attempt = 0;
    let (k, r) = loop {
        let k = env.run(args);
        let r = rk(env, args);
        attempt += 1;
        if (k.stdout == r.stdout && k.code == r.code) || attempt >= 30 {
            break (k, r);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        k.code, r.code,
        "exit code of {args:?}\nkubectl: {}{}\nrkubectl: {}{}",
        k.stdout, k.stderr, r.stdout, r.stderr
    );
    assert_eq!(
        mask_ages(&k.stdout),
        mask_ages(&r.stdout),
        "stdout of {args:?}\n--- kubectl\n{}{}--- rkubectl\n{}{}",
        k.stdout,
        k.stderr,
        r.stdout,
        r.stderr
    );
    assert_eq!(k.stderr.trim(), r.stderr.trim(), "stderr of {args:?}");
    r.stdout
}
