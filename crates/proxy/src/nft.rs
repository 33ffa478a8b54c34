//! Moving the kernel's table to a [`Ruleset`]: one `nft -f -` transaction per sync that
//! rewrites only what changed since the last one (so 10,000 Services cost nothing when one
//! endpoint moves, and session-affinity sets keep their entries), applied atomically: the
//! kernel commits every command of a file or none. Only the named table is ever touched.

use crate::error::ProxyError;
use crate::rules::{Chain, Ruleset};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// Map elements per `add element` command (nft handles big commands, this keeps lines sane).
const ELEMENTS_PER_COMMAND: usize = 1000;

/// What the table holds, as far as this process knows: what it wrote itself (`known`), and
/// objects found in the kernel at start-up whose content is unknown, so they are rewritten whole.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// What the last successful sync wrote.
    pub known: Ruleset,
    /// Chains found in the kernel.
    pub unknown_chains: BTreeSet<String>,
    /// Sets and maps found in the kernel (true for a map).
    pub unknown_maps: BTreeMap<String, bool>,
}

/// What is known about one chain.
enum ChainState<'a> {
    Absent,
    Unknown,
    Known(&'a Chain),
}

impl Applied {
    /// The state after `ruleset` has been applied.
    pub fn known(ruleset: Ruleset) -> Applied {
        Applied { known: ruleset, ..Default::default() }
    }

    /// The objects named in `nft -t list table` output, content unknown.
    pub fn from_listing(listing: &str) -> Applied {
        let mut applied = Applied::default();
        for line in listing.lines() {
            let Some(head) = line.trim().strip_suffix('{') else { continue };
            let mut words = head.split_whitespace();
            let (Some(kind), Some(name), None) = (words.next(), words.next(), words.next()) else { continue };
            match kind {
                "chain" => {
                    applied.unknown_chains.insert(name.to_string());
                }
                "map" | "set" => {
                    applied.unknown_maps.insert(name.to_string(), kind == "map");
                }
                _ => {}
            }
        }
        applied
    }

    /// True when nothing is known to exist.
    pub fn is_empty(&self) -> bool {
        self.known.chains.is_empty()
            && self.known.maps.is_empty()
            && self.unknown_chains.is_empty()
            && self.unknown_maps.is_empty()
    }

    fn chain(&self, name: &str) -> ChainState<'_> {
        match self.known.chains.get(name) {
            Some(c) => ChainState::Known(c),
            None if self.unknown_chains.contains(name) => ChainState::Unknown,
            None => ChainState::Absent,
        }
    }

    /// `Some(keyword)` when a set or map of that name exists.
    fn map_keyword(&self, name: &str) -> Option<&'static str> {
        match (self.known.maps.get(name), self.unknown_maps.get(name)) {
            (Some(m), _) => Some(m.keyword()),
            (None, Some(true)) => Some("map"),
            (None, Some(false)) => Some("set"),
            (None, None) => None,
        }
    }

    fn chain_names(&self) -> impl Iterator<Item = &String> {
        self.known.chains.keys().chain(self.unknown_chains.iter().filter(|n| !self.known.chains.contains_key(*n)))
    }

    fn map_names(&self) -> impl Iterator<Item = &String> {
        self.known.maps.keys().chain(self.unknown_maps.keys().filter(|n| !self.known.maps.contains_key(*n)))
    }
}

