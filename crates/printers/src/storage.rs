//! storage.k8s.io kinds: StorageClass, VolumeAttributesClass, VolumeAttachment and the CSI
//! driver registrations.

use serde_json::Value;

use crate::columns::{AGE, Col, NAME, Printer};
use crate::duration::age;
use crate::fields::{annotation, at, bool_at, count, list, name, opt_bool, opt_str, quantity, str_at};

/// StorageClasses.
pub(crate) static STORAGE_CLASS: Printer = Printer::new(
    &[
        NAME,
        Col::text("Provisioner", "The volume plugin provisioning volumes of this class."),
        Col::text("ReclaimPolicy", "What happens to provisioned volumes once released."),
        Col::text("VolumeBindingMode", "When volumes are bound and provisioned."),
        Col::text("AllowVolumeExpansion", "Whether volumes of this class can grow."),
        AGE,
    ],
    |obj, now| {
        let is_default =
            ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
                .iter()
                .any(|key| annotation(obj, key) == Some("true"));
        let shown_name = if is_default { format!("{} (default)", name(obj)) } else { name(obj).to_string() };
        vec![
            shown_name.into(),
            str_at(obj, "/provisioner").into(),
            opt_str(obj, "/reclaimPolicy").unwrap_or("Delete").into(),
            opt_str(obj, "/volumeBindingMode").unwrap_or("Immediate").into(),
            bool_at(obj, "/allowVolumeExpansion").into(),
            age(obj, now),
        ]
    },
);

/// VolumeAttributesClasses.
pub(crate) static VOLUME_ATTRIBUTES_CLASS: Printer =
    Printer::new(&[NAME, Col::text("DriverName", "The CSI driver the class applies to."), AGE], |obj, now| {
        vec![name(obj).into(), str_at(obj, "/driverName").into(), age(obj, now)]
    });

/// VolumeAttachments.
pub(crate) static VOLUME_ATTACHMENT: Printer = Printer::new(
    &[
        NAME,
        Col::text("Attacher", "The driver attaching the volume.").named(),
        Col::text("PV", "The persistent volume being attached."),
        Col::text("Node", "The node the volume is attached to."),
        Col::boolean("Attached", "Whether the attach operation finished."),
        AGE,
    ],
    |obj, now| {
        vec![
            name(obj).into(),
            str_at(obj, "/spec/attacher").into(),
            str_at(obj, "/spec/source/persistentVolumeName").into(),
            str_at(obj, "/spec/nodeName").into(),
            bool_at(obj, "/status/attached").into(),
            age(obj, now),
        ]
    },
);

/// CSIDrivers.
pub(crate) static CSI_DRIVER: Printer = Printer::new(
    &[
        NAME,
        Col::boolean("AttachRequired", "Whether volumes need an attach step."),
        Col::boolean("PodInfoOnMount", "Whether pod details are passed on mount."),
        Col::boolean("StorageCapacity", "Whether the driver reports storage capacity."),
        Col::text("TokenRequests", "Audiences of the service account tokens passed on mount."),
        Col::boolean("RequiresRepublish", "Whether volumes are remounted periodically."),
        Col::text("Modes", "Supported volume lifecycle modes."),
        AGE,
    ],
    |obj, now| {
        let tokens = match at(obj, "/spec/tokenRequests") {
            Some(_) => {
                list(obj, "/spec/tokenRequests").iter().map(|t| str_at(t, "/audience")).collect::<Vec<_>>().join(",")
            }
            None => "<unset>".into(),
        };
        let modes: Vec<&str> = list(obj, "/spec/volumeLifecycleModes").iter().filter_map(Value::as_str).collect();
        vec![
            name(obj).into(),
            opt_bool(obj, "/spec/attachRequired").unwrap_or(true).into(),
            bool_at(obj, "/spec/podInfoOnMount").into(),
            bool_at(obj, "/spec/storageCapacity").into(),
            tokens.into(),
            bool_at(obj, "/spec/requiresRepublish").into(),
            if modes.is_empty() { "<none>".into() } else { modes.join(",").into() },
            age(obj, now),
        ]
    },
);

/// CSINodes.
pub(crate) static CSI_NODE: Printer =
    Printer::new(&[NAME, Col::int("Drivers", "Number of CSI drivers registered on the node."), AGE], |obj, now| {
        vec![name(obj).into(), count(obj, "/spec/drivers").into(), age(obj, now)]
    });

/// CSIStorageCapacities.
pub(crate) static CSI_STORAGE_CAPACITY: Printer = Printer::new(
    &[
        NAME,
        Col::text("StorageClassName", "The storage class the capacity is reported for."),
        Col::text("Capacity", "The capacity available."),
    ],
    |obj, _| {
        let capacity = at(obj, "/capacity").map_or("<unset>".into(), |q| quantity(Some(q)));
        vec![name(obj).into(), str_at(obj, "/storageClassName").into(), capacity.into()]
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(p: &Printer, obj: Value) -> Value {
        let now: jiff::Timestamp = "2024-05-01T12:00:00Z".parse().unwrap();
        Value::from((p.cells)(&obj, now))
    }

    #[test]
    fn storage_class_row() {
        let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            row(&STORAGE_CLASS, sc),
            json!([
                "standard (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                false,
                "<unknown>"
            ])
        );
    }

    #[test]
    fn csi_driver_row() {
        let d = json!({"metadata": {"name": "csi.example.com"}, "spec": {"volumeLifecycleModes": ["Persistent", "Ephemeral"]}});
        assert_eq!(
            row(&CSI_DRIVER, d),
            json!(["csi.example.com", true, false, false, "<unset>", false, "Persistent,Ephemeral", "<unknown>"])
        );
    }
}
