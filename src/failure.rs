//! Why a fetch got no response head: which side failed ([`Source`]) and how ([`Kind`]).
//! Origins and shards fail in the same ways, and one rule ([`Replay::after`]) says when
//! a request is sent again, to another origin or to the next shard that owns the key.

use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};

use crate::body::ProxyBody;
use crate::origin::OriginRequest;

/// Which side a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client: its request body broke, or every client waiting for the fetch left.
    Client,
    /// An origin server.
    Origin,
    /// The shard that owns the key, asked by a cluster edge.
    Shard,
    /// lacquer itself: nothing configured to send to, a request it could not build, a
    /// fetch task that ended without an answer.
    Local,
}

/// How a fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No response head within the first-byte timeout.
    Timeout,
    /// Could not connect or send, or the connection failed before a response head.
    Connect,
    /// No response head within a peer's first-byte timeout, and no answer to a
    /// liveness probe either: the peer is hung (stopped, wedged), not busy.
    Unresponsive,
    /// Nothing to send the request to.
    NoUpstream,
    /// The exchange ended without an answer, and without an upstream to blame.
    Abandoned,
}

/// A fetch that produced no response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchFailure {
    pub source: Source,
    pub kind: Kind,
}

impl FetchFailure {
    pub const fn new(source: Source, kind: Kind) -> FetchFailure {
        FetchFailure { source, kind }
    }

    /// The fetch task ended without an answer (runtime shutdown, a bug).
    pub const ABANDONED: FetchFailure = FetchFailure::new(Source::Local, Kind::Abandoned);

    /// Another upstream of the same kind may answer where this one did not: a connect
    /// failure, an origin's timeout, or a shard that is hung. Not a shard's timeout when
    /// the shard is alive: it may be fetching from a slow origin, and the next shard
    /// would fetch again.
    pub fn retryable(&self) -> bool {
        matches!(
            (self.source, self.kind),
            (Source::Origin | Source::Shard, Kind::Connect)
                | (Source::Origin, Kind::Timeout)
                | (Source::Shard, Kind::Unresponsive)
        )
    }

    /// The status a client gets when no stale copy stands in.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::Timeout | Kind::Unresponsive => StatusCode::GATEWAY_TIMEOUT,
            Kind::NoUpstream => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Connect | Kind::Abandoned => StatusCode::BAD_GATEWAY,
        }
    }

    /// The error page's text (the client does not care which tier failed).
    pub fn message(&self) -> &'static str {
        match self.kind {
            Kind::Timeout | Kind::Unresponsive => "origin timed out",
            Kind::NoUpstream => "no origin available",
            Kind::Connect | Kind::Abandoned => "origin unreachable",
        }
    }

    /// The `reason` of `lacquer_stale_served_total` when a stale copy stands in.
    pub fn stale_reason(&self) -> &'static str {
        match (self.source, self.kind) {
            (Source::Shard, Kind::Timeout | Kind::Unresponsive) => "shard-timeout",
            (Source::Shard, _) => "shard-unreachable",
            (_, Kind::Timeout) => "origin-timeout",
            _ => "origin-unreachable",
        }
    }

    /// Cache-Status `detail` when a stale copy stands in.
    pub fn stale_detail(&self) -> &'static str {
        match (self.source, self.kind) {
            (Source::Shard, Kind::Timeout | Kind::Unresponsive) => "stale-if-error; shard timeout",
            (_, Kind::Timeout) => "stale-if-error; origin timeout",
            _ => "stale-if-error",
        }
    }
}

/// What a retry resends: the head of a request that may be sent twice (an idempotent
/// method, and a body that is empty or not needed again).
pub struct Replay {
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
}

impl Replay {
    /// Keep what a retry needs, when the request may be sent again at all.
    pub fn of(req: &OriginRequest) -> Option<Replay> {
        req.retryable.then(|| Replay {
            method: req.method.clone(),
            path_and_query: req.path_and_query.clone(),
            headers: req.headers.clone(),
        })
    }

    /// The one retry rule, for origins and shards alike: the request again (without
    /// its body) when `failure` says another upstream may answer.
    pub fn after(self, failure: FetchFailure) -> Option<OriginRequest> {
        failure.retryable().then(|| OriginRequest {
            method: self.method,
            path_and_query: self.path_and_query,
            headers: self.headers,
            body: ProxyBody::empty(),
            retryable: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_labels_by_source() {
        let f = FetchFailure::new;
        assert_eq!(f(Source::Origin, Kind::Timeout).status(), 504);
        assert_eq!(f(Source::Shard, Kind::Timeout).status(), 504);
        assert_eq!(f(Source::Local, Kind::NoUpstream).status(), 503);
        assert_eq!(f(Source::Shard, Kind::Connect).status(), 502);
        assert_eq!(FetchFailure::ABANDONED.status(), 502);
        assert_eq!(
            f(Source::Origin, Kind::Timeout).stale_reason(),
            "origin-timeout"
        );
        assert_eq!(
            f(Source::Origin, Kind::Connect).stale_reason(),
            "origin-unreachable"
        );
        assert_eq!(
            f(Source::Shard, Kind::Timeout).stale_reason(),
            "shard-timeout"
        );
        assert_eq!(
            f(Source::Shard, Kind::Connect).stale_reason(),
            "shard-unreachable"
        );
    }

    #[test]
    fn one_retry_rule() {
        let f = FetchFailure::new;
        assert!(f(Source::Origin, Kind::Connect).retryable());
        assert!(f(Source::Origin, Kind::Timeout).retryable());
        assert!(f(Source::Shard, Kind::Connect).retryable());
        assert!(!f(Source::Shard, Kind::Timeout).retryable());
        assert!(!f(Source::Client, Kind::Abandoned).retryable());
        assert!(!f(Source::Local, Kind::Connect).retryable());
        assert!(!f(Source::Local, Kind::NoUpstream).retryable());

        let req = |retryable| OriginRequest {
            method: Method::GET,
            path_and_query: PathAndQuery::from_static("/a"),
            headers: HeaderMap::new(),
            body: ProxyBody::empty(),
            retryable,
        };
        assert!(Replay::of(&req(false)).is_none());
        let again = Replay::of(&req(true)).and_then(|r| r.after(f(Source::Shard, Kind::Connect)));
        assert!(again.is_some_and(|r| r.path_and_query == "/a" && r.retryable));
        let not = Replay::of(&req(true)).and_then(|r| r.after(f(Source::Shard, Kind::Timeout)));
        assert!(not.is_none());
    }
}
