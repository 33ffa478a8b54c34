//! Kubernetes resource quantities ("100m", "1.5Gi", "1e3"), parsed to exact milli-units so
//! they can be compared without floating point.

/// The error Kubernetes gives for a malformed quantity.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parses a quantity into thousandths of its unit (so "100m" is 100 and "1Ki" is 1_024_000).
/// Fractions of a milli-unit round up, as Kubernetes does ("0.1m" is 1m).
pub fn parse_quantity(s: &str) -> Result<i128, String> {
    let bad = || QUANTITY_FORMAT_ERROR.to_string();
    let s = s.trim();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
    let (number, suffix) = rest.split_at(number_len);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad());
    }

    let too_large = || "quantity is too large".to_string();
    let mut mantissa: i128 = 0;
    for d in whole.bytes().chain(frac.bytes()) {
        mantissa = mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(d - b'0'))).ok_or_else(too_large)?;
    }
    // The value is mantissa * binary * 10^pow10 units, i.e. mantissa * binary * 10^(pow10+3) milli-units.
    let (binary, pow10): (i128, i64) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        exp if exp.starts_with(['e', 'E']) => {
            let digits = &exp[1..];
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            (1, digits.parse::<i64>().map_err(|_| too_large())?)
        }
        _ => return Err(bad()),
    };
    let scale = pow10 - i64::try_from(frac.len()).map_err(|_| too_large())? + 3;
    let scaled = mantissa.checked_mul(binary).ok_or_else(too_large)?;
    let millis = if scale >= 0 {
        let factor = u32::try_from(scale).ok().and_then(|e| 10i128.checked_pow(e)).ok_or_else(too_large)?;
        if scaled == 0 { 0 } else { scaled.checked_mul(factor).ok_or_else(too_large)? }
    } else {
        match u32::try_from(-scale).ok().and_then(|e| 10i128.checked_pow(e)) {
            Some(divisor) => (scaled + divisor - 1) / divisor,
            // Smaller than any representable fraction: rounds up to one milli-unit.
            None => i128::from(scaled > 0),
        }
    };
    Ok(if negative { -millis } else { millis })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes_and_exponents() {
        assert_eq!(parse_quantity("100m"), Ok(100));
        assert_eq!(parse_quantity("1"), Ok(1000));
        assert_eq!(parse_quantity("0.5"), Ok(500));
        assert_eq!(parse_quantity(".5"), Ok(500));
        assert_eq!(parse_quantity("1.5Gi"), Ok(1536 * 1024 * 1024 * 1000));
        assert_eq!(parse_quantity("1Ki"), Ok(1_024_000));
        assert_eq!(parse_quantity("128Mi"), Ok(128 * 1024 * 1024 * 1000));
        assert_eq!(parse_quantity("2k"), Ok(2_000_000));
        assert_eq!(parse_quantity("1M"), Ok(1_000_000_000));
        assert_eq!(parse_quantity("1G"), Ok(1_000_000_000_000));
        assert_eq!(parse_quantity("1e3"), Ok(1_000_000));
        assert_eq!(parse_quantity("1E3"), Ok(1_000_000));
        assert_eq!(parse_quantity("1e-3"), Ok(1));
        assert_eq!(parse_quantity("1E"), Ok(10i128.pow(21)));
        assert_eq!(parse_quantity("1Ei"), Ok((1i128 << 60) * 1000));
        assert_eq!(parse_quantity("-1"), Ok(-1000));
        assert_eq!(parse_quantity("+2"), Ok(2000));
        assert_eq!(parse_quantity("0.1m"), Ok(1));
        assert_eq!(parse_quantity("0"), Ok(0));
        // Nano and micro units, as metrics.k8s.io writes CPU: round up to a milli-unit.
        assert_eq!(parse_quantity("197175386n"), Ok(198));
        assert_eq!(parse_quantity("250000u"), Ok(250));
    }

    #[test]
    fn rejects_malformed() {
        for s in ["", "abc", "1x", "1.2.3", "m", "1Kb", "1e", "1e+", "--1", ".", "1 Gi"] {
            assert!(parse_quantity(s).is_err(), "{s:?} should be rejected");
        }
        assert!(parse_quantity("1e999").is_err());
    }
}
