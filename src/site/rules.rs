//! A site's cache rules: `[cache]` with the site's `cache = { ... }` laid over it,
//! resolved once per (re)load so the request path reads plain values.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::cache::key::{KeyRules, QueryMode};
use crate::cache::policy::{PolicyConfig, TtlRules};
use crate::cache::Rules;
use crate::config::{
    self, CacheConfig, CookieMode, CookiePolicy, SetCookieMode, SiteCacheConfig, StatusMatch,
};

/// Everything the request path needs to cache a site's requests.
#[derive(Debug, Clone)]
pub struct CacheRules {
    /// Never look up or store.
    pub pass: bool,
    /// What the cache itself judges by: policy, key rules, size and error limits.
    pub cache: Rules,
    pub cookies: CookieRules,
    /// Request fields whose values select a stored variant, as if the origin sent Vary.
    pub key_headers: Vec<HeaderName>,
    /// `key_headers` as one Vary field value, added to every fetched response.
    key_vary: Option<HeaderValue>,
    /// RFC 9111 §4.4: a successful unsafe method invalidates what it may have changed.
    pub invalidate_unsafe: bool,
}

impl CacheRules {
    /// `[cache]` alone: the implicit default site, and quick mode.
    pub fn global(cache: &CacheConfig) -> CacheRules {
        CacheRules::for_site(cache, &SiteCacheConfig::default())
    }

    /// `[cache]` with a site's overrides. The config is validated: names parse.
    pub fn for_site(cache: &CacheConfig, site: &SiteCacheConfig) -> CacheRules {
        let cookies = CookieRules {
            mode: site.cookies.unwrap_or(match cache.cookie_requests {
                CookiePolicy::Pass => CookieMode::Pass,
                CookiePolicy::Cache => CookieMode::Cache,
            }),
            strip: site.strip_cookies.clone(),
            keep: (!site.keep_cookies.is_empty()).then(|| site.keep_cookies.clone()),
        };
        let mut by_code = Vec::new();
        let mut by_class = [None; 5];
        for (status, ttl) in &site.status_ttl {
            match StatusMatch::parse(status) {
                Some(StatusMatch::Class(c)) => {
                    if let Some(slot) = by_class.get_mut(usize::from(c).saturating_sub(1)) {
                        *slot = Some(*ttl);
                    }
                }
                Some(StatusMatch::Code(code)) => by_code.push((code, *ttl)),
                // Validation refuses anything else.
                None => {}
            }
        }
        let policy = PolicyConfig {
            heuristic_fraction: cache.heuristic_fraction,
            heuristic_max: cache.heuristic_max,
            default_grace: site.grace.unwrap_or(cache.default_grace),
            default_stale_if_error: site.stale_if_error.unwrap_or(cache.default_stale_if_error),
            default_keep: site.keep.unwrap_or(cache.default_keep),
            // Cookies left after the site's filter under "pass" never reach the policy;
            // under "cache" the origin decides, as with `cookie_requests = "cache"`.
            cookie_requests_pass: cookies.mode == CookieMode::Pass,
            surrogate_control: cache.surrogate_control,
            max_error_ttl: cache.max_error_ttl,
            ttl: TtlRules {
                default: site.default_ttl,
                by_code,
                by_class,
                force: site.force_ttl,
            },
            strip_set_cookie: site.set_cookie == SetCookieMode::Strip,
        };
        let key = KeyRules {
            query: match site.key.query.unwrap_or(cache.key.query) {
                config::QueryMode::Keep => QueryMode::Keep,
                config::QueryMode::Sort => QueryMode::Sort,
                config::QueryMode::Drop => QueryMode::Drop,
            },
            drop_params: site
                .key
                .drop_params
                .clone()
                .unwrap_or_else(|| cache.key.drop_params.clone()),
            ignore_host: cache.key.ignore_host,
        };
        let mut key_headers: Vec<HeaderName> = site
            .key
            .headers
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        key_headers.extend(site.key.cookies.iter().filter_map(|c| cookie_field(c)));
        let key_vary = (!key_headers.is_empty())
            .then(|| {
                let names: Vec<&str> = key_headers.iter().map(HeaderName::as_str).collect();
                HeaderValue::from_str(&names.join(", ")).ok()
            })
            .flatten();
        CacheRules {
            key_vary,
            pass: site.pass,
            cache: Rules {
                policy,
                key,
                max_object_size: site.max_object_size.unwrap_or(cache.max_object_size),
                error_ttl: cache.error_ttl,
            },
            cookies,
            key_headers,
            invalidate_unsafe: site.invalidate_unsafe.unwrap_or(true),
        }
    }

