//! Partial responses (RFC 9111 3.3-3.4): 206 answers stored as parts, later ranges
//! answered from them, parts of one representation joined, over real sockets against an
//! origin on loopback that answers ranges and counts requests.

mod support;

use std::sync::{Arc, Mutex};

use http::Method;
use support::*;

/// What the origin serves at every path: a body of `len` bytes, its ETag, its
/// Cache-Control, and the Cache-Control of an answer without Range (defaults to `cc`).
#[derive(Clone)]
struct Rep {
    len: usize,
    etag: &'static str,
    cc: &'static str,
    full_cc: Option<&'static str>,
}

/// Byte `i` of the representation tagged `etag`: different tags, different bytes.
fn byte(etag: &str, i: usize) -> u8 {
    let seed = etag.bytes().map(usize::from).sum::<usize>();
    b'a' + ((i + seed) % 26) as u8
}

fn content(rep: &Rep) -> Vec<u8> {
    (0..rep.len).map(|i| byte(rep.etag, i)).collect()
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` as the origin understands it (all these tests
/// need).
fn asked_range(seen: &Seen, len: usize) -> Option<(usize, usize)> {
    let v = seen.headers.get("range")?.to_str().ok()?;
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    if a.is_empty() {
        let n: usize = b.parse().ok()?;
        return (n > 0).then(|| (len.saturating_sub(n), len - 1));
    }
    let a: usize = a.parse().ok()?;
    let b: usize = if b.is_empty() {
        len - 1
    } else {
        b.parse::<usize>().ok()?.min(len - 1)
    };
    (a <= b && b < len).then_some((a, b))
}

/// An origin answering a Range with a 206 of that range, anything else with a 200.
async fn ranged_origin(rep: Arc<Mutex<Rep>>) -> Origin {
    Origin::start(move |seen, _| {
        let rep = rep.lock().unwrap().clone();
        let all = content(&rep);
        match asked_range(seen, rep.len) {
            Some((a, b)) => Reply::ok(all[a..=b].to_vec())
                .status(206)
                .header("content-range", &format!("bytes {a}-{b}/{}", rep.len))
                .header("etag", rep.etag)
                .header("accept-ranges", "bytes")
                .cc(rep.cc),
            None => Reply::ok(all)
                .header("etag", rep.etag)
                .header("accept-ranges", "bytes")
                .cc(rep.full_cc.unwrap_or(rep.cc)),
        }
    })
    .await
}

fn rep(len: usize, etag: &'static str) -> Arc<Mutex<Rep>> {
    Arc::new(Mutex::new(Rep {
        len,
        etag,
        cc: "max-age=60",
        full_cc: None,
    }))
}

async fn node(origin: &Origin, max_object_size: u64) -> Node {
    let mut cfg = admin_config(&[origin.addr], None);
    cfg.cache.max_object_size = max_object_size;
    start(cfg).await
}

async fn range(node: &Node, path: &str, spec: &str) -> Got {
    node.get_with(path, &[("range", spec)]).await
}

/// The Range of the origin's last request for `path`.
fn last_range(origin: &Origin, path: &str) -> Option<String> {
    origin
        .requests()
        .iter()
        .rev()
        .find(|s| s.path == path)
        .and_then(|s| s.headers.get("range"))
        .map(|v| v.to_str().unwrap_or_default().to_owned())
}

fn expect_part(got: &Got, rep: &Rep, a: usize, b: usize) {
    assert_eq!(got.status, 206, "{}", got.cache_status());
    assert_eq!(
        got.header("content-range"),
        Some(format!("bytes {a}-{b}/{}", rep.len).as_str())
    );
    assert_eq!(&got.body[..], &content(rep)[a..=b]);
}

/// The first range request for an object over `max_object_size` fills the whole object
/// (too big to keep; the client gets its range of it); from then on the URL is hit-for-miss and ranges go
/// to the origin as asked. A stored 206 answers a later range it covers with no origin
/// request; an uncovered one is sent on with its Range; parts of the same strong ETag
/// are kept together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_part_answers_covered_ranges_and_uncovered_ones_go_on() {
    within(30, async {
        let r = rep(4000, "\"v1\"");
        let origin = ranged_origin(r.clone()).await;
        let node = node(&origin, 1000).await;
        let v1 = r.lock().unwrap().clone();

        let cold = range(&node, "/big", "bytes=0-99").await;
        expect_part(&cold, &v1, 0, 99);
        assert_eq!(
            last_range(&origin, "/big"),
            None,
            "a cold key fills the whole"
        );

        let first = range(&node, "/big", "bytes=0-99").await;
        expect_part(&first, &v1, 0, 99);
        assert_eq!(last_range(&origin, "/big").as_deref(), Some("bytes=0-99"));
        assert!(
            first.cache_status().contains("stored"),
            "{}",
            first.cache_status()
        );
        assert_eq!(origin.count("/big"), 2);

        let inside = range(&node, "/big", "bytes=10-49").await;
        expect_part(&inside, &v1, 10, 49);
        assert!(inside.is_hit(), "{}", inside.cache_status());
        assert!(inside.cache_status().contains("detail=partial"));
        assert!(inside.header("age").is_some());
        assert_eq!(origin.count("/big"), 2, "covered: no origin request");

        let beyond = range(&node, "/big", "bytes=3000-3099").await;
        expect_part(&beyond, &v1, 3000, 3099);
        assert!(!beyond.is_hit());
        assert_eq!(
            last_range(&origin, "/big").as_deref(),
            Some("bytes=3000-3099")
        );
        assert_eq!(origin.count("/big"), 3);

        // Both parts are held: the same strong ETag joined them.
        for (a, b) in [(0, 99), (3050, 3099), (50, 59)] {
            let got = range(&node, "/big", &format!("bytes={a}-{b}")).await;
            expect_part(&got, &v1, a, b);
            assert!(got.is_hit(), "{a}-{b}: {}", got.cache_status());
        }
        // The suffix form resolves against the complete length the parts carry.
        let suffix = range(&node, "/big", "bytes=-50").await;
        expect_part(&suffix, &v1, 3950, 3999);
        assert!(!suffix.is_hit(), "3950-3999 is not held");
        let straddling = range(&node, "/big", "bytes=90-110").await;
        expect_part(&straddling, &v1, 90, 110);
        assert!(
            !straddling.is_hit(),
            "a range partly held goes to the origin"
        );
        assert_eq!(origin.count("/big"), 5);

        // A plain GET is not answered from parts.
        let full = node.get("/big").await;
        assert_eq!(full.status, 200);
        assert_eq!(full.body.len(), 4000);
        assert_eq!(origin.count("/big"), 6);
        node.stop().await;
    })
    .await;
}

/// A 206 of another representation (another ETag) replaces the stored parts: bytes of
/// two representations are never served as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_of_different_representations_are_not_joined() {
    within(30, async {
        let r = rep(4000, "\"v1\"");
        let origin = ranged_origin(r.clone()).await;
        let node = node(&origin, 1000).await;
        range(&node, "/x", "bytes=0-99").await;
        let v1 = r.lock().unwrap().clone();
        expect_part(&range(&node, "/x", "bytes=0-99").await, &v1, 0, 99);
        assert!(range(&node, "/x", "bytes=0-9").await.is_hit());

        r.lock().unwrap().etag = "\"v2\"";
        let v2 = r.lock().unwrap().clone();
        let other = range(&node, "/x", "bytes=200-299").await;
        expect_part(&other, &v2, 200, 299);
        assert_eq!(origin.count("/x"), 3);

        // v1's part is gone: its range goes to the origin and comes back as v2.
        let again = range(&node, "/x", "bytes=0-9").await;
        assert!(!again.is_hit(), "{}", again.cache_status());
        expect_part(&again, &v2, 0, 9);
        assert_eq!(again.header("etag"), Some("\"v2\""));
        assert_eq!(origin.count("/x"), 4);
        let v2_part = range(&node, "/x", "bytes=250-259").await;
        assert!(v2_part.is_hit());
        expect_part(&v2_part, &v2, 250, 259);
        node.stop().await;
    })
    .await;
}

/// Parts that together cover the representation become a complete stored object: a
/// plain GET is then a hit with the whole body (RFC 9110 15.3.7.3). The URL's whole
/// answer was first `private` (not stored, so hit-for-miss), its 206s shareable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_parts_become_a_complete_object() {
    within(30, async {
        let r = rep(300, "\"whole\"");
        r.lock().unwrap().full_cc = Some("private, max-age=60");
        let origin = ranged_origin(r.clone()).await;
        let node = node(&origin, 1 << 20).await;
        let v = r.lock().unwrap().clone();

        assert_eq!(node.get("/j").await.status, 200);
        expect_part(&range(&node, "/j", "bytes=0-149").await, &v, 0, 149);
        expect_part(&range(&node, "/j", "bytes=100-").await, &v, 100, 299);
        assert_eq!(last_range(&origin, "/j").as_deref(), Some("bytes=100-"));
        assert_eq!(origin.count("/j"), 3);

        let whole = node.get("/j").await;
        assert_eq!(whole.status, 200);
        assert!(whole.is_hit(), "{}", whole.cache_status());
        assert_eq!(&whole.body[..], &content(&v)[..]);
        assert_eq!(whole.header("content-length"), Some("300"));
        assert_eq!(whole.header("content-range"), None);
        assert_eq!(whole.header("etag"), Some("\"whole\""));
        let part = range(&node, "/j", "bytes=20-29").await;
        expect_part(&part, &v, 20, 29);
        assert!(part.is_hit());
        assert!(
            !part.cache_status().contains("partial"),
            "from the whole object"
        );
        assert_eq!(origin.count("/j"), 3);
        node.stop().await;
    })
    .await;
}

/// A 206 that cannot be placed in its representation (a Content-Range its body does not
/// fill, one with an unknown length, a multipart/byteranges body) is relayed as it came
/// and never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplaceable_206_is_relayed_not_stored() {
    within(30, async {
        let origin = Origin::start(|s, _| {
            let reply = match s.path.as_str() {
                // The conformance suite's own data: 6 bytes announced, 5 sent.
                "/short" => Reply::ok("01234").header("content-range", "bytes 4-9/10"),
                "/star" => Reply::ok("01234").header("content-range", "bytes 0-4/*"),
                _ => Reply::ok("--b\r\nContent-Range: bytes 0-0/10\r\n\r\n0\r\n--b--\r\n")
                    .header("content-type", "multipart/byteranges; boundary=b"),
            };
            reply.status(206).cc("max-age=60")
        })
        .await;
        let node = node(&origin, 1 << 20).await;
        for path in ["/short", "/star", "/multi"] {
            for _ in 0..2 {
                let got = range(&node, path, "bytes=0-4").await;
                assert_eq!(got.status, 206, "{path}");
                assert!(!got.is_hit(), "{path}: {}", got.cache_status());
                assert!(!got.cache_status().contains("stored"), "{path}");
            }
            assert_eq!(origin.count(path), 2, "{path}");
        }
        assert_eq!(
            range(&node, "/short", "bytes=0-4").await.text(),
            "01234",
            "relayed as it came"
        );
        node.stop().await;
    })
    .await;
}

/// A stored part is charged against the cache's memory bound like a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_charged_like_bodies() {
    within(30, async {
        let r = rep(1 << 20, "\"m\"");
        let origin = ranged_origin(r.clone()).await;
        let node = node(&origin, 300 << 10).await;
        let bytes = |m: &Got| -> u64 {
            m.text()
                .lines()
                .find_map(|l| l.strip_prefix("lacquer_cache_bytes "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        range(&node, "/m", "bytes=0-9").await;
        let before = bytes(&node.admin(Method::GET, "/metrics", None, "").await);
        let part = range(&node, "/m", "bytes=0-204799").await;
        assert_eq!(part.status, 206);
        // A body over 64 KiB streams before it is stored: wait for the insert.
        let mut hit = false;
        for _ in 0..50 {
            if range(&node, "/m", "bytes=0-9").await.is_hit() {
                hit = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(hit, "stored");
        let after = bytes(&node.admin(Method::GET, "/metrics", None, "").await);
        // A quarter over the body's length, as `object::body_weight` charges bodies.
        assert!(
            after >= before + 200 * 1024 * 5 / 4,
            "charged {} B for a 200 KiB part",
            after - before
        );
        // Past max_object_size a part is relayed, not stored.
        let big = range(&node, "/m", "bytes=0-400000").await;
        assert_eq!(big.status, 206);
        assert_eq!(big.body.len(), 400_001);
        let last = bytes(&node.admin(Method::GET, "/metrics", None, "").await);
        assert!(
            last < after + 400_000,
            "{last} B after a part too big to keep"
        );
        node.stop().await;
    })
    .await;
}

/// Parts go with their URL: PURGE removes them, and so does a successful unsafe method
/// (RFC 9111 4.4), like complete objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_purged_and_invalidated_with_their_url() {
    within(30, async {
        let r = rep(4000, "\"p\"");
        let origin = ranged_origin(r.clone()).await;
        let node = node(&origin, 1000).await;
        let stored = |path: &'static str| {
            let node = &node;
            async move {
                range(node, path, "bytes=0-99").await;
                range(node, path, "bytes=0-99").await;
                assert!(range(node, path, "bytes=0-9").await.is_hit(), "{path}");
            }
        };
        stored("/purged").await;
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let purged = node.send(purge, "/purged", &[], Default::default()).await;
        assert_eq!(purged.status, 200);
        assert_eq!(purged.text().trim(), "{\"purged\":1}");
        assert!(!range(&node, "/purged", "bytes=0-9").await.is_hit());

        stored("/posted").await;
        let posted = node.send(Method::POST, "/posted", &[], "x".into()).await;
        assert!(posted.status < 300);
        assert!(!range(&node, "/posted", "bytes=0-9").await.is_hit());
        node.stop().await;
    })
    .await;
}

/// Parts answer with the representation's validators: a matching If-Range is served from
/// them, another goes to the origin with its If-Range (the origin decides between the
/// range and the whole), and If-None-Match is answered 304 from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_range_and_preconditions_on_parts() {
    within(30, async {
        let r = rep(4000, "\"p\"");
        let origin = ranged_origin(r.clone()).await;
        let node = node(&origin, 1000).await;
        let v = r.lock().unwrap().clone();
        range(&node, "/c", "bytes=0-99").await;
        range(&node, "/c", "bytes=0-99").await;
        assert_eq!(origin.count("/c"), 2);

        let same = node
            .get_with("/c", &[("range", "bytes=5-9"), ("if-range", "\"p\"")])
            .await;
        expect_part(&same, &v, 5, 9);
        assert!(same.is_hit());
        let other = node
            .get_with("/c", &[("range", "bytes=5-9"), ("if-range", "\"old\"")])
            .await;
        assert!(!other.is_hit());
        let seen = origin.last().unwrap();
        assert_eq!(seen.headers.get("if-range").unwrap(), "\"old\"");
        assert_eq!(seen.headers.get("range").unwrap(), "bytes=5-9");

        let not_modified = node
            .get_with("/c", &[("range", "bytes=5-9"), ("if-none-match", "\"p\"")])
            .await;
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.is_hit());
        assert_eq!(origin.count("/c"), 3);
        node.stop().await;
    })
    .await;
}

/// A range request on a cold key fills the whole object, shared and stored as for any
/// miss, and its client gets just its range of the fill as it streams (206, or 416
/// beyond the end); a failed If-Range gets the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_range_gets_its_range_of_the_whole_fill() {
    within(30, async {
        for len in [10, 200_000] {
            let r = rep(len, "\"f\"");
            r.lock().unwrap().full_cc = Some("max-age=60");
            let origin = ranged_origin(r.clone()).await;
            let node = node(&origin, 1 << 20).await;
            let v = r.lock().unwrap().clone();
            let got = range(&node, "/f", "bytes=2-4").await;
            expect_part(&got, &v, 2, 4);
            assert!(got.cache_status().contains("fwd=miss"), "{len}");
            assert_eq!(
                last_range(&origin, "/f"),
                None,
                "{len}: the whole was asked"
            );
            let end = range(&node, &format!("/g{len}"), "bytes=-3").await;
            expect_part(&end, &v, len - 3, len - 1);
            let beyond = range(&node, "/h", &format!("bytes={len}-")).await;
            assert_eq!(beyond.status, 416, "{len}");
            assert_eq!(
                beyond.header("content-range"),
                Some(format!("bytes */{len}").as_str())
            );
            let other = node
                .get_with("/i", &[("range", "bytes=2-4"), ("if-range", "\"old\"")])
                .await;
            assert_eq!(other.status, 200, "{len}");
            assert_eq!(other.body.len(), len);
            // The fill went on for the whole object, stored for the next request (which
            // may still join the fill: either way no second origin request).
            let whole = node.get("/f").await;
            assert_eq!(whole.status, 200, "{len}: {}", whole.cache_status());
            assert_eq!(whole.body.len(), len);
            assert_eq!(origin.count("/f"), 1, "{len}");
            node.stop().await;
        }
    })
    .await;
}
