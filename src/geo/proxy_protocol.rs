//! The PROXY protocol header (HAProxy's spec, versions 1 and 2), parsed as a
//! pure function over the first bytes of a connection.
//!
//! A load balancer in front of lacquer sends this header before the HTTP
//! bytes to say which client it is relaying. Anyone can send one, so the
//! listener parses it only on listeners configured for it, and believes the
//! source only when the peer is a trusted proxy ([`super::proxied_peer`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature: chosen so it cannot begin an HTTP request.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is at most 107 bytes including CRLF.
pub const V1_MAX_LEN: usize = 107;
const V1_PREFIX: &[u8] = b"PROXY ";

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    pub version: u8,
    /// The client as the proxy saw it; `None` for `LOCAL` (health checks by
    /// the proxy itself), `UNKNOWN`, and non-IP families such as UNIX sockets.
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

/// Why bytes are not a usable PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("connection does not start with a PROXY protocol header")]
    NotProxy,
    #[error("malformed PROXY protocol v1 header: {0}")]
    V1(&'static str),
    #[error("malformed PROXY protocol v2 header: {0}")]
    V2(&'static str),
}

/// `Ok(None)`: the bytes so far are a valid beginning, read more.
/// `Ok(Some((header, n)))`: the header takes the first `n` bytes; the rest is
/// the client's data. `Err`: not a PROXY header, or a malformed one; the
/// connection should be closed.
pub fn parse_proxy_header(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    if is_prefix(buf, &V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    if is_prefix(buf, V1_PREFIX) {
        return if buf.len() < V1_PREFIX.len() {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    Err(ProxyHeaderError::NotProxy)
}

/// Whether `buf` and `sig` agree on their common length.
fn is_prefix(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf.get(..n) == sig.get(..n)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let window = buf.get(..buf.len().min(V1_MAX_LEN)).unwrap_or(buf);
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX_LEN {
            Err(ProxyHeaderError::V1("no CRLF within 107 bytes"))
        } else if window.contains(&b'\n') || window.contains(&0) {
            Err(ProxyHeaderError::V1("stray control character"))
        } else {
            Ok(None)
        };
    };
    let line = window
        .get(V1_PREFIX.len()..end)
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or(ProxyHeaderError::V1("not ASCII"))?;
    let consumed = end + 2;
    let mut fields = line.split(' ');
    let header = match fields.next() {
        // The proxy does not know the client (spec §2.1): ignore the rest.
        Some("UNKNOWN") => ProxyHeader {
            version: 1,
            source: None,
            destination: None,
        },
        Some(proto @ ("TCP4" | "TCP6")) => {
            let parts: Vec<&str> = fields.collect();
            let [src, dst, sport, dport] = parts.as_slice() else {
                return Err(ProxyHeaderError::V1("expected 4 fields after the protocol"));
            };
            let v4 = proto == "TCP4";
            ProxyHeader {
                version: 1,
                source: Some(SocketAddr::new(v1_addr(src, v4)?, v1_port(sport)?)),
                destination: Some(SocketAddr::new(v1_addr(dst, v4)?, v1_port(dport)?)),
            }
        }
        _ => {
            return Err(ProxyHeaderError::V1(
                "protocol must be TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    Ok(Some((header, consumed)))
}

fn v1_addr(s: &str, v4: bool) -> Result<IpAddr, ProxyHeaderError> {
    if v4 {
        s.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ProxyHeaderError::V1("bad IPv4 address"))
    } else {
        s.parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ProxyHeaderError::V1("bad IPv6 address"))
    }
}

fn v1_port(s: &str) -> Result<u16, ProxyHeaderError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProxyHeaderError::V1("bad port"));
    }
    s.parse().map_err(|_| ProxyHeaderError::V1("bad port"))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyHeaderError> {
    let Some(&[ver_cmd, family, len_hi, len_lo]) = buf.get(12..16) else {
        return Ok(None);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::V2("version must be 2"));
    }
    let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    let consumed = 16 + len;
    let Some(body) = buf.get(16..consumed) else {
        return Ok(None);
    };
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyHeaderError::V2("command must be LOCAL or PROXY")),
    };
    let (source, destination) = match family >> 4 {
        // AF_UNSPEC, and AF_UNIX which has no IP to speak of.
        0 | 3 => (None, None),
        1 => {
            let a = body
                .get(..12)
                .ok_or(ProxyHeaderError::V2("IPv4 address block too short"))?;
            let ip = |i: usize| -> Option<IpAddr> {
                let o: [u8; 4] = a.get(i..i + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(o)))
            };
            addrs(ip(0), ip(4), a.get(8..10), a.get(10..12))
        }
        2 => {
            let a = body
                .get(..36)
                .ok_or(ProxyHeaderError::V2("IPv6 address block too short"))?;
            let ip = |i: usize| -> Option<IpAddr> {
                let o: [u8; 16] = a.get(i..i + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            };
            addrs(ip(0), ip(16), a.get(32..34), a.get(34..36))
        }
        _ => return Err(ProxyHeaderError::V2("unknown address family")),
    };
    // LOCAL: the proxy is talking for itself; the addresses, if any, are not a client.
    let (source, destination) = if local {
        (None, None)
    } else {
        (source, destination)
    };
    Ok(Some((
        ProxyHeader {
            version: 2,
            source,
            destination,
        },
        consumed,
    )))
}