/// The `nft -f` script that turns `applied` into `desired` in table `ip <table>`, or None
/// when they are equal. Commands are ordered so every reference resolves inside the
/// transaction: objects are declared first, rules and elements filled in, and what is stale
/// flushed before it is deleted. Sets the kernel fills (session affinity) keep their entries.
pub fn transaction(table: &str, applied: &Applied, desired: &Ruleset) -> Option<String> {
    let t = format!("ip {table}");
    let mut out = String::new();
    let mut changed = false;
    let _ = writeln!(out, "add table {t}");

    for (name, map) in &desired.maps {
        match applied.map_keyword(name) {
            None => {}
            Some(k) if k == map.keyword() => continue,
            // A set became a map or the other way round (never by this code, but by hand):
            // the name can only be reused after a delete.
            Some(k) => {
                let _ = writeln!(out, "delete {k} {t} {name}");
            }
        }
        let _ = writeln!(out, "add {} {t} {name} {{ {} }}", map.keyword(), map.spec);
        changed = true;
    }
    for (name, chain) in &desired.chains {
        if !matches!(applied.chain(name), ChainState::Absent) {
            continue;
        }
        match &chain.hook {
            Some(hook) => writeln!(out, "add chain {t} {name} {{ {hook} }}"),
            None => writeln!(out, "add chain {t} {name}"),
        }
        .ok();
        changed = true;
    }

    for (name, chain) in &desired.chains {
        match applied.chain(name) {
            ChainState::Known(old) if old == chain => continue,
            ChainState::Known(_) | ChainState::Unknown => {
                let _ = writeln!(out, "flush chain {t} {name}");
            }
            ChainState::Absent => {}
        }
        changed = true;
        for rule in &chain.rules {
            let _ = writeln!(out, "add rule {t} {name} {rule}");
        }
    }

    for (name, map) in desired.maps.iter().filter(|(_, m)| !m.dynamic) {
        let known = applied.known.maps.get(name).filter(|old| old.keyword() == map.keyword());
        let unknown = applied.unknown_maps.get(name) == Some(&map.is_map);
        let (removed, added): (Vec<&String>, Vec<(&String, &String)>) = match known {
            Some(old) => (
                old.elements.iter().filter(|(k, v)| map.elements.get(*k) != Some(v)).map(|(k, _)| k).collect(),
                map.elements.iter().filter(|(k, v)| old.elements.get(*k) != Some(v)).collect(),
            ),
            None => {
                if unknown {
                    let _ = writeln!(out, "flush {} {t} {name}", map.keyword());
                    changed = true;
                }
                (Vec::new(), map.elements.iter().collect())
            }
        };
        for chunk in removed.chunks(ELEMENTS_PER_COMMAND) {
            let keys: Vec<&str> = chunk.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(out, "delete element {t} {name} {{ {} }}", keys.join(", "));
            changed = true;
        }
        for chunk in added.chunks(ELEMENTS_PER_COMMAND) {
            let items: Vec<String> =
                chunk.iter().map(|(k, v)| if map.is_map { format!("{k} : {v}") } else { k.to_string() }).collect();
            let _ = writeln!(out, "add element {t} {name} {{ {} }}", items.join(", "));
            changed = true;
        }
    }

    // Stale objects: every rule that could refer to them is flushed first.
    let stale_chains: Vec<&String> = applied.chain_names().filter(|k| !desired.chains.contains_key(*k)).collect();
    for name in &stale_chains {
        let _ = writeln!(out, "flush chain {t} {name}");
    }
    for name in applied.map_names().filter(|k| !desired.maps.contains_key(*k)) {
        if let Some(keyword) = applied.map_keyword(name) {
            let _ = writeln!(out, "delete {keyword} {t} {name}");
            changed = true;
        }
    }
    for name in &stale_chains {
        let _ = writeln!(out, "delete chain {t} {name}");
        changed = true;
    }
    changed.then_some(out)
}

/// Runs `nft -f -` with `script` on stdin; the kernel applies all of it or none.
pub fn apply(script: &str) -> Result<(), ProxyError> {
    run_nft(&["-f", "-"], Some(script)).map(|_| ())
}

/// The names in table `ip <table>` (empty when there is no such table).
pub fn read_table(table: &str) -> Result<Applied, ProxyError> {
    match run_nft(&["-t", "list", "table", "ip", table], None) {
        Ok(listing) => Ok(Applied::from_listing(&listing)),
        Err(ProxyError::Nft { message, .. }) if message.contains("No such file or directory") => Ok(Applied::default()),
        Err(e) => Err(e),
    }
}

