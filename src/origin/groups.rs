//! The origin groups of one configuration, by name: every `[[origin_group]]`, plus
//! `default` for the top-level `[[origin]]` list.
//!
//! A reload builds a new set from the previous one. A group whose servers, balancing,
//! TLS and health setup and `[upstream]` settings are all unchanged keeps its pool (the
//! same `Arc`): what the probes and circuit breakers learned, the probe tasks and the
//! idle connections all carry over, and a reload does not put a down server back in
//! rotation. Any change builds the group afresh.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::OriginPool;
use crate::config::{Balance, Config, OriginConfig, UpstreamConfig, DEFAULT_GROUP};
use crate::metrics::Metrics;

/// The origin groups of one configuration.
#[derive(Debug, Default)]
pub struct OriginGroups {
    pools: BTreeMap<String, Arc<OriginPool>>,
}

impl OriginGroups {
    /// One pool per group in `cfg`, each taken from `previous` when it would be built
    /// the same. Nothing is started: call `spawn_health_checks` once the set is in use.
    /// Every problem is reported, one per line.
    pub fn build(
        cfg: &Config,
        previous: Option<&OriginGroups>,
        metrics: &Arc<Metrics>,
    ) -> Result<OriginGroups, String> {
        let mut wanted: Vec<(&str, Balance, Vec<OriginConfig>)> = Vec::new();
        if !cfg.origin.is_empty() {
            wanted.push((DEFAULT_GROUP, Balance::RoundRobin, cfg.origin.clone()));
        }
        for g in &cfg.origin_group {
            wanted.push((g.name.as_str(), g.balance, g.origins()));
        }
        let mut pools = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, balance, origins) in wanted {
            if name.is_empty() {
                errors.push("an origin group has no name".to_owned());
                continue;
            }
            if pools.contains_key(name) {
                errors.push(if name == DEFAULT_GROUP {
                    format!(
                        "origin group {name:?} is the [[origin]] list; name the group otherwise"
                    )
                } else {
                    format!("origin group {name:?} is defined twice")
                });
                continue;
            }
            if origins.is_empty() {
                errors.push(format!("origin group {name:?} has no servers"));
                continue;
            }
            match reuse(previous, name, balance, &origins, &cfg.upstream, metrics) {
                Some(pool) => {
                    tracing::debug!(
                        group = name,
                        "origin group unchanged: kept with its health state"
                    );
                    pools.insert(name.to_owned(), pool);
                }
                None => match OriginPool::for_group(
                    name,
                    balance,
                    &origins,
                    &cfg.upstream,
                    metrics.clone(),
                ) {
                    Ok(pool) => {
                        pools.insert(name.to_owned(), pool);
                    }
                    Err(e) => errors.push(format!("origin group {name:?}: {e}")),
                },
            }
        }
        if errors.is_empty() {
            Ok(OriginGroups { pools })
        } else {
            Err(errors.join("\n"))
        }
    }

    /// The group called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<OriginPool>> {
        self.pools.get(name)
    }

    /// The `default` group: the `[[origin]]` list, when there is one.
    pub fn default_group(&self) -> Option<&Arc<OriginPool>> {
        self.get(DEFAULT_GROUP)
    }

    /// The group names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    /// Start the health probes of the pools built by this `build`; pools kept from the
    /// previous set already run theirs (each pool starts its probes once). Returns how
    /// many probe tasks were started.
    pub fn spawn_health_checks(&self) -> usize {
        self.pools
            .values()
            .map(OriginPool::spawn_health_checks)
            .sum()
    }
}

