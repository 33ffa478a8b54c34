//! The little DER this crate writes by hand: an X.509 Name with repeated attributes, and
//! re-signing a certificate after swapping its subject.

use crate::error::{AuthError, Result};
use rcgen::SigningKey;

/// Encoded OID 2.5.4.3 (commonName).
pub(crate) const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// Encoded OID 2.5.4.10 (organizationName).
pub(crate) const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_UTF8: u8 = 0x0c;
const TAG_BIT_STRING: u8 = 0x03;

/// Tag, length and content.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// `(tag, header length, content length)` of the element at the start of `bytes`.
pub(crate) fn header(bytes: &[u8]) -> Result<(u8, usize, usize)> {
    let bad = || AuthError::invalid("DER", "truncated element");
    let tag = *bytes.first().ok_or_else(bad)?;
    let first = *bytes.get(1).ok_or_else(bad)?;
    let (header_len, content_len) = if first < 0x80 {
        (2, first as usize)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > std::mem::size_of::<usize>() {
            return Err(AuthError::invalid("DER", "unsupported length"));
        }
        let len_bytes = bytes.get(2..2 + n).ok_or_else(bad)?;
        (2 + n, len_bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize))
    };
    if header_len.checked_add(content_len).is_none_or(|end| bytes.len() < end) {
        return Err(bad());
    }
    Ok((tag, header_len, content_len))
}

/// An X.509 Name: one RDN per `(attribute OID, UTF-8 value)`, in order.
pub(crate) fn name(attributes: &[(&[u8], &str)]) -> Vec<u8> {
    let mut rdns = Vec::new();
    for (oid, value) in attributes {
        let mut atv = tlv(TAG_OID, oid);
        atv.extend(tlv(TAG_UTF8, value.as_bytes()));
        rdns.extend(tlv(TAG_SET, &tlv(TAG_SEQUENCE, &atv)));
    }
    tlv(TAG_SEQUENCE, &rdns)
}

/// Where `inner` (a sub-slice of `outer`) starts inside `outer`.
fn offset_in(outer: &[u8], inner: &[u8]) -> Result<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize);
    match start {
        Some(s) if s + inner.len() <= outer.len() => Ok(s),
        _ => Err(AuthError::invalid("certificate", "parser returned a foreign slice")),
    }
}

/// `cert` with its subject replaced by `subject` (a DER Name), signed again by `signer` with
/// the signature algorithm `cert` already names.
pub(crate) fn replace_subject(cert: &[u8], subject: &[u8], signer: &rcgen::KeyPair) -> Result<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| AuthError::invalid("certificate", e))?;
    let tbs: &[u8] = parsed.tbs_certificate.as_ref();
    let old_subject = parsed.tbs_certificate.subject.as_raw();
    let tbs_start = offset_in(cert, tbs)?;
    let subject_start = offset_in(tbs, old_subject)?;
    let (_, tbs_header, _) = header(tbs)?;

    let mut tbs_content = Vec::with_capacity(tbs.len() + subject.len());
    tbs_content.extend_from_slice(&tbs[tbs_header..subject_start]);
    tbs_content.extend_from_slice(subject);
    tbs_content.extend_from_slice(&tbs[subject_start + old_subject.len()..]);
    let new_tbs = tlv(TAG_SEQUENCE, &tbs_content);

    let after_tbs = &cert[tbs_start + tbs.len()..];
    let (_, alg_header, alg_len) = header(after_tbs)?;
    let algorithm = &after_tbs[..alg_header + alg_len];

    let signature = signer.sign(&new_tbs)?;
    let mut bits = Vec::with_capacity(signature.len() + 1);
    bits.push(0);
    bits.extend(signature);

    let mut content = new_tbs;
    content.extend_from_slice(algorithm);
    content.extend(tlv(TAG_BIT_STRING, &bits));
    Ok(tlv(TAG_SEQUENCE, &content))
}

/// Encoded OID 1.2.840.10045.2.1 (id-ecPublicKey).
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// Encoded OID 1.2.840.10045.3.1.7 (prime256v1, P-256).
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// Encoded OID 1.2.840.113549.1.1.1 (rsaEncryption).
pub(crate) const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The key kinds ServiceAccount tokens may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// ECDSA P-256 (ES256); the key is the uncompressed point.
    EcP256,
    /// RSA (RS256); the key is a PKCS#1 RSAPublicKey.
    Rsa,
}

