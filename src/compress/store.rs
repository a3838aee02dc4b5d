//! The encodings made once when an object is stored. Blocking work: run it off the
//! async runtime (`Policy::encode_stored` does).

use std::io::Write;

use bytes::Bytes;

use super::Encoding;
use crate::cache::object::{body_weight, stored_body};

/// Brotli's window for stored encodings: 4 MiB, its default, so a large body finds
/// repeats far back.
const STORE_LGWIN: u32 = 22;
/// brotli's internal buffer between its encoder and the output.
const BROTLI_BUFFER: usize = 4096;

/// An object's encoded copies of its body; an encoding is kept only when it saves at
/// least a tenth of the identity body (below that, the memory costs more than the
/// bytes on the wire save).
#[derive(Debug, Clone, Default)]
pub struct Encodings {
    br: Option<Bytes>,
    gzip: Option<Bytes>,
}

impl Encodings {
    /// Encode `body` into each of `which`. Blocking.
    pub fn encode(body: &[u8], which: &[Encoding], brotli_level: u32, gzip_level: u32) -> Self {
        let worth = |out: Vec<u8>| {
            (out.len() <= body.len() - body.len() / 10).then(|| stored_body(&[Bytes::from(out)]))
        };
        let mut enc = Encodings::default();
        for e in which {
            match e {
                Encoding::Br => enc.br = brotli(body, brotli_level, STORE_LGWIN).and_then(worth),
                Encoding::Gzip => enc.gzip = gzip(body, gzip_level).and_then(worth),
            }
        }
        enc
    }

    pub fn get(&self, e: Encoding) -> Option<&Bytes> {
        match e {
            Encoding::Br => self.br.as_ref(),
            Encoding::Gzip => self.gzip.as_ref(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.br.is_none() && self.gzip.is_none()
    }

    /// Bytes these copies cost in memory, charged as bodies are.
    pub fn weight(&self) -> usize {
        [&self.br, &self.gzip]
            .into_iter()
            .flatten()
            .map(|b| body_weight(b.len()))
            .sum()
    }
}

/// The whole body as one gzip member; None if the encoder fails (it does not, writing
/// to memory, but a failure must not take the object down).
pub fn gzip(body: &[u8], level: u32) -> Option<Vec<u8>> {
    let out = Vec::with_capacity(body.len() / 4 + 64);
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

/// The whole body as one brotli stream.
pub fn brotli(body: &[u8], quality: u32, lgwin: u32) -> Option<Vec<u8>> {
    let out = Vec::with_capacity(body.len() / 4 + 64);
    let params = brotli::enc::BrotliEncoderParams {
        quality: i32::try_from(quality).unwrap_or(11),
        lgwin: i32::try_from(lgwin).unwrap_or(22),
        size_hint: body.len(),
        ..Default::default()
    };
    let mut enc = brotli::CompressorWriter::with_params(out, BROTLI_BUFFER, &params);
    enc.write_all(body).ok()?;
    // Finishes the stream.
    Some(enc.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn json(len: usize) -> Vec<u8> {
        let mut s = String::from("[");
        let mut i = 0;
        while s.len() < len {
            s.push_str(&format!(
                "{{\"id\":{i},\"name\":\"player {i}\",\"score\":{},\"team\":\"t{}\"}},",
                i * 7 % 101,
                i % 20
            ));
            i += 1;
        }
        s.push_str("{}]");
        s.into_bytes()
    }

    #[test]
    fn encodings_decode_to_the_body() {
        let body = json(50 * 1024);
        let enc = Encodings::encode(&body, &[Encoding::Br, Encoding::Gzip], 5, 6);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&enc.get(Encoding::Gzip).unwrap()[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let mut out = Vec::new();
        brotli::Decompressor::new(&enc.get(Encoding::Br).unwrap()[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        let sizes = enc.get(Encoding::Br).unwrap().len() + enc.get(Encoding::Gzip).unwrap().len();
        assert!(enc.weight() >= sizes);
    }

    #[test]
    fn incompressible_bodies_keep_no_encoding() {
        // A pseudo-random body: neither codec saves a tenth.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let body: Vec<u8> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let enc = Encodings::encode(&body, &[Encoding::Br, Encoding::Gzip], 5, 6);
        assert!(enc.is_empty());
        assert_eq!(enc.weight(), 0);
    }

    #[test]
    fn only_the_listed_encodings_are_made() {
        let body = json(4096);
        let enc = Encodings::encode(&body, &[Encoding::Gzip], 5, 6);
        assert!(enc.get(Encoding::Br).is_none() && enc.get(Encoding::Gzip).is_some());
    }
}
