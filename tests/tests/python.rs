//! The official Python client (`kubernetes` on PyPI, installed by scripts/install-deps into
//! `.tools/python`) against a real etcd and rkube-apiserver; the assertions live in
//! tests/python/client_test.py.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

#[test]
fn python_client_lists_creates_patches_deletes_and_watches() {
    let env = Env::start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let site = root.join(".tools/python");
    assert!(site.join("kubernetes").exists(), "the kubernetes Python package is missing from {} (scripts/install-deps installs it)", site.display());
    let mut cmd = Command::new("python3");
    cmd.arg(root.join("tests/python/client_test.py")).env("PYTHONPATH", &site).env("RKUBE_SERVER", env.api.url());
    let out = env.run_command(cmd, "python3 tests/python/client_test.py");
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert_eq!(out.code, 0, "python client test failed\nstdout: {stdout}\nstderr: {stderr}\nserver log:\n{}", env.api.log_tail());
    assert!(stdout.contains("python client: ok"), "{stdout}");
}
