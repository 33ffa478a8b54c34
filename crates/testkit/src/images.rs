//! The test images: OCI archives built by `scripts/build-test-images` from Debian's busybox-static,
//! and the names they go by.
//!
//! - [`Containerd::start`](crate::Containerd::start) imports both archives (no registry needed),
//!   so [`BUSYBOX_IMAGE`] and [`PAUSE_IMAGE`] are present in every test containerd; the pause
//!   image is its `sandbox_image`.
//! - [`Registry::push`](crate::Registry::push) puts an archive in a test registry under any
//!   name, conventionally [`BUSYBOX_REPO`]`:<tag>`, pulled as `<registry host>/rkube/busybox:<tag>`.
//! - `scripts/up` pushes them as `127.0.0.1:5000/rkube/busybox:latest` and
//!   `127.0.0.1:5000/rkube/pause:latest`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, anyhow, bail};

/// Name of the busybox image once imported into containerd: `/bin/busybox` plus a symlink per
/// applet in `/bin`, root and nobody (65534) users, `/tmp`; default command `sh`.
pub const BUSYBOX_IMAGE: &str = "docker.io/rkube/busybox:latest";

/// Name of the pause (sandbox) image once imported: a shell that sleeps and exits at once on
/// SIGTERM or SIGINT.
pub const PAUSE_IMAGE: &str = "docker.io/rkube/pause:latest";

/// Repository path of the busybox image inside a registry (`<host>/rkube/busybox:<tag>`).
pub const BUSYBOX_REPO: &str = "rkube/busybox";

/// Repository path of the pause image inside a registry (`<host>/rkube/pause:<tag>`).
pub const PAUSE_REPO: &str = "rkube/pause";

/// File name of the busybox archive inside [`test_images_dir`].
pub const BUSYBOX_ARCHIVE: &str = "busybox.tar";

/// File name of the pause archive inside [`test_images_dir`].
pub const PAUSE_ARCHIVE: &str = "pause.tar";

/// The directory holding [`BUSYBOX_ARCHIVE`] and [`PAUSE_ARCHIVE`], building them on first use.
///
/// Runs `scripts/build-test-images` at most once per process; the script itself caches across
/// processes and serialises concurrent builds, so parallel test binaries share one build.
/// The directory is `$RKUBE_IMAGES_DIR` if set, else `<repo>/target/test-images`.
pub fn test_images_dir() -> anyhow::Result<PathBuf> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| build().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!(e))
}

/// Path of one archive (e.g. [`BUSYBOX_ARCHIVE`]) in [`test_images_dir`].
pub fn archive(name: &str) -> anyhow::Result<PathBuf> {
    Ok(test_images_dir()?.join(name))
}

/// The repository root, found from this crate's manifest dir (`<repo>/crates/testkit`).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build() -> anyhow::Result<PathBuf> {
    let repo = repo_root();
    let script = repo.join("scripts/build-test-images");
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(&repo)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({}): {}", script.display(), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    // The script prints the output directory as its only stdout line.
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = PathBuf::from(dir);
    for archive in [BUSYBOX_ARCHIVE, PAUSE_ARCHIVE] {
        if !dir.join(archive).is_file() {
            bail!("{} did not produce {}", script.display(), dir.join(archive).display());
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_both_archives_as_oci_layouts() {
        let dir = test_images_dir().expect("test images");
        for name in [BUSYBOX_ARCHIVE, PAUSE_ARCHIVE] {
            let listing = Command::new("tar").arg("-tf").arg(dir.join(name)).output().expect("tar -t");
            let listing = String::from_utf8_lossy(&listing.stdout);
            assert!(listing.lines().any(|l| l == "oci-layout"), "{name}: {listing}");
            assert!(listing.lines().any(|l| l == "index.json"), "{name}: {listing}");
            // Manifest, config and the one layer.
            assert_eq!(listing.lines().filter(|l| l.starts_with("blobs/sha256/") && l.len() > 20).count(), 3);
        }
        // Cached: a second call in the process is the same directory, and the script itself
        // does not rebuild (the archives keep their modification time).
        let before = std::fs::metadata(dir.join(BUSYBOX_ARCHIVE)).and_then(|m| m.modified()).expect("mtime");
        let again = build().expect("second build");
        assert_eq!(again.canonicalize().ok(), dir.canonicalize().ok());
        let after = std::fs::metadata(dir.join(BUSYBOX_ARCHIVE)).and_then(|m| m.modified()).expect("mtime");
        assert_eq!(before, after);
    }
}
