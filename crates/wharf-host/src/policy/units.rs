//! Byte sizes as people write them: `64MiB`, `1G`, `512k`, `1048576`.
use super::PolicyError;

/// Parses a size with an optional binary (`KiB`, `MiB`, `GiB`) or decimal-looking (`K`, `M`,
/// `G`, `KB`, ...) suffix. Like wasmtime and Docker, single letters and `KB`-style suffixes
/// are powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, PolicyError> {
    let bad = |why: &str| PolicyError::invalid("max-memory", text, why);
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let number: u64 = digits.parse().map_err(|_| bad("expected a number such as 64MiB"))?;
    let shift = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad("unknown unit; use B, KiB, MiB or GiB")),
    };
    let bytes = number.checked_mul(1 << shift).ok_or_else(|| bad("too large"))?;
    if bytes == 0 {
        return Err(bad("must be greater than zero"));
    }
    Ok(bytes)
}

/// Formats a byte count the way [`parse_size`] reads it, e.g. `64MiB`.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512 KB").unwrap(), 512 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["", "MiB", "12XB", "0", "99999999999999GiB", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
