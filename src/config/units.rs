//! Human-friendly durations ("250ms", "1h30m") and byte sizes ("64KiB", "10MB").
//!
//! Both are parsed strictly: a typo must be reported, never silently read as
//! something else, because a misread timeout or cache size changes behaviour
//! in production without any visible symptom.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Longest accepted duration. Anything longer is a typo, and bounding it keeps
/// `Instant + Duration` arithmetic elsewhere from overflowing (which panics).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

const DURATION_HINT: &str = "expected e.g. 10s, 250ms, 5m, 1h30m, 1d";
const SIZE_HINT: &str = "expected bytes as an integer or e.g. 64KiB, 256MiB, 1GiB, 10MB";

/// Parses `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"` and concatenations such as
/// `"1h30m"`. A bare `"0"` is accepted because zero needs no unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: {DURATION_HINT}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        if number.is_empty() || unit.is_empty() {
            return Err(invalid());
        }
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        let value: u64 = number.parse().map_err(|_| invalid())?;
        total_ms = value
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
        rest = tail;
    }
    let total = Duration::from_millis(total_ms);
    if total > MAX_DURATION {
        return Err(format!("duration {text:?} is too large (at most 3650d)"));
    }
    Ok(total)
}

/// Parses a byte size: plain digits are bytes; suffixes are `B`, decimal
/// `KB`/`MB`/`GB`/`TB` (powers of 1000) and binary `KiB`/`MiB`/`GiB`/`TiB`
/// (powers of 1024), case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?}: {SIZE_HINT}");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(invalid());
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(invalid()),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// Renders a size the way an operator would write it, for error messages.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 7] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    if bytes == 0 {
        return "0B".to_string();
    }
    for (unit, name) in UNITS {
        if bytes % unit == 0 {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

/// A duration the way the config writes it: "1d2h", "30s", "250ms", "0s".
pub fn format_duration(d: Duration) -> String {
    let mut out = String::new();
    let mut secs = d.as_secs();
    for (unit, name) in [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")] {
        if secs >= unit {
            out.push_str(&format!("{}{name}", secs / unit));
            secs %= unit;
        }
    }
    let ms = d.subsec_millis();
    if ms > 0 || out.is_empty() {
        out.push_str(&if ms > 0 {
            format!("{ms}ms")
        } else {
            "0s".to_owned()
        });
    }
    out
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a duration string ({DURATION_HINT})")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }
        // A bare integer is ambiguous (seconds? milliseconds?), so only zero,
        // which means the same in every unit, is accepted without a suffix.
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            if v == 0 {
                return Ok(Duration::ZERO);
            }
            Err(E::custom(format!(
                "invalid duration {v}: a unit is required, e.g. \"{v}s\" or \"{v}ms\""
            )))
        }
    }
    d.deserialize_any(V)
}

/// An optional duration: absent is `None` (with `#[serde(default)]` on the struct).
pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A table of durations, e.g. `{ "404" = "1m", "5xx" = "5s" }`.
pub(crate) fn de_duration_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, Duration>, D::Error> {
    #[derive(serde::Deserialize)]
    struct D2(#[serde(deserialize_with = "de_duration")] Duration);
    let raw: std::collections::BTreeMap<String, D2> = serde::Deserialize::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a size ({SIZE_HINT})")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
}

pub(crate) fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SizeVisitor)
}

pub(crate) fn de_size_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let bytes = d.deserialize_any(SizeVisitor)?;
    usize::try_from(bytes).map_err(|_| de::Error::custom("size is too large for this platform"))
}

/// An optional size: absent is `None` (with `#[serde(default)]` on the struct).
pub(crate) fn de_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(SizeVisitor).map(Some)
}

/// Socket addresses get their own parser only to give a message that tells
/// the operator what is expected (hostnames cannot be bound to).
pub(crate) fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = SocketAddr;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an IP:port string such as \"127.0.0.1:8080\" or \"[::1]:8080\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            v.parse().map_err(|_| {
                E::custom(format!(
                    "invalid address {v:?}: expected IP:port, e.g. 127.0.0.1:8080 or [::1]:8080"
                ))
            })
        }
    }
    d.deserialize_str(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("1m500ms").unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations() {
        for bad in [
            "",
            "10",
            "10 parsecs",
            "s",
            "1.5s",
            "-1s",
            "10S",
            "1h 30m",
            " 1s",
            "1s ",
            "10x",
            "1hh",
            "h1",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert_eq!(
            parse_duration("10 parsecs").unwrap_err(),
            "invalid duration \"10 parsecs\": expected e.g. 10s, 250ms, 5m, 1h30m, 1d"
        );
        assert!(parse_duration("3651d").unwrap_err().contains("too large"));
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("512B").unwrap(), 512);
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2TiB").unwrap(), 2 << 40);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("10mb").unwrap(), 10_000_000);
        assert_eq!(parse_size("3kb").unwrap(), 3_000);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "-1",
            "10 MiB",
            "10M",
            "10k",
            "ten",
            "1PiB",
            "99999999999999999999",
            "20000000TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("12 parsecs")
            .unwrap_err()
            .starts_with("invalid size \"12 parsecs\""));
    }

    #[test]
    fn size_formatting() {
        assert_eq!(format_size(0), "0B");
        assert_eq!(format_size(512 << 20), "512MiB");
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(10_000_000), "10MB");
        assert_eq!(format_size(1_500), "1500B");
        assert_eq!(format_size(3_000), "3KB");
        assert_eq!(format_size(7), "7B");
    }
}
