//! Resource quantities as kubectl prints them: parsed exactly (nano-units in an i128), added
//! and compared without floating point, and written back in apimachinery's canonical form
//! (`1500m`, `128Mi`, `2`, `1e3`), which depends on the format the first operand was written in.

use std::cmp::Ordering;

/// How a quantity was written, which decides how it is printed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `100m`, `2k`, `1.5`.
    DecimalSi,
    /// `64Mi`, `1Gi`.
    BinarySi,
    /// `1e3`.
    DecimalExponent,
}

/// An exact quantity: `nanos` thousand-millionths of the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    /// The value in 10^-9 units.
    pub nanos: i128,
    /// The notation it came in.
    pub format: Format,
}

const NANO: i128 = 1_000_000_000;

impl Default for Quantity {
    fn default() -> Self {
        Quantity { nanos: 0, format: Format::DecimalSi }
    }
}

impl Quantity {
    /// Parses `100m`, `1.5Gi`, `2e3`; `None` when the text is no quantity.
    pub fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (number, suffix) = rest.split_at(digits);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return None;
        }
        let mut mantissa: i128 = 0;
        for d in whole.bytes().chain(frac.bytes()) {
            mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
        }
        let (binary, pow10, format): (i128, i64, Format) = match suffix {
            "" => (1, 0, Format::DecimalSi),
            "n" => (1, -9, Format::DecimalSi),
            "u" => (1, -6, Format::DecimalSi),
            "m" => (1, -3, Format::DecimalSi),
            "k" => (1, 3, Format::DecimalSi),
            "M" => (1, 6, Format::DecimalSi),
            "G" => (1, 9, Format::DecimalSi),
            "T" => (1, 12, Format::DecimalSi),
            "P" => (1, 15, Format::DecimalSi),
            "E" => (1, 18, Format::DecimalSi),
            "Ki" => (1 << 10, 0, Format::BinarySi),
            "Mi" => (1 << 20, 0, Format::BinarySi),
            "Gi" => (1 << 30, 0, Format::BinarySi),
            "Ti" => (1 << 40, 0, Format::BinarySi),
            "Pi" => (1 << 50, 0, Format::BinarySi),
            "Ei" => (1 << 60, 0, Format::BinarySi),
            exp if exp.starts_with(['e', 'E']) => {
                let digits = &exp[1..];
                let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
                if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (1, digits.parse::<i64>().ok()?, Format::DecimalExponent)
            }
            _ => return None,
        };
        // value = mantissa * binary * 10^(pow10 - frac digits), in nanos: * 10^9.
        let scale = pow10 - i64::try_from(frac.len()).ok()? + 9;
        let scaled = mantissa.checked_mul(binary)?;
        let nanos = if scale >= 0 {
            scaled.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?
        } else {
            // Below a nano-unit the value rounds up, as apimachinery does.
            let div = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
            (scaled + div - 1) / div
        };
        Some(Quantity { nanos: if negative { -nanos } else { nanos }, format })
    }

    /// Adds `other`; a zero quantity takes the other's notation (apimachinery's `Add`).
    pub fn add(&mut self, other: &Quantity) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos += other.nanos;
    }

    /// `MilliValue()`: thousandths of the unit, rounded up.
    pub fn milli_value(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// `Value()`: whole units, rounded up.
    pub fn value(&self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// The canonical text (`Quantity.String()`).
    pub fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == Format::BinarySi && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0) {
            // Small or fractional binary values print in decimal rather than rounding.
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let mut amount = self.nanos / NANO;
            let mut exp = 0;
            while amount % 1024 == 0 && exp < 6 {
                amount /= 1024;
                exp += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
            return format!("{amount}{suffix}");
        }
        // Strip trailing zeros, then lower the exponent to a multiple of three.
        let mut amount = self.nanos;
        let mut exp: i64 = -9;
        while amount % 10 == 0 {
            amount /= 10;
            exp += 1;
        }
        match exp.rem_euclid(3) {
            1 => {
                amount *= 10;
                exp -= 1;
            }
            2 => {
                amount *= 100;
                exp -= 2;
            }
            _ => {}
        }
        if format == Format::DecimalExponent {
            return if exp == 0 { amount.to_string() } else { format!("{amount}e{exp}") };
        }
        let suffix = match exp {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => return format!("{amount}e{exp}"),
        };
        format!("{amount}{suffix}")
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && (a > 0) == (b > 0) { q + 1 } else { q }
}

/// The canonical form of a quantity text; text that is no quantity is kept as it is.
pub fn canonical(text: &str) -> String {
    Quantity::parse(text).map(|q| q.canonical()).unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> String {
        canonical(s)
    }

    #[test]
    fn canonical_forms_match_apimachinery() {
        assert_eq!(c("100m"), "100m");
        assert_eq!(c("0.1"), "100m");
        assert_eq!(c("1000m"), "1");
        assert_eq!(c("1500m"), "1500m");
        assert_eq!(c("2"), "2");
        assert_eq!(c("64Mi"), "64Mi");
        assert_eq!(c("1024Mi"), "1Gi");
        assert_eq!(c("1536Mi"), "1536Mi");
        assert_eq!(c("512"), "512");
        assert_eq!(c("1e3"), "1e3");
        assert_eq!(c("1000"), "1k");
        assert_eq!(c("0"), "0");
        assert_eq!(c("1.5Gi"), "1536Mi");
        assert_eq!(c("junk"), "junk");
    }

    #[test]
    fn sums_keep_the_first_format() {
        let mut q = Quantity::default();
        q.add(&Quantity::parse("64Mi").unwrap_or_default());
        q.add(&Quantity::parse("64Mi").unwrap_or_default());
        assert_eq!(q.canonical(), "128Mi");
        let mut cpu = Quantity::parse("100m").unwrap_or_default();
        cpu.add(&Quantity::parse("900m").unwrap_or_default());
        assert_eq!(cpu.canonical(), "1");
        assert_eq!(cpu.milli_value(), 1000);
        assert_eq!(Quantity::parse("1Ki").map(|q| q.value()), Some(1024));
    }
}
