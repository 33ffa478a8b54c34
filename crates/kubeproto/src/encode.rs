//! Kubernetes JSON -> protobuf wire bytes, driven by the schema tables.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::ProtoError;
use crate::model::{F, Kind, M, Special, lookup_kind, message};
use crate::path::Ctx;
use crate::timefmt::{parse_duration, parse_rfc3339};
use crate::wire::{FIXED64, envelope, put_bytes, put_int, put_key};

/// Encode a JSON object with apiVersion/kind into a `k8s\0` + `runtime.Unknown` envelope.
pub(crate) fn encode_envelope(obj: &Value, ctx: &mut Ctx) -> Result<Vec<u8>, ProtoError> {
    let map = obj
        .as_object()
        .ok_or_else(|| ctx.mismatch("an object", obj))?;
    let type_meta = |key: &'static str| {
        map.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(ProtoError::MissingTypeMeta(key))
    };
    let (api_version, kind) = (type_meta("apiVersion")?, type_meta("kind")?);
    let index = lookup_kind(api_version, kind).ok_or_else(|| ProtoError::UnknownKind {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    })?;
    let mut raw = Vec::with_capacity(256);
    encode_message(obj, index, &mut raw, ctx)?;
    Ok(envelope(api_version, kind, &raw))
}

pub(crate) fn encode_message(
    v: &Value,
    index: u16,
    out: &mut Vec<u8>,
    ctx: &mut Ctx,
) -> Result<(), ProtoError> {
    ctx.enter()?;
    let m = message(index);
    let result = match m.special() {
        Special::Object => encode_object(v, m, out, ctx, true),
        special => encode_special(v, m, special, out, ctx),
    };
    ctx.leave();
    result
}

/// apiVersion and kind sit in JSON objects (top level, list items) but not in the typed
/// messages, whose envelope carries them instead.
fn is_type_meta(key: &str) -> bool {
    key == "apiVersion" || key == "kind"
}

fn encode_object(
    v: &Value,
    m: &M,
    out: &mut Vec<u8>,
    ctx: &mut Ctx,
    check_unknown: bool,
) -> Result<(), ProtoError> {
    let obj = v.as_object().ok_or_else(|| ctx.mismatch("an object", v))?;
    if check_unknown
        && !ctx.drop_unknown
        && let Some(key) = obj.keys().find(|k| !m.knows(k) && !is_type_meta(k))
    {
        ctx.name(key);
        return Err(ProtoError::UnknownField { path: ctx.path() });
    }
    // Fields go out in tag order, as Go writes them.
    for f in m.fields() {
        if let (true, Kind::Msg(index)) = (f.inline(), f.kind()) {
            // An embedded Go struct takes its fields from this same JSON object.
            let mut inner = Vec::new();
            ctx.enter()?;
            encode_object(v, message(index), &mut inner, ctx, false)?;
            ctx.leave();
            if !inner.is_empty() {
                put_bytes(out, f.tag(), &inner);
            }
            continue;
        }
        // JSON null means "not set", like a nil pointer or an omitted field.
        let Some(value) = obj.get(f.name()).filter(|v| !v.is_null()) else {
            continue;
        };
        ctx.field(f.name());
        encode_field(f, value, out, ctx)?;
        ctx.pop();
    }
    Ok(())
}

fn encode_field(f: &F, value: &Value, out: &mut Vec<u8>, ctx: &mut Ctx) -> Result<(), ProtoError> {
    let kind = f.kind();
    match kind {
        Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
            let map = value
                .as_object()
                .ok_or_else(|| ctx.mismatch("an object", value))?;
            // Go marshals map entries sorted by key; do the same whatever the Map's order.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let element = match kind {
                Kind::MapStr => Kind::Str,
                Kind::MapBytes => Kind::Bytes,
                Kind::MapMsg(index) => Kind::Msg(index),
                other => other,
            };
            for (key, item) in entries {
                ctx.key(key);
                let mut entry = Vec::with_capacity(key.len() + 16);
                put_bytes(&mut entry, 1, key.as_bytes());
                encode_value(element, 2, item, &mut entry, ctx)?;
                put_bytes(out, f.tag(), &entry);
                ctx.pop();
            }
        }
        _ if f.repeated() => {
            let items = value
                .as_array()
                .ok_or_else(|| ctx.mismatch("an array", value))?;
            for (i, item) in items.iter().enumerate() {
                ctx.index(i);
                encode_value(kind, f.tag(), item, out, ctx)?;
                ctx.pop();
            }
        }
        _ => encode_value(kind, f.tag(), value, out, ctx)?,
    }
    Ok(())
}

/// One value of a field. A null (only possible inside arrays and maps here) becomes the
/// zero value, as Go's JSON decoder leaves it.
fn encode_value(
    kind: Kind,
    tag: u32,
    v: &Value,
    out: &mut Vec<u8>,
    ctx: &mut Ctx,
) -> Result<(), ProtoError> {
    match kind {
        Kind::Str => put_bytes(out, tag, string(v, ctx)?.as_bytes()),
        Kind::Bytes => put_bytes(out, tag, &base64(v, ctx)?),
        Kind::I32 => put_int(
            out,
            tag,
            integer(v, i64::from(i32::MIN), i64::from(i32::MAX), ctx)?,
        ),
        Kind::I64 => put_int(out, tag, integer(v, i64::MIN, i64::MAX, ctx)?),
        Kind::Bool => match v {
            Value::Bool(b) => put_int(out, tag, i64::from(*b)),
            Value::Null => put_int(out, tag, 0),
            other => return Err(ctx.mismatch("a boolean", other)),
        },
        Kind::F64 => {
            let x = match v {
                Value::Number(n) => n.as_f64().unwrap_or(0.0),
                Value::Null => 0.0,
                other => return Err(ctx.mismatch("a number", other)),
            };
            put_key(out, tag, FIXED64);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Kind::Msg(index) => {
            let mut inner = Vec::new();
            if !v.is_null() {
                encode_message(v, index, &mut inner, ctx)?;
            }
            put_bytes(out, tag, &inner);
        }
        Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
            unreachable!("maps are encoded per entry")
        }
    }
    Ok(())
}

