//! Property tests for everything that parses outside input: cache directives, dates, Vary,
//! cache keys and the config file. Every property runs a few hundred cases so the file
//! finishes in seconds; the invariants are "never panics" plus a few round trips.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use lacquer::cache::control::CacheControl;
use lacquer::cache::key::{key_for_url, CacheKey, KeyRules, QueryMode};
use lacquer::cache::policy::{self, PolicyConfig};
use lacquer::cache::vary::{self, Vary};
use lacquer::config::Config;
use proptest::prelude::*;

const SHIPPED_CONFIG: &str = include_str!("../conf/lacquer.toml");

fn cfg(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes a `HeaderValue` accepts: visible ASCII, space, tab and obs-text.
fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        proptest::collection::vec(
            prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff],
            0..80
        ),
        directive_soup().prop_map(String::into_bytes),
    ]
    .prop_map(|b| HeaderValue::from_bytes(&b).unwrap())
}

/// Cache-Control-shaped text: real directive names with odd values and separators.
fn directive_soup() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("max-age"),
        Just("s-maxage"),
        Just("no-store"),
        Just("no-cache"),
        Just("private"),
        Just("public"),
        Just("must-revalidate"),
        Just("proxy-revalidate"),
        Just("stale-while-revalidate"),
        Just("stale-if-error"),
        Just("immutable"),
        Just("only-if-cached"),
        Just("max-stale"),
        Just("min-fresh"),
        Just("MAX-AGE"),
    ]
    .prop_map(str::to_owned);
    let name = prop_oneof![name, "[a-z-]{1,12}"];
    let value = prop_oneof![
        Just(String::new()),
        "=[0-9]{1,25}",
        "=\"[ -~]{0,12}\"",
        "=-?[0-9.]{1,5}",
        "= ?[a-z0-9,\"]{0,8}",
        "=\\?[01]",
    ];
    let sep = prop_oneof![Just(", "), Just(","), Just(" ,, "), Just(";"), Just(" ")];
    proptest::collection::vec((name, value, sep), 0..8).prop_map(|items| {
        let mut s = String::new();
        for (n, v, sep) in items {
            s.push_str(&n);
            s.push_str(&v);
            s.push_str(sep);
        }
        s
    })
}

const RESPONSE_FIELDS: [&str; 14] = [
    "cache-control",
    "cdn-cache-control",
    "surrogate-control",
    "expires",
    "date",
    "last-modified",
    "age",
    "vary",
    "set-cookie",
    "etag",
    "pragma",
    "content-length",
    "authorization",
    "x-other",
];

fn date_like() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        (0u64..=300_000_000_000).prop_map(|s| {
            let t = UNIX_EPOCH + Duration::from_secs(s % 253_402_300_800);
            HeaderValue::from_str(&httpdate::fmt_http_date(t)).unwrap()
        }),
        header_value(),
    ]
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    proptest::collection::vec(
        (
            proptest::sample::select(&RESPONSE_FIELDS[..]),
            prop_oneof![header_value(), date_like()],
        ),
        0..10,
    )
    .prop_map(|fields| {
        let mut h = HeaderMap::new();
        for (name, value) in fields {
            h.append(HeaderName::from_static(name), value);
        }
        h
    })
}

