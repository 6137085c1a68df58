//! Active probing (docs/operations.md, off by default): every interval, a SIP `OPTIONS` over UDP to
//! each distinct proxy that an enabled configuration names with `sip:` (never `sips:`); any
//! SIP response is a success, none within 2 s a timeout. Results feed the same breakers as
//! the engines' reports.
//!
//! Bounded whatever the number of proxies: one UDP socket per address family, and one task
//! that sends the probes, expires them and receives the answers (correlated by Call-ID), at
//! most one probe outstanding per proxy. Lookups never wait for any of it. Messages are
//! built and parsed with `rsip`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use rsip::headers::UntypedHeader as _;
use rsip::message::HeadersExt as _;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::{HealthRegistry, Observation, now_micros};
use crate::routing::ProxyKey;

/// docs/operations.md: no response within this is a timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often outstanding probes are checked for their timeout.
const EXPIRY_CHECK: Duration = Duration::from_millis(100);
/// Host names resolved at once in a round.
const CONCURRENT_RESOLUTIONS: usize = 16;
/// The largest datagram read (a SIP response over UDP is far smaller).
const MAX_DATAGRAM: usize = 65_535;

/// How probing is set up.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSettings {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Default)]
struct Outstanding {
    /// Call-ID → the proxy and when its probe was sent.
    by_call_id: HashMap<String, (ProxyKey, Instant)>,
    /// Proxies with a probe outstanding (never two at once).
    proxies: HashSet<ProxyKey>,
}

struct Prober {
    registry: Arc<HealthRegistry>,
    v4: UdpSocket,
    v6: Option<UdpSocket>,
    outstanding: Mutex<Outstanding>,
    settings: ProbeSettings,
}

/// Probes for ever (the caller aborts the task to stop). Fails only when no UDP socket can
/// be bound.
pub async fn run(registry: Arc<HealthRegistry>, settings: ProbeSettings) -> std::io::Result<()> {
    let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    let v6 = match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await {
        Ok(socket) => Some(socket),
        Err(e) => {
            tracing::warn!(error = %e, "no IPv6 socket for probing: IPv6 proxies are not probed");
            None
        }
    };
    tracing::info!(
        interval_s = settings.interval.as_secs_f64(),
        "probing proxies with SIP OPTIONS"
    );
    let prober = Prober {
        registry,
        v4,
        v6,
        outstanding: Mutex::default(),
        settings,
    };
    let v6_answers = async {
        match &prober.v6 {
            Some(socket) => prober.receive(socket).await,
            None => std::future::pending().await,
        }
    };
    tokio::join!(
        prober.send_and_expire(),
        prober.receive(&prober.v4),
        v6_answers
    );
    Ok(())
}

impl Prober {
    fn outstanding(&self) -> std::sync::MutexGuard<'_, Outstanding> {
        self.outstanding.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send_and_expire(&self) {
        let mut rounds = tokio::time::interval(self.settings.interval);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expiry = tokio::time::interval(EXPIRY_CHECK);
        loop {
            tokio::select! {
                _ = rounds.tick() => self.round().await,
                _ = expiry.tick() => self.expire(),
            }
        }
    }

    /// One probe to every target without one outstanding.
    async fn round(&self) {
        let targets: Vec<ProxyKey> = {
            let outstanding = self.outstanding();
            self.registry
                .probe_targets()
                .into_iter()
                .filter(|k| !outstanding.proxies.contains(k))
                .collect()
        };
        let mut resolved = futures_util::stream::iter(targets)
            .map(|key| async move {
                let addr = resolve(&key).await;
                (key, addr)
            })
            .buffer_unordered(CONCURRENT_RESOLUTIONS);
        while let Some((key, addr)) = resolved.next().await {
            match addr {
                Some(addr) => self.send(key, addr).await,
                None => {
                    // Nothing can answer a name that does not resolve.
                    tracing::debug!(proxy = %key, "probe: the host does not resolve");
                    self.registry
                        .observe(key.as_str(), Observation::Failure, now_micros());
                }
            }
        }
    }