fn string<'a>(v: &'a Value, ctx: &Ctx) -> Result<&'a str, ProtoError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Null => Ok(""),
        other => Err(ctx.mismatch("a string", other)),
    }
}

fn base64(v: &Value, ctx: &Ctx) -> Result<Vec<u8>, ProtoError> {
    STANDARD
        .decode(string(v, ctx)?)
        .map_err(|e| ctx.invalid(format!("not standard base64: {e}")))
}

/// A JSON integer within [min, max]. Integral floats (1.0) pass, since YAML-to-JSON
/// converters may produce them; fractions and out-of-range values do not.
fn integer(v: &Value, min: i64, max: i64, ctx: &Ctx) -> Result<i64, ProtoError> {
    let n = match v {
        Value::Number(n) => n,
        Value::Null => return Ok(0),
        other => return Err(ctx.mismatch("an integer", other)),
    };
    let value = match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Some(i),
        (None, Some(f)) if f.fract() == 0.0 && f >= min as f64 && f <= max as f64 => Some(f as i64),
        _ => None,
    };
    value
        .filter(|i| (min..=max).contains(i))
        .ok_or_else(|| ctx.invalid(format!("{n} is not an integer in [{min}, {max}]")))
}

fn schema_index(m: &M, tag: u32) -> u16 {
    match m.by_tag(tag).map(F::kind) {
        Some(Kind::Msg(index)) => index,
        _ => unreachable!("{} has no message field {tag}", m.name()),
    }
}

fn encode_special(
    v: &Value,
    m: &M,
    special: Special,
    out: &mut Vec<u8>,
    ctx: &mut Ctx,
) -> Result<(), ProtoError> {
    match special {
        Special::Object => unreachable!("objects are not special"),
        Special::Time | Special::MicroTime => {
            let text = v
                .as_str()
                .ok_or_else(|| ctx.mismatch("an RFC 3339 timestamp string", v))?;
            let (seconds, nanos) = parse_rfc3339(text).map_err(|e| ctx.invalid(e))?;
            // metav1.Time carries whole seconds only; MicroTime keeps the fraction.
            let nanos = if special == Special::MicroTime {
                nanos
            } else {
                0
            };
            put_int(out, 1, seconds);
            put_int(out, 2, i64::from(nanos));
        }
        Special::Duration => {
            let text = v
                .as_str()
                .ok_or_else(|| ctx.mismatch("a duration string", v))?;
            put_int(out, 1, parse_duration(text).map_err(|e| ctx.invalid(e))?);
        }
        Special::Quantity => match v {
            Value::String(s) => put_bytes(out, 1, s.as_bytes()),
            // Kubernetes also accepts a bare JSON number for a quantity ("cpu": 2).
            Value::Number(n) => put_bytes(out, 1, n.to_string().as_bytes()),
            other => return Err(ctx.mismatch("a quantity string", other)),
        },
        Special::IntOrString => {
            // Go writes all three fields; so do we.
            let (kind, int, text) = match v {
                Value::String(s) => (1, 0, s.as_str()),
                Value::Number(_) => (
                    0,
                    integer(v, i64::from(i32::MIN), i64::from(i32::MAX), ctx)?,
                    "",
                ),
                other => return Err(ctx.mismatch("an integer or a string", other)),
            };
            put_int(out, 1, kind);
            put_int(out, 2, int);
            put_bytes(out, 3, text.as_bytes());
        }
        Special::EmbeddedJson => {
            let raw = serde_json::to_vec(v).map_err(|e| ctx.invalid(e.to_string()))?;
            put_bytes(out, 1, &raw);
        }
        Special::StringList => {
            let items = v
                .as_array()
                .ok_or_else(|| ctx.mismatch("an array of strings", v))?;
            for (i, item) in items.iter().enumerate() {
                ctx.index(i);
                put_bytes(out, 1, string(item, ctx)?.as_bytes());
                ctx.pop();
            }
        }
        Special::SchemaOrBool => match v {
            Value::Bool(b) => put_int(out, 1, i64::from(*b)),
            Value::Object(_) => {
                put_int(out, 1, 1);
                encode_value(Kind::Msg(schema_index(m, 2)), 2, v, out, ctx)?;
            }
            other => return Err(ctx.mismatch("a boolean or a schema object", other)),
        },
        Special::SchemaOrArray | Special::SchemaOrStringArray => match v {
            Value::Object(_) => encode_value(Kind::Msg(schema_index(m, 1)), 1, v, out, ctx)?,
            Value::Array(items) => {
                let element = if special == Special::SchemaOrArray {
                    Kind::Msg(schema_index(m, 2))
                } else {
                    Kind::Str
                };
                for (i, item) in items.iter().enumerate() {
                    ctx.index(i);
                    encode_value(element, 2, item, out, ctx)?;
                    ctx.pop();
                }
            }
            other => return Err(ctx.mismatch("a schema object or an array", other)),
        },
    }
    Ok(())
}
