//! Who the client is: the peer address, or, when the peer is a trusted proxy,
//! the first untrusted hop in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is a list that each proxy appends its own peer to, so
//! only the right end is written by proxies we trust; everything to the left
//! of the first untrusted entry may have been forged by the client. Walking
//! from the right and stopping at the first address that is not a trusted
//! proxy is the only reading that a client cannot steer.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::config::Cidr;

/// Bound on `X-Forwarded-For` entries examined; real chains are a few hops.
pub const MAX_FORWARDED_HOPS: usize = 32;

/// The client address to make decisions about. `peer` is the TCP peer (or the
/// source a trusted PROXY protocol header named). IPv4-mapped IPv6 addresses
/// are returned as IPv4.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let mut current = canonical(peer);
    if !is_trusted(current, trusted) {
        return current;
    }
    for hop in forwarded_hops(headers).take(MAX_FORWARDED_HOPS) {
        // A trusted proxy wrote this entry; if it is not an address, the
        // chain cannot be followed any further and the proxy itself is the
        // best answer we can vouch for.
        let Some(ip) = parse_hop(hop) else {
            return current;
        };
        current = canonical(ip);
        if !is_trusted(current, trusted) {
            return current;
        }
    }
    current
}

/// Which source address to believe for a connection that began with a PROXY
/// protocol header: the header's, only when the peer that sent it is trusted.
pub fn proxied_peer(peer: SocketAddr, source: Option<SocketAddr>, trusted: &[Cidr]) -> SocketAddr {
    match source {
        Some(src) if is_trusted(canonical(peer.ip()), trusted) => src,
        _ => peer,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// IPv4 clients on a dual-stack socket show up as `::ffff:a.b.c.d`
/// (RFC 4291 §2.5.5.2); the database and the CIDR lists speak IPv4 for them.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Entries of every `X-Forwarded-For` field, rightmost first. Several fields
/// are one list in order (RFC 9110 §5.3).
fn forwarded_hops(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let fields: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    fields
        .into_iter()
        .rev()
        .flat_map(|f| f.rsplit(','))
        .map(str::trim)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`; some
/// proxies append the port. Anything else (`unknown`, obfuscated names) is
/// not an address.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn trusted() -> Vec<Cidr> {
        vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let h = xff(&["8.8.8.8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted()),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("203.0.113.9"), &h, &[]), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_peer_walks_from_the_right() {
        let t = trusted();
        // Client forged "1.1.1.1"; the trusted proxy 10.0.0.2 appended the real peer.
        let h = xff(&["1.1.1.1, 198.51.100.7, 10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
        // The same chain split over several fields.
        let h = xff(&["1.1.1.1", "198.51.100.7", "10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
        // Ports and brackets.
        let h = xff(&["198.51.100.7:4433"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
        let h = xff(&["[2001:db8::5]:4433"]);
        assert_eq!(client_ip(ip("::1"), &h, &t), ip("2001:db8::5"));
        let h = xff(&["[2001:db8::5]"]);
        assert_eq!(client_ip(ip("::1"), &h, &t), ip("2001:db8::5"));
        let h = xff(&["::ffff:198.51.100.7"]);
        assert_eq!(client_ip(ip("::1"), &h, &t), ip("198.51.100.7"));
    }

    #[test]
    fn trusted_peer_without_usable_header() {
        let t = trusted();
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &t),
            ip("10.0.0.1")
        );
        for bad in ["unknown", "", "garbage, ", "1.2.3", "_hidden"] {
            let h = xff(&[bad]);
            assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"), "{bad:?}");
        }
        // Garbage to the right of a real address stops the walk at the proxy.
        let h = xff(&["198.51.100.7, unknown"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
        // Non-UTF-8 bytes are not an address either.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &t), ip("10.0.0.1"));
    }

    #[test]
    fn all_trusted_chain_ends_at_the_leftmost() {
        let h = xff(&["10.9.9.9, 10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted()), ip("10.9.9.9"));
    }

    #[test]
    fn hops_are_bounded() {
        let long = vec!["10.1.1.1"; MAX_FORWARDED_HOPS + 10].join(",");
        let h = xff(&[&format!("198.51.100.7,{long}")]);
        // The real client is beyond the bound: the walk stops on a trusted hop.
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted()), ip("10.1.1.1"));
    }

    #[test]
    fn mapped_peer_is_ipv4() {
        let t: Vec<Cidr> = vec!["127.0.0.1/32".parse().unwrap()];
        let h = xff(&["198.51.100.7"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &t),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("::ffff:1.2.3.4"), &h, &t), ip("1.2.3.4"));
    }

    #[test]
    fn proxy_protocol_source_only_from_trusted_peers() {
        let src: SocketAddr = "198.51.100.7:1234".parse().unwrap();
        let lb: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.1:40000".parse().unwrap();
        assert_eq!(proxied_peer(lb, Some(src), &trusted()), src);
        assert_eq!(proxied_peer(stranger, Some(src), &trusted()), stranger);
        assert_eq!(proxied_peer(lb, None, &trusted()), lb);
    }
}
