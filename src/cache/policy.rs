//! HTTP caching semantics for a *shared* cache, as pure functions over `http` types:
//! storability (RFC 9111 3), freshness (RFC 9111 4.2), stale serving (RFC 9111 4.2.4, RFC 5861),
//! 304 refresh (RFC 9111 3.2 / 4.3.4) and targeted cache control (RFC 9213).
//!
//! Where the RFCs leave room, behaviour follows the REQUIRED tests of the http-tests
//! "cache-tests" suite for shared caches; such choices are called out in comments.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::control::{CacheControl, DELTA_SECONDS_MAX};

pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");
/// RFC 9211: each cache's report on how it handled one request.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Fraction of (Date - Last-Modified) used as heuristic lifetime (RFC 9111 4.2.2 suggests 10%).
    pub heuristic_fraction: f64,
    /// Upper bound of a heuristic lifetime.
    pub heuristic_max: Duration,
    /// stale-while-revalidate used when the response gives none (default 0).
    pub default_grace: Duration,
    /// stale-if-error used when the response gives none.
    pub default_stale_if_error: Duration,
    /// How long past all staleness windows to keep an object (with validators) for conditional
    /// revalidation.
    pub default_keep: Duration,
    /// Requests carrying Cookie bypass the cache: never served from it, never stored,
    /// whatever the response says (the proxy passes them before lookup).
    pub cookie_requests_pass: bool,
    /// Honour Surrogate-Control (precedence below CDN-Cache-Control, above Cache-Control).
    pub surrogate_control: bool,
    /// Cap on the freshness lifetime and stale windows of a stored 5xx: RFC 9111 lets an
    /// origin make an error fresh for as long as it likes, but one hiccup answered with
    /// `max-age=600` must not become ten minutes of errors.
    pub max_error_ttl: Duration,
    /// The operator's lifetimes (a site's `default_ttl`, `status_ttl`, `force_ttl`).
    pub ttl: TtlRules,
    /// Set-Cookie is removed from a response before it is stored (a site's
    /// `set_cookie = "strip"`), so it no longer prevents storing.
    pub strip_set_cookie: bool,
}

/// Lifetimes the operator sets, as nginx `proxy_cache_valid` and Varnish `beresp.ttl`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TtlRules {
    /// For a heuristically cacheable status the origin gave no freshness.
    pub default: Option<Duration>,
    /// By exact status code, for any final status the origin gave no freshness.
    pub by_code: Vec<(u16, Duration)>,
    /// By status class (index 0 = 1xx ... 4 = 5xx), same rule as `by_code`; a code wins.
    pub by_class: [Option<Duration>; 5],
    /// Replaces the origin's lifetime and `no-cache` / `must-revalidate` whatever they say;
    /// `no-store`, `private` and Set-Cookie still keep a response out of the cache.
    pub force: Option<Duration>,
}

impl TtlRules {
    /// The operator's lifetime for a response without explicit freshness of its own.
    fn fallback(&self, status: StatusCode) -> Option<Duration> {
        let code = status.as_u16();
        if let Some((_, d)) = self.by_code.iter().find(|(c, _)| *c == code) {
            return Some(*d);
        }
        let class = usize::from(code / 100).checked_sub(1)?;
        if let Some(d) = self.by_class.get(class).copied().flatten() {
            return Some(d);
        }
        self.default.filter(|_| heuristically_cacheable(status))
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(24 * 3600),
            default_grace: Duration::ZERO,
            default_stale_if_error: Duration::ZERO,
            default_keep: Duration::from_secs(3600),
            cookie_requests_pass: true,
            surrogate_control: true,
            max_error_ttl: Duration::from_secs(5),
            ttl: TtlRules::default(),
            strip_set_cookie: false,
        }
    }
}

/// Why a response may not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Only GET responses are stored.
    Method,
    RequestNoStore,
    NonFinalStatus,
    PartialContent,
    NotModified,
    /// `must-understand` with a status whose caching rules we do not know.
    MustUnderstand,
    NoStore,
    Private,
    /// A request with Authorization, and no response directive that allows sharing.
    Authorization,
    /// A request with Cookie under `cookie_requests = "pass"`.
    Cookie,
    SetCookie,
    VaryStar,
    /// No explicit freshness, and a status that is not heuristically cacheable.
    StatusNotCacheable,
    /// No explicit freshness, and neither Last-Modified nor a validator.
    NoFreshness,
}

impl NotStorable {
    /// Short reason for logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::RequestNoStore => "request no-store",
            NotStorable::NonFinalStatus => "non-final status",
            NotStorable::PartialContent => "partial content",
            NotStorable::NotModified => "not modified",
            NotStorable::MustUnderstand => "must-understand",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::Cookie => "cookie",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary *",
            NotStorable::StatusNotCacheable => "status not cacheable",
            NotStorable::NoFreshness => "no freshness info or validator",
        }
    }

    /// Only freshness is missing: a lifetime given from elsewhere (a push's `ttl=`)
    /// would make the response storable, since these are the last checks made.
    pub fn lacks_freshness(self) -> bool {
        matches!(
            self,
            NotStorable::StatusNotCacheable | NotStorable::NoFreshness
        )
    }
}

impl std::fmt::Display for NotStorable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Freshness metadata computed ONCE at store (or 304-refresh) time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Freshness {
    /// RFC 9111 4.2.1 freshness_lifetime (s-maxage > max-age > Expires-Date > heuristic).
    pub lifetime: Duration,
    /// corrected_initial_age, RFC 9111 4.2.3.
    pub initial_age: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub keep: Duration,
    /// Unqualified no-cache: every reuse needs validation.
    pub always_revalidate: bool,
    /// must-revalidate, proxy-revalidate, s-maxage (shared cache): no stale serving beyond what
    /// the origin explicitly allowed with stale-while-revalidate / stale-if-error.
    pub no_stale: bool,
}

/// What a stored response is good for, given its age now and the request's own Cache-Control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usability {
    /// Fresh, or stale within a client's `max-stale` allowance.
    Fresh,
    /// stale but within stale-while-revalidate: serve it, refresh in background
    StaleWhileRevalidate,
    /// must be revalidated/refetched; `usable_on_error` says whether it may be served if the
    /// origin fails (within stale-if-error)
    MustRevalidate { usable_on_error: bool },
    /// past keep: only good as a source of validators, or not at all
    Expired,
}

/// RFC 9110 15.1: status codes that are heuristically cacheable (206 excluded: partial content is
/// not stored as a full object here).
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes whose caching requirements we understand, for `must-understand` (RFC 9111
/// 5.2.2.3): those defined in RFC 9110 that a cache can store as complete responses.
fn status_understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 302 | 303 | 307 | 308 | 400..=417 | 421..=426 | 500..=505
    )
}

/// Effective directives for this shared cache. RFC 9213 2.1: the first targeted field present
/// and valid (CDN-Cache-Control, then Surrogate-Control when enabled) replaces Cache-Control
/// entirely. Surrogate-Control is not a Structured Field, so it is parsed like Cache-Control and
/// used when it carries any directive we recognise.
pub fn effective_cache_control(resp: &HeaderMap, cfg: &PolicyConfig) -> (CacheControl, bool) {
    if let Some(cdn) = CacheControl::parse_targeted(resp.get_all(&CDN_CACHE_CONTROL)) {
        return (cdn, true);
    }
    if cfg.surrogate_control {
        let sc = CacheControl::parse(resp.get_all(&SURROGATE_CONTROL));
        if !sc.is_empty() {
            return (sc, true);
        }
    }
    (
        CacheControl::parse(resp.get_all(header::CACHE_CONTROL)),
        false,
    )
}

/// The request's side of caching, read once per request: its own Cache-Control (RFC 9111
/// 5.2.1), and whether it carries credentials or a Cookie.
#[derive(Debug, Clone, Default)]
pub struct RequestDirectives {
    pub cc: CacheControl,
    /// Authorization (RFC 9111 3.5).
    pub credentials: bool,
    pub cookie: bool,
}

impl RequestDirectives {
    pub fn of(req: &HeaderMap) -> RequestDirectives {
        RequestDirectives {
            cc: CacheControl::parse(req.get_all(header::CACHE_CONTROL)),
            credentials: req.contains_key(header::AUTHORIZATION),
            cookie: req.contains_key(header::COOKIE),
        }
    }
}

/// Is this request a candidate for cache lookup at all? (GET/HEAD only; request no-store;
/// Authorization / Cookie rules are response dependent, see [`reusable_for`].)
pub fn request_cacheable(req: &http::request::Parts) -> bool {
    request_cacheable_with(&req.method, &RequestDirectives::of(&req.headers))
}

