//! Service, Endpoints, EndpointSlice, Ingress, IngressClass and NetworkPolicy.

use super::meta::{immutable, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, push_msgs, validate_labels};
use super::pod::{port_name_problems, port_num_problems, protocol_field, validate_port_ref};
use super::{Errs, arr_at, at, index, int_at, invalid_shown, is_set, join, obj_at, str_at, too_many};
use crate::FieldError;
use serde_json::Value;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Validates a Service.
pub(super) fn validate_service(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let ty = str_at(spec, "type");
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    match ty {
        "" => errs.push(FieldError::required("spec.type", "")),
        t if types.contains(&t) => {}
        t => errs.push(FieldError::not_supported("spec.type", &Value::from(t), &types)),
    }

    // clusterIPs mirrors clusterIP when only the latter is given.
    let cluster_ip = str_at(spec, "clusterIP");
    let mut ips: Vec<&str> = arr_at(spec, "clusterIPs").iter().map(|v| v.as_str().unwrap_or_default()).collect();
    if ips.is_empty() && !cluster_ip.is_empty() {
        ips.push(cluster_ip);
    }
    let headless = ips.first() == Some(&"None");
    if !cluster_ip.is_empty() && ips.first().is_some_and(|first| *first != cluster_ip) {
        errs.push(FieldError::invalid("spec.clusterIPs", at(spec, "clusterIPs"), "first value must match `clusterIP`"));
    }
    if ty == "ExternalName" {
        if !ips.is_empty() {
            errs.push(FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
        }
        let name = str_at(spec, "externalName");
        if name.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            let trimmed = name.strip_suffix('.').unwrap_or(name);
            push_msgs(errs, "spec.externalName", name, is_dns1123_subdomain(trimmed));
        }
    } else {
        for (i, ip) in ips.iter().enumerate() {
            let path = index("spec.clusterIPs", i);
            if *ip == "None" {
                if i > 0 || ips.len() > 1 {
                    errs.push(FieldError::invalid(path, &Value::from(*ip), "'None' must be the first and only value"));
                } else if ty == "NodePort" || ty == "LoadBalancer" {
                    errs.push(FieldError::invalid(
                        path,
                        &Value::from(*ip),
                        &format!("may not be set to 'None' for {ty} services"),
                    ));
                }
            } else if !is_ip(ip) {
                errs.push(FieldError::invalid(path, &Value::from(*ip), "must be empty, 'None', or a valid IP address"));
            }
        }
    }

    let ports = arr_at(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = index("spec.ports", i);
        let name = str_at(p, "name");
        if name.is_empty() {
            if require_name {
                errs.push(FieldError::required(join(&path, "name"), ""));
            }
        } else {
            push_msgs(errs, &join(&path, "name"), name, is_dns1123_label(name));
            if !names.insert(name) {
                errs.push(FieldError::duplicate(join(&path, "name"), &Value::from(name)));
            }
        }
        let port = int_at(p, "port").unwrap_or(0);
        for m in port_num_problems(port) {
            errs.push(FieldError::invalid(join(&path, "port"), &Value::from(port), &m));
        }
        protocol_field(p, &path, errs);
        match p.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64() == Some(0) => {}
            Some(t) => validate_port_ref(t, &join(&path, "targetPort"), errs),
        }
        if let Some(np) = int_at(p, "nodePort").filter(|n| *n != 0) {
            let np_path = join(&path, "nodePort");
            if ty == "ClusterIP" || ty == "ExternalName" {
                errs.push(FieldError::forbidden(np_path, &format!("may not be used when `type` is '{ty}'")));
            } else if !NODE_PORT_RANGE.contains(&np) {
                errs.push(FieldError::invalid(
                    np_path,
                    &Value::from(np),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            } else if !node_ports.insert((np, str_at(p, "protocol"))) {
                errs.push(FieldError::duplicate(np_path, &Value::from(np)));
            }
        }
    }

    match str_at(spec, "sessionAffinity") {
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        "None" => {}
        "ClientIP" => {
            if let Some(t) = int_at(at(at(spec, "sessionAffinityConfig"), "clientIP"), "timeoutSeconds")
                && !(1..=86400).contains(&t)
            {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    &Value::from(t),
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        other => {
            errs.push(FieldError::not_supported("spec.sessionAffinity", &Value::from(other), &["ClientIP", "None"]))
        }
    }
    let etp = str_at(spec, "externalTrafficPolicy");
    if !etp.is_empty() {
        if ty != "NodePort" && ty != "LoadBalancer" {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                &Value::from(etp),
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            ));
        } else if etp != "Cluster" && etp != "Local" {
            errs.push(FieldError::not_supported(
                "spec.externalTrafficPolicy",
                &Value::from(etp),
                &["Cluster", "Local"],
            ));
        }
    }
    let itp = str_at(spec, "internalTrafficPolicy");
    if !itp.is_empty() && itp != "Cluster" && itp != "Local" {
        errs.push(FieldError::not_supported("spec.internalTrafficPolicy", &Value::from(itp), &["Cluster", "Local"]));
    }
    let ifp = str_at(spec, "ipFamilyPolicy");
    let policies = ["PreferDualStack", "RequireDualStack", "SingleStack"];
    if !ifp.is_empty() && !policies.contains(&ifp) {
        errs.push(FieldError::not_supported("spec.ipFamilyPolicy", &Value::from(ifp), &policies));
    }
    let mut families = HashSet::new();
    for (i, f) in arr_at(spec, "ipFamilies").iter().enumerate() {
        let path = index("spec.ipFamilies", i);
        match f.as_str().unwrap_or_default() {
            fam @ ("IPv4" | "IPv6") => {
                if !families.insert(fam) {
                    errs.push(FieldError::duplicate(path, f));
                }
            }
            _ => errs.push(FieldError::not_supported(path, f, &["IPv4", "IPv6"])),
        }
    }
    validate_labels(obj_at(spec, "selector"), "spec.selector", errs);
    for (i, ip) in arr_at(spec, "externalIPs").iter().enumerate() {
        if !ip.as_str().is_some_and(is_ip) {
            errs.push(FieldError::invalid(index("spec.externalIPs", i), ip, "must be a valid IP address"));
        }
    }
}

/// A Service's cluster IP may not change once allocated (except to or from ExternalName).
pub(super) fn validate_service_update(new: &Value, old: &Value, errs: &mut Errs) {
    let (n, o) = (at(new, "spec"), at(old, "spec"));
    if str_at(n, "type") == "ExternalName" || str_at(o, "type") == "ExternalName" {
        return;
    }
    if !str_at(o, "clusterIP").is_empty() {
        immutable(at(n, "clusterIP"), at(o, "clusterIP"), "spec.clusterIP", errs);
    }
    let (new_ips, old_ips) = (arr_at(n, "clusterIPs"), arr_at(o, "clusterIPs"));
    if let (Some(new_first), Some(old_first)) = (new_ips.first(), old_ips.first())
        && new_first != old_first
    {
        errs.push(FieldError::invalid("spec.clusterIPs[0]", new_first, "may not change once set"));
    }
}

/// Validates Endpoints.
pub(super) fn validate_endpoints(obj: &Value, errs: &mut Errs) {
    for (i, subset) in arr_at(obj, "subsets").iter().enumerate() {
        let spath = index("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr_at(subset, list).iter().enumerate() {
                let ip = str_at(a, "ip");
                if !is_ip(ip) {
                    errs.push(FieldError::invalid(
                        join(&index(&join(&spath, list), j), "ip"),
                        &Value::from(ip),
                        "must be a valid IP address",
                    ));
                }
            }
        }
        let ports = arr_at(subset, "ports");
        for (j, p) in ports.iter().enumerate() {
            let ppath = index(&join(&spath, "ports"), j);
            let name = str_at(p, "name");
            if name.is_empty() {
                if ports.len() > 1 {
                    errs.push(FieldError::required(join(&ppath, "name"), ""));
                }
            } else {
                push_msgs(errs, &join(&ppath, "name"), name, is_dns1123_label(name));
            }
            let port = int_at(p, "port").unwrap_or(0);
            for m in port_num_problems(port) {
                errs.push(FieldError::invalid(join(&ppath, "port"), &Value::from(port), &m));
            }
            protocol_field(p, &ppath, errs);
        }
    }
}

