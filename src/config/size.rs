//! Sizes as people write them in the operator's config: `64MiB`, `64 MiB`, `512k`, `2g`,
//! or a number of bytes. k, m, g (and KiB, MiB, GiB, KB, MB, GB) all count in 1024s.

use serde::{Deserialize, Deserializer};

/// A size in bytes, read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// Why a text is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("`{0}` is not a size like 64MiB, 512k or 2g")]
    NotASize(String),
    #[error("`{text}`: unknown unit `{unit}` (use k, m or g)")]
    UnknownUnit { text: String, unit: String },
    #[error("`{0}` is out of range (1 byte to 1 PiB)")]
    OutOfRange(String),
}

pub fn parse(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let value: f64 = number.parse().map_err(|_| SizeError::NotASize(text.to_string()))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(SizeError::UnknownUnit { text: text.to_string(), unit: unit.to_string() }),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > (1u64 << 50) as f64 {
        return Err(SizeError::OutOfRange(text.to_string()));
    }
    Ok(bytes as u64)
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(0) => Err(serde::de::Error::custom("a size must be at least 1 byte")),
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) => parse(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("64 MiB"), Ok(64 << 20));
        assert_eq!(parse("512k"), Ok(512 << 10));
        assert_eq!(parse("1.5g"), Ok(3 << 29));
        assert_eq!(parse("100"), Ok(100));
        assert!(parse("lots").is_err());
        assert!(matches!(parse("5 parsecs"), Err(SizeError::UnknownUnit { .. })));
        assert!(parse("5 parsecs").unwrap_err().to_string().contains("unknown unit `parsecs`"));
        assert!(parse("0").is_err());
        assert!(parse("99999999999g").is_err());
    }
}
