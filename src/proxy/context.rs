//! One request's context: what the request path works out about a request once (its
//! key, who asks and over what, its own cache directives) and the rules it is served
//! under, carried through the steps (and into the fetch task) instead of loose
//! arguments. Cheap to build and to clone: no allocation beyond the key's URL, which
//! every cacheable request needs anyway.

use std::net::IpAddr;
use std::sync::Arc;

use crate::cache::key::CacheKey;
use crate::cache::policy::RequestDirectives;
use crate::cache::Rules;
use crate::site::Site;

use super::ClientInfo;

#[derive(Debug, Clone)]
pub struct Ctx {
    /// The request's cache key, under `rules.key`.
    pub key: CacheKey,
    pub client: ClientInfo,
    /// The client's address behind `[client] trusted_proxies`, worked out once: read by
    /// a site's access rules, rate limit and templates.
    pub client_ip: IpAddr,
    /// Another node of the PoP forwarded the request (a believed hop marker): it was
    /// answered, limited and edited there.
    pub forwarded: bool,
    /// The client's scheme is https: its own connection's, or, for a request another
    /// lacquer node forwarded, the one that node saw.
    pub https: bool,
    /// The request's Cache-Control (parsed once, here), credentials and Cookie.
    pub asked: RequestDirectives,
    /// The site the request was routed to: its origin group, its cache rules (policy,
    /// key rules, size limits) and edits. Held for the whole request, so a reload never
    /// changes the rules of a request in flight.
    pub site: Arc<Site>,
}

impl Ctx {
    /// The cache rules the request is served under (its site's).
    pub fn rules(&self) -> &Rules {
        &self.site.rules().cache
    }
}