/// [`request_cacheable`] with the request's directives already read.
pub fn request_cacheable_with(method: &Method, asked: &RequestDirectives) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    // RFC 9111 5.2.1.5: request no-store forbids storing the response; reusing one would also
    // defeat the client's intent (cache-tests ccreq-no-store).
    !asked.cc.no_store
}

/// Response-dependent request rules: may a stored response with headers `stored` be served to
/// `req`? Requests with Authorization (RFC 9111 3.5) only get stored responses the origin
/// explicitly marked as shareable; with the Cookie pass policy, requests with Cookie get none.
pub fn reusable_for(req: &http::request::Parts, stored: &HeaderMap, cfg: &PolicyConfig) -> bool {
    let (cc, _) = effective_cache_control(stored, cfg);
    if req.headers.contains_key(header::AUTHORIZATION)
        && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate)
    {
        return false;
    }
    !(cfg.cookie_requests_pass && req.headers.contains_key(header::COOKIE))
}

/// RFC 9111 3 for a shared cache: may the response to `req` be stored?
///
/// `req.method` must be the method actually sent upstream: only GET responses are stored as
/// full objects (a HEAD response has no body to reuse).
pub fn storable(
    req: &http::request::Parts,
    status: StatusCode,
    resp: &HeaderMap,
    cfg: &PolicyConfig,
) -> Result<(), NotStorable> {
    storable_by(
        &req.method,
        &RequestDirectives::of(&req.headers),
        status,
        resp,
        cfg,
    )
}

/// [`storable`] with the request's directives already read.
pub fn storable_by(
    method: &Method,
    asked: &RequestDirectives,
    status: StatusCode,
    resp: &HeaderMap,
    cfg: &PolicyConfig,
) -> Result<(), NotStorable> {
    storable_with(
        method,
        asked,
        status,
        resp,
        &effective_cache_control(resp, cfg).0,
        cfg,
    )
}

/// [`storable_by`] with the response's effective directives already parsed too (the fetch
/// path needs them three times; parsing is most of what these checks cost).
pub fn storable_with(
    method: &Method,
    asked: &RequestDirectives,
    status: StatusCode,
    resp: &HeaderMap,
    cc: &CacheControl,
    cfg: &PolicyConfig,
) -> Result<(), NotStorable> {
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    if asked.cc.no_store {
        return Err(NotStorable::RequestNoStore);
    }
    check_status(status)?;
    // RFC 9111 5.2.2.3: must-understand overrides no-store only for understood status codes.
    if cc.must_understand {
        if !status_understood(status) {
            return Err(NotStorable::MustUnderstand);
        }
    } else if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    let shareable = cc.public || cc.s_maxage.is_some();
    if asked.credentials && !(shareable || cc.must_revalidate) {
        return Err(NotStorable::Authorization);
    }
    if cfg.cookie_requests_pass && asked.cookie {
        return Err(NotStorable::Cookie);
    }
    // RFC 9111 does not forbid storing Set-Cookie and cache-tests rewards it, but handing one
    // client's cookie to every other client is the classic shared-cache leak (Varnish and most
    // CDNs refuse too). Stored only when the origin asks for the field to be stripped.
    if resp.contains_key(header::SET_COOKIE)
        && !cfg.strip_set_cookie
        && !fields_to_strip(resp).iter().any(|f| f == "set-cookie")
    {
        return Err(NotStorable::SetCookie);
    }
    if vary_star(resp) {
        return Err(NotStorable::VaryStar);
    }
    // An operator lifetime is freshness information of its own.
    if cfg.ttl.force.is_some() || (!has_freshness(resp, cc) && cfg.ttl.fallback(status).is_some()) {
        return Ok(());
    }
    check_freshness_info(status, resp, cc)
}

/// The origin said how long the response is fresh (or that it is stale at once).
fn has_freshness(resp: &HeaderMap, cc: &CacheControl) -> bool {
    cc.has_explicit_lifetime() || cc.no_cache || resp.contains_key(header::EXPIRES)
}

fn check_status(status: StatusCode) -> Result<(), NotStorable> {
    // RFC 9111 3: final responses only; 206 and 304 are never complete responses to store.
    if status.as_u16() < 200 {
        return Err(NotStorable::NonFinalStatus);
    }
    match status.as_u16() {
        206 => Err(NotStorable::PartialContent),
        304 => Err(NotStorable::NotModified),
        _ => Ok(()),
    }
}

/// RFC 9111 3: storable needs explicit freshness, or a heuristically cacheable status (or
/// `public`). Without explicit freshness, a response also needs something to make it useful:
/// a Last-Modified (heuristic lifetime) or a validator (no-cache-style revalidation). cache-tests
/// `freshness-none` and friends rely on plain 200s without either not being reused.
fn check_freshness_info(
    status: StatusCode,
    resp: &HeaderMap,
    cc: &CacheControl,
) -> Result<(), NotStorable> {
    if cc.has_explicit_lifetime() || resp.contains_key(header::EXPIRES) {
        return Ok(());
    }
    if !(heuristically_cacheable(status) || cc.public) {
        return Err(NotStorable::StatusNotCacheable);
    }
    if resp.contains_key(header::LAST_MODIFIED) || resp.contains_key(header::ETAG) {
        Ok(())
    } else {
        Err(NotStorable::NoFreshness)
    }
}

/// Field names listed in qualified `private="..."` / `no-cache="..."` of every directive family
/// present (union: stripping more than the effective family asks for is always safe).
fn fields_to_strip(resp: &HeaderMap) -> Vec<String> {
    // Cheap filter first: a field list needs a `private` or `no-cache` directive, and
    // most responses have neither (this runs on every fill).
    let mentions = |name: &HeaderName| {
        resp.get_all(name).iter().any(|v| {
            let b = v.as_bytes();
            b.windows(7).any(|w| w.eq_ignore_ascii_case(b"private"))
                || b.windows(8).any(|w| w.eq_ignore_ascii_case(b"no-cache"))
        })
    };
    if ![header::CACHE_CONTROL, CDN_CACHE_CONTROL, SURROGATE_CONTROL]
        .iter()
        .any(mentions)
    {
        return Vec::new();
    }
    let families = [
        CacheControl::parse(resp.get_all(header::CACHE_CONTROL)),
        CacheControl::parse_targeted(resp.get_all(&CDN_CACHE_CONTROL)).unwrap_or_default(),
        CacheControl::parse(resp.get_all(&SURROGATE_CONTROL)),
    ];
    let mut out = Vec::new();
    for cc in families {
        out.extend(cc.private_fields);
        out.extend(cc.no_cache_fields);
    }
    out
}

fn vary_star(resp: &HeaderMap) -> bool {
    resp.get_all(header::VARY).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|m| m.trim_ascii() == b"*")
    })
}

/// Computes freshness metadata for a response received at `response_time` to a request sent at
/// `request_time` (RFC 9111 4.2.1 - 4.2.3).
pub fn freshness(
    status: StatusCode,
    resp: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
    cfg: &PolicyConfig,
) -> Freshness {
    let (cc, _) = effective_cache_control(resp, cfg);
    freshness_with(status, resp, &cc, request_time, response_time, cfg)
}

/// [`freshness`] with the response's effective directives already parsed.
pub fn freshness_with(
    status: StatusCode,
    resp: &HeaderMap,
    cc: &CacheControl,
    request_time: SystemTime,
    response_time: SystemTime,
    cfg: &PolicyConfig,
) -> Freshness {
    // RFC 9110 6.6.1: without a valid Date, the recipient's receipt time stands in.
    let date = single_date(resp, &header::DATE).unwrap_or(response_time);
    let lifetime = lifetime(status, resp, cc, date, cfg);

    let apparent_age = response_time.duration_since(date).unwrap_or_default();
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    let corrected_age = age_value(resp).saturating_add(response_delay);
    let initial_age = apparent_age.max(corrected_age);

    // s-maxage implies proxy-revalidate for a shared cache (RFC 9111 5.2.2.10). An
    // operator's `force_ttl` overrides what the origin said about reuse.
    let forced = cfg.ttl.force.is_some();
    let no_stale = !forced && (cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some());
    let always_revalidate = !forced && cc.no_cache;
    let explicit = |v: Option<u64>| v.map(secs);
    // RFC 9111 4.2.4 forbids stale serving under must-revalidate & co "unless explicitly
    // permitted by the origin", e.g. by RFC 5861 extensions. Ambiguity resolved as: directives
    // sent by the origin are honoured (common `s-maxage=N, stale-while-revalidate=M` CDN usage),
    // operator defaults are not. Serving stale while revalidating makes no sense for no-cache.
    let (swr, sie) = if no_stale || always_revalidate {
        (
            explicit(cc.stale_while_revalidate).unwrap_or_default(),
            explicit(cc.stale_if_error).unwrap_or_default(),
        )
    } else {
        (
            explicit(cc.stale_while_revalidate).unwrap_or(cfg.default_grace),
            explicit(cc.stale_if_error).unwrap_or(cfg.default_stale_if_error),
        )
    };
    let swr = if always_revalidate {
        Duration::ZERO
    } else {
        swr
    };
    let has_validator = resp.contains_key(header::ETAG) || resp.contains_key(header::LAST_MODIFIED);
    // 501 is exempt: RFC 9110 makes it heuristically cacheable, it describes the resource
    // (a method it will never support), not a failure of the origin.
    let (lifetime, swr, sie) = if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
    {
        let cap = cfg.max_error_ttl;
        (lifetime.min(cap), swr.min(cap), sie.min(cap))
    } else {
        (lifetime, swr, sie)
    };
    Freshness {
        lifetime,
        initial_age,
        stale_while_revalidate: swr,
        stale_if_error: sie,
        keep: if has_validator {
            cfg.default_keep
        } else {
            Duration::ZERO
        },
        always_revalidate,
        no_stale,
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n.min(DELTA_SECONDS_MAX))
}