/// Validates an EndpointSlice.
pub(super) fn validate_endpoint_slice(obj: &Value, errs: &mut Errs) {
    let address_type = str_at(obj, "addressType");
    let types = ["FQDN", "IPv4", "IPv6"];
    match address_type {
        "" => errs.push(FieldError::required("addressType", "")),
        t if types.contains(&t) => {}
        t => errs.push(FieldError::not_supported("addressType", &Value::from(t), &types)),
    }
    let endpoints = arr_at(obj, "endpoints");
    if endpoints.len() > 1000 {
        errs.push(too_many("endpoints", endpoints.len(), 1000));
    }
    for (i, e) in endpoints.iter().enumerate() {
        let apath = join(&index("endpoints", i), "addresses");
        let addresses = arr_at(e, "addresses");
        if addresses.is_empty() {
            errs.push(FieldError::required(&apath, "must contain at least 1 address"));
        } else if addresses.len() > 100 {
            errs.push(too_many(&apath, addresses.len(), 100));
        }
        for (j, a) in addresses.iter().enumerate() {
            let s = a.as_str().unwrap_or_default();
            let path = index(&apath, j);
            match address_type {
                "IPv4" if s.parse::<Ipv4Addr>().is_err() => {
                    errs.push(FieldError::invalid(path, a, "must be a valid IPv4 address"))
                }
                "IPv6" if s.parse::<Ipv6Addr>().is_err() => {
                    errs.push(FieldError::invalid(path, a, "must be a valid IPv6 address"))
                }
                "FQDN" => push_msgs(errs, &path, s, is_dns1123_subdomain(s)),
                _ => {}
            }
        }
    }
    let mut names = HashSet::new();
    for (i, p) in arr_at(obj, "ports").iter().enumerate() {
        let ppath = index("ports", i);
        let name = str_at(p, "name");
        if !name.is_empty() {
            push_msgs(errs, &join(&ppath, "name"), name, is_dns1123_label(name));
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(join(&ppath, "name"), &Value::from(name)));
        }
        if let Some(port) = int_at(p, "port") {
            for m in port_num_problems(port) {
                errs.push(FieldError::invalid(join(&ppath, "port"), &Value::from(port), &m));
            }
        }
        protocol_field(p, &ppath, errs);
    }
}

