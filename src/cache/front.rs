//! The cache's one front door. The rest of lacquer asks [`Cache`], never the store or
//! the markers: it looks objects up, judges every fetched response once
//! ([`Cache::admit`]: stored, shared with the requests waiting for it, or passed to its
//! own client), refreshes stored copies after a 304, takes pushes, and purges.
//!
//! It owns what outlives a reload: the objects (`store`) and the hit-for-miss markers.
//! It does not own the rules it judges by ([`Rules`]: policy, key rules, size limits):
//! every call is given the rules its request is served under, so that requests for
//! different sites can be cached by different rules in the one cache.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, StatusCode};
use tokio::time::Instant;

use super::control::CacheControl;
use super::key::{CacheKey, KeyRules};
use super::keyhash::KeyHashBuilder;
use super::object::{self, Object};
use super::partial::{self, ContentRange, Parts};
use super::policy::{self, Freshness, NotStorable, PolicyConfig, RequestDirectives};
use super::store::{Purged, Rejected, Reservation, Store};
use super::vary::{self, SecondaryKey, Vary};

/// Most hit-for-miss markers kept: a client requesting endless URLs only churns them.
const MAX_MARKERS: u64 = 100_000;

/// A URL's incomplete responses live in the store beside its complete ones, under the
/// URL's hash with these bits flipped: a lookup for the URL never meets a partial
/// object, and purges by prefix, tag or everything reach both (same URL, own tags).
const PARTIAL_SALT: u128 = 0x7061_7274_6961_6c20_7061_7274_7320_2e2e;

/// Where `key`'s incomplete responses are stored.
fn partial_key(key: &CacheKey) -> CacheKey {
    CacheKey {
        hash: key.hash ^ PARTIAL_SALT,
        url: key.url.clone(),
    }
}

/// The rules a request is cached under: today the node's, built once per reload.
#[derive(Debug, Clone)]
pub struct Rules {
    pub policy: PolicyConfig,
    pub key: KeyRules,
    /// Largest body stored (`cache.max_object_size`).
    pub max_object_size: u64,
    /// Freshness given to a 5xx without freshness of its own (negative caching; 0 = off).
    pub error_ttl: Duration,
}

/// What a purge removes (or, soft, marks stale).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Every variant of one URL.
    Url(&'a CacheKey),
    /// Every object tagged so in its Surrogate-Key field.
    Tag(&'a str),
    /// Every URL starting with this normalized prefix.
    Prefix(&'a str),
    All,
}

/// The cache's numbers, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// URLs stored (each with one or more variants).
    pub objects: u64,
    /// Bytes charged against `cache.memory`.
    pub bytes: u64,
    /// Objects inserted since start.
    pub inserted: u64,
    /// URLs evicted for size or expiry since start.
    pub evicted: u64,
}

/// When a fetch happened, by the wall clock (RFC 9111 4.2.3 ages) and monotonically.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// The request was sent.
    pub request_time: SystemTime,
    /// Its response head arrived.
    pub response_time: SystemTime,
    /// The fetch started: an object pushed after this wins over the fetched one.
    pub started: Instant,
    /// The response head arrived: the stored object's residence counts from here.
    pub received: Instant,
}

/// A response head from upstream, with what the cache needs to judge it.
pub struct Fetched<'a> {
    /// The request as sent for the fill (always a GET): Vary selects by its fields.
    pub request: &'a request::Parts,
    /// The request's own directives. With credentials, an unstorable answer says nothing
    /// about the URL (no hit-for-miss marker), and an error is personal.
    pub asked: &'a RequestDirectives,
    pub status: StatusCode,
    /// The response's fields, hop-by-hop fields removed.
    pub headers: &'a HeaderMap,
    /// Content-Length, when the origin stated one.
    pub content_length: Option<u64>,
    /// Content-Length beside Transfer-Encoding (RFC 9112 6.1): relayed, never stored.
    pub bad_framing: bool,
    /// The stored copy this fetch revalidates, if any.
    pub stale: Option<&'a Object>,
    pub times: Times,
}