    async fn send(&self, key: ProxyKey, to: SocketAddr) {
        let socket = match (to, &self.v6) {
            (SocketAddr::V4(_), _) => &self.v4,
            (SocketAddr::V6(_), Some(v6)) => v6,
            (SocketAddr::V6(_), None) => return,
        };
        let local_port = socket.local_addr().map_or(0, |a| a.port());
        let local = SocketAddr::new(local_ip_towards(to), local_port);
        let ids = ProbeIds::random();
        let message = options_request(&key, local, &ids);
        {
            let mut outstanding = self.outstanding();
            outstanding.proxies.insert(key.clone());
            outstanding
                .by_call_id
                .insert(ids.call_id.clone(), (key.clone(), Instant::now()));
        }
        if let Err(e) = socket.send_to(message.to_string().as_bytes(), to).await {
            // Counted as a timeout when it expires: nothing will answer it.
            tracing::debug!(proxy = %key, error = %e, "probe could not be sent");
        }
    }

    /// Probes older than the timeout: failures.
    fn expire(&self) {
        let expired: Vec<ProxyKey> = {
            let mut outstanding = self.outstanding();
            let timeout = self.settings.timeout;
            let mut expired = Vec::new();
            outstanding.by_call_id.retain(|_, (key, sent)| {
                let keep = sent.elapsed() < timeout;
                if !keep {
                    expired.push(key.clone());
                }
                keep
            });
            for key in &expired {
                outstanding.proxies.remove(key);
            }
            expired
        };
        let now = now_micros();
        for key in expired {
            tracing::debug!(proxy = %key, "probe timed out");
            self.registry
                .observe(key.as_str(), Observation::Failure, now);
        }
    }

    /// Answers: any SIP response to an outstanding probe is a success; anything else
    /// (late answers, strays, garbage) is dropped.
    async fn receive(&self, socket: &UdpSocket) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let n = match socket.recv_from(&mut buf).await {
                Ok((n, _from)) => n,
                Err(e) => {
                    // ICMP port unreachable surfaces here on some systems: not an answer.
                    tracing::debug!(error = %e, "probe socket receive error");
                    continue;
                }
            };
            let Some(call_id) = response_call_id(&buf[..n]) else {
                continue;
            };
            let answered = {
                let mut outstanding = self.outstanding();
                let found = outstanding.by_call_id.remove(&call_id);
                if let Some((key, _)) = &found {
                    outstanding.proxies.remove(key);
                }
                found
            };
            if let Some((key, _)) = answered {
                self.registry
                    .observe(key.as_str(), Observation::Success, now_micros());
            }
        }
    }
}

/// The proxy's address: an IP literal as it is, a name through the system resolver (the
/// first address, within the probe timeout).
async fn resolve(key: &ProxyKey) -> Option<SocketAddr> {
    let (host, port) = split_key(key)?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(PROBE_TIMEOUT, lookup).await {
        Ok(Ok(mut addrs)) => addrs.next(),
        _ => None,
    }
}