/// RFC 9111 4.2.1, shared cache: s-maxage, then max-age, then Expires - Date, then heuristic.
fn lifetime(
    status: StatusCode,
    resp: &HeaderMap,
    cc: &CacheControl,
    date: SystemTime,
    cfg: &PolicyConfig,
) -> Duration {
    if let Some(forced) = cfg.ttl.force {
        return forced;
    }
    if cc.invalid_freshness {
        return Duration::ZERO;
    }
    if !has_freshness(resp, cc) {
        if let Some(ttl) = cfg.ttl.fallback(status) {
            return ttl;
        }
    }
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return secs(s);
    }
    if resp.contains_key(header::EXPIRES) {
        // RFC 9111 5.3: invalid dates (notably "0") and, conservatively, conflicting multiple
        // Expires lines mean "already expired".
        return single_date(resp, &header::EXPIRES)
            .and_then(|exp| exp.duration_since(date).ok())
            .unwrap_or_default();
    }
    if !(heuristically_cacheable(status) || cc.public) {
        return Duration::ZERO;
    }
    heuristic(resp, date, cfg)
}

/// RFC 9111 4.2.2: a fraction of the time since Last-Modified, capped.
fn heuristic(resp: &HeaderMap, date: SystemTime, cfg: &PolicyConfig) -> Duration {
    let Some(modified) = single_date(resp, &header::LAST_MODIFIED) else {
        return Duration::ZERO;
    };
    let Ok(since) = date.duration_since(modified) else {
        return Duration::ZERO;
    };
    let fraction = if cfg.heuristic_fraction.is_finite() {
        cfg.heuristic_fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let secs_f = since.as_secs_f64() * fraction;
    Duration::try_from_secs_f64(secs_f)
        .unwrap_or_default()
        .min(cfg.heuristic_max)
}

/// A `text/event-stream` response (server-sent events): `Content-Type`'s media type,
/// any case, parameters ignored.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// RFC 9111 5.1 Age. The first field line's first list member counts (cache-tests
/// `age-parse-suffix*` require "7200, 0" and a second line "0" to keep the 7200); a
/// value that is not a plain non-negative integer counts as 0 (RFC 9111 5.1 says to
/// ignore an invalid Age, and the age-parse checks expect such responses to be reused).
fn age_value(resp: &HeaderMap) -> Duration {
    let Some(first) = resp.get_all(header::AGE).iter().next() else {
        return Duration::ZERO;
    };
    std::str::from_utf8(first.as_bytes())
        .ok()
        .and_then(|s| s.split(',').next())
        .and_then(|s| super::control::parse_delta_seconds(s.trim()))
        .map(secs)
        .unwrap_or_default()
}

/// A date-valued singleton field. Repeated lines are accepted only when identical.
fn single_date(resp: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = resp.get_all(name).iter();
    let first = values.next()?;
    if values.any(|v| v != first) {
        return None;
    }
    parse_http_date(first.as_bytes())
}

/// RFC 9110 5.6.7 HTTP-date. Names of days/months/GMT are accepted in any letter case: RFC 9110
/// says they are case-sensitive, but cache-tests `expires-parse` checks reward leniency and no
/// ambiguity arises. Other malformations are rejected.
pub fn parse_http_date(raw: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    if s.len() > 64 {
        return None;
    }
    if let Ok(t) = httpdate::parse_http_date(s) {
        return Some(t);
    }
    let s = canonical_case(s);
    httpdate::parse_http_date(&s)
        .ok()
        .or_else(|| any_weekday(&s))
}

/// A date whose weekday name does not match the date, in any of the three formats:
/// the date is what matters, and most caches read it so (an `Expires` with a wrong
/// weekday would otherwise mean "already expired"). httpdate checks the weekday, so
/// the right one is found by trying the seven; only a date that failed gets here.
fn any_weekday(s: &str) -> Option<SystemTime> {
    const SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const LONG: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    // IMF-fixdate and RFC 850 name the day before a comma; asctime before a space.
    let (names, rest) = match s.split_once(',') {
        Some((day, rest)) if SHORT.contains(&day) => (&SHORT, format!(",{rest}")),
        Some((day, rest)) if LONG.contains(&day) => (&LONG, format!(",{rest}")),
        Some(_) => return None,
        None => match s.split_at_checked(3) {
            Some((day, rest)) if SHORT.contains(&day) && rest.starts_with(' ') => {
                (&SHORT, rest.to_owned())
            }
            _ => return None,
        },
    };
    names
        .iter()
        .find_map(|name| httpdate::parse_http_date(&format!("{name}{rest}")).ok())
}

/// "THU, 18 AUG 2050 02:01:18 gmt" -> "Thu, 18 Aug 2050 02:01:18 GMT".
fn canonical_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word_start = true;
    for c in s.chars() {
        if c.is_ascii_alphabetic() {
            out.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            word_start = false;
        } else {
            out.push(c);
            word_start = true;
        }
    }
    out.replace("Gmt", "GMT")
}

/// What a stored response is good for at `current_age`, given the request's Cache-Control.
///
/// Request directives honoured (RFC 9111 5.2.1): no-cache, max-age, min-fresh, max-stale.
/// `Pragma: no-cache` is ignored: RFC 9111 5.4 deprecates Pragma and the cache-tests check
/// `pragma-request-no-cache` expects a fresh stored response to be used.
pub fn usability(f: &Freshness, current_age: Duration, req_headers: &HeaderMap) -> Usability {
    let req = CacheControl::parse(req_headers.get_all(header::CACHE_CONTROL));
    usability_with(f, current_age, &req)
}

/// [`usability`] with the request's Cache-Control already parsed.
pub fn usability_with(f: &Freshness, current_age: Duration, req: &CacheControl) -> Usability {
    let staleness = current_age.checked_sub(f.lifetime);
    let windows = f.stale_while_revalidate.max(f.stale_if_error);
    // RFC 5861 4: a client's own stale-if-error says how much staleness *it* accepts on
    // error; it may narrow the window, and widen it only where the origin allows stale.
    let sie = match req.stale_if_error {
        Some(n) if f.no_stale => secs(n).min(f.stale_if_error),
        Some(n) => secs(n),
        None => f.stale_if_error,
    };
    let usable_on_error = staleness.unwrap_or_default() < sie;

    let client_refuses = req.no_cache
        || req.max_age.is_some_and(|m| current_age > secs(m))
        || req.min_fresh.is_some_and(|m| {
            f.lifetime.saturating_sub(current_age) < secs(m) || staleness.is_some()
        });

    let Some(staleness) = staleness else {
        // RFC 9111 4.2: fresh iff freshness_lifetime > current_age.
        if f.always_revalidate || client_refuses {
            return Usability::MustRevalidate { usable_on_error };
        }
        return Usability::Fresh;
    };
    if staleness >= windows.saturating_add(f.keep) {
        return Usability::Expired;
    }
    if f.always_revalidate || client_refuses {
        return Usability::MustRevalidate { usable_on_error };
    }
    // RFC 9111 5.2.2.2: must-revalidate & co override a client's max-stale.
    let client_accepts = !f.no_stale && req.max_stale.is_some_and(|m| staleness <= secs_or_max(m));
    if client_accepts {
        return Usability::Fresh;
    }
    if staleness < f.stale_while_revalidate {
        return Usability::StaleWhileRevalidate;
    }
    Usability::MustRevalidate { usable_on_error }
}

