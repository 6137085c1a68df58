//! Proxy health as routing sees it (docs/operations.md): a proxy's identity across configurations, and
//! the health-aware order of the matching proxies. Pure: the states are given by the caller
//! (the service reads them from atomic cells; offline callers say "all up").

use std::fmt;
use std::net::Ipv6Addr;

use super::compiled::Proxy;
use super::sip;

/// A proxy's breaker state (docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(u8)]
pub enum Health {
    #[default]
    Up = 0,
    Down = 1,
    Probing = 2,
}

impl Health {
    pub const ALL: [Health; 3] = [Health::Up, Health::Down, Health::Probing];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Probing => "probing",
        }
    }

    pub fn parse(s: &str) -> Option<Health> {
        Health::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// The inverse of `as u8` (anything unknown reads as `Up`, the state that changes nothing).
    pub fn from_u8(v: u8) -> Health {
        match v {
            1 => Health::Down,
            2 => Health::Probing,
            _ => Health::Up,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proxy's identity across every configuration that names it (docs/operations.md): lowercase host
/// (IPv6 in brackets, in its canonical form) and port, `5060` when absent (`5061` for
/// `sips:`). URI parameters do not matter. Written `host:port`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyKey(Box<str>);

impl ProxyKey {
    /// The key of a proxy with `host` (as validated) and `port`.
    pub fn new(host: &str, port: Option<u16>, secure: bool) -> ProxyKey {
        let port = port.unwrap_or(if secure { 5061 } else { 5060 });
        let mut key = String::with_capacity(host.len() + 6);
        match host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .and_then(|h| h.parse::<Ipv6Addr>().ok())
        {
            Some(v6) => key.push_str(&format!("[{v6}]")),
            None => key.extend(host.chars().map(|c| c.to_ascii_lowercase())),
        }
        key.push(':');
        key.push_str(itoa::Buffer::new().format(port));
        ProxyKey(key.into_boxed_str())
    }

    /// Parses what an engine reports: `host[:port]`, or a proxy's `sip_uri` from an answer
    /// (`sip:host[:port];params;lr`, `sips:` too). Whatever a configuration accepts as a proxy
    /// `uri` is accepted here.
    pub fn parse(s: &str) -> Result<ProxyKey, String> {
        let uri = sip::parse_proxy_uri(s)?;
        Ok(ProxyKey::new(uri.host, uri.port, uri.secure))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProxyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProxyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyKey({})", self.0)
    }
}

impl std::borrow::Borrow<str> for ProxyKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Proxy<'_> {
    /// This proxy's identity for health (docs/operations.md).
    pub fn key(&self) -> ProxyKey {
        ProxyKey::new(self.host(), self.port(), self.is_sips())
    }
}

/// The health ordering of docs/routing.md: the matching proxies in configured order, then `up` and `probing` ones
/// before `down` ones, configured order kept within each group (a stable partition). Returns
/// true when health changed the order (a `down` proxy came before one that is not), which is
/// what an explanation needs to say.
pub fn order_by_health<T>(items: &mut [T], health: impl Fn(&T) -> Health) -> bool {
    let down = |t: &T| health(t) == Health::Down;
    let Some(first_down) = items.iter().position(down) else {
        return false;
    };
    if items[first_down..].iter().all(down) {
        return false;
    }
    // Stable: slices of a few proxies are sorted in place without allocating.
    items[first_down..].sort_by_key(|t| down(t));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let k = |s| ProxyKey::parse(s).map(|k| k.to_string());
        assert_eq!(k("Gw1.Example.COM").unwrap(), "gw1.example.com:5060");
        assert_eq!(k("sip:gw1.example.com;lr").unwrap(), "gw1.example.com:5060");
        assert_eq!(k("SIPS:gw1.example.com").unwrap(), "gw1.example.com:5061");
        assert_eq!(
            k("sip:10.0.0.1:5080;transport=udp;lr").unwrap(),
            "10.0.0.1:5080"
        );
        assert_eq!(k("10.0.0.1:5080").unwrap(), "10.0.0.1:5080");
        assert_eq!(k("[2001:DB8:0::1]").unwrap(), "[2001:db8::1]:5060");
        assert_eq!(k("sips:[2001:db8::1]:7000").unwrap(), "[2001:db8::1]:7000");
        for bad in [
            "",
            "sip:",
            "a b",
            "host:0",
            "host:99999",
            "user@host",
            "::1",
        ] {
            assert!(k(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn answers_put_down_proxies_last() {
        use super::super::{Destination, Source, compile, voice_response_json};
        use Health::*;
        let config = r#"{"outbound-voice": [{"proxy": [
            {"uri": "10.0.0.1", "match": "uri1\\.com"},
            {"uri": "10.0.0.2"}, {"uri": "10.0.0.3"}, {"uri": "sips:10.0.0.4"}]}]}"#;
        let routing = compile(config).unwrap();
        let dest = Destination::parse("sip:bob@uri1.com").unwrap();
        let order = |states: [Health; 4]| {
            let answer = routing.resolve_voice_with_health(&dest, &[], |i| states[i]);
            let json: serde_json::Value =
                serde_json::from_slice(&voice_response_json(None, Source::Account, None, &answer))
                    .unwrap();
            let mut got = vec![(
                json["route"]["proxy_index"].as_u64().unwrap(),
                json["route"]["health"].as_str().unwrap().to_owned(),
            )];
            for f in json["fallbacks"].as_array().unwrap() {
                got.push((
                    f["proxy_index"].as_u64().unwrap(),
                    f["health"].as_str().unwrap().to_owned(),
                ));
            }
            let indexes: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
            let healths: Vec<String> = got.into_iter().map(|(_, h)| h).collect();
            (indexes, healths.join(","), answer.health_reordered)
        };
        assert_eq!(
            order([Up, Up, Up, Up]),
            (vec![0, 1, 2, 3], "up,up,up,up".into(), false)
        );
        assert_eq!(
            order([Down, Up, Probing, Down]),
            (vec![1, 2, 0, 3], "up,probing,down,down".into(), true)
        );
        // All down: the route is the first of them, in configured order.
        assert_eq!(
            order([Down, Down, Down, Down]),
            (vec![0, 1, 2, 3], "down,down,down,down".into(), false)
        );
        // Without states (offline, or no reports): every proxy up, the configured order.
        let plain = routing.resolve_voice(&dest, &[]);
        assert_eq!(plain.route.unwrap().health, Up);
    }

    proptest::proptest! {
        /// Any states: a permutation, the not-down ones first, each group in configured
        /// order, and "reordered" exactly when a down proxy came before one that is not.
        #[test]
        fn ordering_properties(states in proptest::collection::vec(0u8..3, 0..12)) {
            let states: Vec<Health> = states.into_iter().map(Health::from_u8).collect();
            let mut items: Vec<(usize, Health)> = states.iter().copied().enumerate().collect();
            let changed = order_by_health(&mut items, |(_, h)| *h);
            let down = |h: Health| h == Health::Down;
            let expected: Vec<(usize, Health)> = states
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, h)| !down(*h))
                .chain(states.iter().copied().enumerate().filter(|(_, h)| down(*h)))
                .collect();
            proptest::prop_assert_eq!(&items, &expected);
            let inverted = states
                .iter()
                .enumerate()
                .any(|(i, h)| down(*h) && states[i..].iter().any(|h| !down(*h)));
            proptest::prop_assert_eq!(changed, inverted);
        }
    }

    #[test]
    fn order_is_a_stable_partition() {
        use Health::*;
        let order = |states: &[Health]| {
            let mut items: Vec<(usize, Health)> = states.iter().copied().enumerate().collect();
            let changed = order_by_health(&mut items, |(_, h)| *h);
            (items.iter().map(|(i, _)| *i).collect::<Vec<_>>(), changed)
        };
        assert_eq!(order(&[]), (vec![], false));
        assert_eq!(order(&[Up, Probing, Up]), (vec![0, 1, 2], false));
        assert_eq!(order(&[Up, Down, Down]), (vec![0, 1, 2], false));
        assert_eq!(order(&[Down, Up, Down, Probing]), (vec![1, 3, 0, 2], true));
        assert_eq!(order(&[Down, Down]), (vec![0, 1], false));
    }
}
