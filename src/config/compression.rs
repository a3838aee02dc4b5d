//! `[compression]`: compression at the edge. The schema and its checks; the compiled
//! form (type matching, negotiation, encoders) lives in `crate::compress`.

use serde::Deserialize;

use super::units;
use super::validate::Checker;

/// Encodings lacquer can make.
pub const ENCODINGS: [&str; 2] = ["br", "gzip"];
/// Most media type patterns in `types`: each response's type is compared with all.
pub const MAX_TYPES: usize = 128;
/// Highest brotli quality and gzip level the codecs know.
pub const MAX_BROTLI_LEVEL: u32 = 11;
pub const MAX_GZIP_LEVEL: u32 = 9;

/// Compression of responses for clients that accept it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    pub enabled: bool,
    /// Bodies of at most this many bytes are sent as they are.
    #[serde(deserialize_with = "units::de_size")]
    pub min_size: u64,
    /// Media types compressed: `type/subtype`, `type/*`, or `+suffix` (`+json`).
    pub types: Vec<String>,
    /// Encodings made once when a response is stored, kept beside the identity body.
    pub store: Vec<String>,
    /// Brotli quality (0-11) for stored encodings.
    pub brotli_level: u32,
    /// gzip level (1-9) for stored encodings.
    pub gzip_level: u32,
    /// Compress responses that are not served from a stored encoding while they stream.
    pub on_the_fly: bool,
    pub on_the_fly_brotli_level: u32,
    pub on_the_fly_gzip_level: u32,
    /// Most responses compressed on the fly at once; beyond it they go out
    /// uncompressed. Each holds an encoder: measured at about 280 KiB (gzip) and 530 KiB
    /// (brotli, 256 KiB window), so the default bounds them near 70 MiB.
    pub on_the_fly_max_streams: usize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_size: 1024,
            types: DEFAULT_TYPES.iter().map(|s| s.to_string()).collect(),
            store: ENCODINGS.iter().map(|s| s.to_string()).collect(),
            brotli_level: 5,
            gzip_level: 6,
            on_the_fly: true,
            on_the_fly_brotli_level: 2,
            on_the_fly_gzip_level: 1,
            on_the_fly_max_streams: 128,
        }
    }
}

/// Text, and the structured formats served as text; `application/wasm` too, which
/// compresses to about a third. Already-compressed formats (images, video, fonts in
/// woff2, archives) are left out: compressing them again gains nothing.
pub const DEFAULT_TYPES: [&str; 9] = [
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "image/svg+xml",
    "application/wasm",
    "+json",
    "+xml",
    "application/x-javascript",
];

pub(super) fn check(c: &mut Checker<'_, '_>, k: &CompressionConfig) {
    if k.types.len() > MAX_TYPES {
        c.fail(
            "compression.types",
            format!(
                "compression.types has {} entries; at most {MAX_TYPES}",
                k.types.len()
            ),
        );
    }
    for t in &k.types {
        if !valid_type_pattern(t) {
            c.fail(
                "compression.types",
                format!(
                    "compression.types: {t:?} must be \"type/subtype\", \"type/*\" or \"+suffix\" (lowercase letters, digits and !#$&-^_.+)"
                ),
            );
        }
    }
    for (i, e) in k.store.iter().enumerate() {
        if !ENCODINGS.contains(&e.as_str()) {
            c.fail(
                "compression.store",
                format!("compression.store: unknown encoding {e:?}; known: \"br\", \"gzip\""),
            );
        } else if k.store[..i].contains(e) {
            c.fail(
                "compression.store",
                format!("compression.store lists {e:?} twice"),
            );
        }
    }
    let levels = [
        (
            "compression.brotli_level",
            k.brotli_level,
            0,
            MAX_BROTLI_LEVEL,
        ),
        ("compression.gzip_level", k.gzip_level, 1, MAX_GZIP_LEVEL),
        (
            "compression.on_the_fly_brotli_level",
            k.on_the_fly_brotli_level,
            0,
            MAX_BROTLI_LEVEL,
        ),
        (
            "compression.on_the_fly_gzip_level",
            k.on_the_fly_gzip_level,
            1,
            MAX_GZIP_LEVEL,
        ),
    ];
    for (path, value, min, max) in levels {
        if !(min..=max).contains(&value) {
            c.fail(path, format!("{path} must be from {min} to {max}"));
        }
    }
}

/// `type/subtype`, `type/*` or `+suffix`, in lowercase token characters.
fn valid_type_pattern(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b))
    };
    if let Some(suffix) = t.strip_prefix('+') {
        return token(suffix);
    }
    match t.split_once('/') {
        Some((ty, "*")) => token(ty),
        Some((ty, sub)) => token(ty) && token(sub),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::valid_type_pattern;

    #[test]
    fn type_patterns() {
        for ok in ["text/*", "application/json", "+json", "image/svg+xml"] {
            assert!(valid_type_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "text",
            "*/*",
            "Text/html",
            "+",
            "a/b c",
            "/json",
            "text/",
        ] {
            assert!(!valid_type_pattern(bad), "{bad}");
        }
    }
}
