//! The kernel settings Service routing needs: forwarding (pods and outside clients reach
//! endpoints through this node) and bridge netfilter (so a pod reaching a Service whose
//! endpoint is on the same bridge passes the nat hooks; without it the DNAT never happens).

use std::path::Path;

/// `(path under /proc/sys, wanted value)`.
pub const REQUIRED: [(&str, &str); 2] = [("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")];

/// Sets each of [`REQUIRED`] that is not already set; failures are logged, not fatal (a
/// container or a kernel without br_netfilter still routes most traffic).
pub fn ensure() {
    for (key, value) in REQUIRED {
        if let Err(e) = set(Path::new("/proc/sys"), key, value) {
            tracing::warn!(sysctl = key.replace('/', "."), value, error = %e, "cannot set sysctl");
        }
    }
}

/// Writes `value` to `<root>/<key>` unless it already holds it; returns whether it wrote.
pub fn set(root: &Path, key: &str, value: &str) -> std::io::Result<bool> {
    let path = root.join(key);
    let current = std::fs::read_to_string(&path)?;
    if current.trim() == value {
        return Ok(false);
    }
    std::fs::write(&path, value)?;
    tracing::info!(sysctl = key.replace('/', "."), value, "set sysctl");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_when_different() {
        let dir = std::env::temp_dir().join(format!("rkube-proxy-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net/ipv4")).unwrap();
        std::fs::write(dir.join("net/ipv4/ip_forward"), "0\n").unwrap();
        assert!(set(&dir, "net/ipv4/ip_forward", "1").unwrap());
        assert_eq!(std::fs::read_to_string(dir.join("net/ipv4/ip_forward")).unwrap(), "1");
        assert!(!set(&dir, "net/ipv4/ip_forward", "1").unwrap());
        assert!(set(&dir, "net/bridge/bridge-nf-call-iptables", "1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
