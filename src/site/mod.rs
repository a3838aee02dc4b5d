//! Sites: `[[site]]` rules compiled for the request path. A request is routed by host,
//! path, method and scheme to one site, which says where its misses go (an origin
//! group), how it is cached and keyed, which headers are edited, and whether it is
//! answered without an origin at all (redirect, fixed response, access, rate limit).

pub mod host;
pub mod router;
