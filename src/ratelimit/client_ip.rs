//! The client's IP address: the socket peer, or — only when the peer is a trusted proxy —
//! the right-most address in `X-Forwarded-For` that is not itself a trusted proxy. The
//! left part of that header is whatever the client wrote, so it is never believed (MDN,
//! "X-Forwarded-For: Selecting an IP address"; RFC 7239 §8.1 for the same concern).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};

use crate::app::AppState;
use crate::error::Error;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// An address block such as `10.0.0.0/8`, `2001:db8::/32`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/len` (len ≤ 32 for IPv4, ≤ 128 for IPv6).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.trim().split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.trim(), None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| "not an IP address or CIDR block".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(l) => {
                l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| format!("prefix length must be 0 to {max}"))?
            }
            None => max,
        };
        Ok(Self { addr, prefix_len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u128::from(u32::from(net)), u128::from(u32::from(ip)), 32, self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(u128::from(net), u128::from(ip), 128, self.prefix_len),
            _ => false,
        }
    }
}

/// Whether the first `len` of the `width` low bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, width: u32, len: u8) -> bool {
    let shift = width - u32::from(len);
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports) as plain IPv4, so
/// one client has one key.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses one `X-Forwarded-For` element: a bare address, or one with a port.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    IpAddr::from_str(s).ok().or_else(|| SocketAddr::from_str(s).ok().map(|a| a.ip())).map(canonical)
}

/// The client address for a request from `peer` with `headers`, given the trusted proxies.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Every X-Forwarded-For field line, in order, as one list (RFC 9110 §5.3).
    let hops: Vec<&str> =
        headers.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            // Garbage where a trusted proxy should have written an address: stop at the
            // last hop we can vouch for.
            None => return client,
        }
    }
    client
}

/// The client's IP address, for handlers (the login lockout). The rate-limit middleware
/// stores it; without the middleware it is worked out here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        let ip = resolve(peer(parts), &parts.headers, state.limits.trusted_proxies());
        parts.extensions.insert(ClientIp(ip));
        Ok(ClientIp(ip))
    }
}

/// The socket peer; `0.0.0.0` when the server did not record it (a router called directly,
/// as in unit tests), so such requests share one bucket rather than escape limits.
pub fn peer(parts: &Parts) -> IpAddr {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(X_FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_what_they_should() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")) && !c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped IPv6 is IPv4");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:1::1")));
        assert!(!Cidr::parse("2001:db8::/32").unwrap().contains(ip("10.0.0.1")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        assert_eq!(resolve(ip("203.0.113.9"), &headers(&["1.1.1.1"]), &trusted), ip("203.0.113.9"));
        assert_eq!(resolve(ip("10.0.0.2"), &headers(&["1.1.1.1"]), &trusted), ip("1.1.1.1"));
        assert_eq!(resolve(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client_and_spoofed_hops_are_ignored() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        // The client claims to be 9.9.9.9; the edge proxy appended the real 198.51.100.7.
        let h = headers(&["9.9.9.9, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(resolve(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        assert_eq!(resolve(ip("10.0.0.2"), &headers(&["10.0.0.9, 10.0.0.5"]), &trusted), ip("10.0.0.9"));
        assert_eq!(resolve(ip("10.0.0.2"), &headers(&["garbage"]), &trusted), ip("10.0.0.2"));
        assert_eq!(resolve(ip("10.0.0.2"), &headers(&["198.51.100.7:4711"]), &trusted), ip("198.51.100.7"));
    }
}
