//! The client's IP address: the socket peer, or — only when the peer is a trusted proxy —
//! the right-most address in `X-Forwarded-For` that is not itself a trusted proxy. The
//! left part of that header is whatever the client wrote, so it is never believed (MDN,
//! "X-Forwarded-For: Selecting an IP address"; RFC 7239 §8.1 for the same concern).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};

use crate::config::{Cidr, canonical};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

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
