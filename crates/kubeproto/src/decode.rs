//! Protobuf wire bytes -> Kubernetes JSON, driven by the schema tables.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::ProtoError;
use crate::model::{F, Kind, M, Special, lookup_kind, message};
use crate::path::Ctx;
use crate::timefmt::{format_duration, format_rfc3339};
use crate::wire::{FIXED64, LEN, MAGIC, Reader, VARINT};

/// Decode a `k8s\0` + `runtime.Unknown` envelope into a JSON object with apiVersion/kind.
pub(crate) fn decode_envelope(bytes: &[u8], ctx: &mut Ctx) -> Result<Value, ProtoError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(ProtoError::BadMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut r = Reader::new(body);
    while !r.done() {
        let (tag, wt) = r.key().map_err(|e| ctx.wire(e))?;
        match (tag, wt) {
            (1, LEN) => {
                let mut tm = Reader::new(r.bytes().map_err(|e| ctx.wire(e))?);
                while !tm.done() {
                    let (tag, wt) = tm.key().map_err(|e| ctx.wire(e))?;
                    match (tag, wt) {
                        (1, LEN) => api_version = text(&mut tm, ctx)?,
                        (2, LEN) => kind = text(&mut tm, ctx)?,
                        _ => tm.skip(wt).map_err(|e| ctx.wire(e))?,
                    }
                }
            }
            (2, LEN) => raw = r.bytes().map_err(|e| ctx.wire(e))?,
            (3, LEN) => {
                let encoding = text(&mut r, ctx)?;
                if !encoding.is_empty() {
                    return Err(
                        ctx.malformed(format!("contentEncoding {encoding:?} is not supported"))
                    );
                }
            }
            _ => r.skip(wt).map_err(|e| ctx.wire(e))?,
        }
    }
    if kind.is_empty() {
        return Err(ProtoError::MissingTypeMeta("kind"));
    }
    let index = lookup_kind(&api_version, &kind).ok_or_else(|| ProtoError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let fields = match decode_message(raw, index, ctx)? {
        Some(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    // Typed messages carry no apiVersion/kind: the envelope's TypeMeta supplies them.
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    out.extend(fields);
    Ok(Value::Object(out))
}

/// Decode one message. `None` is a special message's zero value (a zero Time, an empty
/// RawExtension), which JSON leaves out.
pub(crate) fn decode_message(
    data: &[u8],
    index: u16,
    ctx: &mut Ctx,
) -> Result<Option<Value>, ProtoError> {
    ctx.enter()?;
    let m = message(index);
    let out = match m.special() {
        Special::Object => decode_object(data, m, ctx).map(|o| Some(Value::Object(o))),
        special => decode_special(data, m, special, ctx),
    };
    ctx.leave();
    out
}

fn decode_object(data: &[u8], m: &M, ctx: &mut Ctx) -> Result<Map<String, Value>, ProtoError> {
    let mut out = Map::new();
    let mut r = Reader::new(data);
    while !r.done() {
        let (tag, wt) = r.key().map_err(|e| ctx.wire(e))?;
        let Some(f) = m.by_tag(tag) else {
            // A field from a newer Kubernetes: skip it, as protobuf intends.
            r.skip(wt).map_err(|e| ctx.wire(e))?;
            continue;
        };
        if let (true, Kind::Msg(index)) = (f.inline(), f.kind()) {
            // An embedded Go struct: its JSON keys belong to this object.
            let bytes = expect(&mut r, wt, LEN, ctx)?;
            if let Some(Value::Object(inner)) = decode_message(bytes, index, ctx)? {
                out.extend(inner);
            }
            continue;
        }
        ctx.field(f.name());
        decode_field(f, wt, &mut r, &mut out, ctx)?;
        ctx.pop();
    }
    Ok(out)
}

/// The array or object collecting a repeated or map field, created on first use.
fn slot<'a>(out: &'a mut Map<String, Value>, name: &str, empty: fn() -> Value) -> &'a mut Value {
    let fresh = empty();
    match out.get(name) {
        Some(v) if std::mem::discriminant(v) == std::mem::discriminant(&fresh) => {}
        _ => {
            out.insert(name.to_owned(), fresh);
        }
    }
    out.get_mut(name).expect("slot was just ensured")
}

fn decode_field(
    f: &F,
    wt: u8,
    r: &mut Reader,
    out: &mut Map<String, Value>,
    ctx: &mut Ctx,
) -> Result<(), ProtoError> {
    let kind = f.kind();
    match kind {
        Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
            let entry = expect(r, wt, LEN, ctx)?;
            let (key, value) = decode_map_entry(entry, kind, ctx)?;
            if let Value::Object(map) = slot(out, f.name(), || Value::Object(Map::new())) {
                map.insert(key, value);
            }
        }
        _ if f.repeated() => {
            let Value::Array(items) = slot(out, f.name(), || Value::Array(Vec::new())) else {
                unreachable!("slot returns an array")
            };
            if wt == LEN && matches!(kind, Kind::I32 | Kind::I64 | Kind::Bool | Kind::F64) {
                // Packed encoding: Go never writes it for proto2, but protobuf allows it.
                let mut packed = Reader::new(r.bytes().map_err(|e| ctx.wire(e))?);
                let native = if kind == Kind::F64 { FIXED64 } else { VARINT };
                while !packed.done() {
                    ctx.index(items.len());
                    let value = decode_value(kind, native, &mut packed, ctx)?;
                    items.push(value.unwrap_or(Value::Null));
                    ctx.pop();
                }
            } else {
                ctx.index(items.len());
                // Elements are kept as they are, zero or not (RBAC's `apiGroups: [""]`).
                items.push(decode_value(kind, wt, r, ctx)?.unwrap_or(Value::Null));
                ctx.pop();
            }
        }
        _ => match decode_value(kind, wt, r, ctx)? {
            Some(value) if f.keep_zero() || !is_zero(kind, &value) => {
                out.insert(f.name().to_owned(), value);
            }
            // Go writes zero non-pointer fields; Kubernetes JSON omits them (omitempty).
            _ => {
                out.remove(f.name());
            }
        },
    }
    Ok(())
}

