//! The client's real address behind reverse proxies. `X-Forwarded-For` is believed only when
//! the peer that sent the request is a proxy the operator named with `--trusted-proxy`:
//! anyone else could write any address in it, and choose whose sign-ins are throttled.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address or a network (`10.0.0.0/8`, `fd00::/8`, `127.0.0.1`), from `--trusted-proxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    pub fn contains(&self, address: IpAddr) -> bool {
        // A v4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("\"{text}\" is not an IP address or a network like 10.0.0.0/8");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let network = network.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(bad)?,
        };
        Ok(TrustedProxy { network, prefix })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The address a request comes from: the peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy (proxies append
/// the address they received from, so the list is read from the right; what is left of an
/// untrusted entry could have been written by the client).
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[TrustedProxy],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |a: IpAddr| trusted.iter().any(|t| t.contains(a));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut forwarded: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(v) => forwarded.extend(v.split(',').map(str::trim)),
            // A header that is not text cannot be read: the proxy is the client.
            Err(_) => return Some(peer),
        }
    }
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match parse_forwarded(entry) {
            Some(address) => {
                client = address;
                if !is_trusted(address) {
                    break;
                }
            }
            // Unreadable (or "unknown"): nothing to the left of it can be believed.
            None => break,
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(a) = entry.parse::<IpAddr>() {
        return Some(a.to_canonical());
    }
    if let Ok(s) = entry.parse::<std::net::SocketAddr>() {
        return Some(s.ip().to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().expect("a proxy")).collect()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().expect("a header value"));
        }
        h
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn networks_parse_and_match() {
        let p: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains("10.200.3.4".parse().unwrap()));
        assert!(p.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        let one: TrustedProxy = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "proxy.example", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let h = headers(&["203.0.113.7"]);
        // From the proxy: the address it says it received from.
        assert_eq!(
            client_address(ip("127.0.0.1"), &h, &trusted),
            ip("203.0.113.7")
        );
        // From anyone else: the header is ignored.
        assert_eq!(
            client_address(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
        // No proxies configured: never believed.
        assert_eq!(client_address(ip("127.0.0.1"), &h, &[]), ip("127.0.0.1"));
        // From the proxy without the header: the proxy.
        assert_eq!(
            client_address(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        // The client wrote a made-up first entry; two proxies appended theirs.
        let h = headers(&["6.6.6.6, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &h, &trusted),
            ip("203.0.113.7")
        );
        let h = headers(&["[2001:db8::1]:443, 10.0.0.5:1234"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &h, &trusted),
            ip("2001:db8::1")
        );
        // Garbage stops the walk at the last address that could be believed.
        let h = headers(&["203.0.113.7, garbage, 10.0.0.5"]);
        assert_eq!(
            client_address(ip("127.0.0.1"), &h, &trusted),
            ip("10.0.0.5")
        );
    }
}