/// The cache's verdict on a fetched response, decided once by [`Cache::admit`].
#[derive(Debug)]
pub enum Admission {
    /// Store it (when the body fits) and share it with every waiter.
    Store(Admitted),
    /// Not stored, but the same for everyone who asked: every waiter gets it.
    Share(PassReason),
    /// Only for the request that fetched it: waiters fetch on their own.
    Pass(PassReason),
}

impl Admission {
    /// Waiters for the same URL may be given this response. A part too: a fetch that
    /// forwards a client's Range is never joined (`Proxy::ranged_miss`), so its waiters
    /// only share a 206 the origin sent to a whole fill, as the leader's client gets it.
    pub fn shareable(&self) -> bool {
        !matches!(self, Admission::Pass(_))
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassReason {
    /// RFC 9111 (or lacquer's stricter reading of it) says no.
    NotStorable(NotStorable),
    /// A Vary no later request can be matched against (`*`, too many fields, or
    /// request fields too large to key on).
    Vary,
    /// Content-Length beyond `max_object_size`.
    TooBig,
    /// A 5xx never replaces a stored copy that is not an error itself.
    ErrorOverStale,
    /// Content-Length beside Transfer-Encoding.
    BadFraming,
    /// A server-sent event stream: each client's is live, never a copy of another's.
    EventStream,
}

/// A response admitted for storing: what its object will carry besides the response.
#[derive(Debug)]
pub struct Admitted {
    pub(super) freshness: Freshness,
    /// Stored under `public` / `s-maxage`: may also answer requests with credentials.
    pub(super) public: bool,
    pub(super) vary: Vec<HeaderName>,
    pub(super) secondary: SecondaryKey,
    max_size: u64,
    /// Outgrowing the size limit marks the URL hit-for-miss (not for a request with
    /// credentials: its answer says nothing about the URL).
    marks_url: bool,
    /// A 206: the range of the representation its body holds ([`Cache::insert_part`]).
    part: Option<ContentRange>,
}

impl Admitted {
    /// A body of `size` bytes may still be stored.
    pub fn fits(&self, size: u64) -> bool {
        size <= self.max_size
    }

    /// A 206 to store with [`Cache::insert_part`], not as a complete object.
    pub fn is_part(&self) -> bool {
        self.part.is_some()
    }
}

/// What a 304 did to the stored copy it revalidated.
pub struct Refreshed {
    /// The stored copy with the 304's fields and a new lifetime: every waiter's answer.
    pub object: Arc<Object>,
    /// The 304 left the response storable: the refreshed copy was offered to the
    /// store (else the stored copy was removed).
    pub kept: bool,
}

/// An object pushed by an operator, its fields cleaned of request-only ones.
pub struct Push {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// This cache's lifetime for the object, counted from now; stands in for missing
    /// freshness information.
    pub ttl: Option<Duration>,
    pub version: Option<u64>,
}

/// Why a push was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushRefused {
    /// The cache would not store this response from an origin either.
    NotStorable(NotStorable),
    /// The store keeps what it has (a newer push, see `store::Rejected`).
    Rejected(Rejected),
}

pub struct Cache {
    store: Store,
    /// URLs whose last answer could not be shared: their next requests fetch on their
    /// own instead of queueing behind one fetch.
    hit_for_miss: moka::sync::Cache<u128, (), KeyHashBuilder>,
}

impl Cache {
    /// A cache of `capacity_bytes` (objects and fills in progress), keeping at most
    /// `max_variants` per URL and hit-for-miss markers for `hit_for_miss_ttl`.
    pub fn new(capacity_bytes: u64, max_variants: usize, hit_for_miss_ttl: Duration) -> Cache {
        Cache {
            store: Store::new(capacity_bytes, max_variants),
            hit_for_miss: moka::sync::Cache::builder()
                .max_capacity(MAX_MARKERS)
                .time_to_live(hit_for_miss_ttl.max(Duration::from_millis(1)))
                .build_with_hasher(KeyHashBuilder::default()),
        }
    }

    /// The variant stored for this URL that the request's Vary-selected fields match.
    pub fn lookup(&self, key: &CacheKey, req: &HeaderMap) -> Option<Arc<Object>> {
        self.store.lookup(key, req)
    }

    /// Every variant stored for a URL.
    pub fn variants(&self, key: &CacheKey) -> Vec<Arc<Object>> {
        self.store.variants(key)
    }