fn addrs(
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    sport: Option<&[u8]>,
    dport: Option<&[u8]>,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let port = |p: Option<&[u8]>| -> Option<u16> {
        let b: [u8; 2] = p?.try_into().ok()?;
        Some(u16::from_be_bytes(b))
    };
    (
        src.zip(port(sport)).map(|(ip, p)| SocketAddr::new(ip, p)),
        dst.zip(port(dport)).map(|(ip, p)| SocketAddr::new(ip, p)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let buf = b"PROXY TCP4 198.51.100.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let (h, n) = parse_proxy_header(buf).unwrap().unwrap();
        assert_eq!(h.source, Some(sa("198.51.100.7:56324")));
        assert_eq!(h.destination, Some(sa("10.0.0.1:443")));
        assert_eq!(&buf[n..n + 3], b"GET");

        let buf = b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
        let (h, n) = parse_proxy_header(buf).unwrap().unwrap();
        assert_eq!(h.source, Some(sa("[2001:db8::1]:1")));
        assert_eq!(n, buf.len());
    }

    #[test]
    fn v1_unknown() {
        let (h, n) = parse_proxy_header(b"PROXY UNKNOWN whatever\r\nX")
            .unwrap()
            .unwrap();
        assert_eq!((h.source, n), (None, 24));
        let (h, _) = parse_proxy_header(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!(h.source, None);
    }

    #[test]
    fn incomplete_asks_for_more() {
        let full = b"PROXY TCP4 198.51.100.7 10.0.0.1 56324 443\r\n";
        for n in 0..full.len() - 1 {
            assert_eq!(parse_proxy_header(&full[..n]), Ok(None), "{n}");
        }
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend([0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0, 80, 1, 187]);
        for n in 0..v2.len() {
            assert_eq!(parse_proxy_header(&v2[..n]), Ok(None), "{n}");
        }
        assert!(parse_proxy_header(&v2).unwrap().is_some());
    }

    #[test]
    fn v1_malformed() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY \xff\xfe\r\n",
        ] {
            assert!(
                parse_proxy_header(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 200]].concat();
        assert_eq!(
            parse_proxy_header(&long),
            Err(ProxyHeaderError::V1("no CRLF within 107 bytes"))
        );
    }

    #[test]
    fn not_proxy() {
        for buf in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PRI * HTTP/2.0",
            b"\x16\x03\x01",
            b"PROXZ",
        ] {
            assert_eq!(parse_proxy_header(buf), Err(ProxyHeaderError::NotProxy));
        }
    }

    #[test]
    fn v2_families() {
        let mut v4 = V2_SIGNATURE.to_vec();
        v4.extend([0x21, 0x11, 0, 15]);
        v4.extend([198, 51, 100, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb]);
        v4.extend([0x04, 0, 0]); // a NOOP TLV, skipped
        v4.extend(b"GET");
        let (h, n) = parse_proxy_header(&v4).unwrap().unwrap();
        assert_eq!(h.version, 2);
        assert_eq!(h.source, Some(sa("198.51.100.7:56324")));
        assert_eq!(h.destination, Some(sa("10.0.0.1:443")));
        assert_eq!(&v4[n..], b"GET");

        let mut v6 = V2_SIGNATURE.to_vec();
        v6.extend([0x21, 0x21, 0, 36]);
        let src: Ipv6Addr = "2001:db8::7".parse().unwrap();
        v6.extend(src.octets());
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        v6.extend([0, 1, 0, 2]);
        let (h, _) = parse_proxy_header(&v6).unwrap().unwrap();
        assert_eq!(h.source, Some(sa("[2001:db8::7]:1")));

        // LOCAL carries no client even with addresses present.
        let mut local = v4.clone();
        local[12] = 0x20;
        let (h, _) = parse_proxy_header(&local).unwrap().unwrap();
        assert_eq!(h.source, None);

        // UNSPEC with no body.
        let mut unspec = V2_SIGNATURE.to_vec();
        unspec.extend([0x21, 0x00, 0, 0]);
        let (h, n) = parse_proxy_header(&unspec).unwrap().unwrap();
        assert_eq!((h.source, n), (None, 16));
    }

    #[test]
    fn v2_malformed() {
        let head = |b13: u8, b14: u8, len: u16| {
            let mut v = V2_SIGNATURE.to_vec();
            v.extend([b13, b14]);
            v.extend(len.to_be_bytes());
            v.extend(vec![0u8; usize::from(len)]);
            v
        };
        for bad in [
            head(0x11, 0x11, 12), // version 1 in a v2 header
            head(0x22, 0x11, 12), // command 2
            head(0x21, 0x11, 11), // IPv4 block short
            head(0x21, 0x21, 35), // IPv6 block short
            head(0x21, 0x41, 12), // family 4
        ] {
            assert!(parse_proxy_header(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz over short inputs around both signatures.
        let mut seed: u32 = 12345;
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (seed >> 16) as usize % 64;
            let mut buf: Vec<u8> = if seed & 1 == 0 {
                V2_SIGNATURE.to_vec()
            } else {
                b"PROXY ".to_vec()
            };
            for i in 0..len {
                buf.push((seed.rotate_left(i as u32) & 0xff) as u8);
            }
            let _ = parse_proxy_header(&buf);
        }
    }
}
