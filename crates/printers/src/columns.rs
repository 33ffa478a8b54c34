//! Column definitions and the printer record every kind registers: a static column table plus
//! the function computing one row's cells. Columns shared across kinds live here.

use std::cmp::Ordering;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::fields::{at, format_label_selector, list};

/// One `TableColumnDefinition`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Col {
    pub name: &'static str,
    /// An OpenAPI type: "string", "integer", "boolean", "date".
    pub ty: &'static str,
    /// An OpenAPI format; Kubernetes marks the column holding the object name with "name".
    pub format: &'static str,
    /// 0 for default output, 1 for columns kubectl shows only with `-o wide`.
    pub priority: u8,
    pub description: &'static str,
}

impl Col {
    /// A string column.
    pub const fn text(name: &'static str, description: &'static str) -> Col {
        Col { name, ty: "string", format: "", priority: 0, description }
    }

    /// An integer column.
    pub const fn int(name: &'static str, description: &'static str) -> Col {
        Col { ty: "integer", ..Col::text(name, description) }
    }

    /// A boolean column.
    pub const fn boolean(name: &'static str, description: &'static str) -> Col {
        Col { ty: "boolean", ..Col::text(name, description) }
    }

    /// The same column, shown only in wide output.
    pub const fn wide(self) -> Col {
        Col { priority: 1, ..self }
    }

    /// The same column, marked as holding the object's name.
    pub const fn named(self) -> Col {
        Col { format: "name", ..self }
    }

    /// The JSON form of the definition; every field is always present, as Kubernetes sends it.
    pub fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// How one kind prints: its columns and its row.
pub(crate) struct Printer {
    pub columns: &'static [Col],
    /// The row's cells, one per column (wide ones included: the server always prints wide and
    /// leaves hiding priority-1 columns to the client).
    pub cells: fn(&Value, Timestamp) -> Vec<Value>,
    /// Row conditions (only pods set any: a finished pod's row is marked Completed).
    pub conditions: fn(&Value) -> Option<Value>,
    /// The order rows are listed in, when Kubernetes sorts them rather than keeping the list's.
    pub order: Option<fn(&Value, &Value) -> Ordering>,
}

impl Printer {
    /// A printer whose rows carry no conditions.
    pub const fn new(columns: &'static [Col], cells: fn(&Value, Timestamp) -> Vec<Value>) -> Printer {
        Printer { columns, cells, conditions: no_conditions, order: None }
    }
}

fn no_conditions(_: &Value) -> Option<Value> {
    None
}

/// The object name column that opens nearly every table.
pub(crate) const NAME: Col = Col::text("Name", "Name of the object, unique within its namespace and kind.").named();

/// Time since the object was created.
pub(crate) const AGE: Col = Col::text("Age", "Time elapsed since the object was created.");

/// Wide column: the container names of a pod template.
pub(crate) const CONTAINERS: Col = Col::text("Containers", "Names of the containers in the pod template.").wide();

/// Wide column: the images of a pod template.
pub(crate) const IMAGES: Col = Col::text("Images", "Images used by the containers in the pod template.").wide();

/// Wide column: the label selector picking the managed pods.
pub(crate) const SELECTOR: Col = Col::text("Selector", "Label query selecting the pods this object manages.").wide();

/// The CONTAINERS and IMAGES cells for a pod spec: names and images joined by commas.
pub(crate) fn container_cells(pod_spec: Option<&Value>) -> [Value; 2] {
    let containers = pod_spec.map_or(&[][..], |s| list(s, "/containers"));
    let field = |key: &str| -> Value {
        let parts: Vec<&str> = containers.iter().map(|c| c.get(key).and_then(Value::as_str).unwrap_or("")).collect();
        parts.join(",").into()
    };
    [field("name"), field("image")]
}

/// CONTAINERS, IMAGES and SELECTOR for a workload whose pod template sits at
/// `template_pointer` and whose selector is a `LabelSelector` at `selector_pointer`.
pub(crate) fn workload_wide(obj: &Value, template_pointer: &str, selector_pointer: &str) -> [Value; 3] {
    let [names, images] = container_cells(at(obj, &format!("{template_pointer}/spec")));
    [names, images, format_label_selector(at(obj, selector_pointer)).into()]
}