fn secs_or_max(m: u64) -> Duration {
    if m == u64::MAX {
        Duration::MAX
    } else {
        secs(m)
    }
}

/// Hop-by-hop fields (RFC 9110 7.6.1) plus those named in Connection.
fn hop_by_hop(h: &HeaderMap) -> Vec<HeaderName> {
    let mut names = vec![
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ];
    for v in h.get_all(header::CONNECTION) {
        for token in v.as_bytes().split(|&b| b == b',') {
            if let Ok(name) = HeaderName::from_bytes(token.trim_ascii()) {
                if names.len() < 64 && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// RFC 9111 3.2 / 4.3.4: the headers to store after a 304 refreshed `stored`. Fields present in
/// the 304 replace the stored ones, except Content-Length, hop-by-hop / Connection-listed fields,
/// and Content-Encoding (the stored body depends on it, which 3.2 allows keeping).
///
/// `Age` and `Date` describe the 304, not the old message: the stored ones are dropped so that
/// [`freshness`] on the merged headers with the 304's request/response times computes the new
/// age correctly. Callers should run [`storable`] / [`strip_before_store`] on the result, since a
/// 304 may add e.g. `Set-Cookie` or change `Cache-Control`.
pub fn merge_304(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut merged = stored.clone();
    merged.remove(header::AGE);
    merged.remove(header::DATE);
    let mut excluded = hop_by_hop(not_modified);
    excluded.push(header::CONTENT_LENGTH);
    excluded.push(header::CONTENT_ENCODING);
    excluded.push(CACHE_STATUS);
    for name in not_modified.keys() {
        if excluded.contains(name) {
            continue;
        }
        merged.remove(name);
        for value in not_modified.get_all(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    merged
}

/// Headers for a conditional revalidation request built from a stored response (RFC 9111 4.3.1):
/// If-None-Match from ETag, If-Modified-Since from Last-Modified.
pub fn revalidation_headers(stored: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    if let Some(etag) = stored.get(header::ETAG) {
        if looks_like_etag(etag.as_bytes()) {
            out.push((header::IF_NONE_MATCH, etag.clone()));
        }
    }
    if let Some(lm) = stored.get(header::LAST_MODIFIED) {
        if parse_http_date(lm.as_bytes()).is_some() {
            out.push((header::IF_MODIFIED_SINCE, lm.clone()));
        }
    }
    out
}

/// RFC 9110 8.8.3 entity-tag: [W/] DQUOTE *etagc DQUOTE.
fn looks_like_etag(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    let v = v.strip_prefix(b"W/").unwrap_or(v);
    match v {
        [b'"', inner @ .., b'"'] => !inner.contains(&b'"'),
        _ => false,
    }
}

/// Removes, before storing, the fields the origin asked shared caches not to keep: names listed
/// in qualified `private="..."` (RFC 9111 5.2.2.7) and `no-cache="..."` (5.2.2.4 allows the
/// response to be reused without them), from every directive family present.
pub fn strip_before_store(resp: &mut HeaderMap) {
    // An upstream cache's report on that one exchange (RFC 9211): replayed on later
    // hits it would claim, say, a shard's miss for every one of them.
    resp.remove(CACHE_STATUS);
    for field in fields_to_strip(resp) {
        if let Ok(name) = HeaderName::from_bytes(field.as_bytes()) {
            resp.remove(name);
        }
    }
}

/// Age header value to send: current_age in whole seconds, saturating at 2^31 (RFC 9111 5.1).
pub fn age_header(current_age: Duration) -> HeaderValue {
    HeaderValue::from(current_age.as_secs().min(DELTA_SECONDS_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn at(offset: i64) -> SystemTime {
        if offset >= 0 {
            t0() + Duration::from_secs(offset as u64)
        } else {
            t0() - Duration::from_secs(offset.unsigned_abs())
        }
    }

    fn date(offset: i64) -> String {
        httpdate::fmt_http_date(at(offset))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn req(method: &str, pairs: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/x");
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn get() -> http::request::Parts {
        req("GET", &[])
    }

    fn cfg() -> PolicyConfig {
        PolicyConfig::default()
    }

    fn store(status: u16, resp: &HeaderMap) -> Result<(), NotStorable> {
        storable(&get(), StatusCode::from_u16(status).unwrap(), resp, &cfg())
    }

    fn fresh_of(status: u16, resp: &HeaderMap) -> Freshness {
        freshness(
            StatusCode::from_u16(status).unwrap(),
            resp,
            t0(),
            t0(),
            &cfg(),
        )
    }

    fn with_ttl(ttl: TtlRules) -> PolicyConfig {
        PolicyConfig {
            ttl,
            ..PolicyConfig::default()
        }
    }

    fn verdict_and_life(status: u16, resp: &HeaderMap, c: &PolicyConfig) -> (bool, Duration) {
        let s = StatusCode::from_u16(status).unwrap();
        let ok = storable(&get(), s, resp, c).is_ok();
        (ok, freshness(s, resp, t0(), t0(), c).lifetime)
    }

    #[test]
    fn default_ttl_only_when_the_origin_is_silent() {
        let c = with_ttl(TtlRules {
            default: Some(Duration::from_secs(2)),
            ..TtlRules::default()
        });
        let bare = headers(&[("date", &date(0))]);
        assert_eq!(
            verdict_and_life(200, &bare, &c),
            (true, Duration::from_secs(2))
        );
        // Not heuristically cacheable: default_ttl does not apply, as nginx's bare
        // proxy_cache_valid covers 200/301/302 only.
        assert!(!verdict_and_life(302, &bare, &c).0);
        let explicit = headers(&[("date", &date(0)), ("cache-control", "max-age=60")]);
        assert_eq!(
            verdict_and_life(200, &explicit, &c).1,
            Duration::from_secs(60)
        );
        let no_cache = headers(&[("date", &date(0)), ("cache-control", "no-cache")]);
        assert_eq!(verdict_and_life(200, &no_cache, &c).1, Duration::ZERO);
    }

    #[test]
    fn status_ttl_by_code_beats_class_and_errors_stay_capped() {
        let mut by_class = [None; 5];
        by_class[2] = Some(Duration::from_secs(30));
        by_class[4] = Some(Duration::from_secs(600));
        let c = with_ttl(TtlRules {
            by_code: vec![(302, Duration::from_secs(10))],
            by_class,
            ..TtlRules::default()
        });
        let bare = headers(&[("date", &date(0))]);
        assert_eq!(
            verdict_and_life(302, &bare, &c),
            (true, Duration::from_secs(10))
        );
        assert_eq!(
            verdict_and_life(307, &bare, &c),
            (true, Duration::from_secs(30))
        );
        assert_eq!(verdict_and_life(503, &bare, &c), (true, c.max_error_ttl));
        assert!(!verdict_and_life(206, &bare, &c).0, "partial content never");
    }

    #[test]
    fn force_ttl_overrides_lifetime_but_not_privacy() {
        let c = with_ttl(TtlRules {
            force: Some(Duration::from_secs(86_400)),
            ..TtlRules::default()
        });
        let short = headers(&[
            ("date", &date(0)),
            ("cache-control", "max-age=0, must-revalidate"),
        ]);
        assert_eq!(
            verdict_and_life(200, &short, &c),
            (true, Duration::from_secs(86_400))
        );
        let f = freshness(StatusCode::OK, &short, t0(), t0(), &c);
        assert!(!f.no_stale && !f.always_revalidate);
        for cc in ["no-store", "private"] {
            let h = headers(&[("date", &date(0)), ("cache-control", cc)]);
            assert!(!verdict_and_life(200, &h, &c).0, "{cc}");
        }
        let cookie = headers(&[("date", &date(0)), ("set-cookie", "a=1")]);
        assert!(!verdict_and_life(200, &cookie, &c).0);
        let strip = PolicyConfig {
            strip_set_cookie: true,
            ..c
        };
        assert!(verdict_and_life(200, &cookie, &strip).0);
    }

    /// Usability `secs` seconds after storing, with no request directives.
    fn use_after(resp: &HeaderMap, secs: u64) -> Usability {
        let f = fresh_of(200, resp);
        usability(
            &f,
            f.initial_age + Duration::from_secs(secs),
            &HeaderMap::new(),
        )
    }

    fn use_after_req(resp: &HeaderMap, secs: u64, req_h: &[(&str, &str)]) -> Usability {
        let f = fresh_of(200, resp);
        usability(
            &f,
            f.initial_age + Duration::from_secs(secs),
            &headers(req_h),
        )
    }

    const REVALIDATE: Usability = Usability::MustRevalidate {
        usable_on_error: false,
    };

    // ---- storability ----

    #[test]
    fn request_cacheable_methods_and_no_store() {
        assert!(request_cacheable(&get()));
        assert!(request_cacheable(&req("HEAD", &[])));
        assert!(!request_cacheable(&req("POST", &[])));
        assert!(!request_cacheable(&req(
            "GET",
            &[("cache-control", "no-store")]
        )));
        assert!(request_cacheable(&req(
            "GET",
            &[("cache-control", "no-cache")]
        )));
    }

    #[test]
    fn request_directives_read_once_decide_like_the_request() {
        let r = req(
            "GET",
            &[
                ("cache-control", "no-store, max-age=5"),
                ("authorization", "Bearer x"),
                ("cookie", "a=b"),
            ],
        );
        let asked = RequestDirectives::of(&r.headers);
        assert!(asked.cc.no_store && asked.cc.max_age == Some(5));
        assert!(asked.credentials && asked.cookie);
        assert_eq!(
            request_cacheable_with(&r.method, &asked),
            request_cacheable(&r)
        );
        let resp = headers(&[("cache-control", "public, max-age=60")]);
        assert_eq!(
            storable_by(&r.method, &asked, StatusCode::OK, &resp, &cfg()),
            storable(&r, StatusCode::OK, &resp, &cfg())
        );
        assert_eq!(
            storable(&r, StatusCode::OK, &resp, &cfg()),
            Err(NotStorable::RequestNoStore)
        );
    }

    #[test]
    fn only_get_is_stored() {
        let r = headers(&[("cache-control", "max-age=60")]);
        let c = cfg();
        assert!(storable(&req("HEAD", &[]), StatusCode::OK, &r, &c).is_err());
        assert!(storable(&req("POST", &[]), StatusCode::OK, &r, &c).is_err());
        assert_eq!(store(200, &r), Ok(()));
    }

    #[test]
    fn no_store_and_private() {
        assert_eq!(
            store(
                200,
                &headers(&[("cache-control", "max-age=10000, no-store")])
            ),
            Err(NotStorable::NoStore)
        );
        assert!(store(200, &headers(&[("cache-control", "No-StOrE")])).is_err());
        assert_eq!(
            store(200, &headers(&[("cache-control", "private, max-age=3600")])),
            Err(NotStorable::Private)
        );
        // qualified private is storable (fields are stripped)
        assert_eq!(
            store(
                200,
                &headers(&[("cache-control", "private=\"x-user\", max-age=60")])
            ),
            Ok(())
        );
    }

    #[test]
    fn no_cache_is_storable() {
        assert_eq!(
            store(
                200,
                &headers(&[("cache-control", "no-cache"), ("etag", "\"abcd\"")])
            ),
            Ok(())
        );
        assert_eq!(
            store(
                200,
                &headers(&[("cache-control", "max-age=10000, no-cache")])
            ),
            Ok(())
        );
    }

    #[test]
    fn must_understand() {
        let r = headers(&[("cache-control", "must-understand, no-store, max-age=60")]);
        assert_eq!(store(200, &r), Ok(()));
        assert_eq!(store(299, &r), Err(NotStorable::MustUnderstand));
    }

    #[test]
    fn status_codes_with_explicit_freshness() {
        let r = headers(&[("cache-control", "max-age=100000")]);
        for s in [
            200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504,
            599,
        ] {
            assert_eq!(store(s, &r), Ok(()), "{s}");
        }
        assert!(store(206, &r).is_err());
        assert!(store(304, &r).is_err());
        assert!(store(100, &r).is_err());
    }

    #[test]
    fn stored_errors_are_capped_at_max_error_ttl() {
        let r = headers(&[(
            "cache-control",
            "max-age=600, stale-while-revalidate=600, stale-if-error=600",
        )]);
        for s in [500, 502, 503, 504, 599] {
            let f = fresh_of(s, &r);
            let cap = Duration::from_secs(5);
            assert_eq!(
                (f.lifetime, f.stale_while_revalidate, f.stale_if_error),
                (cap, cap, cap),
                "{s}"
            );
        }
        for s in [200, 404, 501] {
            assert_eq!(fresh_of(s, &r).lifetime, Duration::from_secs(600), "{s}");
        }
    }

    #[test]
    fn heuristic_status_codes() {
        let lm = date(-24 * 3600);
        let d = date(0);
        let r = headers(&[("last-modified", &lm), ("date", &d)]);
        for s in [200, 203, 204, 404, 405, 410, 414, 501] {
            assert_eq!(store(s, &r), Ok(()), "{s}");
            assert_eq!(fresh_of(s, &r).lifetime, Duration::from_secs(8640), "{s}");
        }
        for s in [201, 202, 403, 502, 503, 504, 599] {
            assert!(store(s, &r).is_err(), "{s}");
            assert_eq!(fresh_of(s, &r).lifetime, Duration::ZERO, "{s}");
        }
        let public = headers(&[
            ("last-modified", &lm),
            ("date", &d),
            ("cache-control", "public"),
        ]);
        assert_eq!(store(599, &public), Ok(()));
        assert!(fresh_of(599, &public).lifetime > Duration::ZERO);
    }

    #[test]
    fn nothing_to_go_on_is_not_stored() {
        assert_eq!(store(200, &HeaderMap::new()), Err(NotStorable::NoFreshness));
        assert_eq!(store(200, &headers(&[("etag", "\"a\"")])), Ok(()));
    }

    #[test]
    fn authorization() {
        let c = cfg();
        let auth = req("GET", &[("authorization", "FOO")]);
        let expires = date(30 * 24 * 3600);
        let plain = headers(&[("expires", &expires), ("date", &date(0))]);
        assert_eq!(
            storable(&auth, StatusCode::OK, &plain, &c),
            Err(NotStorable::Authorization)
        );
        for cc in [
            "max-age=3600, public",
            "max-age=3600, must-revalidate",
            "s-maxage=3600",
        ] {
            let r = headers(&[("cache-control", cc)]);
            assert_eq!(storable(&auth, StatusCode::OK, &r, &c), Ok(()), "{cc}");
        }
        assert!(!reusable_for(&auth, &plain, &c));
        assert!(reusable_for(&get(), &plain, &c));
    }

    #[test]
    fn cookie_rule() {
        let mut c = cfg();
        let cookie = req("GET", &[("cookie", "a=b")]);
        let r = headers(&[("cache-control", "max-age=3600")]);
        assert_eq!(
            storable(&cookie, StatusCode::OK, &r, &c),
            Err(NotStorable::Cookie)
        );
        assert!(!reusable_for(&cookie, &r, &c));
        // Pass means pass: the origin's `public` does not make one user's page shared.
        let public = headers(&[("cache-control", "max-age=3600, public")]);
        assert_eq!(
            storable(&cookie, StatusCode::OK, &public, &c),
            Err(NotStorable::Cookie)
        );
        assert!(!reusable_for(&cookie, &public, &c));
        c.cookie_requests_pass = false;
        assert_eq!(storable(&cookie, StatusCode::OK, &r, &c), Ok(()));
        assert!(reusable_for(&cookie, &r, &c));
    }

    #[test]
    fn set_cookie() {
        let r = headers(&[("cache-control", "max-age=3600"), ("set-cookie", "a=b")]);
        assert_eq!(store(200, &r), Err(NotStorable::SetCookie));
        let q = headers(&[
            ("cache-control", "max-age=3600, private=\"Set-Cookie\""),
            ("set-cookie", "a=b"),
        ]);
        assert_eq!(store(200, &q), Ok(()));
        let mut stripped = q.clone();
        strip_before_store(&mut stripped);
        assert!(!stripped.contains_key("set-cookie"));
    }

    #[test]
    fn vary_star_not_stored() {
        let r = headers(&[("cache-control", "max-age=60"), ("vary", "accept, *")]);
        assert_eq!(store(200, &r), Err(NotStorable::VaryStar));
        let r = headers(&[("cache-control", "max-age=60"), ("vary", "accept-encoding")]);
        assert_eq!(store(200, &r), Ok(()));
    }

    #[test]
    fn request_no_store_not_stored() {
        let r = headers(&[("cache-control", "max-age=60")]);
        let q = req("GET", &[("cache-control", "no-store")]);
        assert!(storable(&q, StatusCode::OK, &r, &cfg()).is_err());
    }

    // ---- targeted fields ----

    #[test]
    fn cdn_cache_control_precedence() {
        let r = headers(&[
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "max-age=3600"),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(3600));
        let r = headers(&[
            ("cache-control", "max-age=3600"),
            ("cdn-cache-control", "max-age=1"),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(1));
        // CDN no-store wins over a fresh Cache-Control; CDN max-age wins over CC no-store
        let r = headers(&[
            ("cache-control", "max-age=10000"),
            ("cdn-cache-control", "no-store"),
        ]);
        assert!(store(200, &r).is_err());
        let r = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=10000"),
        ]);
        assert_eq!(store(200, &r), Ok(()));
        let r = headers(&[
            ("cache-control", "max-age=10000"),
            ("cdn-cache-control", "private"),
        ]);
        assert_eq!(store(200, &r), Err(NotStorable::Private));
        let r = headers(&[
            ("cache-control", "max-age=10000"),
            ("cdn-cache-control", "no-cache"),
        ]);
        assert_ne!(use_after(&r, 0), Usability::Fresh);
        let r = headers(&[
            ("cache-control", "max-age=10000"),
            ("cdn-cache-control", "no-cache"),
            ("etag", "\"a\""),
        ]);
        assert_eq!(use_after(&r, 0), REVALIDATE);
    }

    #[test]
    fn invalid_cdn_cache_control_falls_back() {
        for v in ["max-age=10000, &&&&&", "max-age=\"10000\""] {
            let r = headers(&[("cdn-cache-control", v), ("cache-control", "no-store")]);
            assert_eq!(store(200, &r), Err(NotStorable::NoStore), "{v}");
        }
        for v in ["max-age =100", "max-age= 100"] {
            let r = headers(&[("cdn-cache-control", v), ("cache-control", "max-age=1")]);
            assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(1), "{v}");
        }
    }

    #[test]
    fn cdn_max_age_ignores_expires_and_honours_age() {
        let d = date(0);
        let r = headers(&[
            ("cdn-cache-control", "max-age=3600"),
            ("expires", "0"),
            ("date", &d),
        ]);
        assert_eq!(use_after(&r, 2), Usability::Fresh);
        let r = headers(&[
            ("cdn-cache-control", "max-age=3600"),
            ("age", "7200"),
            ("date", &d),
        ]);
        assert!(matches!(
            use_after(&r, 0),
            Usability::MustRevalidate { .. } | Usability::Expired
        ));
        let exp = date(10000);
        let r = headers(&[
            ("cdn-cache-control", "max-age=0"),
            ("expires", &exp),
            ("date", &d),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::ZERO);
    }

    #[test]
    fn surrogate_control() {
        let r = headers(&[
            ("cache-control", "max-age=1"),
            ("surrogate-control", "max-age=3600"),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(3600));
        let r = headers(&[
            ("cache-control", "max-age=3600"),
            ("surrogate-control", "max-age=1"),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(1));
        for v in ["max-age =100", "max-age= 100"] {
            let r = headers(&[("cache-control", "max-age=1"), ("surrogate-control", v)]);
            assert!(fresh_of(200, &r).lifetime <= Duration::from_secs(1), "{v}");
        }
        let r = headers(&[
            ("cache-control", "max-age=10000"),
            ("surrogate-control", "no-store"),
        ]);
        assert!(store(200, &r).is_err());
        // CDN-Cache-Control outranks Surrogate-Control
        let r = headers(&[
            ("surrogate-control", "max-age=5"),
            ("cdn-cache-control", "max-age=9"),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(9));
        // disabled: Cache-Control applies
        let mut c = cfg();
        c.surrogate_control = false;
        let r = headers(&[
            ("cache-control", "max-age=3600"),
            ("surrogate-control", "max-age=1"),
        ]);
        let f = freshness(StatusCode::OK, &r, t0(), t0(), &c);
        assert_eq!(f.lifetime, Duration::from_secs(3600));
    }

    // ---- freshness lifetime ----

    #[test]
    fn max_age_basics() {
        let r = headers(&[("cache-control", "max-age=3600")]);
        assert_eq!(use_after(&r, 10), Usability::Fresh);
        assert!(matches!(
            use_after(&r, 3600),
            Usability::MustRevalidate { .. } | Usability::Expired
        ));
        assert_eq!(
            fresh_of(200, &headers(&[("cache-control", "max-age=0")])).lifetime,
            Duration::ZERO
        );
        let big = headers(&[("cache-control", "max-age=99999999999")]);
        assert_eq!(
            fresh_of(200, &big).lifetime,
            Duration::from_secs(DELTA_SECONDS_MAX)
        );
        assert_eq!(use_after(&big, 1_000_000), Usability::Fresh);
    }

    #[test]
    fn invalid_max_age_is_stale() {
        for v in [
            "max-age=a100",
            "max-age=100a",
            "max-age=-100",
            "max-age =100",
            "max-age= 100",
            "max-age='3600'",
            "max-age=1800, max-age=1",
        ] {
            let r = headers(&[("cache-control", v)]);
            assert_eq!(fresh_of(200, &r).lifetime, Duration::ZERO, "{v}");
        }
        // quoted max-age only inside an extension is ignored
        let r = headers(&[("cache-control", "extension=\"max-age=100\", max-age=1")]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(1));
        let r = headers(&[("cache-control", "max-age=\"1\", extension=\"max-age=100\"")]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(1));
    }

    #[test]
    fn s_maxage_precedence() {
        for v in ["max-age=3600, s-maxage=1", "s-maxage=1, max-age=3600"] {
            let r = headers(&[("cache-control", v)]);
            assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(1), "{v}");
        }
        let r = headers(&[
            ("cache-control", "max-age=3600"),
            ("cache-control", "s-maxage=1"),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(1));
        let r = headers(&[("cache-control", "max-age=1, s-maxage=3600")]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(3600));
        assert!(fresh_of(200, &r).no_stale);
    }

    #[test]
    fn max_age_beats_expires() {
        let d = date(0);
        let past = date(-10000);
        let r = headers(&[
            ("cache-control", "max-age=3600"),
            ("expires", &past),
            ("date", &d),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(3600));
        let r = headers(&[
            ("cache-control", "max-age=3600"),
            ("expires", "0"),
            ("date", &d),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(3600));
        let future = date(10000);
        let r = headers(&[
            ("cache-control", "max-age=0"),
            ("expires", &future),
            ("date", &d),
        ]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::ZERO);
    }

    #[test]
    fn expires() {
        let d = date(0);
        let check = |exp: &str, dt: &str, want: u64| {
            let r = headers(&[("expires", exp), ("date", dt)]);
            assert_eq!(
                fresh_of(200, &r).lifetime,
                Duration::from_secs(want),
                "{exp} / {dt}"
            );
        };
        check(&date(30 * 24 * 3600), &d, 30 * 24 * 3600);
        check(&date(-30 * 24 * 3600), &d, 0);
        check(&d, &d, 0);
        check(&date(300), &date(400), 0);
        check("0", &d, 0);
        for bad in [
            "Thu, 18 Aug 2050 02:01:18 UTC",
            "Thu, 18 Aug 50 02:01:18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu, 18 Aug 2050 2:01:18 GMT",
        ] {
            check(bad, &d, 0);
        }
        // wrong letter case is tolerated
        for ok in [
            "THU, 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 AUG 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 gMT",
        ] {
            let r = headers(&[("expires", ok), ("date", &d)]);
            assert!(
                fresh_of(200, &r).lifetime > Duration::from_secs(3600),
                "{ok}"
            );
        }
    }

    #[test]
    fn expires_with_invalid_or_missing_date_uses_response_time() {
        let exp = date(10);
        let r = headers(&[("date", "foo"), ("expires", &exp)]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(10));
        let r = headers(&[("expires", &exp)]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(10));
    }

    #[test]
    fn multiple_expires_lines() {
        let d = date(0);
        let a = date(100);
        let b = date(200);
        let r = headers(&[("expires", &a), ("expires", &b), ("date", &d)]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::ZERO);
        let r = headers(&[("expires", &a), ("expires", &a), ("date", &d)]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(100));
    }

    #[test]
    fn heuristic_needs_last_modified_and_is_capped() {
        let d = date(0);
        let r = headers(&[("date", &d), ("etag", "\"x\"")]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::ZERO);
        let lm = date(-1000);
        let r = headers(&[("date", &d), ("last-modified", &lm)]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(100));
        let lm = date(-100 * 24 * 3600);
        let r = headers(&[("date", &d), ("last-modified", &lm)]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::from_secs(24 * 3600));
        // Last-Modified in the future gives nothing
        let lm = date(1000);
        let r = headers(&[("date", &d), ("last-modified", &lm)]);
        assert_eq!(fresh_of(200, &r).lifetime, Duration::ZERO);
        // Pragma: no-cache in a response has no defined meaning (RFC 9111 5.4)
        let lm = date(-10000);
        let r = headers(&[("last-modified", &lm), ("pragma", "no-cache")]);
        assert_eq!(use_after(&r, 0), Usability::Fresh);
    }

    #[test]
    fn heuristic_fraction_garbage_config() {
        let mut c = cfg();
        c.heuristic_fraction = f64::NAN;
        let lm = date(-1000);
        let r = headers(&[("date", &date(0)), ("last-modified", &lm)]);
        assert_eq!(
            freshness(StatusCode::OK, &r, t0(), t0(), &c).lifetime,
            Duration::ZERO
        );
        c.heuristic_fraction = 1e300;
        assert_eq!(
            freshness(StatusCode::OK, &r, t0(), t0(), &c).lifetime,
            Duration::from_secs(1000)
        );
    }

    // ---- age ----

    #[test]
    fn age_header_makes_response_stale() {
        let d = date(0);
        let r = headers(&[("date", &d), ("cache-control", "max-age=10"), ("age", "15")]);
        assert_eq!(fresh_of(200, &r).initial_age, Duration::from_secs(15));
        assert!(!matches!(use_after(&r, 0), Usability::Fresh));
        let exp = date(10);
        let r = headers(&[("date", &date(-10)), ("expires", &exp), ("age", "25")]);
        assert!(!matches!(use_after(&r, 0), Usability::Fresh));
        let exp = date(20);
        let r = headers(&[("date", &date(10)), ("expires", &exp), ("age", "15")]);
        assert!(!matches!(use_after(&r, 0), Usability::Fresh));
    }

    #[test]
    fn age_parse_uses_first_value_and_ignores_junk() {
        let d = date(0);
        let cases: &[(&[&str], u64)] = &[
            (&["abc"], 0),
            (&["-7200"], 0),
            (&["7200.0"], 0),
            (&["7200,0"], 7200),
            (&["7200, 0"], 7200),
            (&["7200", "0"], 7200),
            (&["0,7200"], 0),
            (&["0", "7200"], 0),
            (&["7200, 7200"], 7200),
        ];
        for (ages, want) in cases {
            let mut r = headers(&[("date", &d), ("cache-control", "max-age=3600")]);
            for a in *ages {
                r.append(header::AGE, HeaderValue::from_str(a).unwrap());
            }
            assert_eq!(
                fresh_of(200, &r).initial_age,
                Duration::from_secs(*want),
                "{ages:?}"
            );
        }
        let r = headers(&[("age", "99999999999999999999")]);
        assert_eq!(
            fresh_of(200, &r).initial_age,
            Duration::from_secs(DELTA_SECONDS_MAX)
        );
    }

    #[test]
    fn initial_age_calculation() {
        // apparent age from a Date in the past
        let r = headers(&[("date", &date(-30)), ("cache-control", "max-age=600")]);
        let f = freshness(StatusCode::OK, &r, t0(), t0(), &cfg());
        assert_eq!(f.initial_age, Duration::from_secs(30));
        // Date in the future: apparent age 0, but Age + response delay still count
        let r = headers(&[("date", &date(500)), ("age", "30")]);
        let f = freshness(StatusCode::OK, &r, at(-5), t0(), &cfg());
        assert_eq!(f.initial_age, Duration::from_secs(35));
        // response_time before request_time (clock weirdness) must not panic
        let f = freshness(StatusCode::OK, &r, at(5), t0(), &cfg());
        assert_eq!(f.initial_age, Duration::from_secs(30));
    }

    #[test]
    fn age_header_value() {
        assert_eq!(age_header(Duration::from_millis(2999)), "2");
        assert_eq!(age_header(Duration::MAX), "2147483648");
        assert_eq!(age_header(Duration::ZERO), "0");
    }

    // ---- usability ----

    #[test]
    fn response_no_cache_always_revalidates() {
        let d = date(0);
        let exp = date(10000);
        let r = headers(&[
            ("cache-control", "max-age=10000, no-cache"),
            ("expires", &exp),
            ("date", &d),
            ("etag", "\"abcd\""),
        ]);
        let f = fresh_of(200, &r);
        assert!(f.always_revalidate);
        assert_eq!(use_after(&r, 0), REVALIDATE);
        // kept for revalidation
        assert_eq!(use_after(&r, 12000), REVALIDATE);
        // qualified no-cache only strips the fields (cache-tests headers-omit-headers-listed-*)
        let r = headers(&[
            ("cache-control", "no-cache=\"a\""),
            ("cache-control", "max-age=3600"),
            ("a", "1"),
            ("b", "2"),
        ]);
        assert_eq!(use_after(&r, 0), Usability::Fresh);
        let mut stored = r.clone();
        strip_before_store(&mut stored);
        assert!(!stored.contains_key("a") && stored.contains_key("b"));
    }

    #[test]
    fn must_revalidate_family_never_serves_stale() {
        let mut c = cfg();
        c.default_stale_if_error = Duration::from_secs(600);
        c.default_grace = Duration::from_secs(600);
        for cc in [
            "max-age=2, must-revalidate",
            "max-age=2, proxy-revalidate",
            "max-age=2, no-cache",
            "max-age=2, s-maxage=2",
        ] {
            let r = headers(&[("cache-control", cc), ("etag", "\"a\"")]);
            let f = freshness(StatusCode::OK, &r, t0(), t0(), &c);
            let u = usability(&f, Duration::from_secs(3), &HeaderMap::new());
            assert_eq!(u, REVALIDATE, "{cc}");
            let u = usability(
                &f,
                Duration::from_secs(3),
                &headers(&[("cache-control", "max-stale")]),
            );
            assert_eq!(u, REVALIDATE, "{cc}");
        }
        // fresh must-revalidate is used as is
        let r = headers(&[("cache-control", "max-age=10000, must-revalidate")]);
        assert_eq!(use_after(&r, 1), Usability::Fresh);
    }

    #[test]
    fn defaults_apply_when_allowed() {
        let mut c = cfg();
        c.default_stale_if_error = Duration::from_secs(600);
        c.default_grace = Duration::from_secs(10);
        let r = headers(&[("cache-control", "max-age=2")]);
        let f = freshness(StatusCode::OK, &r, t0(), t0(), &c);
        assert_eq!(
            usability(&f, Duration::from_secs(5), &HeaderMap::new()),
            Usability::StaleWhileRevalidate
        );
        assert_eq!(
            usability(&f, Duration::from_secs(100), &HeaderMap::new()),
            Usability::MustRevalidate {
                usable_on_error: true
            }
        );
        assert_eq!(
            usability(&f, Duration::from_secs(700), &HeaderMap::new()),
            Usability::Expired
        );
    }

    #[test]
    fn stale_while_revalidate() {
        let r = headers(&[("cache-control", "max-age=1, stale-while-revalidate=30")]);
        assert_eq!(use_after(&r, 0), Usability::Fresh);
        assert_eq!(use_after(&r, 5), Usability::StaleWhileRevalidate);
        assert_eq!(use_after(&r, 40), Usability::Expired);
        // explicit swr survives s-maxage (origin permission, RFC 9111 4.2.4)
        let r = headers(&[("cache-control", "s-maxage=1, stale-while-revalidate=30")]);
        assert_eq!(use_after(&r, 5), Usability::StaleWhileRevalidate);
        // but not no-cache
        let r = headers(&[
            (
                "cache-control",
                "no-cache, max-age=1, stale-while-revalidate=30",
            ),
            ("etag", "\"a\""),
        ]);
        assert!(matches!(use_after(&r, 5), Usability::MustRevalidate { .. }));
    }

    #[test]
    fn stale_if_error() {
        let r = headers(&[
            ("cache-control", "max-age=2, stale-if-error=60"),
            ("etag", "\"a\""),
        ]);
        assert_eq!(
            use_after(&r, 10),
            Usability::MustRevalidate {
                usable_on_error: true
            }
        );
        assert_eq!(use_after(&r, 63), REVALIDATE);
        assert_eq!(use_after(&r, 10_000), Usability::Expired);
        // without it, nothing stale is served on error
        let r = headers(&[("cache-control", "max-age=2"), ("etag", "\"a\"")]);
        assert_eq!(use_after(&r, 10), REVALIDATE);
        // no validator and no windows: gone once stale
        let r = headers(&[("cache-control", "max-age=2")]);
        assert_eq!(use_after(&r, 3), Usability::Expired);
    }

    #[test]
    fn request_directives() {
        let r = headers(&[("cache-control", "max-age=3600")]);
        assert_eq!(
            use_after_req(&r, 2, &[("cache-control", "max-age=0")]),
            REVALIDATE
        );
        assert_eq!(
            use_after_req(&r, 2, &[("cache-control", "max-age=1")]),
            REVALIDATE
        );
        assert_eq!(
            use_after_req(&r, 2, &[("cache-control", "max-age=10")]),
            Usability::Fresh
        );
        assert_eq!(
            use_after_req(&r, 0, &[("cache-control", "no-cache")]),
            REVALIDATE
        );
        assert_eq!(
            use_after_req(&r, 0, &[("cache-control", "min-fresh=3000")]),
            Usability::Fresh
        );
        assert_eq!(
            use_after_req(&r, 1000, &[("cache-control", "min-fresh=3000")]),
            REVALIDATE
        );
        // Pragma is deprecated (RFC 9111 5.4) and ignored
        assert_eq!(
            use_after_req(&r, 0, &[("pragma", "no-cache")]),
            Usability::Fresh
        );
        let aged = headers(&[("cache-control", "max-age=3600"), ("age", "1800")]);
        assert_eq!(
            use_after_req(&aged, 0, &[("cache-control", "max-age=600")]),
            REVALIDATE
        );
        let aged = headers(&[("cache-control", "max-age=1500"), ("age", "1000")]);
        assert_eq!(
            use_after_req(&aged, 0, &[("cache-control", "min-fresh=1000")]),
            REVALIDATE
        );
    }

    #[test]
    fn max_stale() {
        let r = headers(&[("cache-control", "max-age=1"), ("etag", "\"a\"")]);
        assert_eq!(
            use_after_req(&r, 5, &[("cache-control", "max-stale=1000")]),
            Usability::Fresh
        );
        assert_eq!(
            use_after_req(&r, 5, &[("cache-control", "max-stale")]),
            Usability::Fresh
        );
        assert_eq!(
            use_after_req(&r, 2000, &[("cache-control", "max-stale=1000")]),
            REVALIDATE
        );
        let aged = headers(&[
            ("cache-control", "max-age=1500"),
            ("age", "2000"),
            ("etag", "\"a\""),
        ]);
        assert_eq!(
            use_after_req(&aged, 0, &[("cache-control", "max-stale=1000")]),
            Usability::Fresh
        );
    }

    #[test]
    fn usability_boundary() {
        let r = headers(&[("cache-control", "max-age=10"), ("etag", "\"a\"")]);
        let f = fresh_of(200, &r);
        let h = HeaderMap::new();
        assert_eq!(
            usability(&f, Duration::from_millis(9999), &h),
            Usability::Fresh
        );
        assert_eq!(usability(&f, Duration::from_secs(10), &h), REVALIDATE);
        assert_eq!(usability(&f, Duration::MAX, &h), Usability::Expired);
    }

    #[test]
    fn keep_only_with_validators() {
        let with = fresh_of(
            200,
            &headers(&[
                ("cache-control", "max-age=1"),
                ("last-modified", &date(-100)),
            ]),
        );
        assert_eq!(with.keep, cfg().default_keep);
        let without = fresh_of(200, &headers(&[("cache-control", "max-age=1")]));
        assert_eq!(without.keep, Duration::ZERO);
    }

    // ---- 304 handling ----

    #[test]
    fn merge_304_replaces_and_keeps() {
        let stored = headers(&[
            ("cache-control", "max-age=1"),
            ("etag", "\"e1\""),
            ("test-header", "A"),
            ("content-type", "text/plain"),
            ("content-length", "10"),
            ("content-encoding", "gzip"),
            ("x-multi", "1"),
            ("x-multi", "2"),
            ("date", &date(-100)),
            ("age", "50"),
            ("set-cookie", "a=b"),
        ]);
        let nm = headers(&[
            ("cache-control", "max-age=3600"),
            ("content-type", "text/plain;charset=utf-8"),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("x-multi", "3"),
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
            ("date", &date(0)),
            ("set-cookie", "a=c"),
        ]);
        let m = merge_304(&stored, &nm);
        assert_eq!(m["cache-control"], "max-age=3600");
        assert_eq!(m["test-header"], "A");
        assert_eq!(m["etag"], "\"e1\"");
        assert_eq!(m["content-type"], "text/plain;charset=utf-8");
        assert_eq!(m["content-length"], "10");
        assert_eq!(m["content-encoding"], "gzip");
        assert_eq!(m.get_all("x-multi").iter().collect::<Vec<_>>(), vec!["3"]);
        assert_eq!(m["date"], date(0).as_str());
        assert_eq!(m["set-cookie"], "a=c");
        assert!(!m.contains_key("age"));
        for h in ["connection", "x-hop", "transfer-encoding", "keep-alive"] {
            assert!(!m.contains_key(h), "{h}");
        }
        // refreshed freshness comes from the merged headers
        assert_eq!(fresh_of(200, &m).lifetime, Duration::from_secs(3600));
        assert_eq!(fresh_of(200, &m).initial_age, Duration::ZERO);
    }

    #[test]
    fn merge_304_without_date_or_age() {
        let stored = headers(&[
            ("date", &date(-10000)),
            ("age", "99"),
            ("cache-control", "max-age=60"),
        ]);
        let m = merge_304(&stored, &HeaderMap::new());
        assert!(!m.contains_key("date") && !m.contains_key("age"));
        assert_eq!(fresh_of(200, &m).initial_age, Duration::ZERO);
    }

    #[test]
    fn revalidation_headers_from_validators() {
        let lm = date(-100);
        let h = revalidation_headers(&headers(&[("etag", "W/\"abc\""), ("last-modified", &lm)]));
        assert_eq!(
            h,
            vec![
                (header::IF_NONE_MATCH, HeaderValue::from_static("W/\"abc\"")),
                (
                    header::IF_MODIFIED_SINCE,
                    HeaderValue::from_str(&lm).unwrap()
                ),
            ]
        );
        assert!(revalidation_headers(&HeaderMap::new()).is_empty());
        let bad = headers(&[("etag", "abc"), ("last-modified", "yesterday")]);
        assert!(revalidation_headers(&bad).is_empty());
        let bad = headers(&[("etag", "\"a\"b\"")]);
        assert!(revalidation_headers(&bad).is_empty());
    }

    #[test]
    fn strip_before_store_all_families() {
        let mut r = headers(&[
            ("cache-control", "max-age=60, private=\"x-a, X-B\""),
            ("cdn-cache-control", "no-cache=\"x-c\""),
            ("surrogate-control", "no-cache=\"x-d\""),
            ("x-a", "1"),
            ("x-b", "1"),
            ("x-c", "1"),
            ("x-d", "1"),
            ("x-e", "1"),
            ("cache-control", "private=\"bad name\""),
        ]);
        strip_before_store(&mut r);
        for h in ["x-a", "x-b", "x-c", "x-d"] {
            assert!(!r.contains_key(h), "{h}");
        }
        assert!(r.contains_key("x-e"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut r = HeaderMap::new();
        for name in [
            "cache-control",
            "cdn-cache-control",
            "surrogate-control",
            "expires",
            "date",
            "age",
            "last-modified",
            "vary",
            "etag",
            "connection",
        ] {
            r.append(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(b"\xff\"\\,=;(").unwrap(),
            );
            r.append(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(b"").unwrap(),
            );
        }
        let _ = storable(&get(), StatusCode::OK, &r, &cfg());
        let f = freshness(StatusCode::OK, &r, SystemTime::UNIX_EPOCH, t0(), &cfg());
        let _ = usability(&f, Duration::MAX, &r);
        let _ = merge_304(&r, &r);
        let _ = revalidation_headers(&r);
        strip_before_store(&mut r);
        assert_eq!(parse_http_date(&[0xff; 200]), None);
    }

    /// 6 Nov 1994 was a Sunday. A wrong weekday name used to make the date invalid (an
    /// `Expires` "already expired", a `Last-Modified` no heuristic); the date is what
    /// matters (issue 13), in all three formats.
    #[test]
    fn dates_with_the_wrong_weekday_are_read_by_their_date() {
        let right = parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        for wrong in [
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Monday, 06-Nov-94 08:49:37 GMT",
            "Mon Nov  6 08:49:37 1994",
            "wed, 06 nov 1994 08:49:37 gmt",
        ] {
            assert_eq!(parse_http_date(wrong.as_bytes()), Some(right), "{wrong}");
        }
        for junk in [
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Mon, 31 Feb 1994 08:49:37 GMT",
            "Mon, 06 Nov 1994 25:49:37 GMT",
            "Mon",
            "Mon,",
        ] {
            assert_eq!(parse_http_date(junk.as_bytes()), None, "{junk}");
        }
        // An Expires with a wrong weekday now gives the lifetime it says.
        let h = headers(&[
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Mon, 06 Nov 1994 09:49:37 GMT"),
        ]);
        let f = freshness(StatusCode::OK, &h, right, right, &cfg());
        assert_eq!(f.lifetime, Duration::from_secs(3600));
    }
}