/// `host:port` → (host, port); the host of an IPv6 key keeps its brackets.
fn split_key(key: &ProxyKey) -> Option<(&str, u16)> {
    let (host, port) = key.as_str().rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// The local address the system would send from towards `to` (for `Via`): asking costs a
/// throw-away socket and no packet.
fn local_ip_towards(to: SocketAddr) -> IpAddr {
    let unspecified = match to {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .and_then(|s| s.connect(to).and_then(|()| s.local_addr()))
        .map_or(unspecified, |a| a.ip())
}

/// The random identifiers of one probe.
#[derive(Debug, Clone)]
pub struct ProbeIds {
    pub call_id: String,
    pub branch: String,
    pub tag: String,
}

impl ProbeIds {
    pub fn random() -> ProbeIds {
        ProbeIds {
            call_id: format!("{}@multiprovider", hex::encode(rand::random::<[u8; 16]>())),
            // RFC 3261 magic cookie.
            branch: format!("z9hG4bK{}", hex::encode(rand::random::<[u8; 8]>())),
            tag: hex::encode(rand::random::<[u8; 4]>()),
        }
    }
}

fn sip_uri(host: &str, port: Option<u16>) -> rsip::Uri {
    rsip::Uri {
        scheme: Some(rsip::Scheme::Sip),
        // A domain is written as it is given: IPv6 keeps its brackets.
        host_with_port: rsip::HostWithPort {
            host: rsip::Host::Domain(rsip::Domain::from(host.to_owned())),
            port: port.map(Into::into),
        },
        ..Default::default()
    }
}

/// `OPTIONS sip:host:port` from `local` (RFC 3261 §11), with `rport` (RFC 3581) so that the
/// answer comes back to the socket that sent it.
pub fn options_request(key: &ProxyKey, local: SocketAddr, ids: &ProbeIds) -> rsip::Request {
    let (host, port) = split_key(key).unwrap_or((key.as_str(), 5060));
    let target = sip_uri(host, Some(port));
    let local_host = match local.ip() {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let mut headers: rsip::Headers = Default::default();
    headers.push(
        rsip::typed::Via {
            version: rsip::Version::V2,
            transport: rsip::Transport::Udp,
            uri: rsip::Uri {
                scheme: None,
                ..sip_uri(&local_host, Some(local.port()))
            },
            params: vec![
                rsip::Param::Branch(rsip::param::Branch::new(ids.branch.clone())),
                rsip::Param::Other("rport".into(), None),
            ],
        }
        .into(),
    );
    headers.push(rsip::headers::MaxForwards::new("70").into());
    headers.push(
        rsip::typed::From {
            display_name: None,
            uri: rsip::Uri {
                auth: Some(rsip::Auth {
                    user: "multiprovider".into(),
                    password: None,
                }),
                ..sip_uri(&local_host, None)
            },
            params: vec![rsip::Param::Tag(rsip::param::Tag::new(ids.tag.clone()))],
        }
        .into(),
    );
    headers.push(
        rsip::typed::To {
            display_name: None,
            uri: target.clone(),
            params: Vec::new(),
        }
        .into(),
    );
    headers.push(rsip::headers::CallId::new(ids.call_id.clone()).into());
    headers.push(
        rsip::typed::CSeq {
            seq: 1,
            method: rsip::Method::Options,
        }
        .into(),
    );
    headers.push(rsip::headers::UserAgent::new("multiprovider").into());
    headers.push(rsip::headers::ContentLength::new("0").into());
    rsip::Request {
        method: rsip::Method::Options,
        uri: target,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The Call-ID of a datagram that parses as a SIP response; `None` for anything else.
pub fn response_call_id(datagram: &[u8]) -> Option<String> {
    match rsip::SipMessage::try_from(datagram) {
        Ok(rsip::SipMessage::Response(response)) => {
            response.call_id_header().ok().map(|c| c.value().to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_options_request_is_well_formed_sip() {
        use rsip::prelude::ToTypedHeader as _;
        let key = ProxyKey::parse("sip:127.0.0.1:5071;transport=udp").unwrap();
        let ids = ProbeIds::random();
        let request = options_request(&key, "127.0.0.1:40000".parse().unwrap(), &ids);
        let text = request.to_string();
        assert!(
            text.starts_with("OPTIONS sip:127.0.0.1:5071 SIP/2.0\r\n"),
            "{text}"
        );
        // It parses back, with what an answer must copy.
        let parsed = rsip::Request::try_from(text.as_str()).unwrap();
        assert_eq!(parsed.method, rsip::Method::Options);
        assert_eq!(parsed.call_id_header().unwrap().value(), ids.call_id);
        let via = parsed.via_header().unwrap().typed().unwrap();
        assert_eq!(via.branch().unwrap().to_string(), ids.branch);
        assert!(
            text.contains("Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK"),
            "{text}"
        );
        assert!(text.contains(";rport"), "{text}");
        assert!(text.contains("CSeq: 1 OPTIONS\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text:?}");

        let v6 = ProxyKey::parse("[::1]:5080").unwrap();
        let text = options_request(&v6, "[::1]:40000".parse().unwrap(), &ids).to_string();
        assert!(
            text.starts_with("OPTIONS sip:[::1]:5080 SIP/2.0\r\n"),
            "{text}"
        );
    }

    #[test]
    fn only_responses_carry_a_call_id_back() {
        let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKabc\r\n\
            From: <sip:multiprovider@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1:5071>;tag=2\r\n\
            Call-ID: abc@multiprovider\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            response_call_id(response.as_bytes()).as_deref(),
            Some("abc@multiprovider")
        );
        let key = ProxyKey::parse("127.0.0.1:5071").unwrap();
        let request = options_request(&key, "127.0.0.1:1".parse().unwrap(), &ProbeIds::random());
        assert_eq!(response_call_id(request.to_string().as_bytes()), None);
        assert_eq!(response_call_id(b"garbage"), None);
        assert_eq!(response_call_id(b""), None);
    }
}