/// The previous set's pool for group `name`, if it was built from the same settings.
fn reuse(
    previous: Option<&OriginGroups>,
    name: &str,
    balance: Balance,
    origins: &[OriginConfig],
    upstream: &UpstreamConfig,
    metrics: &Arc<Metrics>,
) -> Option<Arc<OriginPool>> {
    previous?
        .get(name)
        .filter(|pool| pool.built_from(balance, origins, upstream, metrics))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OriginGroupConfig, ServerConfig};

    fn group(name: &str, servers: &[&str]) -> OriginGroupConfig {
        let mut g = OriginGroupConfig {
            name: name.to_owned(),
            servers: servers
                .iter()
                .map(|a| ServerConfig {
                    address: (*a).to_owned(),
                    weight: 1,
                })
                .collect(),
            ..OriginGroupConfig::default()
        };
        g.health.enabled = false;
        g
    }

    fn config(groups: Vec<OriginGroupConfig>) -> Config {
        Config {
            origin: vec![OriginConfig {
                address: "127.0.0.1:1".to_owned(),
                ..OriginConfig::default()
            }],
            origin_group: groups,
            ..Config::default()
        }
    }

    fn same(a: &OriginGroups, b: &OriginGroups, name: &str) -> bool {
        match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
    }

    #[test]
    fn names_the_default_group_and_every_origin_group() {
        let m = Arc::new(Metrics::new());
        let cfg = config(vec![
            group("b", &["127.0.0.1:2"]),
            group("a", &["127.0.0.1:3"]),
        ]);
        let g = OriginGroups::build(&cfg, None, &m).unwrap();
        assert_eq!(g.names().collect::<Vec<_>>(), ["a", "b", "default"]);
        assert_eq!(g.default_group().unwrap().name(), "default");
        assert_eq!(g.get("a").unwrap().name(), "a");
        assert!(g.get("c").is_none());

        let mut no_list = cfg.clone();
        no_list.origin.clear();
        let g = OriginGroups::build(&no_list, None, &m).unwrap();
        assert!(g.default_group().is_none());
    }

    #[test]
    fn refuses_duplicates_nameless_and_empty_groups_all_at_once() {
        let m = Arc::new(Metrics::new());
        let cfg = config(vec![
            group("a", &["127.0.0.1:2"]),
            group("a", &["127.0.0.1:3"]),
            group("default", &["127.0.0.1:4"]),
            group("", &["127.0.0.1:5"]),
            group("empty", &[]),
            group("bad", &["not an address"]),
        ]);
        let e = OriginGroups::build(&cfg, None, &m).unwrap_err();
        assert_eq!(e.lines().count(), 5, "{e}");
        for part in [
            "\"a\" is defined twice",
            "\"default\" is the [[origin]] list",
            "no name",
            "\"empty\" has no servers",
            "\"bad\"",
        ] {
            assert!(e.contains(part), "{part} in {e}");
        }
        // Without the [[origin]] list, a group may be the default one.
        let mut cfg = config(vec![group("default", &["127.0.0.1:4"])]);
        cfg.origin.clear();
        let g = OriginGroups::build(&cfg, None, &m).unwrap();
        assert_eq!(
            g.default_group().unwrap().origins()[0].address,
            "127.0.0.1:4"
        );
    }

    #[test]
    fn keeps_unchanged_pools_and_rebuilds_changed_ones() {
        let m = Arc::new(Metrics::new());
        let cfg = config(vec![
            group("a", &["127.0.0.1:2"]),
            group("b", &["127.0.0.1:3"]),
        ]);
        let first = OriginGroups::build(&cfg, None, &m).unwrap();
        let again = OriginGroups::build(&cfg, Some(&first), &m).unwrap();
        for name in ["a", "b", "default"] {
            assert!(same(&first, &again, name), "{name} kept");
        }

        let mut changed = cfg.clone();
        changed.origin_group[1].balance = Balance::Hash;
        let next = OriginGroups::build(&changed, Some(&again), &m).unwrap();
        assert!(same(&again, &next, "a") && same(&again, &next, "default"));
        assert!(!same(&again, &next, "b"), "a changed group is built afresh");
        assert_eq!(next.get("b").unwrap().balance(), Balance::Hash);

        let mut upstream = changed.clone();
        upstream.upstream.first_byte_timeout *= 2;
        let last = OriginGroups::build(&upstream, Some(&next), &m).unwrap();
        for name in ["a", "b", "default"] {
            assert!(
                !same(&next, &last, name),
                "[upstream] changes rebuild {name}"
            );
        }

        let other_metrics = Arc::new(Metrics::new());
        let elsewhere = OriginGroups::build(&upstream, Some(&last), &other_metrics).unwrap();
        assert!(
            !same(&last, &elsewhere, "a"),
            "a pool reports to its own metrics"
        );
    }

    #[test]
    fn a_ca_file_replaced_in_place_rebuilds_the_group() {
        let dir = std::env::temp_dir().join(format!("lacquer-groups-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        let pem = |host: &str| {
            rcgen::generate_simple_self_signed(vec![host.to_owned()])
                .unwrap()
                .cert
                .pem()
        };
        std::fs::write(&ca, pem("one.test")).unwrap();
        let mut g = group("tls", &["127.0.0.1:2"]);
        g.tls = true;
        g.ca_file = Some(ca.clone());
        let cfg = config(vec![g]);
        let m = Arc::new(Metrics::new());
        let first = OriginGroups::build(&cfg, None, &m).unwrap();
        let again = OriginGroups::build(&cfg, Some(&first), &m).unwrap();
        assert!(same(&first, &again, "tls"));
        std::fs::write(&ca, pem("two.test")).unwrap();
        let next = OriginGroups::build(&cfg, Some(&again), &m).unwrap();
        assert!(!same(&again, &next, "tls"), "new CA certificates are read");
        assert!(same(&again, &next, "default"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
