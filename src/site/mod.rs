//! Sites: `[[site]]` rules compiled for the request path. A request is routed by host,
//! path, method and scheme to one site, which says where its misses go (an origin
//! group), how it is cached and keyed, which headers are edited, and whether it is
//! answered without an origin at all (redirect, fixed response, access, rate limit).
//!
//! Without any `[[site]]`, every request goes to the default site: `[[origin]]` and
//! `[cache]` as before, at the cost of one branch.

pub mod answer;
pub mod edit;
pub mod explain;
pub mod host;
pub mod ratelimit;
pub mod router;
pub mod rules;
pub mod template;

use std::net::IpAddr;
use std::sync::Arc;

use crate::compress::Policy;
use crate::config::{Config, SiteConfig, DEFAULT_GROUP, DEFAULT_SITE};
use crate::metrics::{Metrics, SiteMeters};
use crate::origin::{OriginGroups, OriginPool};
use answer::{Access, Answer};
use edit::HeaderEdit;
use ratelimit::RateLimiter;
use router::{MatchRule, Route, Router};
use rules::CacheRules;

/// One site, compiled.
pub struct Site {
    name: Arc<str>,
    group_name: Arc<str>,
    /// Where misses go; None for an answer-only site, or an edge without origins.
    group: Option<Arc<OriginPool>>,
    rules: CacheRules,
    access: Option<Access>,
    limiter: Option<RateLimiter>,
    answer: Option<Answer>,
    request_edits: HeaderEdit,
    response_edits: HeaderEdit,
    /// Some of the key's fields carry cookies (`key.cookies`).
    key_cookies: bool,
    meters: Option<SiteMeters>,
    /// How responses are compressed; None when the site does not compress.
    compression: Option<Arc<Policy>>,
    /// The site's own bound on a silent WebSocket tunnel (else `limits`').
    tunnel_idle_timeout: Option<std::time::Duration>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("group", &self.group_name)
            .finish_non_exhaustive()
    }
}

impl Site {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn group_name(&self) -> &str {
        &self.group_name
    }
    pub fn group(&self) -> Option<&Arc<OriginPool>> {
        self.group.as_ref()
    }
    pub fn rules(&self) -> &CacheRules {
        &self.rules
    }
    pub fn answer(&self) -> Option<&Answer> {
        self.answer.as_ref()
    }
    pub fn has_access_rules(&self) -> bool {
        self.access.is_some()
    }
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.access.as_ref().map_or(true, |a| a.permits(ip))
    }
    pub fn limiter(&self) -> Option<&RateLimiter> {
        self.limiter.as_ref()
    }
    pub fn request_edits(&self) -> &HeaderEdit {
        &self.request_edits
    }
    pub fn response_edits(&self) -> &HeaderEdit {
        &self.response_edits
    }
    /// The site reads the client's address: access rules, a rate limit, an answer or
    /// header edits (whose templates may name it).
    pub fn uses_client(&self) -> bool {
        self.access.is_some()
            || self.limiter.is_some()
            || self.answer.is_some()
            || !self.request_edits.is_empty()
            || !self.response_edits.is_empty()
    }

    /// The site keys by cookies: their values travel in internal request fields.
    pub fn key_cookies(&self) -> bool {
        self.key_cookies
    }
    pub fn meters(&self) -> Option<&SiteMeters> {
        self.meters.as_ref()
    }
    /// How this site's responses are compressed, if they are.
    pub fn compression(&self) -> Option<&Arc<Policy>> {
        self.compression.as_ref()
    }

    /// How long the site's WebSocket tunnels may be silent, when it sets its own bound.
    pub fn tunnel_idle_timeout(&self) -> Option<std::time::Duration> {
        self.tunnel_idle_timeout
    }

    fn new(name: &str, group_name: &str, rules: CacheRules) -> Site {
        Site {
            name: Arc::from(name),
            group_name: Arc::from(group_name),
            group: None,
            key_cookies: rules
                .key_headers
                .iter()
                .any(|h| h.as_str().starts_with(rules::COOKIE_FIELD_PREFIX)),
            rules,
            access: None,
            limiter: None,
            answer: None,
            request_edits: HeaderEdit::default(),
            response_edits: HeaderEdit::default(),
            meters: None,
            compression: None,
            tunnel_idle_timeout: None,
        }
    }
}

/// Where a request goes.
pub enum Routed<'a> {
    Site(&'a Arc<Site>),
    /// No site serves this host (421).
    Misdirected,
    /// A site serves the host, none this path, method or scheme (404).
    NotFound,
}