/// Whether a decoded singular value is the Go zero value that `omitempty` drops.
fn is_zero(kind: Kind, value: &Value) -> bool {
    let droppable = match kind {
        Kind::Msg(index) => message(index).special() == Special::IntOrString,
        _ => true,
    };
    droppable
        && match value {
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            _ => false,
        }
}

fn decode_map_entry(
    entry: &[u8],
    kind: Kind,
    ctx: &mut Ctx,
) -> Result<(String, Value), ProtoError> {
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(entry);
    while !r.done() {
        let (tag, wt) = r.key().map_err(|e| ctx.wire(e))?;
        match tag {
            1 => key = text(&mut r, ctx)?,
            2 => {
                ctx.key(&key);
                let scalar = match kind {
                    Kind::MapStr => Kind::Str,
                    Kind::MapBytes => Kind::Bytes,
                    Kind::MapMsg(index) => Kind::Msg(index),
                    other => other,
                };
                value = Some(decode_value(scalar, wt, &mut r, ctx)?.unwrap_or(Value::Null));
                ctx.pop();
            }
            _ => r.skip(wt).map_err(|e| ctx.wire(e))?,
        }
    }
    let value = match (value, kind) {
        (Some(v), _) => v,
        (None, Kind::MapMsg(index)) => decode_message(&[], index, ctx)?.unwrap_or(Value::Null),
        (None, _) => Value::String(String::new()),
    };
    Ok((key, value))
}

fn expect<'a>(r: &mut Reader<'a>, wt: u8, want: u8, ctx: &Ctx) -> Result<&'a [u8], ProtoError> {
    if wt != want {
        return Err(ctx.malformed(format!("wire type {wt}, expected {want}")));
    }
    r.bytes().map_err(|e| ctx.wire(e))
}

