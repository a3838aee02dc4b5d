//! Store lookup and insert with 100k objects resident.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, StatusCode};
use lacquer::cache::key::{CacheKey, KeyRules};
use lacquer::cache::object::Object;
use lacquer::cache::policy::Freshness;
use lacquer::cache::store::Store;
use tokio::time::Instant;

const OBJECTS: usize = 100_000;

fn object(body: &Bytes) -> Arc<Object> {
    let freshness = Freshness {
        lifetime: Duration::from_secs(3600),
        initial_age: Duration::ZERO,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        keep: Duration::from_secs(3600),
        always_revalidate: false,
        no_stale: false,
    };
    Arc::new(Object::pushed(
        StatusCode::OK,
        &HeaderMap::new(),
        body.clone(),
        freshness,
        None,
        Instant::now(),
    ))
}

fn store(c: &mut Criterion) {
    let rules = KeyRules::default();
    let keys: Vec<CacheKey> = (0..OBJECTS)
        .map(|i| CacheKey::new("http", "bench.example", &format!("/k/{i}"), &rules))
        .collect();
    let body = Bytes::from(vec![b'x'; 1024]);
    let store = Store::new(1 << 30, 8);
    for k in &keys {
        store.insert(k, object(&body)).unwrap();
    }
    store.run_pending_tasks();
    let req = HeaderMap::new();
    let mut i = 0usize;
    c.bench_function("store_get_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % OBJECTS;
            black_box(store.lookup(&keys[i], &req))
        })
    });
    let mut j = 0usize;
    c.bench_function("store_insert_replace_100k", |b| {
        b.iter(|| {
            j = (j + 7919) % OBJECTS;
            store.insert(&keys[j], object(&body))
        })
    });
    let fresh: Vec<CacheKey> = (0..OBJECTS)
        .map(|i| CacheKey::new("http", "other.example", &format!("/n/{i}"), &rules))
        .collect();
    let mut n = 0usize;
    c.bench_function("store_insert_new_evicting", |b| {
        let small = Store::new(64 << 20, 8);
        b.iter(|| {
            n = (n + 1) % OBJECTS;
            small.insert(&fresh[n], object(&body))
        })
    });
}

criterion_group!(benches, store);
criterion_main!(benches);
