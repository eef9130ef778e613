//! The client's address behind a reverse proxy. `X-Forwarded-For` is
//! anyone's to write, so it is believed only when the direct peer is one of
//! the configured `trusted_proxies`, and then only as far as trusted hops
//! vouch: the right-most address that is not a trusted proxy is the
//! client (what the last trusted proxy saw). Everything keyed by client
//! address (login limits, audit rows) goes through `api::extract::request_meta`.

use actix_web::HttpRequest;
use std::net::IpAddr;

/// An address range: `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    base: IpAddr,
    bits: u8,
}

impl Range {
    fn parse(text: &str) -> Option<Range> {
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let base: IpAddr = addr.trim().parse().ok()?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Range { base, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (a, b, width) = match (self.base, ip.to_canonical()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a).into(), u32::from(b).into(), 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.bits);
        shift >= 128 || (a >> shift) == (b >> shift)
    }
}

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Range>);

impl TrustedProxies {
    /// Parses addresses and ranges; `Err` names the first bad one.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                Range::parse(e)
                    .ok_or_else(|| format!("`{e}` is not an address or range like 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client of `req`: its peer, or through trusted proxies the
    /// right-most untrusted `X-Forwarded-For` address. An unreadable entry
    /// where the client should be leaves the peer's address.
    pub fn client(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip().to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>();
        let mut client = peer;
        while let Some(hop) = hops.pop() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(client) {
                        break;
                    }
                }
                Err(_) => return Some(peer),
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn client(trusted: &[&str], peer: &str, xff: Option<&str>) -> String {
        let proxies =
            TrustedProxies::parse(&trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap_or_default();
        let mut req = TestRequest::default().peer_addr(format!("{peer}:4000").parse().unwrap());
        if let Some(xff) = xff {
            req = req.insert_header(("X-Forwarded-For", xff));
        }
        proxies
            .client(&req.to_http_request())
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(client(&[], "203.0.113.9", Some("1.2.3.4")), "203.0.113.9");
        assert_eq!(
            client(&["10.0.0.0/8"], "203.0.113.9", Some("1.2.3.4")),
            "203.0.113.9"
        );
        // Trusted: the right-most untrusted hop, not a forged left-most one.
        assert_eq!(
            client(
                &["10.0.0.0/8"],
                "10.0.0.2",
                Some("6.6.6.6, 198.51.100.7, 10.1.1.1")
            ),
            "198.51.100.7"
        );
        assert_eq!(client(&["10.0.0.2"], "10.0.0.2", None), "10.0.0.2");
        assert_eq!(client(&["10.0.0.2"], "10.0.0.2", Some("junk")), "10.0.0.2");
        assert_eq!(
            client(&["::1", "127.0.0.1"], "127.0.0.1", Some("2001:db8::1")),
            "2001:db8::1"
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