    /// The URL's last answer could not be shared, within the marker's lifetime.
    pub fn is_hit_for_miss(&self, key: &CacheKey) -> bool {
        self.hit_for_miss.contains_key(&key.hash)
    }

    /// Judge a fetched response head, once: stored, shared, or passed. Marks the URL
    /// hit-for-miss when its answer cannot be shared, and clears the mark when it
    /// can be stored.
    pub fn admit(&self, key: &CacheKey, resp: &Fetched<'_>, rules: &Rules) -> Admission {
        let status = resp.status;
        let headers = resp.headers;
        let server_error = status.is_server_error();
        let variant = match vary::parse_vary(headers) {
            Vary::None => Some((Vec::new(), SecondaryKey(Vec::new()))),
            Vary::Star => None,
            Vary::Fields(fields) => {
                vary::secondary_key(&fields, &resp.request.headers).map(|sk| (fields, sk))
            }
        };
        // A 5xx never replaces a stored copy: stale must not be replaced by an error (a
        // stored error may be, by the next error).
        let error_over_stale =
            server_error && resp.stale.is_some_and(|o| !o.status.is_server_error());
        let (cc, targeted) = policy::effective_cache_control(headers, &rules.policy);
        let method = &resp.request.method;
        // RFC 9111 3.3: a 206 that can be placed in its representation (one range, known
        // complete length, a body as long as its range) is stored as a part, judged as
        // the representation it is part of would be; any other 206 stays unstorable.
        let part = (status == StatusCode::PARTIAL_CONTENT)
            .then(|| partial::content_range(headers))
            .flatten()
            .filter(|r| resp.content_length.map_or(true, |n| n == r.size()));
        let judged = if part.is_some() {
            StatusCode::OK
        } else {
            status
        };
        let verdict =
            policy::storable_with(method, resp.asked, judged, headers, &cc, &rules.policy);
        let too_big = resp
            .content_length
            .is_some_and(|n| n > rules.max_object_size);
        // An event stream is live: stored, or shared with a client that joins later, it
        // would replay old events as new, whatever its Cache-Control says.
        let event_stream = policy::is_event_stream(headers);
        let fits = variant.is_some()
            && !too_big
            && !error_over_stale
            && !resp.bad_framing
            && !event_stream;
        let storable = verdict.is_ok() && fits;
        // Negative caching (`error_ttl`): a 5xx without freshness of its own is kept
        // briefly, when it would be storable with that lifetime (no-store, private,
        // Set-Cookie still win).
        let negative = !storable
            && fits
            && server_error
            && !resp.asked.credentials
            && !rules.error_ttl.is_zero()
            && {
                let mut with_ttl = cc.clone();
                with_ttl.max_age = Some(rules.error_ttl.as_secs().max(1));
                policy::storable_with(
                    method,
                    resp.asked,
                    status,
                    headers,
                    &with_ttl,
                    &rules.policy,
                )
                .is_ok()
            };
        // A 5xx says the origin is failing, not that the URL is uncacheable: the next
        // wave must be coalesced too.
        if storable || negative {
            self.clear_hit_for_miss(key);
        } else if !resp.asked.credentials && !server_error {
            self.mark_hit_for_miss(key);
        }
        let (Some((vary, secondary)), true) = (variant, storable || negative) else {
            let reason = if resp.bad_framing {
                PassReason::BadFraming
            } else if error_over_stale {
                PassReason::ErrorOverStale
            } else if event_stream {
                PassReason::EventStream
            } else if let Err(r) = verdict {
                PassReason::NotStorable(r)
            } else if too_big {
                PassReason::TooBig
            } else {
                PassReason::Vary
            };
            // Shareable: the same for anyone who asked the same thing. Errors are
            // shared (each waiter falls back to its stale copy, or gets the error)
            // rather than releasing every waiter to hammer a failing origin; unless the
            // error is personal.
            let personal_error =
                resp.asked.credentials || cc.private || headers.contains_key(header::SET_COOKIE);
            let shareable = (server_error && !personal_error) || (verdict.is_ok() && too_big);
            return if shareable {
                Admission::Share(reason)
            } else {
                Admission::Pass(reason)
            };
        };
        // `public` is the origin's word to every cache, so it is read from Cache-Control
        // even when a targeted field decides freshness.
        let shared = |c: &CacheControl| c.public || c.s_maxage.is_some();
        let public = if targeted {
            shared(&CacheControl::parse(headers.get_all(header::CACHE_CONTROL)))
        } else {
            shared(&cc)
        };
        let t = &resp.times;
        let mut freshness = policy::freshness_with(
            judged,
            headers,
            &cc,
            t.request_time,
            t.response_time,
            &rules.policy,
        );
        if negative {
            // lacquer's own lifetime, counted from receipt: the origin's Date (whole
            // seconds) must not eat a one-second error_ttl.
            freshness.initial_age = Duration::ZERO;
            freshness.lifetime = rules.error_ttl;
            freshness.stale_while_revalidate = Duration::ZERO;
            freshness.stale_if_error = Duration::ZERO;
            freshness.keep = Duration::ZERO;
        }
        Admission::Store(Admitted {
            freshness,
            public,
            vary,
            secondary,
            max_size: rules.max_object_size,
            marks_url: !resp.asked.credentials,
            part,
        })
    }

