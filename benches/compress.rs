//! Store-time and on-the-fly compression of a 50 KiB JSON document: CPU per object at
//! each brotli quality and gzip level, to choose `[compression]`'s levels. Sizes are
//! printed once per setting (criterion measures only time).

use std::io::Write;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use lacquer::compress::store::{brotli, gzip};

/// About 50 KiB of a live-scores API answer: repeated keys, varying values.
fn document() -> Vec<u8> {
    let teams = [
        "Arsenal",
        "Chelsea",
        "Liverpool",
        "Everton",
        "Leeds United",
        "Brighton",
        "Fulham",
        "Brentford",
        "Wolves",
        "Newcastle",
        "Aston Villa",
        "West Ham",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut s = String::from("[");
    while s.len() < 50 * 1024 {
        let (h, a) = (next(12) as usize, next(12) as usize);
        s.push_str(&format!(
            "{{\"id\":\"evt-{}\",\"home\":\"{}\",\"away\":\"{}\",\"score\":[{},{}],\"minute\":{},\"odds\":{{\"home\":{}.{:02},\"draw\":{}.{:02},\"away\":{}.{:02}}},\"markets\":{}}},",
            next(1_000_000_000),
            teams[h],
            teams[a],
            next(5),
            next(5),
            next(96),
            1 + next(8),
            next(100),
            2 + next(4),
            next(100),
            1 + next(8),
            next(100),
            20 + next(280)
        ));
    }
    s.push_str("{}]");
    s.into_bytes()
}

fn compress(c: &mut Criterion) {
    let body = document();
    let mut g = c.benchmark_group("store-50KiB-json");
    g.sample_size(20);
    for q in [4u32, 5, 6, 7, 8, 9] {
        let size = brotli(&body, q, 22).map_or(0, |b| b.len());
        eprintln!("br q{q}: {} of {} bytes", size, body.len());
        g.bench_function(format!("br-q{q}"), |b| {
            b.iter(|| brotli(black_box(&body), q, 22))
        });
    }
    for level in [1u32, 6, 9] {
        let size = gzip(&body, level).map_or(0, |b| b.len());
        eprintln!("gzip {level}: {} of {} bytes", size, body.len());
        g.bench_function(format!("gzip-{level}"), |b| {
            b.iter(|| gzip(black_box(&body), level))
        });
    }
    g.finish();

    // On the fly: 16 KiB frames, each flushed, as `compress::stream` does.
    let mut g = c.benchmark_group("fly-50KiB-json");
    g.sample_size(20);
    for q in [1u32, 2, 3, 4] {
        eprintln!(
            "br-fly q{q}: {} of {} bytes",
            fly_brotli(&body, q),
            body.len()
        );
        g.bench_function(format!("br-q{q}"), |b| {
            b.iter(|| fly_brotli(black_box(&body), q))
        });
    }
    for level in [1u32, 6] {
        eprintln!(
            "gzip-fly {level}: {} of {} bytes",
            fly_gzip(&body, level),
            body.len()
        );
        g.bench_function(format!("gzip-{level}"), |b| {
            b.iter(|| fly_gzip(black_box(&body), level))
        });
    }
    g.finish();
}

fn fly_brotli(body: &[u8], q: u32) -> usize {
    let mut w = ::brotli::CompressorWriter::new(Vec::new(), 4096, q, 18);
    let mut sent = 0;
    for frame in body.chunks(16 * 1024) {
        let _ = w.write_all(frame);
        let _ = w.flush();
        sent += std::mem::take(w.get_mut()).len();
    }
    sent + w.into_inner().len()
}

fn fly_gzip(body: &[u8], level: u32) -> usize {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    let mut sent = 0;
    for frame in body.chunks(16 * 1024) {
        let _ = w.write_all(frame);
        let _ = w.flush();
        sent += std::mem::take(w.get_mut()).len();
    }
    sent + w.finish().map_or(0, |v| v.len())
}

criterion_group!(benches, compress);
criterion_main!(benches);
