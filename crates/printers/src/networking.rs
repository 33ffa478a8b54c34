//! networking.k8s.io and discovery.k8s.io kinds: Ingress, IngressClass, NetworkPolicy,
//! EndpointSlice, ServiceCIDR, IPAddress.

use serde_json::Value;

use crate::columns::{AGE, Col, NAME, Printer};
use crate::coreapi::load_balancer_ingress;
use crate::duration::age;
use crate::fields::{at, format_label_selector, list, list_with_more, name, opt_str, str_at};

/// Ingresses.
pub(crate) static INGRESS: Printer = Printer::new(
    &[
        NAME,
        Col::text("Class", "The IngressClass handling the ingress."),
        Col::text("Hosts", "Hosts the ingress rules match."),
        Col::text("Address", "Addresses of the load balancer serving the ingress."),
        Col::text("Ports", "Ports the ingress listens on."),
        AGE,
    ],
    |obj, now| {
        let ports = if list(obj, "/spec/tls").is_empty() { "80" } else { "80, 443" };
        vec![
            name(obj).into(),
            opt_str(obj, "/spec/ingressClassName").unwrap_or("<none>").into(),
            hosts(list(obj, "/spec/rules")).into(),
            load_balancer_ingress(obj).join(",").into(),
            ports.into(),
            age(obj, now),
        ]
    },
);

/// Up to three rule hosts ("*" when no rule names one). Rules without a host are skipped,
/// but the overflow count is over all rules, as Kubernetes counts it.
fn hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut named = Vec::new();
    let mut more = false;
    for rule in rules {
        if named.len() == MAX {
            more = true;
            break;
        }
        let host = str_at(rule, "/host");
        if !host.is_empty() {
            named.push(host);
        }
    }
    if named.is_empty() {
        return "*".into();
    }
    let joined = named.join(",");
    if more { format!("{joined} + {} more...", rules.len() - MAX) } else { joined }
}

/// IngressClasses.
pub(crate) static INGRESS_CLASS: Printer = Printer::new(
    &[
        NAME,
        Col::text("Controller", "The controller implementing the class."),
        Col::text("Parameters", "The object holding extra configuration for the class."),
        AGE,
    ],
    |obj, now| {
        let parameters = match at(obj, "/spec/parameters") {
            Some(p) => {
                let kind = match opt_str(p, "/apiGroup") {
                    Some(group) => format!("{}.{group}", str_at(p, "/kind")),
                    None => str_at(p, "/kind").to_string(),
                };
                format!("{kind}/{}", str_at(p, "/name"))
            }
            None => "<none>".into(),
        };
        vec![name(obj).into(), str_at(obj, "/spec/controller").into(), parameters.into(), age(obj, now)]
    },
);

/// NetworkPolicies.
pub(crate) static NETWORK_POLICY: Printer =
    Printer::new(&[NAME, Col::text("Pod-Selector", "The pods the policy applies to."), AGE], |obj, now| {
        vec![name(obj).into(), format_label_selector(at(obj, "/spec/podSelector")).into(), age(obj, now)]
    });

/// EndpointSlices.
pub(crate) static ENDPOINT_SLICE: Printer = Printer::new(
    &[
        NAME,
        Col::text("AddressType", "IPv4, IPv6 or FQDN."),
        Col::text("Ports", "Up to three of the slice's ports."),
        Col::text("Endpoints", "Up to three of the slice's addresses."),
        AGE,
    ],
    |obj, now| {
        const MAX: usize = 3;
        let ports: Vec<String> = list(obj, "/ports")
            .iter()
            .map(|p| match (at(p, "/port"), opt_str(p, "/name")) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".into(),
            })
            .collect();
        let addresses: Vec<String> = list(obj, "/endpoints")
            .iter()
            .flat_map(|e| list(e, "/addresses").iter().map(|a| a.as_str().unwrap_or("").to_string()))
            .collect();
        let first = |all: &[String]| all[..all.len().min(MAX)].to_vec();
        vec![
            name(obj).into(),
            str_at(obj, "/addressType").into(),
            list_with_more(&first(&ports), ports.len(), MAX).into(),
            list_with_more(&first(&addresses), addresses.len(), MAX).into(),
            age(obj, now),
        ]
    },
);

/// ServiceCIDRs.
pub(crate) static SERVICE_CIDR: Printer =
    Printer::new(&[NAME, Col::text("CIDRs", "The ranges service IPs are taken from."), AGE], |obj, now| {
        let cidrs: Vec<&str> = list(obj, "/spec/cidrs").iter().filter_map(Value::as_str).collect();
        vec![name(obj).into(), cidrs.join(",").into(), age(obj, now)]
    });

/// IPAddresses. Kubernetes declares two columns but prints three cells (the age has no
/// header); the cells are reproduced as they are.
pub(crate) static IP_ADDRESS: Printer =
    Printer::new(&[NAME, Col::text("ParentRef", "The object the address is allocated to.")], |obj, now| {
        let parent = match at(obj, "/spec/parentRef") {
            Some(p) => {
                let resource = match str_at(p, "/group") {
                    "" => str_at(p, "/resource").to_lowercase(),
                    group => format!("{}.{group}", str_at(p, "/resource")).to_lowercase(),
                };
                let namespace = str_at(p, "/namespace");
                let scope = if namespace.is_empty() { String::new() } else { format!("/{namespace}") };
                format!("{resource}{scope}/{}", str_at(p, "/name"))
            }
            None => "<none>".into(),
        };
        vec![name(obj).into(), parent.into(), age(obj, now)]
    });

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use serde_json::json;

    fn row(p: &Printer, obj: Value) -> Value {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        Value::from((p.cells)(&obj, now))
    }

    #[test]
    fn ingress_rows() {
        let ing = json!({"metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                "rules": [{"host": "a.example.com"}, {}, {"host": "c.example.com"}, {"host": "d.example.com"}, {"host": "e.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}});
        assert_eq!(
            row(&INGRESS, ing),
            json!([
                "web",
                "nginx",
                "a.example.com,c.example.com,d.example.com + 2 more...",
                "10.0.0.9",
                "80, 443",
                "<unknown>"
            ])
        );
        let bare = json!({"metadata": {"name": "b"}, "spec": {"defaultBackend": {}}});
        assert_eq!(row(&INGRESS, bare), json!(["b", "<none>", "*", "", "80", "<unknown>"]));
    }

    #[test]
    fn ingress_class_and_network_policy() {
        let ic = json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}});
        assert_eq!(
            row(&INGRESS_CLASS, ic),
            json!(["nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/p", "<unknown>"])
        );
        let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        assert_eq!(row(&NETWORK_POLICY, np), json!(["deny", "<none>", "<unknown>"]));
    }

    #[test]
    fn endpoint_slice_row() {
        let es = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}, {"port": 9090}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]});
        assert_eq!(
            row(&ENDPOINT_SLICE, es),
            json!(["web-abc", "IPv4", "80,named,* + 1 more...", "10.0.0.1,10.0.0.2", "<unknown>"])
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(row(&ENDPOINT_SLICE, empty), json!(["e", "IPv6", "<unset>", "<unset>", "<unknown>"]));
    }

    #[test]
    fn ip_address_parent() {
        let ip = json!({"metadata": {"name": "10.96.0.10"}, "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "kube-system", "name": "kube-dns"}}});
        assert_eq!(row(&IP_ADDRESS, ip)[1], "services/kube-system/kube-dns");
    }
}