    /// An admitted body grew past the size limit: it is relayed, not stored, and the
    /// URL's next requests fetch on their own rather than queue behind it.
    pub fn outgrown(&self, key: &CacheKey, admitted: &Admitted) {
        if admitted.marks_url {
            self.mark_hit_for_miss(key);
        }
    }

    /// An empty claim on the share of memory left to fills in progress, for a fill
    /// that means to store its body.
    pub fn reserve(&self) -> Reservation {
        self.store.reserve()
    }

    /// Store an object built by one of `Object`'s constructors. The URL's parts go: a
    /// complete response answers every range, and may be of another representation.
    pub fn insert(&self, key: &CacheKey, obj: Arc<Object>) -> Result<(), Rejected> {
        self.store.insert(key, obj)?;
        self.drop_parts(key);
        Ok(())
    }

    /// The incomplete response stored for this URL that the request's Vary-selected
    /// fields match: the ranges it holds answer range requests they cover.
    pub fn lookup_part(&self, key: &CacheKey, req: &HeaderMap) -> Option<Arc<Object>> {
        self.store
            .lookup(&partial_key(key), req)
            .filter(|o| o.parts().is_some())
    }

    /// Store an admitted 206 (RFC 9111 3.3): joined with the parts stored for its variant
    /// when both have the same strong validator and length (3.4), else replacing them.
    /// Parts that make the whole representation become a complete 200. The new part's
    /// bytes as stored, for readers still behind; None when nothing was stored (a body
    /// that does not fill its range, or a newer push).
    pub fn insert_part(
        &self,
        key: &CacheKey,
        headers: &HeaderMap,
        chunks: &[Bytes],
        admitted: &Admitted,
        times: &Times,
    ) -> Option<Bytes> {
        let range = admitted.part?;
        let mut stored = headers.clone();
        policy::strip_before_store(&mut stored);
        stored.remove(header::CONTENT_RANGE);
        stored.remove(header::CONTENT_LENGTH);
        let validator = partial::validator(&stored);
        let body = object::stored_body(chunks);
        let pkey = partial_key(key);
        let held = self
            .store
            .variants(&pkey)
            .into_iter()
            .find(|o| o.vary == admitted.vary && o.secondary == admitted.secondary);
        // RFC 9111 3.4: the new response's fields replace the stored ones, so the joined
        // parts carry the newest 206's fields and lifetime.
        let parts = match held
            .as_ref()
            .and_then(|o| o.parts())
            .filter(|p| p.joins(range.complete, validator.as_ref()))
        {
            Some(p) => p.with(range, body, admitted.max_size)?,
            None => Parts::new(range, body, validator)?,
        };
        let mine = parts.slice(range.first, range.last)?;
        if let Some(whole) = parts.whole() {
            // RFC 9110 15.3.7.3: parts covering the representation are processed as a
            // complete 200.
            let obj = Object::with_body(StatusCode::OK, &stored, whole.clone(), admitted, times);
            return match self.insert(key, Arc::new(obj)) {
                Ok(()) => Some(mine),
                Err(e) => {
                    tracing::debug!(url = %key.url, reason = %e, "joined parts not stored");
                    None
                }
            };
        }
        let obj = Object::partial(&stored, parts, admitted, times);
        match self.store.insert(&pkey, Arc::new(obj)) {
            Ok(()) => Some(mine),
            Err(e) => {
                tracing::debug!(url = %key.url, reason = %e, "part not stored");
                None
            }
        }
    }

