//! A minimal CIDR block (`10.0.0.0/8`, `::1/128`) for address allow-lists.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network. Host bits are cleared on construction, so
/// `10.1.2.3/8` and `10.0.0.0/8` are the same block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {input:?}: {reason}")]
pub struct CidrError {
    input: String,
    reason: &'static str,
}

impl Cidr {
    /// Builds a block from an address and prefix length, clearing host bits.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > max {
            return None;
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        Some(Cidr { network, prefix })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this block. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) is matched as the IPv4 address it
    /// carries, because that is how IPv4 clients appear on a dual-stack socket.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                u32::from(a) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Accepts `addr/prefix`, or a bare address meaning a single host.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let fail = |reason| CidrError {
            input: s.to_string(),
            reason,
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| fail("expected an IP address such as 10.0.0.0/8 or ::1/128"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // `u8::from_str` would accept "+8"; only plain digits are a prefix.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .map_err(|_| fail("prefix length is too large"))?,
            Some(_) => return Err(fail("prefix length must be a number")),
        };
        Cidr::new(addr, prefix).ok_or_else(|| {
            fail(if max == 32 {
                "IPv4 prefix length must be at most 32"
            } else {
                "IPv6 prefix length must be at most 128"
            })
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));

        let host: Cidr = "127.0.0.1/32".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        assert_eq!("127.0.0.1".parse::<Cidr>().unwrap(), host);

        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::")));
    }

    #[test]
    fn v6() {
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));

        let lo: Cidr = "::1/128".parse().unwrap();
        assert!(lo.contains(ip("::1")));
        assert!(!lo.contains(ip("::2")));
        assert_eq!("::1".parse::<Cidr>().unwrap(), lo);

        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(ip("fe80::1")));
        assert!(!all.contains(ip("127.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_matches_v4_block() {
        let c: Cidr = "127.0.0.1/32".parse().unwrap();
        assert!(c.contains(ip("::ffff:127.0.0.1")));
        assert!(!c.contains(ip("::ffff:127.0.0.2")));
    }

    #[test]
    fn bad_input() {
        for bad in [
            "",
            "/",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "localhost/8",
            "10.0.0.0/ 8",
            "10.0.0.0/1000",
            "::1/999",
            " 10.0.0.0/8",
            "10.0.0.0/8a",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} should be rejected");
        }
        let err = "10.0.0.0/33".parse::<Cidr>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid CIDR \"10.0.0.0/33\": IPv4 prefix length must be at most 32"
        );
    }
}
