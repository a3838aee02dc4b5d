//! Header parsing and key hashing: the per-request CPU cost before any I/O.

use std::time::{Duration, SystemTime};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::header::{HeaderMap, HeaderValue};
use http::StatusCode;
use lacquer::cache::control::CacheControl;
use lacquer::cache::key::{CacheKey, KeyRules, QueryMode};
use lacquer::cache::policy::{self, PolicyConfig};

fn response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "cache-control",
        HeaderValue::from_static(
            "public, max-age=3600, stale-while-revalidate=60, stale-if-error=600",
        ),
    );
    h.insert(
        "date",
        HeaderValue::from_static("Tue, 15 Nov 1994 08:12:31 GMT"),
    );
    h.insert(
        "last-modified",
        HeaderValue::from_static("Mon, 14 Nov 1994 08:12:31 GMT"),
    );
    h.insert("etag", HeaderValue::from_static("\"abc123\""));
    h.insert("age", HeaderValue::from_static("10"));
    h
}

fn cache_control(c: &mut Criterion) {
    let value = HeaderValue::from_static(
        "public, max-age=3600, s-maxage=\"7200\", stale-while-revalidate=60, no-transform",
    );
    c.bench_function("cache_control_parse", |b| {
        b.iter(|| CacheControl::parse([black_box(&value)]))
    });
    let cdn = HeaderValue::from_static("max-age=600, stale-if-error=30");
    c.bench_function("cdn_cache_control_parse", |b| {
        b.iter(|| CacheControl::parse_targeted([black_box(&cdn)]))
    });
    let resp = response_headers();
    let cfg = PolicyConfig::default();
    let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(784_887_150);
    let got = sent + Duration::from_millis(5);
    c.bench_function("freshness", |b| {
        b.iter(|| policy::freshness(StatusCode::OK, black_box(&resp), sent, got, &cfg))
    });
    c.bench_function("parse_http_date", |b| {
        b.iter(|| policy::parse_http_date(black_box(b"Tue, 15 Nov 1994 08:12:31 GMT")))
    });
}

fn key_hashing(c: &mut Criterion) {
    let keep = KeyRules::default();
    c.bench_function("cache_key_plain", |b| {
        b.iter(|| {
            CacheKey::new(
                "http",
                black_box("www.example.com"),
                black_box("/assets/app.3f2a9c.js"),
                &keep,
            )
        })
    });
    let sort = KeyRules {
        query: QueryMode::Sort,
        drop_params: vec!["utm_source".into(), "utm_medium".into(), "fbclid".into()],
        ignore_host: false,
    };
    c.bench_function("cache_key_sorted_query", |b| {
        b.iter(|| {
            CacheKey::new(
                "http",
                black_box("WWW.Example.com:80"),
                black_box("/search?q=caf%c3%a9&utm_source=x&page=2&a=1&fbclid=zz"),
                &sort,
            )
        })
    });
}

criterion_group!(benches, cache_control, key_hashing);
criterion_main!(benches);