/// Validates an Ingress.
pub(super) fn validate_ingress(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let rules = arr_at(spec, "rules");
    if rules.is_empty() && !is_set(spec, "defaultBackend") {
        errs.push(invalid_shown(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = spec.get("defaultBackend").filter(|b| !b.is_null()) {
        validate_backend(b, "spec.defaultBackend", errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let rpath = index("spec.rules", i);
        let host = str_at(rule, "host");
        if !host.is_empty() {
            let hpath = join(&rpath, "host");
            if is_ip(host) {
                errs.push(FieldError::invalid(hpath, &Value::from(host), "must be a DNS name, not an IP address"));
            } else {
                let bare = host.strip_prefix("*.").unwrap_or(host);
                push_msgs(errs, &hpath, host, is_dns1123_subdomain(bare));
            }
        }
        let Some(http) = rule.get("http").filter(|h| !h.is_null()) else { continue };
        let ppath = join(&rpath, "http.paths");
        let paths = arr_at(http, "paths");
        if paths.is_empty() {
            errs.push(FieldError::required(&ppath, ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let path = index(&ppath, j);
            let path_type = str_at(p, "pathType");
            let types = ["Exact", "ImplementationSpecific", "Prefix"];
            let value = str_at(p, "path");
            match path_type {
                "" => errs.push(FieldError::required(join(&path, "pathType"), "pathType must be specified")),
                t if types.contains(&t) => {
                    if (t != "ImplementationSpecific" || !value.is_empty()) && !value.starts_with('/') {
                        errs.push(FieldError::invalid(
                            join(&path, "path"),
                            &Value::from(value),
                            "must be an absolute path",
                        ));
                    }
                }
                t => errs.push(FieldError::not_supported(join(&path, "pathType"), &Value::from(t), &types)),
            }
            validate_backend(at(p, "backend"), &join(&path, "backend"), errs);
        }
    }
    let class = str_at(spec, "ingressClassName");
    if !class.is_empty() {
        push_msgs(errs, "spec.ingressClassName", class, is_dns1123_subdomain(class));
    }
}

fn validate_backend(b: &Value, path: &str, errs: &mut Errs) {
    let empty = Value::from("");
    match (is_set(b, "resource"), b.get("service").filter(|s| !s.is_null())) {
        (true, Some(_)) => {
            errs.push(FieldError::invalid(path, &empty, "cannot set both resource and service backends"))
        }
        (true, None) => {}
        (false, Some(svc)) => {
            let name = str_at(svc, "name");
            let npath = join(path, "service.name");
            if name.is_empty() {
                errs.push(FieldError::required(npath, ""));
            } else {
                push_msgs(errs, &npath, name, is_dns1035_label(name));
            }
            let port = at(svc, "port");
            let port_name = str_at(port, "name");
            let number = int_at(port, "number").unwrap_or(0);
            match (port_name.is_empty(), number == 0) {
                (false, false) => {
                    errs.push(FieldError::invalid(path, &empty, "cannot set both port name & port number"))
                }
                (false, true) => {
                    push_msgs(errs, &join(path, "service.port.name"), port_name, port_name_problems(port_name))
                }
                (true, false) => {
                    for m in port_num_problems(number) {
                        errs.push(FieldError::invalid(join(path, "service.port.number"), &Value::from(number), &m));
                    }
                }
                (true, true) => errs.push(FieldError::required(path, "port name or number is required")),
            }
        }
        (false, None) => errs.push(FieldError::invalid(path, &empty, "resource or service backend is required")),
    }
}

/// Validates an IngressClass.
pub(super) fn validate_ingress_class(obj: &Value, errs: &mut Errs) {
    let controller = str_at(at(obj, "spec"), "controller");
    let path = "spec.controller";
    if controller.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    if controller.len() > 250 {
        errs.push(FieldError::too_long(path, 250));
    }
    match controller.split_once('/') {
        Some((domain, _)) => push_msgs(errs, path, domain, is_dns1123_subdomain(domain)),
        None => errs.push(FieldError::invalid(
            path,
            &Value::from(controller),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
}

/// An IngressClass' controller may not change.
pub(super) fn validate_ingress_class_update(new: &Value, old: &Value, errs: &mut Errs) {
    immutable(at(at(new, "spec"), "controller"), at(at(old, "spec"), "controller"), "spec.controller", errs);
}

/// Validates a NetworkPolicy.
pub(super) fn validate_network_policy(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    super::workloads::validate_label_selector(at(spec, "podSelector"), "spec.podSelector", errs);
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr_at(spec, direction).iter().enumerate() {
            let rpath = index(&join("spec", direction), i);
            for (j, port) in arr_at(rule, "ports").iter().enumerate() {
                validate_policy_port(port, &index(&join(&rpath, "ports"), j), errs);
            }
            for (j, peer) in arr_at(rule, peers).iter().enumerate() {
                validate_policy_peer(peer, &index(&join(&rpath, peers), j), errs);
            }
        }
    }
    let types = arr_at(spec, "policyTypes");
    if types.len() > 2 {
        errs.push(too_many("spec.policyTypes", types.len(), 2));
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or_default();
        if t != "Ingress" && t != "Egress" {
            errs.push(FieldError::not_supported(index("spec.policyTypes", i), &Value::from(t), &["Egress", "Ingress"]));
        }
    }
}

fn validate_policy_port(port: &Value, path: &str, errs: &mut Errs) {
    if is_set(port, "protocol") {
        protocol_field(port, path, errs);
    }
    let end_port = int_at(port, "endPort");
    match port.get("port").filter(|p| !p.is_null()) {
        Some(p) => validate_port_ref(p, &join(path, "port"), errs),
        None if end_port.is_some() => {
            errs.push(FieldError::required(join(path, "port"), "must be specified when endPort is specified"));
        }
        None => {}
    }
    if let Some(end) = end_port {
        let epath = join(path, "endPort");
        match port.get("port") {
            Some(Value::String(_)) => {
                errs.push(FieldError::forbidden(epath, "may not be specified when `port` is non-numeric"));
            }
            Some(Value::Number(n)) if n.as_i64().is_some_and(|p| end < p) => {
                errs.push(FieldError::invalid(epath, &Value::from(end), "must be greater than or equal to `port`"))
            }
            _ => {}
        }
    }
}

fn validate_policy_peer(peer: &Value, path: &str, errs: &mut Errs) {
    let mut kinds = 0;
    for selector in ["podSelector", "namespaceSelector"] {
        if let Some(sel) = peer.get(selector).filter(|s| !s.is_null()) {
            kinds += 1;
            super::workloads::validate_label_selector(sel, &join(path, selector), errs);
        }
    }
    if let Some(block) = peer.get("ipBlock").filter(|b| !b.is_null()) {
        if kinds > 0 {
            errs.push(FieldError::forbidden(path, "may not specify both ipBlock and another peer"));
        }
        kinds += 1;
        validate_ip_block(block, &join(path, "ipBlock"), errs);
    }
    if kinds == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    }
}

/// A CIDR as `address/prefix`, with the address and prefix length.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

/// Whether `inner` lies inside `outer` and is smaller.
fn strictly_inside(inner: (IpAddr, u8), outer: (IpAddr, u8)) -> bool {
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
        IpAddr::V6(v6) => (u128::from(v6), false),
    };
    let ((a, a4), (b, b4)) = (bits(inner.0), bits(outer.0));
    if a4 != b4 || inner.1 <= outer.1 {
        return false;
    }
    // IPv4 addresses sit in the top 32 bits, so a prefix counts from the top either way.
    let prefix = u32::from(outer.1);
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    a & mask == b & mask
}

fn validate_ip_block(block: &Value, path: &str, errs: &mut Errs) {
    const CIDR_HINT: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
    let cidr = str_at(block, "cidr");
    let outer = if cidr.is_empty() {
        errs.push(FieldError::required(join(path, "cidr"), ""));
        None
    } else {
        let parsed = parse_cidr(cidr);
        if parsed.is_none() {
            errs.push(FieldError::invalid(join(path, "cidr"), &Value::from(cidr), CIDR_HINT));
        }
        parsed
    };
    for (i, except) in arr_at(block, "except").iter().enumerate() {
        let epath = index(&join(path, "except"), i);
        let text = except.as_str().unwrap_or_default();
        match (parse_cidr(text), outer) {
            (None, _) => errs.push(FieldError::invalid(epath, except, CIDR_HINT)),
            (Some(inner), Some(outer)) if !strictly_inside(inner, outer) => {
                errs.push(FieldError::invalid(epath, except, "must be a strict subset of `cidr`"));
            }
            _ => {}
        }
    }
}