    /// A fetched response under the site's rules, before anything reads it: Set-Cookie
    /// removed under `set_cookie = "strip"` (from the head every waiter shares, not only
    /// from the stored copy), and the key's fields added to Vary so that the cache, the
    /// coalescer's variant check and downstream caches all select by them.
    pub fn on_response(&self, headers: &mut HeaderMap) {
        if self.cache.policy.strip_set_cookie {
            headers.remove(header::SET_COOKIE);
        }
        if let Some(vary) = &self.key_vary {
            headers.append(header::VARY, vary.clone());
        }
    }

    /// The effective values, for explaining a site (`lacquer route`).
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let d = config::format_duration;
        let mut out = vec![("pass", self.pass.to_string())];
        if let Some(t) = self.cache.policy.ttl.force {
            out.push(("force_ttl", d(t)));
        }
        if let Some(t) = self.cache.policy.ttl.default {
            out.push(("default_ttl", d(t)));
        }
        out.push(("grace", d(self.cache.policy.default_grace)));
        out.push((
            "stale_if_error",
            d(self.cache.policy.default_stale_if_error),
        ));
        out.push(("keep", d(self.cache.policy.default_keep)));
        out.push((
            "max_object_size",
            config::format_size(self.cache.max_object_size),
        ));
        out.push((
            "cookies",
            format!("{:?}", self.cookies.mode).to_ascii_lowercase(),
        ));
        if let Some(keep) = &self.cookies.keep {
            out.push(("keep_cookies", keep.join(",")));
        }
        if !self.cookies.strip.is_empty() {
            out.push(("strip_cookies", self.cookies.strip.join(",")));
        }
        out
    }
}

/// The internal request field that carries a key cookie's value, so the stored variant
/// is selected by it like a Vary field (see `CookieRules::apply`).
pub fn cookie_field(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(format!("{COOKIE_FIELD_PREFIX}{}", name.to_ascii_lowercase()).as_bytes())
        .ok()
}

/// Prefix of the internal key-cookie fields; a client's own are removed on arrival and
/// none is sent to an origin.
pub const COOKIE_FIELD_PREFIX: &str = "lacquer-key-cookie-";

/// What a site does with request cookies.
#[derive(Debug, Clone)]
pub struct CookieRules {
    pub mode: CookieMode,
    /// Removed before lookup.
    pub strip: Vec<String>,
    /// When set, only these are kept.
    pub keep: Option<Vec<String>>,
}

impl CookieRules {
    /// Filter the request's cookies (strip / keep), then apply the mode: returns true
    /// when the request must bypass the cache (a cookie is left under "pass").
    pub fn apply(&self, headers: &mut HeaderMap) -> bool {
        if !headers.contains_key(header::COOKIE) {
            return false;
        }
        if self.mode == CookieMode::Strip {
            headers.remove(header::COOKIE);
            return false;
        }
        if !self.strip.is_empty() || self.keep.is_some() {
            let kept = self.filtered(headers);
            headers.remove(header::COOKIE);
            if !kept.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&kept) {
                    headers.insert(header::COOKIE, v);
                }
            }
        }
        self.mode == CookieMode::Pass && headers.contains_key(header::COOKIE)
    }

    fn filtered(&self, headers: &HeaderMap) -> String {
        let mut kept = String::new();
        for (name, pair) in cookie_pairs(headers) {
            let keep = match &self.keep {
                Some(list) => list.iter().any(|k| k == name),
                None => !self.strip.iter().any(|s| s == name),
            };
            if keep {
                if !kept.is_empty() {
                    kept.push_str("; ");
                }
                kept.push_str(pair);
            }
        }
        kept
    }
}