    /// Forget the URL's incomplete responses, when it has any.
    fn drop_parts(&self, key: &CacheKey) {
        let pkey = partial_key(key);
        if !self.store.variants(&pkey).is_empty() {
            self.store.purge_url(&pkey, false);
        }
    }

    /// Replace the stored `old` with `new`, the same response with more (its
    /// encodings), if `old` is still what is stored.
    pub fn upgrade(&self, key: &CacheKey, old: &Arc<Object>, new: Arc<Object>) -> bool {
        self.store.upgrade(key, old, new)
    }

    /// A 304 answered the revalidation of `old`: its fields replace the stored ones
    /// (RFC 9111 4.3.4). The 304 can change what may be stored (no-store, private...):
    /// a copy no longer storable is removed.
    pub fn refresh(
        &self,
        key: &CacheKey,
        old: &Object,
        not_modified: &Fetched<'_>,
        rules: &Rules,
    ) -> Refreshed {
        let t = &not_modified.times;
        let mut merged = policy::merge_304(&old.headers.to_map(), not_modified.headers);
        if !merged.contains_key(header::DATE) {
            merged.insert(
                header::DATE,
                HeaderValue::from_str(&httpdate::fmt_http_date(t.response_time))
                    .unwrap_or(HeaderValue::from_static("")),
            );
        }
        let kept = policy::storable_by(
            &not_modified.request.method,
            not_modified.asked,
            old.status,
            &merged,
            &rules.policy,
        )
        .is_ok();
        policy::strip_before_store(&mut merged);
        let freshness = policy::freshness(
            old.status,
            &merged,
            t.request_time,
            t.response_time,
            &rules.policy,
        );
        let object = Arc::new(Object::refreshed(old, &merged, freshness, t));
        if kept {
            if let Err(e) = self.store.insert(key, object.clone()) {
                tracing::debug!(url = %key.url, reason = %e, "304 refresh not stored");
            }
        } else {
            self.store.purge_url(key, false);
        }
        Refreshed { object, kept }
    }

    /// Store a pushed object: it must be something this cache would store from an
    /// origin (no `private`, no `Set-Cookie`...), except that `ttl` stands in for
    /// missing freshness. The URL may be shared again from now on.
    pub fn push(
        &self,
        key: &CacheKey,
        push: Push,
        rules: &Rules,
    ) -> Result<Arc<Object>, PushRefused> {
        let Push {
            status,
            mut headers,
            body,
            ttl,
            version,
        } = push;
        // As the answer to a plain GET.
        let asked = RequestDirectives::default();
        match policy::storable_by(&Method::GET, &asked, status, &headers, &rules.policy) {
            Ok(()) => {}
            Err(r) if ttl.is_some() && r.lacks_freshness() => {}
            Err(r) => return Err(PushRefused::NotStorable(r)),
        }
        policy::strip_before_store(&mut headers);
        // `ttl` is this cache's lifetime, counted from now; the stored fields still
        // tell downstream clients what the pusher said.
        let now = SystemTime::now();
        let mut freshness = policy::freshness(status, &headers, now, now, &rules.policy);
        if let Some(ttl) = ttl {
            freshness.lifetime = ttl;
            freshness.initial_age = Duration::ZERO;
        }
        // Own the body's bytes: a request body can be a slice of a larger read buffer.
        let body = super::object::stored_body(&[body]);
        let obj = Arc::new(Object::pushed(
            status,
            &headers,
            body,
            freshness,
            version,
            Instant::now(),
        ));
        self.insert(key, obj.clone())
            .map_err(PushRefused::Rejected)?;
        self.clear_hit_for_miss(key);
        Ok(obj)
    }

