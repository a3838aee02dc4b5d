//! Picks the site of a request: the first rule, in configuration order, whose hosts,
//! paths, methods and schemes the request meets.
//!
//! This runs on every request, so the host narrows the rules first: one map of exact
//! names and one of wildcard suffixes (looked up by stripping labels from the left) give
//! the few rules that can apply, besides the rules for any host. Each list is in rule
//! order and is scanned only below the best rule found so far. Nothing is allocated;
//! path regexes run only for rules whose host, scheme and method already matched.

use std::collections::HashMap;

/// Host names to rule indices. xxh3 rather than SipHash: the maps are built from the
/// config and only read per request, so a client cannot grow a bucket, and SipHash was
/// the larger part of routing a request.
type HostMap<V> = HashMap<Box<str>, V, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

use http::Method;
use regex::Regex;

use super::host::{request_host, HostPattern};

/// What a rule matches; see [`crate::config::SiteConfig`] for each field's meaning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchRule {
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    pub exact_paths: Vec<String>,
    pub path_regex: Vec<String>,
    pub methods: Vec<String>,
    pub schemes: Vec<String>,
}

impl MatchRule {
    pub fn of(site: &crate::config::SiteConfig) -> MatchRule {
        MatchRule {
            hosts: site.hosts.clone(),
            paths: site.paths.clone(),
            exact_paths: site.exact_paths.clone(),
            path_regex: site.path_regex.clone(),
            methods: site.methods.clone(),
            schemes: site.schemes.clone(),
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The index of the first matching rule.
    Site(usize),
    /// No rule is for this host (answer 421 Misdirected Request).
    NoHost,
    /// Some rule is for this host, but none for this path, method or scheme (404).
    NoPath,
}

/// The rules compiled for lookup.
#[derive(Debug)]
pub struct Router {
    rules: Vec<Rule>,
    exact: HostMap<Box<[usize]>>,
    wildcard: HostMap<Box<[usize]>>,
    any_host: Box<[usize]>,
    /// The lowest rule index with a wildcard, to skip the wildcard lookups once a
    /// better rule has matched.
    first_wildcard_rule: usize,
    /// Labels in the shortest and longest wildcard suffix: other suffixes of a request
    /// host need no lookup.
    wildcard_labels: (usize, usize),
}

#[derive(Debug)]
struct Rule {
    any_path: bool,
    prefixes: Box<[Box<str>]>,
    exact_paths: Box<[Box<str>]>,
    regexes: Box<[Regex]>,
    /// Empty: any method.
    methods: Box<[Method]>,
    http: bool,
    https: bool,
}

impl Rule {
    fn compile(rule: &MatchRule) -> Result<Rule, String> {
        let methods = rule
            .methods
            .iter()
            .map(|m| Method::from_bytes(m.as_bytes()).map_err(|_| format!("method {m:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut http, mut https) = (rule.schemes.is_empty(), rule.schemes.is_empty());
        for scheme in &rule.schemes {
            if scheme.eq_ignore_ascii_case("http") {
                http = true;
            } else if scheme.eq_ignore_ascii_case("https") {
                https = true;
            } else {
                return Err(format!("scheme {scheme:?} is not http or https"));
            }
        }
        let regexes = rule
            .path_regex
            .iter()
            .map(|r| Regex::new(r).map_err(|e| format!("path_regex {r:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let boxed = |list: &[String]| list.iter().map(|s| s.as_str().into()).collect();
        Ok(Rule {
            any_path: rule.paths.is_empty()
                && rule.exact_paths.is_empty()
                && rule.path_regex.is_empty(),
            prefixes: boxed(&rule.paths),
            exact_paths: boxed(&rule.exact_paths),
            regexes: regexes.into(),
            methods: methods.into(),
            http,
            https,
        })
    }

    fn matches(&self, path: &str, method: &Method, https: bool) -> bool {
        (if https { self.https } else { self.http })
            && (self.methods.is_empty() || self.methods.contains(method))
            && (self.any_path
                || self.exact_paths.iter().any(|p| **p == *path)
                || self.prefixes.iter().any(|p| path.starts_with(&**p))
                || self.regexes.iter().any(|r| r.is_match(path)))
    }
}

impl Router {
    /// Compiles the rules (regexes once, here). Fails on what validation rejects.
    pub fn new(rules: &[MatchRule]) -> Result<Router, String> {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut exact: HostMap<Vec<usize>> = HostMap::default();
        let mut wildcard: HostMap<Vec<usize>> = HostMap::default();
        let mut any_host = Vec::new();
        let mut first_wildcard_rule = usize::MAX;
        let mut wildcard_labels = (usize::MAX, 0);
        for (i, rule) in rules.iter().enumerate() {
            compiled.push(Rule::compile(rule).map_err(|e| format!("rule {i}: {e}"))?);
            if rule.hosts.is_empty() {
                any_host.push(i);
            }
            for host in &rule.hosts {
                let pattern = HostPattern::parse(host).map_err(|e| format!("rule {i}: {e}"))?;
                let (map, name) = match pattern {
                    HostPattern::Exact(name) => (&mut exact, name),
                    HostPattern::Wildcard(suffix) => {
                        first_wildcard_rule = first_wildcard_rule.min(i);
                        let labels = suffix.split('.').count();
                        wildcard_labels.0 = wildcard_labels.0.min(labels);
                        wildcard_labels.1 = wildcard_labels.1.max(labels);
                        (&mut wildcard, suffix)
                    }
                };
                let list = map.entry(name.into()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        let freeze = |map: HostMap<Vec<usize>>| {
            map.into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect()
        };
        Ok(Router {
            rules: compiled,
            exact: freeze(exact),
            wildcard: freeze(wildcard),
            any_host: any_host.into(),
            first_wildcard_rule,
            wildcard_labels,
        })
    }

    /// The site for a request. `host` is the Host header or URI authority as received
    /// (any case, with or without a port); `path` is the URI's path, without the query.
    pub fn route(&self, host: &str, path: &str, method: &Method, https: bool) -> Route {
        let mut best = usize::MAX;
        let mut for_host = false;
        let scan = |list: &[usize], best: &mut usize| {
            for &i in list {
                if i >= *best {
                    break;
                }
                if self.rules[i].matches(path, method, https) {
                    *best = i;
                    break;
                }
            }
        };
        let mut buf = None;
        if let Some(name) = request_host(host, &mut buf) {
            if let Some(list) = self.exact.get(name) {
                for_host = true;
                scan(list, &mut best);
            }
            if self.first_wildcard_rule < best {
                let (fewest, most) = self.wildcard_labels;
                // The suffixes of `name` after its first, second, ... label.
                let mut labels = name.bytes().filter(|&b| b == b'.').count();
                let mut rest = name;
                while let Some((_, suffix)) = rest.split_once('.') {
                    if labels < fewest {
                        break;
                    }
                    if labels <= most {
                        if let Some(list) = self.wildcard.get(suffix) {
                            for_host = true;
                            scan(list, &mut best);
                        }
                    }
                    labels -= 1;
                    rest = suffix;
                }
            }
        }
        if !self.any_host.is_empty() {
            for_host = true;
            scan(&self.any_host, &mut best);
        }
        match (best, for_host) {
            (usize::MAX, true) => Route::NoPath,
            (usize::MAX, false) => Route::NoHost,
            (i, _) => Route::Site(i),
        }
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hosts: &[&str]) -> MatchRule {
        MatchRule {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..MatchRule::default()
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn get(router: &Router, host: &str, path: &str) -> Route {
        router.route(host, path, &Method::GET, true)
    }

    #[test]
    fn exact_hosts_any_case_and_port() {
        let r = Router::new(&[rule(&["a.example"]), rule(&["B.Example", "c.example"])]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(get(&r, "a.example", "/"), Route::Site(0));
        assert_eq!(get(&r, "A.EXAMPLE", "/"), Route::Site(0));
        assert_eq!(get(&r, "a.example:8080", "/"), Route::Site(0));
        assert_eq!(get(&r, "a.example.", "/"), Route::Site(0));
        assert_eq!(get(&r, "b.example", "/"), Route::Site(1));
        assert_eq!(get(&r, "C.example:443", "/"), Route::Site(1));
        assert_eq!(get(&r, "d.example", "/"), Route::NoHost);
        assert_eq!(get(&r, "x.a.example", "/"), Route::NoHost);
        assert_eq!(get(&r, "", "/"), Route::NoHost);
        assert_eq!(get(&r, &"a".repeat(1000), "/"), Route::NoHost);
    }

    #[test]
    fn ip_literal_hosts() {
        let r = Router::new(&[rule(&["192.0.2.1"]), rule(&["[::1]"])]).unwrap();
        assert_eq!(get(&r, "192.0.2.1:80", "/"), Route::Site(0));
        assert_eq!(get(&r, "[::1]:8080", "/"), Route::Site(1));
        assert_eq!(get(&r, "[::1]", "/"), Route::Site(1));
        assert_eq!(get(&r, "[::2]", "/"), Route::NoHost);
    }

    #[test]
    fn wildcards() {
        let r = Router::new(&[
            rule(&["*.cdn.example.com"]),
            rule(&["*.example.com"]),
            rule(&["example.com"]),
        ])
        .unwrap();
        assert_eq!(get(&r, "img.cdn.example.com", "/"), Route::Site(0));
        assert_eq!(get(&r, "a.b.CDN.example.com:443", "/"), Route::Site(0));
        assert_eq!(get(&r, "cdn.example.com", "/"), Route::Site(1));
        assert_eq!(get(&r, "www.example.com", "/"), Route::Site(1));
        assert_eq!(get(&r, "example.com", "/"), Route::Site(2));
        assert_eq!(get(&r, "example.org", "/"), Route::NoHost);
        assert_eq!(get(&r, "notexample.com", "/"), Route::NoHost);
        assert_eq!(get(&r, "com", "/"), Route::NoHost);
    }

    #[test]
    fn first_match_in_order_across_host_lists() {
        let mut any_api = rule(&[]);
        any_api.paths = strings(&["/api/"]);
        let rules = [
            rule(&["www.example.com"]),
            any_api,
            rule(&["*.example.com"]),
            rule(&[]),
        ];
        let r = Router::new(&rules).unwrap();
        // An earlier any-host rule beats a later host-specific one, and the reverse.
        assert_eq!(get(&r, "www.example.com", "/api/x"), Route::Site(0));
        assert_eq!(get(&r, "img.example.com", "/api/x"), Route::Site(1));
        assert_eq!(get(&r, "img.example.com", "/x"), Route::Site(2));
        assert_eq!(get(&r, "other.org", "/api/"), Route::Site(1));
        assert_eq!(get(&r, "other.org", "/x"), Route::Site(3));
        // An exact host listed after a wildcard that covers it loses to the wildcard.
        let r = Router::new(&[rule(&["*.example.com"]), rule(&["www.example.com"])]).unwrap();
        assert_eq!(get(&r, "www.example.com", "/"), Route::Site(0));
    }

    #[test]
    fn paths_prefixes_exact_and_regex() {
        let mut prefix = rule(&["a"]);
        prefix.paths = strings(&["/static/", "/img"]);
        let mut exact = rule(&["a"]);
        exact.exact_paths = strings(&["/", "/robots.txt"]);
        let mut regex = rule(&["a"]);
        regex.path_regex = strings(&["^/items/[0-9]+$", "\\.php$"]);
        let r = Router::new(&[prefix, exact, regex]).unwrap();
        assert_eq!(get(&r, "a", "/static/app.js"), Route::Site(0));
        assert_eq!(get(&r, "a", "/static/"), Route::Site(0));
        assert_eq!(get(&r, "a", "/imgs/x.png"), Route::Site(0), "plain prefix");
        assert_eq!(get(&r, "a", "/static"), Route::NoPath);
        assert_eq!(get(&r, "a", "/"), Route::Site(1));
        assert_eq!(get(&r, "a", "/robots.txt"), Route::Site(1));
        assert_eq!(get(&r, "a", "/robots.txt/x"), Route::NoPath);
        assert_eq!(get(&r, "a", "/items/42"), Route::Site(2));
        assert_eq!(get(&r, "a", "/items/42x"), Route::NoPath);
        assert_eq!(get(&r, "a", "/x/index.php"), Route::Site(2), "unanchored");
        assert_eq!(get(&r, "b", "/"), Route::NoHost);
    }

    #[test]
    fn methods_and_schemes() {
        let mut reads = rule(&["a"]);
        reads.methods = strings(&["GET", "HEAD"]);
        let mut purge = rule(&["a"]);
        purge.methods = strings(&["PURGE"]);
        let mut plain = rule(&["b"]);
        plain.schemes = strings(&["http"]);
        let mut secure = rule(&["b"]);
        secure.schemes = strings(&["https"]);
        let r = Router::new(&[reads, purge, plain, secure]).unwrap();
        assert_eq!(r.route("a", "/", &Method::GET, false), Route::Site(0));
        assert_eq!(r.route("a", "/", &Method::HEAD, true), Route::Site(0));
        assert_eq!(r.route("a", "/", &Method::POST, true), Route::NoPath);
        let purge = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(r.route("a", "/", &purge, true), Route::Site(1));
        assert_eq!(r.route("b", "/", &Method::GET, false), Route::Site(2));
        assert_eq!(r.route("b", "/", &Method::GET, true), Route::Site(3));
    }

    #[test]
    fn no_host_versus_no_path() {
        let mut api = rule(&["api.example"]);
        api.paths = strings(&["/v1/"]);
        let r = Router::new(&[api.clone()]).unwrap();
        assert_eq!(get(&r, "api.example", "/v2/"), Route::NoPath);
        assert_eq!(get(&r, "www.example", "/v1/"), Route::NoHost);
        // A rule for any host means every host is known.
        let mut any = rule(&[]);
        any.paths = strings(&["/health"]);
        let r = Router::new(&[api, any]).unwrap();
        assert_eq!(get(&r, "www.example", "/v1/"), Route::NoPath);
        assert_eq!(get(&r, "www.example", "/health"), Route::Site(1));
        let empty = Router::new(&[]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(get(&empty, "a", "/"), Route::NoHost);
    }

    #[test]
    fn hostile_hosts_do_not_panic() {
        let r = Router::new(&[rule(&["*.a"]), rule(&["a"])]).unwrap();
        let long_labels = "x.".repeat(120) + "a";
        for host in [
            "[",
            "]",
            "[]:",
            ":",
            "::::",
            ".",
            "..",
            ".a",
            "a..",
            "é.a",
            "A\u{0}.a",
            long_labels.as_str(),
        ] {
            let _ = get(&r, host, "/");
        }
        assert_eq!(get(&r, &long_labels, "/"), Route::Site(0));
        assert_eq!(get(&r, ".a", "/"), Route::NoHost);
    }

    #[test]
    fn bad_rules_are_errors() {
        let mut bad = rule(&[]);
        bad.path_regex = strings(&["("]);
        assert!(Router::new(&[bad])
            .unwrap_err()
            .starts_with("rule 0: path_regex"));
        assert!(Router::new(&[rule(&["a:80"])]).is_err());
        let mut bad = rule(&[]);
        bad.schemes = strings(&["ftp"]);
        assert!(Router::new(&[rule(&[]), bad])
            .unwrap_err()
            .starts_with("rule 1:"));
        let mut bad = rule(&[]);
        bad.methods = strings(&["BAD METHOD"]);
        assert!(Router::new(&[bad]).is_err());
    }

    #[test]
    fn rules_from_sites() {
        let text = "[[site]]\nname = \"s\"\nhosts = [\"a\"]\npaths = [\"/p\"]\nmethods = [\"GET\"]\nrespond = {}\n";
        let config = crate::config::Config::parse(text, "t.toml").unwrap();
        let rule = MatchRule::of(&config.site[0]);
        assert_eq!(rule.hosts, ["a"]);
        assert_eq!(rule.paths, ["/p"]);
        assert_eq!(rule.methods, ["GET"]);
        let r = Router::new(&[rule]).unwrap();
        assert_eq!(get(&r, "a", "/p/q"), Route::Site(0));
    }

    /// The maps and pruning give the same answer as trying every rule in order.
    #[test]
    fn agrees_with_a_linear_scan() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let hosts = ["a.x", "b.x", "*.x", "*.b.x", "c.b.x", "y", "*.y"];
        let paths = ["/", "/a", "/a/", "/b/c", "/ab"];
        let methods = ["GET", "POST"];
        for _ in 0..200 {
            let rules: Vec<MatchRule> = (0..1 + next(12))
                .map(|_| MatchRule {
                    hosts: (0..next(3))
                        .map(|_| hosts[next(hosts.len())].into())
                        .collect(),
                    paths: (0..next(2))
                        .map(|_| paths[next(paths.len())].into())
                        .collect(),
                    exact_paths: (0..next(2))
                        .map(|_| paths[next(paths.len())].into())
                        .collect(),
                    path_regex: if next(5) == 0 {
                        strings(&["b$"])
                    } else {
                        Vec::new()
                    },
                    methods: (0..next(2)).map(|_| methods[next(2)].into()).collect(),
                    schemes: if next(4) == 0 {
                        strings(&["http"])
                    } else {
                        Vec::new()
                    },
                })
                .collect();
            let router = Router::new(&rules).unwrap();
            for _ in 0..50 {
                let host = ["a.x", "B.X:80", "q.b.x", "c.b.x", "x", "z.y", "y", "n"][next(8)];
                let path = ["/", "/a", "/a/b", "/b/c", "/ab", "/zz"][next(6)];
                let method = [Method::GET, Method::POST][next(2)].clone();
                let https = next(2) == 0;
                let mut buf = None;
                let name = request_host(host, &mut buf).unwrap();
                let host_ok = |r: &MatchRule| {
                    r.hosts.is_empty()
                        || r.hosts
                            .iter()
                            .any(|h| HostPattern::parse(h).unwrap().matches(name))
                };
                let expected = match (0..rules.len())
                    .find(|&i| host_ok(&rules[i]) && router.rules[i].matches(path, &method, https))
                {
                    Some(i) => Route::Site(i),
                    None if rules.iter().any(host_ok) => Route::NoPath,
                    None => Route::NoHost,
                };
                assert_eq!(
                    router.route(host, path, &method, https),
                    expected,
                    "{host} {path} {method} {https} {rules:#?}"
                );
            }
        }
    }
}