/// Whether table `ip <table>` exists.
pub fn table_exists(table: &str) -> Result<bool, ProxyError> {
    match run_nft(&["list", "chain", "ip", table, "nat-prerouting"], None) {
        Ok(_) => Ok(true),
        Err(ProxyError::Nft { message, .. }) if message.contains("No such file or directory") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes table `ip <table>` if it exists; returns whether it did.
pub fn delete_table(table: &str) -> Result<bool, ProxyError> {
    match run_nft(&["delete", "table", "ip", table], None) {
        Ok(_) => Ok(true),
        Err(ProxyError::Nft { message, .. }) if message.contains("No such file or directory") => Ok(false),
        Err(e) => Err(e),
    }
}

fn run_nft(args: &[&str], stdin: Option<&str>) -> Result<String, ProxyError> {
    let command = format!("nft {}", args.join(" "));
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ProxyError::NftMissing { message: e.to_string() })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means nft exited early; its stderr says why.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| ProxyError::NftMissing { message: e.to_string() })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    // nft echoes the failing line of a long script; a few lines of it are enough.
    let message: String = stderr.lines().take(12).collect::<Vec<_>>().join("\n");
    Err(ProxyError::Nft { command, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Map;

    fn chain(rules: &[&str]) -> Chain {
        Chain { hook: None, rules: rules.iter().map(|r| r.to_string()).collect() }
    }

    fn ruleset() -> Ruleset {
        let mut rs = Ruleset::default();
        rs.chains.insert(
            "base".into(),
            Chain { hook: Some("type nat hook output priority -100;".into()), rules: vec!["jump a".into()] },
        );
        rs.chains.insert("a".into(), chain(&["goto b"]));
        rs.chains.insert("b".into(), chain(&["update @s { ip saddr }", "meta l4proto tcp dnat to 10.0.0.1:80"]));
        rs.maps.insert("s".into(), Map { spec: "type ipv4_addr;".into(), dynamic: true, ..Default::default() });
        let mut m =
            Map { is_map: true, spec: "type inet_proto . inet_service : verdict;".into(), ..Default::default() };
        m.elements.insert("tcp . 1".into(), "goto a".into());
        m.elements.insert("tcp . 2".into(), "goto b".into());
        rs.maps.insert("m".into(), m);
        let mut h = Map { spec: "type ipv4_addr . ipv4_addr;".into(), ..Default::default() };
        h.elements.insert("10.0.0.1 . 10.0.0.1".into(), String::new());
        rs.maps.insert("h".into(), h);
        rs
    }

    #[test]
    fn a_first_sync_declares_then_fills() {
        let script = transaction("t", &Applied::default(), &ruleset()).unwrap();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines,
            [
                "add table ip t",
                "add set ip t h { type ipv4_addr . ipv4_addr; }",
                "add map ip t m { type inet_proto . inet_service : verdict; }",
                "add set ip t s { type ipv4_addr; }",
                "add chain ip t a",
                "add chain ip t b",
                "add chain ip t base { type nat hook output priority -100; }",
                "add rule ip t a goto b",
                "add rule ip t b update @s { ip saddr }",
                "add rule ip t b meta l4proto tcp dnat to 10.0.0.1:80",
                "add rule ip t base jump a",
                "add element ip t h { 10.0.0.1 . 10.0.0.1 }",
                "add element ip t m { tcp . 1 : goto a, tcp . 2 : goto b }",
            ]
        );
    }

    #[test]
    fn later_syncs_write_only_differences() {
        let old = ruleset();
        let applied = Applied::known(old.clone());
        assert_eq!(transaction("t", &applied, &old), None);

        let mut new = old.clone();
        new.chains.remove("b");
        new.maps.remove("s");
        new.chains.insert("a".into(), chain(&["goto c"]));
        new.chains.insert("c".into(), chain(&["meta l4proto tcp dnat to 10.0.0.2:80"]));
        let m = new.maps.get_mut("m").unwrap();
        m.elements.remove("tcp . 2");
        m.elements.insert("tcp . 1".into(), "goto c".into());
        m.elements.insert("tcp . 3".into(), "goto c".into());
        let h = new.maps.get_mut("h").unwrap();
        h.elements.clear();
        h.elements.insert("10.0.0.2 . 10.0.0.2".into(), String::new());
        let script = transaction("t", &applied, &new).unwrap();
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines,
            [
                "add table ip t",
                "add chain ip t c",
                "flush chain ip t a",
                "add rule ip t a goto c",
                "add rule ip t c meta l4proto tcp dnat to 10.0.0.2:80",
                "delete element ip t h { 10.0.0.1 . 10.0.0.1 }",
                "add element ip t h { 10.0.0.2 . 10.0.0.2 }",
                "delete element ip t m { tcp . 1, tcp . 2 }",
                "add element ip t m { tcp . 1 : goto c, tcp . 3 : goto c }",
                "flush chain ip t b",
                "delete set ip t s",
                "delete chain ip t b",
            ]
        );
    }

    #[test]
    fn objects_found_in_the_kernel_are_rewritten_or_removed() {
        let listing = "table ip t {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n\tset old {\n\t}\n\tmap m {\n\t}\n\tset h {\n\t}\n\tchain a {\n\t\tgoto b\n\t}\n\tchain gone {\n\t}\n}\n";
        let applied = Applied::from_listing(listing);
        assert_eq!(applied.unknown_chains.iter().collect::<Vec<_>>(), ["a", "gone"]);
        let script = transaction("t", &applied, &ruleset()).unwrap();
        assert!(!script.contains("add set ip t s"), "the existing affinity set is kept:\n{script}");
        assert!(!script.contains("flush set ip t s"), "and keeps its entries:\n{script}");
        for line in [
            "flush chain ip t a",
            "flush map ip t m",
            "flush set ip t h",
            "add element ip t h { 10.0.0.1 . 10.0.0.1 }",
            "delete chain ip t gone",
            "delete set ip t old",
            "add chain ip t b",
        ] {
            assert!(script.lines().any(|l| l == line), "missing {line:?} in\n{script}");
        }
        let flush = script.find("flush chain ip t gone").unwrap();
        assert!(flush < script.find("delete chain ip t gone").unwrap());
    }
}