    /// An operator's purge. The purged URLs may have become cacheable, so their
    /// hit-for-miss markers go too: a URL's own, or, for a tag, a prefix or
    /// everything, all of them (short-lived hints, cheaper to drop than to track).
    pub fn purge(&self, target: Target<'_>, soft: bool) -> Purged {
        match target {
            Target::Url(key) => {
                let mut purged = self.store.purge_url(key, soft);
                // A part is not worth keeping stale: it answers only while fresh.
                let parts = self.store.purge_url(&partial_key(key), false);
                purged.objects += parts.objects;
                purged.urls = purged.urls.max(parts.urls);
                self.clear_hit_for_miss(key);
                purged
            }
            Target::Tag(tag) => {
                let purged = self.store.purge_tag(tag, soft);
                self.hit_for_miss.invalidate_all();
                purged
            }
            Target::Prefix(prefix) => {
                let purged = self.store.purge_prefix(prefix, soft);
                self.hit_for_miss.invalidate_all();
                purged
            }
            Target::All => {
                let purged = self.store.purge_all(soft);
                self.hit_for_miss.invalidate_all();
                purged
            }
        }
    }

    /// The cache's own invalidation of a URL (RFC 9111 4.4 after an unsafe method, a
    /// response from a desynchronised connection): the objects go, the markers stay.
    pub fn remove(&self, key: &CacheKey) {
        self.store.purge_url(key, false);
        self.drop_parts(key);
    }

    pub fn stats(&self) -> Stats {
        let (inserted, evicted) = self.store.counters();
        Stats {
            objects: self.store.object_count(),
            bytes: self.store.weighted_size(),
            inserted,
            evicted,
        }
    }

    /// Apply moka's pending work, so that counts and sizes are current.
    pub fn run_pending_tasks(&self) {
        self.store.run_pending_tasks();
    }

    fn mark_hit_for_miss(&self, key: &CacheKey) {
        // A marker already there is left to expire: re-inserting on every pass costs a
        // write to the map per request, and one fetch per TTL re-checks the URL anyway.
        if self.hit_for_miss.contains_key(&key.hash) {
            return;
        }
        self.hit_for_miss.insert(key.hash, ());
    }