/// Splits a SubjectPublicKeyInfo into its key kind and raw public key.
pub(crate) fn parse_spki(spki: &[u8]) -> Result<(KeyKind, Vec<u8>)> {
    let bad = |why: &str| AuthError::invalid("public key", why.to_string());
    let (tag, h, l) = header(spki)?;
    if tag != TAG_SEQUENCE {
        return Err(bad("not a SubjectPublicKeyInfo"));
    }
    let body = &spki[h..h + l];
    let (tag, ah, al) = header(body)?;
    if tag != TAG_SEQUENCE {
        return Err(bad("no algorithm identifier"));
    }
    let algorithm = &body[ah..ah + al];
    let (tag, oh, ol) = header(algorithm)?;
    if tag != TAG_OID {
        return Err(bad("no algorithm OID"));
    }
    let oid = &algorithm[oh..oh + ol];
    let params = &algorithm[oh + ol..];
    let rest = &body[ah + al..];
    let (tag, bh, bl) = header(rest)?;
    if tag != TAG_BIT_STRING || bl == 0 || rest[bh] != 0 {
        return Err(bad("malformed key bit string"));
    }
    let key = rest[bh + 1..bh + bl].to_vec();
    if oid == OID_EC_PUBLIC_KEY {
        let (tag, ph, pl) = header(params)?;
        if tag != TAG_OID || &params[ph..ph + pl] != OID_P256 {
            return Err(bad("only the P-256 curve is supported"));
        }
        Ok((KeyKind::EcP256, key))
    } else if oid == OID_RSA_ENCRYPTION {
        Ok((KeyKind::Rsa, key))
    } else {
        Err(bad("only ECDSA P-256 and RSA keys are supported"))
    }
}

/// The SubjectPublicKeyInfo DER of a raw public key.
pub(crate) fn spki(kind: KeyKind, key: &[u8]) -> Vec<u8> {
    let algorithm = match kind {
        KeyKind::EcP256 => {
            let mut a = tlv(TAG_OID, OID_EC_PUBLIC_KEY);
            a.extend(tlv(TAG_OID, OID_P256));
            a
        }
        KeyKind::Rsa => {
            let mut a = tlv(TAG_OID, OID_RSA_ENCRYPTION);
            a.extend([0x05, 0x00]);
            a
        }
    };
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    let mut body = tlv(TAG_SEQUENCE, &algorithm);
    body.extend(tlv(TAG_BIT_STRING, &bits));
    tlv(TAG_SEQUENCE, &body)
}

/// `(modulus, exponent)` of a PKCS#1 RSAPublicKey, big-endian without leading zeros.
pub(crate) fn rsa_public_numbers(pkcs1: &[u8]) -> Result<(&[u8], &[u8])> {
    let (tag, h, l) = header(pkcs1)?;
    if tag != TAG_SEQUENCE {
        return Err(AuthError::invalid("RSA public key", "not a sequence"));
    }
    let body = &pkcs1[h..h + l];
    let (nt, nh, nl) = header(body)?;
    let n = &body[nh..nh + nl];
    let rest = &body[nh + nl..];
    let (et, eh, el) = header(rest)?;
    let e = &rest[eh..eh + el];
    if nt != 0x02 || et != 0x02 {
        return Err(AuthError::invalid("RSA public key", "not two integers"));
    }
    let strip = |v: &'_ [u8]| -> usize { v.iter().take_while(|b| **b == 0).count() };
    Ok((&n[strip(n)..], &e[strip(e)..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let encoded = tlv(0x04, &content);
            let (tag, h, l) = header(&encoded).unwrap();
            assert_eq!((tag, l, h + l), (0x04, len, encoded.len()), "len {len}");
        }
        assert!(header(&[0x30, 0x82, 0x01]).is_err());
        assert!(header(&[0x30, 0x05, 0x00]).is_err());
        // A length near usize::MAX must not overflow.
        assert!(header(&[0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse_spki(&[0x30, 0x00]).is_err());
        assert!(parse_spki(b"junk").is_err());
    }
}