fn system_time() -> impl Strategy<Value = SystemTime> {
    (0u64..=20_000_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

fn request_parts(method: Method, headers: HeaderMap) -> http::request::Parts {
    let mut parts = Request::builder()
        .method(method)
        .uri("/p")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    parts.headers = headers;
    parts
}

proptest! {
    #![proptest_config(cfg(512))]

    #[test]
    fn cache_control_never_panics(values in proptest::collection::vec(header_value(), 0..4)) {
        let cc = CacheControl::parse(values.iter());
        let _ = cc.has_explicit_lifetime();
        let _ = CacheControl::parse_targeted(values.iter());
        if let Some(max_age) = cc.max_age {
            prop_assert!(max_age <= lacquer::cache::control::DELTA_SECONDS_MAX);
        }
    }

    #[test]
    fn cache_control_round_trips_basic_directives(
        max_age in proptest::option::of(0u64..=4_000_000_000),
        s_maxage in proptest::option::of(0u64..=100_000),
        swr in proptest::option::of(0u64..=100_000),
        flags in proptest::array::uniform6(any::<bool>()),
        upper in any::<bool>(),
    ) {
        let mut parts: Vec<String> = Vec::new();
        if let Some(n) = max_age { parts.push(format!("max-age={n}")); }
        if let Some(n) = s_maxage { parts.push(format!("s-maxage=\"{n}\"")); }
        if let Some(n) = swr { parts.push(format!("stale-while-revalidate={n}")); }
        let names = ["no-store", "no-cache", "private", "public", "must-revalidate", "immutable"];
        for (on, name) in flags.iter().zip(names) {
            if *on { parts.push(name.to_owned()); }
        }
        let mut text = parts.join(", ");
        if upper { text = text.to_ascii_uppercase(); }
        let value = HeaderValue::from_str(&text).unwrap();
        let cc = CacheControl::parse([&value]);
        let clamp = |n: u64| n.min(lacquer::cache::control::DELTA_SECONDS_MAX);
        prop_assert_eq!(cc.max_age, max_age.map(clamp));
        prop_assert_eq!(cc.s_maxage, s_maxage);
        prop_assert_eq!(cc.stale_while_revalidate, swr);
        prop_assert_eq!(
            [cc.no_store, cc.no_cache, cc.private, cc.public, cc.must_revalidate, cc.immutable],
            flags
        );
        prop_assert!(!cc.invalid_freshness);
    }

    #[test]
    fn targeted_round_trips_as_structured_field(
        max_age in 0u64..=1_000_000,
        no_store in any::<bool>(),
    ) {
        let mut text = format!("max-age={max_age}");
        if no_store { text.push_str(", no-store"); }
        let value = HeaderValue::from_str(&text).unwrap();
        let cc = CacheControl::parse_targeted([&value]).expect("valid dictionary");
        prop_assert_eq!(cc.max_age, Some(max_age));
        prop_assert_eq!(cc.no_store, no_store);
    }

    #[test]
    fn policy_never_panics(
        resp in header_map(),
        req in header_map(),
        status in 100u16..=999,
        request_time in system_time(),
        response_time in system_time(),
        age_secs in prop_oneof![0u64..=100_000, any::<u64>()],
        age_nanos in 0u32..1_000_000_000,
        get in any::<bool>(),
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        let pc = PolicyConfig::default();
        let f = policy::freshness(status, &resp, request_time, response_time, &pc);
        let method = if get { Method::GET } else { Method::HEAD };
        let parts = request_parts(method, req.clone());
        let _ = policy::storable(&parts, status, &resp, &pc);
        let _ = policy::reusable_for(&parts, &resp, &pc);
        let _ = policy::usability(&f, Duration::new(age_secs, age_nanos), &req);
        let _ = policy::revalidation_headers(&resp);
        let _ = policy::merge_304(&resp, &req);
    }

    #[test]
    fn http_date_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = policy::parse_http_date(&raw);
    }

    #[test]
    fn http_date_round_trips(secs in 0u64..253_402_300_800, lower in any::<bool>()) {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        let mut text = httpdate::fmt_http_date(t);
        if lower { text = text.to_ascii_lowercase(); }
        prop_assert_eq!(policy::parse_http_date(text.as_bytes()), Some(t));
    }

    #[test]
    fn vary_never_panics_and_is_normalized(
        values in proptest::collection::vec(header_value(), 0..4),
        req in header_map(),
    ) {
        let mut resp = HeaderMap::new();
        for v in values { resp.append(http::header::VARY, v); }
        match vary::parse_vary(&resp) {
            Vary::Fields(fields) => {
                prop_assert!(!fields.is_empty());
                prop_assert!(fields.len() <= vary::MAX_VARY_FIELDS);
                prop_assert!(fields.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
                let a = vary::secondary_key(&fields, &req);
                prop_assert_eq!(a, vary::secondary_key(&fields, &req.clone()));
            }
            Vary::None | Vary::Star => {}
        }
    }

    #[test]
    fn secondary_key_never_panics(
        names in proptest::collection::vec("[a-z][a-z-]{0,10}", 0..6),
        req in header_map(),
    ) {
        let fields: Vec<HeaderName> =
            names.iter().filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()).collect();
        let _ = vary::secondary_key(&fields, &req);
    }

    #[test]
    fn cache_key_never_panics(
        scheme in "[a-z]{0,6}",
        authority in "[ -~]{0,30}",
        pq in prop_oneof!["[ -~]{0,60}", "\\PC{0,30}"],
        mode in 0u8..3,
        ignore_host in any::<bool>(),
    ) {
        let rules = rules(mode, ignore_host);
        let a = CacheKey::new(&scheme, &authority, &pq, &rules);
        let b = CacheKey::new(&scheme, &authority, &pq, &rules);
        prop_assert_eq!(&a, &b);
        let _ = key_for_url(&a.url, &rules);
        let _ = key_for_url(&pq, &rules);
    }

    /// Normalization is idempotent: the key URL, read back as an operator URL, is the
    /// same key (what purge-by-URL relies on).
    #[test]
    fn cache_key_normalization_is_idempotent(
        host in "[a-zA-Z0-9]{1,10}(\\.[a-zA-Z0-9-]{1,10}){0,3}\\.?",
        port in proptest::option::of(1u16..),
        path in "(/[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,10}){1,4}",
        query in proptest::option::of("[A-Za-z0-9._~!$&'()*+,;=:@/?%-]{0,30}"),
        mode in 0u8..3,
    ) {
        let rules = rules(mode, false);
        let authority = match port { Some(p) => format!("{host}:{p}"), None => host };
        let pq = match query { Some(q) => format!("{path}?{q}"), None => path };
        let k1 = CacheKey::new("http", &authority, &pq, &rules);
        let k2 = key_for_url(&k1.url, &rules);
        prop_assert!(k2.is_ok(), "{} rejected: {:?}", k1.url, k2);
        let k2 = k2.unwrap();
        prop_assert_eq!(&k1.url, &k2.url);
        prop_assert_eq!(k1.hash, k2.hash);
    }
}

fn rules(mode: u8, ignore_host: bool) -> KeyRules {
    KeyRules {
        query: match mode {
            0 => QueryMode::Keep,
            1 => QueryMode::Sort,
            _ => QueryMode::Drop,
        },
        drop_params: vec!["utm_source".into(), "fbclid".into()],
        ignore_host,
    }
}

/// One edit to a valid config: replace a byte range, delete a line, or duplicate one.
#[derive(Debug, Clone)]
enum Mutation {
    Replace { at: usize, len: usize, with: String },
    DeleteLine(usize),
    DuplicateLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (
            any::<usize>(),
            0usize..12,
            prop_oneof![
                "[ -~]{0,12}",
                Just("\"".to_owned()),
                Just("[[".to_owned()),
                Just("99999999999999999999999".to_owned()),
                Just("-1".to_owned()),
                Just("\"1ms\"".to_owned()),
                Just("\"0s\"".to_owned()),
                Just("\n[x]\n".to_owned()),
                "\\PC{0,4}",
            ]
        )
            .prop_map(|(at, len, with)| Mutation::Replace { at, len, with }),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    match m {
        Mutation::Replace { at, len, with } => {
            let mut start = at % (text.len() + 1);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            format!("{}{}{}", &text[..start], with, &text[end..])
        }
        Mutation::DeleteLine(i) | Mutation::DuplicateLine(i) => {
            let lines: Vec<&str> = text.lines().collect();
            let i = i % lines.len().max(1);
            let mut out = Vec::with_capacity(lines.len() + 1);
            for (j, l) in lines.iter().enumerate() {
                if j != i || matches!(m, Mutation::DuplicateLine(_)) {
                    out.push(*l);
                }
                if j == i && matches!(m, Mutation::DuplicateLine(_)) {
                    out.push(*l);
                }
            }
            out.join("\n")
        }
    }
}

proptest! {
    #![proptest_config(cfg(256))]

    #[test]
    fn config_parse_never_panics_on_junk(text in prop_oneof!["\\PC{0,200}", "[ -~\n]{0,200}"]) {
        let _ = Config::parse(&text, "fuzz.toml");
    }

    #[test]
    fn config_parse_never_panics_on_mutated_valid(
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut text = SHIPPED_CONFIG.to_owned();
        for m in &mutations {
            text = apply(&text, m);
        }
        if let Err(errors) = Config::parse(&text, "fuzz.toml") {
            // Every problem is reported with something to show for it.
            prop_assert!(!errors.to_string().is_empty());
        }
    }
}

/// Found by `cache_key_normalization_is_idempotent` with unrestricted hosts: only one
/// trailing dot is removed, so the key URL of `example.com..` is itself a different key.
#[test]
fn cache_key_host_with_two_trailing_dots_is_idempotent() {
    let rules = KeyRules::default();
    let k1 = CacheKey::new("http", "example.com..", "/", &rules);
    let k2 = key_for_url(&k1.url, &rules).unwrap();
    assert_eq!(k1.url, k2.url);
}

#[test]
fn shipped_config_parses() {
    Config::parse(SHIPPED_CONFIG, "lacquer.toml").unwrap();
}