    fn clear_hit_for_miss(&self, key: &CacheKey) {
        if self.hit_for_miss.contains_key(&key.hash) {
            self.hit_for_miss.invalidate(&key.hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            policy: PolicyConfig::default(),
            key: KeyRules::default(),
            max_object_size: 1000,
            error_ttl: Duration::ZERO,
        }
    }

    fn key(path: &str) -> CacheKey {
        CacheKey::new("http", "example.com", path, &KeyRules::default())
    }

    fn get() -> request::Parts {
        http::Request::new(()).into_parts().0
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn now() -> Times {
        Times {
            request_time: SystemTime::now(),
            response_time: SystemTime::now(),
            started: Instant::now(),
            received: Instant::now(),
        }
    }

    fn fetched<'a>(req: &'a request::Parts, status: u16, h: &'a HeaderMap) -> Fetched<'a> {
        Fetched {
            request: req,
            // A request without directives or credentials (leaked: tests only).
            asked: Box::leak(Box::default()),
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            content_length: crate::proxy::headers::content_length(h),
            bad_framing: false,
            stale: None,
            times: now(),
        }
    }

    /// An event stream is never stored nor shared, whatever its Cache-Control (issue
    /// 13): a stored or shared copy would replay old events to a later client as new.
    #[test]
    fn event_streams_pass_whatever_their_cache_control() {
        let cache = Cache::new(1 << 20, 4, Duration::from_secs(60));
        let req = get();
        let k = key("/events");
        let sse = headers(&[
            ("cache-control", "public, max-age=60"),
            ("content-type", "Text/Event-Stream; charset=utf-8"),
        ]);
        assert!(matches!(
            cache.admit(&k, &fetched(&req, 200, &sse), &rules()),
            Admission::Pass(PassReason::EventStream)
        ));
        assert!(
            cache.is_hit_for_miss(&k),
            "later clients do not queue behind it"
        );
    }

    /// A 206 that can be placed in its representation is judged as that representation
    /// would be (RFC 9111 3.3); any other 206 stays unstorable.
    #[test]
    fn a_placeable_206_is_judged_as_its_representation() {
        let cache = Cache::new(1 << 20, 4, Duration::from_secs(60));
        let req = get();
        let k = key("/p");
        let part = headers(&[
            ("cache-control", "max-age=60"),
            ("content-range", "bytes 0-4/10"),
            ("content-length", "5"),
        ]);
        let Admission::Store(admitted) = cache.admit(&k, &fetched(&req, 206, &part), &rules())
        else {
            panic!("a placeable fresh 206 is stored");
        };
        assert!(admitted.is_part());
        let short = headers(&[
            ("cache-control", "max-age=60"),
            ("content-range", "bytes 4-9/10"),
            ("content-length", "5"),
        ]);
        let unknown = headers(&[
            ("cache-control", "max-age=60"),
            ("content-range", "bytes 0-4/*"),
        ]);
        let multipart = headers(&[
            ("cache-control", "max-age=60"),
            ("content-type", "multipart/byteranges; boundary=x"),
        ]);
        for h in [&short, &unknown, &multipart] {
            assert!(matches!(
                cache.admit(&k, &fetched(&req, 206, h), &rules()),
                Admission::Pass(PassReason::NotStorable(NotStorable::PartialContent))
            ));
        }
        let private = headers(&[
            ("cache-control", "private, max-age=60"),
            ("content-range", "bytes 0-4/10"),
        ]);
        assert!(matches!(
            cache.admit(&k, &fetched(&req, 206, &private), &rules()),
            Admission::Pass(PassReason::NotStorable(NotStorable::Private))
        ));
    }

    /// Parts live apart from complete objects: a lookup never meets one, a complete
    /// insert drops them, and they are charged to the store like bodies.
    #[test]
    fn parts_beside_complete_objects() {
        let cache = Cache::new(1 << 20, 4, Duration::from_secs(60));
        let req = get();
        let k = key("/q");
        let h = headers(&[
            ("cache-control", "max-age=60"),
            ("etag", "\"v\""),
            ("content-range", "bytes 0-9999/20000"),
        ]);
        let Admission::Store(admitted) = cache.admit(&k, &fetched(&req, 206, &h), &rules_big())
        else {
            panic!("stored");
        };
        let body = Bytes::from(vec![b'x'; 10_000]);
        let mine = cache
            .insert_part(&k, &h, std::slice::from_ref(&body), &admitted, &now())
            .unwrap();
        assert_eq!(mine, body);
        assert!(cache.lookup(&k, &HeaderMap::new()).is_none());
        let part = cache.lookup_part(&k, &HeaderMap::new()).unwrap();
        assert!(!part.headers.to_map().contains_key(header::CONTENT_RANGE));
        cache.run_pending_tasks();
        assert!(cache.stats().bytes >= object::body_weight(10_000) as u64);
        let whole = headers(&[("cache-control", "max-age=60")]);
        let Admission::Store(a) = cache.admit(&k, &fetched(&req, 200, &whole), &rules_big()) else {
            panic!("stored");
        };
        let obj = Object::fetched(StatusCode::OK, &whole, &[], &a, &now());
        cache.insert(&k, Arc::new(obj)).unwrap();
        assert!(cache.lookup_part(&k, &HeaderMap::new()).is_none());
    }

    fn rules_big() -> Rules {
        Rules {
            max_object_size: 1 << 20,
            ..rules()
        }
    }

    #[test]
    fn one_verdict_and_the_markers_follow_it() {
        let cache = Cache::new(1 << 20, 4, Duration::from_secs(60));
        let req = get();
        let k = key("/a");

        let private = headers(&[("cache-control", "private, max-age=60")]);
        let verdict = cache.admit(&k, &fetched(&req, 200, &private), &rules());
        assert!(matches!(
            verdict,
            Admission::Pass(PassReason::NotStorable(NotStorable::Private))
        ));
        assert!(
            cache.is_hit_for_miss(&k),
            "an unshareable answer marks the URL"
        );

        let fresh = headers(&[("cache-control", "max-age=60")]);
        let Admission::Store(admitted) = cache.admit(&k, &fetched(&req, 200, &fresh), &rules())
        else {
            panic!("a fresh 200 is stored");
        };
        assert!(
            !cache.is_hit_for_miss(&k),
            "a storable answer clears the mark"
        );
        assert!(admitted.fits(1000) && !admitted.fits(1001));
        cache.outgrown(&k, &admitted);
        assert!(
            cache.is_hit_for_miss(&k),
            "outgrowing the limit marks the URL"
        );

        let big = headers(&[("cache-control", "max-age=60"), ("content-length", "1001")]);
        let verdict = cache.admit(&key("/big"), &fetched(&req, 200, &big), &rules());
        assert!(matches!(verdict, Admission::Share(PassReason::TooBig)));
    }

    #[test]
    fn errors_are_shared_never_stored_over_stale_and_never_mark() {
        let cache = Cache::new(1 << 20, 4, Duration::from_secs(60));
        let req = get();
        let k = key("/e");
        let h = headers(&[("cache-control", "max-age=60")]);
        let ok = headers(&[("cache-control", "max-age=60")]);
        let Admission::Store(admitted) = cache.admit(&k, &fetched(&req, 200, &ok), &rules()) else {
            panic!("a fresh 200 is stored");
        };
        let old = Object::fetched(StatusCode::OK, &ok, &[], &admitted, &now());
        let mut error = fetched(&req, 503, &h);
        error.stale = Some(&old);
        let verdict = cache.admit(&k, &error, &rules());
        assert!(matches!(
            verdict,
            Admission::Share(PassReason::ErrorOverStale)
        ));
        assert!(!cache.is_hit_for_miss(&k));

        let mut personal = fetched(&req, 503, &h);
        let with_credentials = RequestDirectives {
            credentials: true,
            ..RequestDirectives::default()
        };
        personal.asked = &with_credentials;
        let plain = headers(&[]);
        personal.headers = &plain;
        assert!(matches!(
            cache.admit(&k, &personal, &rules()),
            Admission::Pass(_)
        ));

        // Negative caching: a 5xx without freshness is kept for error_ttl.
        let mut negative = rules();
        negative.error_ttl = Duration::from_secs(2);
        let Admission::Store(a) = cache.admit(&k, &fetched(&req, 502, &plain), &negative) else {
            panic!("a 5xx is kept for error_ttl");
        };
        assert_eq!(a.freshness.lifetime, Duration::from_secs(2));
    }

    #[test]
    fn purges_clear_markers_and_removals_do_not() {
        let cache = Cache::new(1 << 20, 4, Duration::from_secs(60));
        let req = get();
        let private = headers(&[("cache-control", "private")]);
        let (a, b) = (key("/a"), key("/b"));
        cache.admit(&a, &fetched(&req, 200, &private), &rules());
        cache.admit(&b, &fetched(&req, 200, &private), &rules());
        cache.remove(&a);
        assert!(cache.is_hit_for_miss(&a));
        cache.purge(Target::Url(&a), false);
        assert!(!cache.is_hit_for_miss(&a) && cache.is_hit_for_miss(&b));
        cache.purge(Target::Tag("t"), true);
        cache.run_pending_tasks();
        assert!(!cache.is_hit_for_miss(&b));
    }

    #[test]
    fn pushes_need_storable_fields_or_a_ttl() {
        let cache = Cache::new(1 << 20, 4, Duration::from_secs(60));
        let k = key("/p");
        let push = |h: HeaderMap, ttl: Option<u64>| Push {
            status: StatusCode::OK,
            headers: h,
            body: Bytes::from_static(b"x"),
            ttl: ttl.map(Duration::from_secs),
            version: None,
        };
        assert_eq!(
            cache
                .push(&k, push(headers(&[]), None), &rules())
                .unwrap_err(),
            PushRefused::NotStorable(NotStorable::NoFreshness)
        );
        let obj = cache
            .push(&k, push(headers(&[]), Some(30)), &rules())
            .unwrap();
        assert_eq!(obj.freshness.lifetime, Duration::from_secs(30));
        assert!(cache.lookup(&k, &HeaderMap::new()).is_some());
        let private = headers(&[("cache-control", "private")]);
        assert_eq!(
            cache
                .push(&k, push(private, Some(30)), &rules())
                .unwrap_err(),
            PushRefused::NotStorable(NotStorable::Private)
        );
    }
}