/// Every site of a config, routed in file order, and the default site.
pub struct Sites {
    router: Router,
    sites: Vec<Arc<Site>>,
    default: Option<Arc<Site>>,
}

impl Sites {
    /// Compile the sites of a validated config. `groups` gives each its pool and
    /// `metrics` its meters (None: explain only).
    pub fn build(cfg: &Config, groups: Option<&OriginGroups>) -> Result<Sites, String> {
        Sites::build_with(cfg, groups, None)
    }

    /// [`Sites::build`] for serving: with pools and meters.
    pub fn serving(
        cfg: &Config,
        groups: &OriginGroups,
        metrics: &Arc<Metrics>,
    ) -> Result<Sites, String> {
        Sites::build_with(cfg, Some(groups), Some(metrics))
    }

    fn build_with(
        cfg: &Config,
        groups: Option<&OriginGroups>,
        metrics: Option<&Arc<Metrics>>,
    ) -> Result<Sites, String> {
        let pool = |name: &str| groups.and_then(|g| g.get(name).cloned());
        // One policy for every site, so the bound on streams compressing is the node's.
        let policy = Arc::new(Policy::new(&cfg.compression));
        let compression = |own: Option<bool>| {
            own.unwrap_or(cfg.compression.enabled)
                .then(|| policy.clone())
        };
        let mut sites = Vec::with_capacity(cfg.site.len());
        for s in &cfg.site {
            let mut site = compile(cfg, s)?;
            site.group = pool(&site.group_name);
            site.meters = metrics.map(|m| m.site_meters(&site.name));
            site.compression = compression(s.compress);
            sites.push(Arc::new(site));
        }
        let rules: Vec<MatchRule> = cfg.site.iter().map(MatchRule::of).collect();
        let router = Router::new(&rules)?;
        // Today's single-pool form stays the default; with sites and no `[[origin]]`,
        // what matches no site is refused.
        let default = (cfg.site.is_empty() || !cfg.origin.is_empty()).then(|| {
            let mut site = Site::new(DEFAULT_SITE, DEFAULT_GROUP, CacheRules::global(&cfg.cache));
            site.group = pool(DEFAULT_GROUP);
            site.compression = compression(None);
            // Without sites, the per-site series would only repeat the node's own.
            if !cfg.site.is_empty() {
                site.meters = metrics.map(|m| m.site_meters(DEFAULT_SITE));
            }
            Arc::new(site)
        });
        Ok(Sites {
            router,
            sites,
            default,
        })
    }

    pub fn route(&self, host: &str, path: &str, method: &http::Method, https: bool) -> Routed<'_> {
        if self.sites.is_empty() {
            return match &self.default {
                Some(d) => Routed::Site(d),
                None => Routed::Misdirected,
            };
        }
        match self.router.route(host, path, method, https) {
            Route::Site(i) => match self.sites.get(i) {
                Some(s) => Routed::Site(s),
                None => Routed::NotFound,
            },
            r => match (&self.default, r) {
                (Some(d), _) => Routed::Site(d),
                (None, Route::NoHost) => Routed::Misdirected,
                (None, _) => Routed::NotFound,
            },
        }
    }

    /// Whether a site of this name is configured (the default site included).
    pub fn contains(&self, name: &str) -> bool {
        self.all().any(|s| s.name() == name)
    }

    /// Every site, the default last.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Site>> {
        self.sites.iter().chain(self.default.iter())
    }
}

fn compile(cfg: &Config, s: &SiteConfig) -> Result<Site, String> {
    let at = |e: String| format!("site {:?}: {e}", s.name);
    let group_name = s.origin_group.as_deref().unwrap_or(DEFAULT_GROUP);
    let access = (!s.allow.is_empty() || !s.deny.is_empty())
        .then(|| Access::compile(&s.allow, &s.deny))
        .transpose()
        .map_err(at)?;
    let mut site = Site::new(
        &s.name,
        group_name,
        CacheRules::for_site(&cfg.cache, &s.cache),
    );
    site.access = access;
    site.limiter = s.rate_limit.as_ref().map(RateLimiter::new);
    site.answer = Answer::compile(s).map_err(at)?;
    site.request_edits = HeaderEdit::compile(&s.request_headers, false).map_err(at)?;
    site.response_edits = HeaderEdit::compile(&s.response_headers, true).map_err(at)?;
    site.tunnel_idle_timeout = s.tunnel_idle_timeout;
    Ok(site)
}