fn varint(r: &mut Reader, wt: u8, ctx: &Ctx) -> Result<u64, ProtoError> {
    if wt != VARINT {
        return Err(ctx.malformed(format!("wire type {wt}, expected {VARINT}")));
    }
    r.varint().map_err(|e| ctx.wire(e))
}

/// A string field. Go does not check UTF-8 in protobuf strings, and its JSON encoder turns
/// invalid bytes into U+FFFD; do the same rather than reject the object.
fn text(r: &mut Reader, ctx: &Ctx) -> Result<String, ProtoError> {
    let bytes = r.bytes().map_err(|e| ctx.wire(e))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn decode_value(
    kind: Kind,
    wt: u8,
    r: &mut Reader,
    ctx: &mut Ctx,
) -> Result<Option<Value>, ProtoError> {
    Ok(Some(match kind {
        Kind::Str => {
            expect_wire(wt, LEN, ctx)?;
            Value::String(text(r, ctx)?)
        }
        Kind::Bytes => Value::String(STANDARD.encode(expect(r, wt, LEN, ctx)?)),
        // int32 travels as a sign-extended 64-bit varint: truncation restores it.
        Kind::I32 => Value::from(varint(r, wt, ctx)? as i32),
        Kind::I64 => Value::from(varint(r, wt, ctx)? as i64),
        Kind::Bool => Value::Bool(varint(r, wt, ctx)? != 0),
        Kind::F64 => {
            expect_wire(wt, FIXED64, ctx)?;
            let x = f64::from_le_bytes(r.fixed64().map_err(|e| ctx.wire(e))?);
            // Go prints an integral float64 without a fraction ("maximum": 10); keep such
            // values integers so the JSON reads the same.
            const EXACT: f64 = (1u64 << 53) as f64;
            if x.fract() == 0.0 && x.abs() < EXACT {
                Value::from(x as i64)
            } else {
                Value::Number(
                    serde_json::Number::from_f64(x)
                        .ok_or_else(|| ctx.malformed("a double that JSON cannot represent"))?,
                )
            }
        }
        Kind::Msg(index) => return decode_message(expect(r, wt, LEN, ctx)?, index, ctx),
        Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
            unreachable!("maps are decoded per entry")
        }
    }))
}

fn expect_wire(wt: u8, want: u8, ctx: &Ctx) -> Result<(), ProtoError> {
    if wt == want {
        Ok(())
    } else {
        Err(ctx.malformed(format!("wire type {wt}, expected {want}")))
    }
}

/// The scalar fields of a small special message, by tag (last occurrence wins).
#[derive(Default)]
struct Scalars<'a> {
    ints: [i64; 4],
    bytes: [&'a [u8]; 4],
    repeated: Vec<&'a [u8]>,
}

/// Read tags 1..=3 of a special message; LEN fields of `repeated_tag` are collected.
fn scalars<'a>(data: &'a [u8], repeated_tag: u32, ctx: &Ctx) -> Result<Scalars<'a>, ProtoError> {
    let mut out = Scalars::default();
    let mut r = Reader::new(data);
    while !r.done() {
        let (tag, wt) = r.key().map_err(|e| ctx.wire(e))?;
        let slot = usize::try_from(tag).unwrap_or(usize::MAX);
        match wt {
            VARINT if slot < 4 => out.ints[slot] = r.varint().map_err(|e| ctx.wire(e))? as i64,
            LEN if tag == repeated_tag => out.repeated.push(r.bytes().map_err(|e| ctx.wire(e))?),
            LEN if slot < 4 => out.bytes[slot] = r.bytes().map_err(|e| ctx.wire(e))?,
            _ => r.skip(wt).map_err(|e| ctx.wire(e))?,
        }
    }
    Ok(out)
}

