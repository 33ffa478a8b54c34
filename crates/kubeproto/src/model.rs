//! The shape of the generated schema tables in `schema.rs`, and look-ups over them.

use crate::schema::{FIELDS, KINDS, MESSAGES};

/// Field flag: the field is `repeated` (a JSON array).
pub(crate) const REP: u8 = 1;
/// Field flag: keep the zero value when decoding (Go pointer or non-`omitempty` field).
pub(crate) const KEEP: u8 = 2;
/// Field flag: a Go struct embedded with `json:",inline"`; its fields sit in the parent's
/// JSON object although protobuf nests them in a message of their own.
pub(crate) const INLINE: u8 = 4;

/// What a field holds on the wire and in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bytes,
    I32,
    I64,
    Bool,
    F64,
    /// A nested message, by index into `MESSAGES`.
    Msg(u16),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`.
    MapBytes,
    /// `map<string, message>`, by index into `MESSAGES`.
    MapMsg(u16),
}

/// Messages whose JSON form is not a plain object of their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    /// An ordinary message: a JSON object.
    Object,
    /// meta/v1 Time: RFC 3339 string, whole seconds.
    Time,
    /// meta/v1 MicroTime: RFC 3339 string with six fractional digits.
    MicroTime,
    /// meta/v1 Duration: Go duration string ("1h0m0s"). No served kind uses it today, but
    /// a regenerated schema may.
    #[allow(dead_code)]
    Duration,
    /// resource.Quantity: its string.
    Quantity,
    /// intstr.IntOrString: a JSON number or string.
    IntOrString,
    /// RawExtension, FieldsV1, apiextensions JSON: bytes field 1 holds JSON text.
    EmbeddedJson,
    /// A Go named string slice (Verbs, ExtraValue): `repeated string items = 1`.
    StringList,
    /// JSONSchemaPropsOrBool: a bool or a schema object.
    SchemaOrBool,
    /// JSONSchemaPropsOrArray: a schema object or an array of them.
    SchemaOrArray,
    /// JSONSchemaPropsOrStringArray: a schema object or an array of strings.
    SchemaOrStringArray,
}

/// One message: dotted name, JSON form, and its run of fields in `FIELDS`.
pub(crate) struct M(pub &'static str, pub Special, pub u16, pub u16);

/// One field: tag, JSON name, kind, flags (`REP`, `KEEP`, `INLINE`).
pub(crate) struct F(pub u32, pub &'static str, pub Kind, pub u8);

impl M {
    pub(crate) fn name(&self) -> &'static str {
        self.0
    }

    pub(crate) fn special(&self) -> Special {
        self.1
    }

    pub(crate) fn fields(&self) -> &'static [F] {
        let start = usize::from(self.2);
        &FIELDS[start..start + usize::from(self.3)]
    }

    /// The field with this tag; fields are stored sorted by tag.
    pub(crate) fn by_tag(&self, tag: u32) -> Option<&'static F> {
        let fields = self.fields();
        fields
            .binary_search_by_key(&tag, |f| f.0)
            .ok()
            .map(|i| &fields[i])
    }

    /// Whether `name` is a JSON key of this message, directly or through an inline field
    /// (messages are small: a scan is enough).
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.fields().iter().any(|f| match (f.inline(), f.2) {
            (true, Kind::Msg(i)) => message(i).knows(name),
            _ => f.1 == name,
        })
    }
}

impl F {
    pub(crate) fn tag(&self) -> u32 {
        self.0
    }

    pub(crate) fn name(&self) -> &'static str {
        self.1
    }

    pub(crate) fn kind(&self) -> Kind {
        self.2
    }

    pub(crate) fn repeated(&self) -> bool {
        self.3 & REP != 0
    }

    pub(crate) fn keep_zero(&self) -> bool {
        self.3 & KEEP != 0
    }

    pub(crate) fn inline(&self) -> bool {
        self.3 & INLINE != 0
    }
}

pub(crate) fn message(index: u16) -> &'static M {
    &MESSAGES[usize::from(index)]
}

/// Kinds that Kubernetes registers in every group version (metav1.AddToGroupVersion), so
/// any apiVersion may carry them.
const META_KINDS: [&str; 3] = ["DeleteOptions", "Status", "WatchEvent"];

/// The message for an (apiVersion, kind) pair.
pub(crate) fn lookup_kind(api_version: &str, kind: &str) -> Option<u16> {
    let find = |av: &str| {
        KINDS
            .binary_search_by(|(a, k, _)| (*a, *k).cmp(&(av, kind)))
            .ok()
            .map(|i| KINDS[i].2)
    };
    find(api_version).or_else(|| {
        META_KINDS
            .contains(&kind)
            .then(|| find("meta.k8s.io/v1"))
            .flatten()
    })
}
