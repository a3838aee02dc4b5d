//! The unreachable-site check. Sites are tried in order and the first match wins, so a
//! site every request of which an earlier site already matches is never used: almost
//! always a rule written below the catch-all it was meant to precede. Only what can be
//! proven is reported; a path regex is compared with nothing but "any path", so a site
//! hidden behind one goes unreported rather than a reachable one being refused.

use std::collections::HashMap;

use super::SiteConfig;
use crate::site::host::HostPattern;

/// Each site found unreachable, with the earliest site that matches all its requests.
pub(super) fn unreachable(sites: &[SiteConfig]) -> Vec<(usize, usize)> {
    let shapes: Vec<Option<Shape<'_>>> = sites.iter().map(Shape::of).collect();
    let mut index = Index::default();
    let mut found = Vec::new();
    for (later, shape) in shapes.iter().enumerate() {
        // A site with a host that does not parse is reported for that, and proves nothing.
        let Some(shape) = shape else { continue };
        let covering = index
            .candidates(shape)
            .filter_map(|list| {
                list.iter()
                    .copied()
                    .find(|&i| shapes[i].as_ref().is_some_and(|e| e.covers(shape)))
            })
            .min();
        if let Some(earlier) = covering {
            found.push((later, earlier));
        }
        index.add(later, shape);
    }
    found
}

/// A site's match conditions as the proof reads them.
struct Shape<'a> {
    /// Empty: any host.
    hosts: Vec<HostPattern>,
    prefixes: &'a [String],
    exact_paths: &'a [String],
    has_regex: bool,
    /// Empty: any method.
    methods: &'a [String],
    any_scheme: bool,
    schemes: &'a [String],
}

impl<'a> Shape<'a> {
    fn of(site: &'a SiteConfig) -> Option<Shape<'a>> {
        let hosts = site
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h).ok())
            .collect::<Option<Vec<_>>>()?;
        let any_scheme = site.schemes.is_empty()
            || (site.schemes.iter().any(|s| s == "http")
                && site.schemes.iter().any(|s| s == "https"));
        Some(Shape {
            hosts,
            prefixes: &site.paths,
            exact_paths: &site.exact_paths,
            has_regex: !site.path_regex.is_empty(),
            methods: &site.methods,
            any_scheme,
            schemes: &site.schemes,
        })
    }

    fn any_path(&self) -> bool {
        self.prefixes.is_empty() && self.exact_paths.is_empty() && !self.has_regex
    }

    /// Whether every request `later` matches is matched by `self`.
    fn covers(&self, later: &Shape<'_>) -> bool {
        self.covers_hosts(later)
            && self.covers_paths(later)
            && superset(self.methods, later.methods)
            && (self.any_scheme || (!later.any_scheme && superset(self.schemes, later.schemes)))
    }

    fn covers_hosts(&self, later: &Shape<'_>) -> bool {
        self.hosts.is_empty()
            || (!later.hosts.is_empty()
                && later
                    .hosts
                    .iter()
                    .all(|h| self.hosts.iter().any(|e| e.covers(h))))
    }

    fn covers_paths(&self, later: &Shape<'_>) -> bool {
        if self.any_path() {
            return true;
        }
        if later.any_path() || later.has_regex {
            return false;
        }
        let under_prefix = |p: &String| self.prefixes.iter().any(|e| p.starts_with(e.as_str()));
        later.prefixes.iter().all(under_prefix)
            && later
                .exact_paths
                .iter()
                .all(|p| under_prefix(p) || self.exact_paths.contains(p))
    }
}

/// `earlier` matches everything `later` does; an empty list matches everything.
fn superset(earlier: &[String], later: &[String]) -> bool {
    earlier.is_empty() || (!later.is_empty() && later.iter().all(|m| earlier.contains(m)))
}

/// The sites seen so far by host, so that a site is compared only with the earlier
/// sites that could cover its first host rather than with every earlier site.
#[derive(Default)]
struct Index {
    any_host: Vec<usize>,
    exact: HashMap<String, Vec<usize>>,
    wildcard: HashMap<String, Vec<usize>>,
}

impl Index {
    fn add(&mut self, i: usize, shape: &Shape<'_>) {
        if shape.hosts.is_empty() {
            self.any_host.push(i);
        }
        for host in &shape.hosts {
            let (map, name) = match host {
                HostPattern::Exact(name) => (&mut self.exact, name),
                HostPattern::Wildcard(suffix) => (&mut self.wildcard, suffix),
            };
            let list = map.entry(name.clone()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }

    /// Lists, each in site order, holding every earlier site that may cover `shape`.
    fn candidates<'s>(&'s self, shape: &Shape<'_>) -> impl Iterator<Item = &'s [usize]> + 's {
        let mut lists: Vec<&[usize]> = vec![&self.any_host];
        if let Some(first) = shape.hosts.first() {
            let name = match first {
                HostPattern::Exact(name) => {
                    lists.extend(self.exact.get(name).map(Vec::as_slice));
                    name.split_once('.').map_or("", |(_, rest)| rest)
                }
                HostPattern::Wildcard(suffix) => suffix.as_str(),
            };
            let mut rest = name;
            while !rest.is_empty() {
                lists.extend(self.wildcard.get(rest).map(Vec::as_slice));
                rest = rest.split_once('.').map_or("", |(_, r)| r);
            }
        }
        lists.into_iter()
    }
}