/// The message index of a special message's field (the schema inside JSONSchemaPropsOr*).
fn nested(m: &M, tag: u32) -> u16 {
    match m.by_tag(tag).map(F::kind) {
        Some(Kind::Msg(index)) => index,
        _ => unreachable!("{} has no message field {tag}", m.name()),
    }
}

fn decode_special(
    data: &[u8],
    m: &M,
    special: Special,
    ctx: &mut Ctx,
) -> Result<Option<Value>, ProtoError> {
    let lossy = |b: &[u8]| Value::String(String::from_utf8_lossy(b).into_owned());
    Ok(match special {
        Special::Object => unreachable!("objects are not special"),
        Special::Time | Special::MicroTime => {
            let s = scalars(data, 0, ctx)?;
            let (seconds, nanos) = (s.ints[1], s.ints[2] as i32);
            // Go writes a zero Time as an empty message; both mean "unset".
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            // Time drops nanoseconds, as Kubernetes' JSON (and its protobuf decoder) do.
            let text = format_rfc3339(seconds, nanos, special == Special::MicroTime)
                .map_err(|e| ctx.malformed(e))?;
            Some(Value::String(text))
        }
        Special::Duration => Some(Value::String(format_duration(
            scalars(data, 0, ctx)?.ints[1],
        ))),
        Special::Quantity => {
            let s = scalars(data, 0, ctx)?;
            Some(if s.bytes[1].is_empty() {
                Value::String("0".into())
            } else {
                lossy(s.bytes[1])
            })
        }
        Special::IntOrString => {
            let s = scalars(data, 0, ctx)?;
            Some(if s.ints[1] == 1 {
                lossy(s.bytes[3])
            } else {
                Value::from(s.ints[2] as i32)
            })
        }
        Special::EmbeddedJson => {
            let raw = scalars(data, 0, ctx)?.bytes[1];
            embedded_json(raw, ctx)?
        }
        Special::StringList => {
            let s = scalars(data, 1, ctx)?;
            Some(Value::Array(s.repeated.into_iter().map(lossy).collect()))
        }
        Special::SchemaOrBool => {
            let s = scalars(data, 0, ctx)?;
            if s.bytes[2].is_empty() && !contains_tag(data, 2) {
                Some(Value::Bool(s.ints[1] != 0))
            } else {
                decode_message(s.bytes[2], nested(m, 2), ctx)?
            }
        }
        Special::SchemaOrArray | Special::SchemaOrStringArray => {
            let s = scalars(data, 2, ctx)?;
            if !s.repeated.is_empty() {
                let mut items = Vec::with_capacity(s.repeated.len());
                for (i, raw) in s.repeated.iter().enumerate() {
                    ctx.index(i);
                    items.push(if special == Special::SchemaOrArray {
                        decode_message(raw, nested(m, 2), ctx)?.unwrap_or(Value::Null)
                    } else {
                        lossy(raw)
                    });
                    ctx.pop();
                }
                Some(Value::Array(items))
            } else if contains_tag(data, 1) {
                decode_message(s.bytes[1], nested(m, 1), ctx)?
            } else {
                None
            }
        }
    })
}

/// Whether a (well-formed, already scanned) message has a field with this tag.
fn contains_tag(data: &[u8], tag: u32) -> bool {
    let mut r = Reader::new(data);
    while !r.done() {
        match r.key() {
            Ok((t, _)) if t == tag => return true,
            Ok((_, wt)) if r.skip(wt).is_ok() => {}
            _ => return false,
        }
    }
    false
}

/// RawExtension/FieldsV1/JSON bytes: JSON text, or (inside watch events and lists sent
/// as protobuf) a nested `k8s\0` envelope.
fn embedded_json(raw: &[u8], ctx: &mut Ctx) -> Result<Option<Value>, ProtoError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.starts_with(MAGIC) {
        return decode_envelope(raw, ctx).map(Some);
    }
    serde_json::from_slice(raw)
        .map(Some)
        .map_err(|e| ctx.malformed(format!("embedded JSON: {e}")))
}
