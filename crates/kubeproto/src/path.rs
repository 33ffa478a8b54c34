//! Where the transcoder is inside an object, so errors can name the field
//! ("spec.containers[0].ports[1].containerPort"), and how deep it has nested.

use crate::ProtoError;
use crate::wire::WireError;

/// Deep enough for real objects (CRD schemas nest), shallow enough for the stack.
const MAX_DEPTH: usize = 100;

enum Seg {
    Field(&'static str),
    Name(String),
    Index(usize),
    Key(String),
}

/// The transcoding context: the current field path and nesting depth.
#[derive(Default)]
pub(crate) struct Ctx {
    segs: Vec<Seg>,
    depth: usize,
    /// Encoding only: silently drop JSON keys the message does not know.
    pub(crate) drop_unknown: bool,
}

impl Ctx {
    pub(crate) fn new(drop_unknown: bool) -> Self {
        Ctx {
            drop_unknown,
            ..Ctx::default()
        }
    }

    pub(crate) fn field(&mut self, name: &'static str) {
        self.segs.push(Seg::Field(name));
    }

    pub(crate) fn name(&mut self, name: &str) {
        self.segs.push(Seg::Name(name.to_owned()));
    }

    pub(crate) fn index(&mut self, i: usize) {
        self.segs.push(Seg::Index(i));
    }

    pub(crate) fn key(&mut self, key: &str) {
        self.segs.push(Seg::Key(key.to_owned()));
    }

    pub(crate) fn pop(&mut self) {
        self.segs.pop();
    }

    /// Enter a nested message; fails once nesting exceeds `MAX_DEPTH`.
    pub(crate) fn enter(&mut self) -> Result<(), ProtoError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ProtoError::TooDeep {
                path: self.path(),
                limit: MAX_DEPTH,
            });
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    pub(crate) fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Field(name) => push_name(&mut out, name),
                Seg::Name(name) => push_name(&mut out, name),
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) => out.push_str(&format!("[{k}]")),
            }
        }
        if out.is_empty() {
            "<object>".into()
        } else {
            out
        }
    }

    pub(crate) fn wire(&self, err: WireError) -> ProtoError {
        match err {
            WireError::Truncated => ProtoError::Truncated { path: self.path() },
            WireError::Malformed(reason) => ProtoError::Malformed {
                path: self.path(),
                reason,
            },
        }
    }

    pub(crate) fn malformed(&self, reason: impl Into<String>) -> ProtoError {
        ProtoError::Malformed {
            path: self.path(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(&self, reason: impl Into<String>) -> ProtoError {
        ProtoError::InvalidValue {
            path: self.path(),
            reason: reason.into(),
        }
    }

    pub(crate) fn mismatch(&self, expected: &'static str, found: &serde_json::Value) -> ProtoError {
        let found = match found {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
        };
        ProtoError::TypeMismatch {
            path: self.path(),
            expected,
            found,
        }
    }
}

fn push_name(out: &mut String, name: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(name);
}
