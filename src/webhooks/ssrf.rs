//! The SSRF guard: webhook deliveries only ever connect to public addresses.
//!
//! A webhook URL is chosen by an admin, but the request is sent from inside the network
//! orderly runs in; without this guard an endpoint at `http://169.254.169.254/` (cloud
//! metadata), `http://10.0.0.5:6379/` or `http://localhost:9464/` would make orderly an
//! open proxy into it (OWASP "Server Side Request Forgery Prevention Cheat Sheet").
//!
//! - [`check_url`]: `http`/`https`, a host, no user info; IP literals must be public.
//! - [`resolve_public`]: the host's addresses, every one of them public (checked at create
//!   and update, so the admin gets a 422 naming `url`).
//! - [`PublicResolver`]: the delivery client's DNS resolver. It resolves at connect time and
//!   refuses the name if any address is not public, so the connection goes to exactly the
//!   addresses it checked: a name that turns private after creation (DNS rebinding) fails.
//!   IP literals bypass resolvers, so the worker checks them with [`check_url`] first;
//!   redirects are never followed (`redirect::Policy::none()`).
//!
//! `webhooks.allow_private_targets` (development only) lets every address through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The longest endpoint URL accepted, in characters.
pub const MAX_URL_LEN: usize = 2048;

/// Whether `ip` is a public unicast address: not loopback, unspecified, link-local,
/// private (RFC 1918, RFC 4193), CGNAT (RFC 6598), multicast, broadcast, reserved,
/// benchmarking (RFC 2544) or documentation (RFC 5737, RFC 3849), and for IPv6 forms that
/// embed an IPv4 address (mapped `::ffff:0:0/96`, compatible `::/96`, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`) the embedded address is public.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network", 0.0.0.0/8
        || a == 10 // private
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private 172.16/12
        || (a == 192 && b == 168) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible (deprecated, RFC 4291 §2.5.5.1); also covers :: and ::1.
    if s[..6].iter().all(|&x| x == 0) {
        return false;
    }
    // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052): the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
    }
    // 6to4 2002::/16 (RFC 3056): the IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    let blocked = (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast ff00::/8
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only 100::/64
    !blocked
}

/// Parses an endpoint URL: `http` or `https`, a host, no user info, at most
/// [`MAX_URL_LEN`] characters; an IP-literal host must be public unless `allow_private`.
/// Errors: the reason, for a 422 on the `url` field.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    if raw.chars().count() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|_| "must be an absolute http:// or https:// URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| "must name a host".to_string())?;
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>()
        && !allow_private
        && !is_public(ip)
    {
        return Err("must not point at a loopback, private, link-local or reserved address".into());
    }
    Ok(url)
}

/// The addresses `url`'s host resolves to, if every one is public (or `allow_private`).
/// Errors: the reason, for a 422 on the `url` field.
pub async fn resolve_public(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let host = url.host_str().ok_or_else(|| "must name a host".to_string())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| "names a host that does not resolve".to_string())?
        .collect();
    if addrs.is_empty() {
        return Err("names a host that does not resolve".into());
    }
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err("resolves to a loopback, private, link-local or reserved address".into());
    }
    Ok(addrs)
}

/// The delivery client's resolver: the system resolver, refusing a name when any of its
/// addresses is not public (unless private targets are allowed). See the module docs.
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    pub allow_private: bool,
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => addrs.collect(),
                Err(e) => return Err::<Addrs, BoxError>(Box::new(e)),
            };
            if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err("the webhook host resolves to a non-public address (SSRF guard)".into());
            }
            Ok(Box::new(addrs.into_iter()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn loopback_private_link_local_and_cgnat_ipv4_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
        ] {
            assert!(!public(ip), "{ip} passed");
        }
    }

    #[test]
    fn ordinary_internet_addresses_are_public() {
        for ip in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "2a00:1450::1"] {
            assert!(public(ip), "{ip} refused");
        }
    }

    #[test]
    fn ipv6_loopback_ula_link_local_multicast_and_documentation_are_not_public() {
        for ip in ["::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "2001:db8::1", "fec0::1", "100::1"] {
            assert!(!public(ip), "{ip} passed");
        }
    }

    #[test]
    fn ipv6_forms_embedding_a_private_ipv4_address_are_not_public() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:101::1",
            "::127.0.0.1",
        ] {
            assert!(!public(ip), "{ip} passed");
        }
        assert!(public("::ffff:8.8.8.8"));
        assert!(public("64:ff9b::808:808"));
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(check_url("https://hooks.example.com/orderly", false).is_ok());
        assert!(check_url("ftp://example.com/", false).is_err());
        assert!(check_url("file:///etc/passwd", false).is_err());
        assert!(check_url("https://user:pw@example.com/", false).is_err());
        assert!(check_url("not a url", false).is_err());
        assert!(check_url(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)), false).is_err());
    }

    #[test]
    fn private_ip_literals_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://169.254.169.254/",
            "http://10.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(check_url(url, false).is_err(), "{url} passed");
            assert!(check_url(url, true).is_ok(), "{url} refused with private targets allowed");
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
        let url = check_url("http://localhost:9/", false).unwrap();
        assert!(resolve_public(&url, false).await.is_err());
        assert!(resolve_public(&url, true).await.is_ok());
    }
}
