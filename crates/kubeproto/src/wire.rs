//! Protobuf wire primitives: varints, keys, length-delimited records.

/// Wire types (the low three bits of a field key).
pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

/// Why the wire bytes could not be read; the caller adds the field path.
#[derive(Debug)]
pub(crate) enum WireError {
    Truncated,
    Malformed(String),
}

/// A cursor over one message's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or(WireError::Truncated)?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(WireError::Malformed("varint overflows 64 bits".into()));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Malformed("varint longer than 10 bytes".into()))
    }

    /// A field key: (tag, wire type).
    pub(crate) fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint()?;
        let tag = key >> 3;
        if tag == 0 || tag > u64::from(u32::MAX >> 3) {
            return Err(WireError::Malformed(format!("invalid field number {tag}")));
        }
        // The range check above makes the narrowing exact.
        Ok((tag as u32, (key & 7) as u8))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        let end = self.pos.checked_add(len).ok_or(WireError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn fixed64(&mut self) -> Result<[u8; 8], WireError> {
        let end = self.pos + 8;
        let out = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(out.try_into().expect("slice of length 8"))
    }

    /// Skip a field we have no schema for (newer servers may send fields we do not know).
    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), WireError> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => {
                let end = self.pos + 4;
                if end > self.buf.len() {
                    return Err(WireError::Truncated);
                }
                self.pos = end;
                Ok(())
            }
            // Groups (3, 4) are proto2 legacy that Kubernetes never uses.
            other => Err(WireError::Malformed(format!(
                "unsupported wire type {other}"
            ))),
        }
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(out, tag, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A varint-encoded integer field; negative values take ten bytes, as protobuf requires.
pub(crate) fn put_int(out: &mut Vec<u8>, tag: u32, value: i64) {
    put_key(out, tag, VARINT);
    put_varint(out, value as u64);
}

/// The 4-byte prefix of every Kubernetes protobuf object: "k8s" and a zero byte.
pub(crate) const MAGIC: &[u8; 4] = b"k8s\0";

/// Wrap a typed message in the `runtime.Unknown` envelope Kubernetes sends.
pub(crate) fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::with_capacity(api_version.len() + kind.len() + 4);
    put_bytes(&mut type_meta, 1, api_version.as_bytes());
    put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + type_meta.len() + 16);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, raw);
    // Go always writes the non-pointer contentEncoding and contentType, empty here.
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    out
}