/// Copy the named cookies' values into their internal key fields (absent cookie: no
/// field), after removing any such field the client sent itself.
pub fn set_cookie_fields(headers: &mut HeaderMap, fields: &[HeaderName]) {
    let own: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(COOKIE_FIELD_PREFIX))
        .cloned()
        .collect();
    for k in own {
        headers.remove(k);
    }
    let mut found = Vec::new();
    for field in fields {
        let Some(name) = field.as_str().strip_prefix(COOKIE_FIELD_PREFIX) else {
            continue;
        };
        if let Some((_, pair)) = cookie_pairs(headers).find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            if let Ok(v) = HeaderValue::from_str(value) {
                found.push((field.clone(), v));
            }
        }
    }
    for (k, v) in found {
        headers.insert(k, v);
    }
}

/// `(name, "name=value")` for every cookie of every Cookie line.
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| (p.split_once('=').map_or(p, |(n, _)| n).trim(), p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    fn rules(mode: CookieMode, strip: &[&str], keep: Option<&[&str]>) -> CookieRules {
        CookieRules {
            mode,
            strip: strip.iter().map(|s| s.to_string()).collect(),
            keep: keep.map(|k| k.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn keep_only_the_session_cookie_then_pass_logged_in_users() {
        let r = rules(CookieMode::Pass, &[], Some(&["session"]));
        let mut anon = headers("_ga=1; theme=dark");
        assert!(!r.apply(&mut anon), "tracking cookies alone do not pass");
        assert!(!anon.contains_key(header::COOKIE));
        let mut user = headers("_ga=1; session=abc; theme=dark");
        assert!(r.apply(&mut user));
        assert_eq!(user[header::COOKIE], "session=abc");
    }

    #[test]
    fn strip_named_cookies_and_cache_the_rest() {
        let r = rules(CookieMode::Cache, &["_ga", "_gid"], None);
        let mut h = headers("_ga=1; lang=de;_gid=2");
        assert!(!r.apply(&mut h));
        assert_eq!(h[header::COOKIE], "lang=de");
        let strip_all = rules(CookieMode::Strip, &[], None);
        let mut h = headers("a=1");
        assert!(!strip_all.apply(&mut h));
        assert!(h.is_empty());
    }

    #[test]
    fn key_cookies_become_internal_fields_and_client_copies_are_dropped() {
        let field = cookie_field("Lang").unwrap();
        let mut h = headers("lang=de; x=1");
        h.insert(field.clone(), HeaderValue::from_static("forged"));
        h.insert(
            cookie_field("other").unwrap(),
            HeaderValue::from_static("forged"),
        );
        set_cookie_fields(&mut h, std::slice::from_ref(&field));
        assert_eq!(h[&field], "de");
        assert_eq!(h.len(), 2, "{h:?}");
    }

    #[test]
    fn status_ttl_by_code_class_and_default() {
        let mut site = SiteCacheConfig {
            default_ttl: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        site.status_ttl
            .insert("404".into(), Duration::from_secs(60));
        site.status_ttl.insert("4xx".into(), Duration::from_secs(5));
        let r = CacheRules::for_site(&CacheConfig::default(), &site);
        assert_eq!(
            r.cache.policy.ttl.by_code,
            vec![(404, Duration::from_secs(60))]
        );
        assert_eq!(r.cache.policy.ttl.by_class[3], Some(Duration::from_secs(5)));
        assert_eq!(r.cache.policy.ttl.default, Some(Duration::from_secs(2)));
    }
}
